"""Login throttling: too many failures for one username from one address -> wait.

Failures are rows in `login_failures`, so every web process (`serve --workers N`,
several hosts on one Postgres) counts against the same limit. Each failure is
written in its own short transaction: the login request's own transaction rolls
back with its 401, the count must not. Rows older than the window are deleted as
new failures arrive, so the table holds at most one window of failures.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Engine, Table, delete, func, insert, select

from tutorscore.db.base import utcnow
from tutorscore.db.models.auth import LoginFailure

FAILURES = cast(Table, LoginFailure.__table__)


class LoginThrottle:
    def __init__(
        self,
        engine: Engine,
        *,
        max_failures: int = 5,
        window_seconds: float = 300.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)
        self._clock = clock

    @staticmethod
    def _key(username: str, address: str) -> tuple[str, str]:
        return username.lower()[:200], address[:64]

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait when this username+address is locked out, else None."""
        name, addr = self._key(username, address)
        now = self._clock()
        c = FAILURES.c
        with self.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(c.failed_at)).where(
                    c.username == name, c.address == addr, c.failed_at > now - self.window
                )
            ).one()
        if count < self.max_failures or oldest is None:
            return None
        remaining = (oldest + self.window - now).total_seconds()
        return max(1, int(remaining) + 1)

    def failure(self, username: str, address: str) -> None:
        name, addr = self._key(username, address)
        now = self._clock()
        with self.engine.begin() as conn:
            conn.execute(delete(FAILURES).where(FAILURES.c.failed_at <= now - self.window))
            conn.execute(insert(FAILURES).values(username=name, address=addr, failed_at=now))

    def success(self, username: str, address: str) -> None:
        name, addr = self._key(username, address)
        c = FAILURES.c
        with self.engine.begin() as conn:
            conn.execute(delete(FAILURES).where(c.username == name, c.address == addr))
