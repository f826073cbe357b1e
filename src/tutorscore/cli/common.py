"""Shared pieces of the command line: engine, consoles, time parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from rich.console import Console
from sqlalchemy import Engine

from tutorscore.config import get_settings
from tutorscore.db.engine import make_engine
from tutorscore.errors import UserError

console = Console()
err_console = Console(stderr=True)


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(get_settings().database_url)


def parse_timestamp(value: str | None, *, option: str = "--as-of") -> datetime:
    """ISO 8601 with an offset or Z; a bare date means midnight UTC; None means now."""
    if value is None:
        return datetime.now(UTC)
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UserError(f"{option}: expected an ISO 8601 timestamp, got {value!r}") from exc
    if parsed.tzinfo is None:
        raise UserError(f"{option}: timestamp {value!r} needs an offset or Z")
    return parsed.astimezone(UTC)
