"""Shared names of the browser tests (the conftest fixtures and the tests both use them)."""

from __future__ import annotations

from dataclasses import dataclass

PASSWORD = "browser-test-password"


@dataclass
class Server:
    base_url: str
    env: dict[str, str]
    admin_token: str
