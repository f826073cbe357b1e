"""The worker's view of its own health: database outages and a status others can read.

`DatabaseOutage` keeps one failure streak: the worker asks it how long to wait
before the next try (capped exponential backoff with jitter) and tells it when a
database step succeeded again. It logs one warning when a streak starts and one
info line when it ends, never once per failed try.

`WorkerStatus` is what `/healthz` and `/metrics` report: the worker's state and
the time of its last heartbeat (the event loop beats every second). The `serve`
command hands it to the web app in the same process; with `--workers N` the web
processes are others, so the status is also written to a JSON file they read.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

# states a worker can be in; the first three are alive
STARTING, RUNNING, DATABASE_UNAVAILABLE, STOPPED, DEAD = (
    "starting",
    "running",
    "database_unavailable",
    "stopped",
    "dead",
)
ALIVE_STATES = (STARTING, RUNNING, DATABASE_UNAVAILABLE)
STATES = (STARTING, RUNNING, DATABASE_UNAVAILABLE, STOPPED, DEAD)
HEARTBEAT_SECONDS = 1.0
# a heartbeat older than this means the worker's event loop is stuck (or its process gone)
STALE_AFTER_SECONDS = 30.0


class WorkerStopping(Exception):
    """Asked to stop while waiting for the database: leave the job to its lease."""


def is_database_error(exc: BaseException) -> bool:
    """True for errors of the database or the connection to it, not of one statement's data.

    OperationalError covers refused connections, terminated backends, "database
    is locked" and the server shutting down; InterfaceError a connection that is
    already closed; a pool timeout means no connection could be had.
    IntegrityError, DataError and ProgrammingError are about the statement and
    fail the job like any other error.
    """
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.DisconnectionError
        | sa_exc.TimeoutError,
    )


def short_error(exc: BaseException, limit: int = 300) -> str:
    """The first line of the driver's message (no SQL, no traceback)."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {first}"[:limit]


class DatabaseOutage:
    """One streak of failed database steps: backoff delays and the log lines."""

    def __init__(
        self,
        *,
        base_seconds: float,
        max_seconds: float,
        worker_id: str,
        status: WorkerStatus | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base_seconds
        self.cap = max_seconds
        self.worker_id = worker_id
        self.status = status
        self.rng = rng or random.Random()
        self.failures = 0
        self.started: float | None = None
        self.first_error = ""
        self.streaks = 0  # streaks seen since start (tests, metrics)

    @property
    def active(self) -> bool:
        return self.started is not None

    def delay(self, failures: int) -> float:
        """Seconds before try `failures + 1`: min(cap, base * 2^(failures-1)), jittered
        into [half, full] so workers that lost the database together do not retry in step."""
        ceiling = min(self.cap, self.base * 2 ** max(0, failures - 1))
        return self.rng.uniform(ceiling / 2, ceiling)

    def failed(self, exc: BaseException) -> float:
        """Record a failed step; returns how long to wait before the next try."""
        self.failures += 1
        if self.started is None:
            self.started = time.monotonic()
            self.first_error = short_error(exc)
            self.streaks += 1
            log.warning(
                "database unavailable; retrying with backoff",
                extra={
                    "event": "database_unavailable",
                    "worker_id": self.worker_id,
                    "error": self.first_error,
                    "retry_max_seconds": self.cap,
                },
            )
            if self.status is not None:
                self.status.set(DATABASE_UNAVAILABLE, self.first_error)
        return self.delay(self.failures)

    def succeeded(self) -> None:
        """A database step worked: end the streak (logged once, with its length)."""
        if self.started is None:
            return
        down = time.monotonic() - self.started
        log.info(
            "database available again",
            extra={
                "event": "database_recovered",
                "worker_id": self.worker_id,
                "down_seconds": round(down, 3),
                "failed_tries": self.failures,
                "error": self.first_error,
            },
        )
        self.started = None
        self.failures = 0
        if self.status is not None:
            self.status.set(RUNNING)


class WorkerStatus:
    """State and heartbeat of one worker, safe to read from other threads.

    With `path`, every change and heartbeat is also written there (atomically:
    a temporary file renamed over it) for web processes that are not this one.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.path = Path(path) if path is not None else None
        now = time.time()
        self.state = STARTING
        self.since = now
        self.heartbeat = now
        self.error: str | None = None
        self.worker_id: str | None = None
        self._write()

    def set(self, state: str, error: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(f"worker state: expected one of {', '.join(STATES)}, got {state!r}")
        with self._lock:
            now = time.time()
            if state != self.state:
                self.since = now
            self.state = state
            self.error = error
            self.heartbeat = now
        self._write()

    def beat(self) -> None:
        with self._lock:
            self.heartbeat = time.time()
        self._write()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "state": self.state,
                "since": self.since,
                "heartbeat": self.heartbeat,
                "error": self.error,
                "worker_id": self.worker_id,
                "pid": os.getpid(),
            }

    def _write(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(self.snapshot()))
            os.replace(tmp, self.path)
        except OSError as exc:  # a full disk must not stop the worker
            log.debug("writing worker status to %s failed: %s", self.path, exc)


def read_status_file(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A status written by `WorkerStatus(path)` in another process; None when absent."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def assess(snapshot: dict[str, Any] | None, *, now: float | None = None) -> dict[str, Any]:
    """What health checks report: the snapshot plus `alive` and `heartbeat_age_s`.

    Alive: a live state and a heartbeat younger than STALE_AFTER_SECONDS. A worker
    waiting for the database is alive (it resumes by itself).
    """
    if snapshot is None:
        return {"state": "missing", "alive": False, "heartbeat_age_s": None, "error": None}
    now = time.time() if now is None else now
    age = max(0.0, now - float(snapshot.get("heartbeat") or 0.0))
    state = str(snapshot.get("state"))
    stale = state in ALIVE_STATES and age > STALE_AFTER_SECONDS
    return {
        "state": "stalled" if stale else state,
        "alive": state in ALIVE_STATES and not stale,
        "heartbeat_age_s": round(age, 3),
        "error": f"no heartbeat for {age:.0f} s" if stale else snapshot.get("error"),
    }
