"""Login throttling: too many failures for one username from one address -> wait.

Failures are rows in `login_failures`, so every web process (`serve --workers N`,
several hosts on one Postgres) counts against the same limit. The key is the
normalised username (`auth.users.normalize_username`: `" admin"`, `"ADMIN\\t"` and
`"admin\\u00a0"` count as one) and the client address.

Atomic: an attempt is *reserved* before its password is checked. In one short
transaction of its own, serialised per key (a transaction-level advisory lock on
Postgres; on SQLite the INSERT-first order takes the database's write lock before
the count), the reservation counts the failures in the window and, when there is
room, inserts the attempt's row. 30 concurrent wrong logins therefore get exactly
`max_failures` checks and 29 - 4 answers of 429. A successful login deletes the key's
rows (its own reservation included); a failed one leaves its row as the failure.
Rows older than the window are deleted as new attempts arrive, so the table holds at
most one window of failures.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, text

from tutorscore.db.base import utcnow
from tutorscore.db.models.auth import LoginFailure

FAILURES = cast(Table, LoginFailure.__table__)
LOCK_NAMESPACE = 0x4C47  # "LG": the throttle's advisory locks (Postgres)


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
        from tutorscore.auth.users import normalize_username

        return normalize_username(username)[:200], address[:64]

    def _wait(self, conn: Connection, name: str, addr: str, now: datetime) -> int | None:
        c = FAILURES.c
        count, oldest = conn.execute(
            select(func.count(), func.min(c.failed_at)).where(
                c.username == name, c.address == addr, c.failed_at > now - self.window
            )
        ).one()
        if count < self.max_failures or oldest is None:
            return None
        remaining = (oldest + self.window - now).total_seconds()
        return max(1, int(remaining) + 1)

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait when this username+address is locked out, else None (read only)."""
        name, addr = self._key(username, address)
        with self.engine.connect() as conn:
            return self._wait(conn, name, addr, self._clock())

    def reserve(self, username: str, address: str) -> int | None:
        """Count this attempt before its password is checked: seconds to wait when the
        key is locked out (nothing recorded), else None (a failure row is recorded now;
        `success` removes it)."""
        name, addr = self._key(username, address)
        now = self._clock()
        c = FAILURES.c
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # two-key form: (namespace, key) cannot collide with single-key locks
                key = zlib.crc32(f"{name}\x00{addr}".encode()) - 2**31  # int4 range
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:ns, :k)"), {"ns": LOCK_NAMESPACE, "k": key}
                )
            # the delete comes first: on SQLite it takes the write lock, so the count
            # below cannot interleave with another process's reservation
            conn.execute(delete(FAILURES).where(c.failed_at <= now - self.window))
            wait = self._wait(conn, name, addr, now)
            if wait is None:
                conn.execute(insert(FAILURES).values(username=name, address=addr, failed_at=now))
            return wait

    def failure(self, username: str, address: str) -> None:
        """Record a failure without a reservation (callers that did not `reserve`)."""
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
