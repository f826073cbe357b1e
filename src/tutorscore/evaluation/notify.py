"""Postgres LISTEN/NOTIFY wake-ups for idle workers (polling stays the fallback).

Enqueues (and jobs handed back due now) call `notify_jobs` inside their
transaction; Postgres delivers the notification when it commits. A worker on
Postgres runs a `JobListener`: a thread with its own connection that LISTENs on
the channel and wakes the worker's idle slots at once. While it listens, idle
slots still look every `listen_poll_seconds` (retries whose backoff ran out are
due without anyone notifying); when it cannot connect (an outage) they poll every
`poll_seconds` as on SQLite, and it reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)
CHANNEL = "tutorscore_jobs"


def notify_jobs(session: Session) -> None:
    """Tell listening workers that jobs are due (Postgres; delivered at commit)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class JobListener:
    """LISTEN in a thread; `wake()` is called for each notification and on (re)connect."""

    def __init__(
        self,
        engine: Engine,
        wake: Callable[[], None],
        *,
        stop: threading.Event,
        retry_max_seconds: float = 5.0,
    ) -> None:
        self.conninfo = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        self.wake = wake
        self.stop = stop
        self.retry_max = retry_max_seconds
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job-listener", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        delay = 0.5
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = 0.5
                    self.wake()  # jobs queued while nobody listened
                    while not self.stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.wake()
            except psycopg.Error as exc:
                log.debug("job listener: %s; polling until it reconnects", exc)
            finally:
                self.connected.clear()
            self.stop.wait(delay)
            delay = min(delay * 2, self.retry_max)
