"""A real `tutorscore serve` (SQLite, with its worker) and the system Chromium for browser tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser.browser_support import PASSWORD, Server

CHROMIUM = shutil.which("chromium")


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    from tutorscore.web.devserver import tutorscore_command

    done = subprocess.run(
        [*tutorscore_command(), *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if CHROMIUM is None:
        pytest.skip("browser tests need the system Chromium: run `make chromium`")
    from tutorscore.web.devserver import prepare_demo, running_server

    tmp: Path = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{tmp}/browser.db"
    prepare_demo(url, tutors=25, students=300, sessions=900, transcripts=40, seed=11)
    env = {
        "DATABASE_URL": url,
        "TUTORSCORE_DATA_DIR": str(tmp),
        "TUTORSCORE_SECRET_KEY": "browser-tests-secret-key-0123456789",
    }
    for name, role in (("admin1", "admin"), ("viewer1", "viewer")):
        _cli(env, "users", "create", "--username", name, "--role", role, "--password-stdin",
             stdin=PASSWORD + "\n")  # fmt: skip
    token = _cli(env, "tokens", "create", "--username", "admin1").strip()
    with running_server(env, worker=True, log_path=tmp / "server.log") as base_url:
        yield Server(base_url, env, token)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None:
        pytest.skip("browser tests need the system Chromium: run `make chromium`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()
