"""The worker through database outages: backoff, one log line per outage, resumes by
itself; what /healthz and /metrics say about it; done-job retention."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.engine import make_url

from evaluation_support import add_sessions, count, jobs
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.base import utcnow
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import Job, SessionEvaluation
from tutorscore.evaluation import health
from tutorscore.evaluation.health import WorkerStatus, assess
from tutorscore.evaluation.queue import enqueue_evaluations, prune_done_jobs
from tutorscore.evaluation.worker import run_worker
from tutorscore.testing.databases import allow_connections, refuse_connections
from tutorscore.testing.fake_llm import FakeServerProcess
from tutorscore.web.app import create_app

SETTINGS = Settings(DATABASE_URL="sqlite://")


def quick(rules: RulesConfig, **evaluation: object) -> RulesConfig:
    values = {
        "poll_seconds": 0.05,
        "analytics_debounce_seconds": 0.05,
        "db_retry_base_seconds": 0.05,
        "db_retry_max_seconds": 0.5,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        **evaluation,
    }
    return rules.model_copy(update={"evaluation": rules.evaluation.model_copy(update=values)})


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def worker_engine(engine: Engine) -> Engine:
    """A separate engine for the worker; on SQLite with a 500 ms busy timeout, so a
    held write lock surfaces as "database is locked" quickly (production: 30 s)."""
    eng = make_engine(url_of(engine))
    if eng.dialect.name == "sqlite":

        @event.listens_for(eng, "connect")
        def _short_busy(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout=500")

    return eng


@contextmanager
def database_outage(engine: Engine) -> Iterator[None]:
    """Postgres: the test database refuses connections and its backends are
    terminated. SQLite: another connection holds the write lock."""
    if engine.dialect.name == "postgresql":
        refuse_connections(url_of(engine))
        try:
            yield
        finally:
            allow_connections(url_of(engine))
        return
    conn = sqlite3.connect(make_url(url_of(engine)).database or "", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def events(self, name: str) -> list[logging.LogRecord]:
        return [r for r in self.records if getattr(r, "event", None) == name]


@pytest.fixture
def health_log() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger(health.__name__)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def done_jobs(engine: Engine) -> int:
    return count(engine, Job, Job.status == "done")


def test_worker_rides_out_a_database_outage_and_resumes(
    engine: Engine, rules: RulesConfig, health_log: Records
) -> None:
    n = 120
    add_sessions(engine, n // 2, tutor="T1")
    add_sessions(engine, n // 2, tutor="T2", prefix="U")
    rules = quick(rules)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    status = WorkerStatus()
    stop = threading.Event()
    errors: list[BaseException] = []
    weng = worker_engine(engine)

    def target() -> None:
        try:
            run_worker(weng, SETTINGS, rules, stop_event=stop, status=status, concurrency=2)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    seen: set[str] = set()
    try:
        wait_until(lambda: done_jobs(engine) >= 5, 60, "the first jobs")
        with database_outage(engine):
            wait_until(
                lambda: status.snapshot()["state"] == health.DATABASE_UNAVAILABLE,
                30,
                "the worker to notice the outage",
            )
            seen.add(status.snapshot()["state"])
            noticed = time.time()
            for _ in range(60):  # keep the database away through several backoff rounds
                time.sleep(0.05)
                assert thread.is_alive(), errors
            back = time.time()
        wait_until(lambda: done_jobs(engine) == n, 90, "the queue to drain after the outage")
        seen.add(status.snapshot()["state"])
    finally:
        stop.set()
        thread.join(timeout=30)
        weng.dispose()
    assert not errors, errors
    assert seen == {health.DATABASE_UNAVAILABLE, health.RUNNING}
    assert status.snapshot()["state"] == health.STOPPED
    rows = jobs(engine)
    assert len(rows) == n and {j.status for j in rows} == {"done"}
    with transaction(engine) as s:
        per_session = s.execute(
            select(SessionEvaluation.session_id, func.count()).group_by(
                SessionEvaluation.session_id
            )
        ).all()
    assert len(per_session) == n and {c for _, c in per_session} == {1}
    # one line when a streak of failures began and one when it ended, not one per try
    # (on a loaded machine the worker's own slots may also meet a held lock briefly:
    # short streaks of their own, each logged the same way)
    lines = [r.__dict__["event"] for r in health_log.records if "event" in r.__dict__]
    assert lines[::2] == ["database_unavailable"] * len(lines[::2]), lines
    assert lines[1::2] == ["database_recovered"] * len(lines[::2]), lines
    during = [
        r
        for r in health_log.events("database_recovered")
        if r.created - r.__dict__["down_seconds"] <= back and r.created >= noticed
    ]
    assert len(during) == 1  # the whole outage was one streak...
    assert during[0].__dict__["failed_tries"] >= 3  # ...of several tries, logged once
    if engine.dialect.name == "postgresql":  # the jobs in flight used up no attempt
        assert max(j.attempts for j in rows) == 1


def _start_cli_worker(url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TUTORSCORE_EVALUATION__POLL_SECONDS": "0.1",
        "TUTORSCORE_EVALUATION__DB_RETRY_BASE_SECONDS": "0.1",
        "TUTORSCORE_EVALUATION__DB_RETRY_MAX_SECONDS": "0.5",
        "TUTORSCORE_LOG_LEVEL": "INFO",
    }
    env.pop("TUTORSCORE_LLM_BASE_URL", None)
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "tutorscore", "worker", "--concurrency", "2", "--worker-id", "cli"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def test_worker_command_survives_refused_connections_with_one_json_line(
    engine: Engine, rules: RulesConfig, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("refusing connections is a Postgres outage (SQLite: the test above)")
    n = 200
    add_sessions(engine, n)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    log = tmp_path / "worker.log"
    proc = _start_cli_worker(url_of(engine), log)
    try:
        # generous deadlines: on a loaded machine the worker takes long to import and start
        wait_until(lambda: done_jobs(engine) >= 5, 180, "the first jobs")
        with database_outage(engine):
            # the worker met the outage (however slowly it gets the CPU)...
            wait_until(
                lambda: '"database_unavailable"' in log.read_text() or proc.poll() is not None,
                120,
                "the worker to notice the outage",
            )
            time.sleep(2.0)  # ...and the outage goes on: several backoff rounds of the worker
            assert proc.poll() is None, log.read_text()
        wait_until(lambda: done_jobs(engine) == n, 180, "the queue to drain")
        assert proc.poll() is None, log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
    events = [json.loads(line).get("event") for line in lines]
    assert events.count("database_unavailable") == 1, log.read_text()
    assert events.count("database_recovered") == 1, log.read_text()
    assert "Traceback" not in log.read_text()
    assert {j.status for j in jobs(engine)} == {"done"}


# -- what /healthz and /metrics say ------------------------------------------------------


def _settings(tmp_path: Path, engine: Engine) -> Settings:
    return Settings(
        DATABASE_URL=url_of(engine),
        TUTORSCORE_SECRET_KEY="test-secret-key-for-health",
        TUTORSCORE_DATA_DIR=str(tmp_path),
    )


async def _get(app: Any, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


def _gauge(body: str, name: str) -> float:
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_healthz_and_metrics_report_the_worker(
    engine: Engine, rules: RulesConfig, tmp_path: Path
) -> None:
    status = WorkerStatus()
    app = create_app(_settings(tmp_path, engine), rules, engine, worker_status=status.snapshot)
    status.set(health.RUNNING)
    r = await _get(app, "/healthz")
    assert r.status_code == 200
    assert r.json()["worker"]["state"] == "running" and r.json()["worker"]["alive"] is True
    body = (await _get(app, "/metrics")).text
    assert _gauge(body, "tutorscore_worker_up") == 1
    assert 'tutorscore_worker_state{state="running"} 1.0' in body
    assert _gauge(body, "tutorscore_database_up") == 1

    status.set(health.DATABASE_UNAVAILABLE, "OperationalError: connection refused")
    r = await _get(app, "/healthz")  # waiting for the database is alive: it resumes by itself
    assert r.status_code == 200 and r.json()["worker"]["alive"] is True

    status.set(health.DEAD, "RuntimeError: boom")
    r = await _get(app, "/healthz")
    assert r.status_code == 503
    err = r.json()["error"]
    assert err["code"] == "unavailable" and "not running (dead)" in err["message"]
    assert err["details"]["worker"] == {
        "state": "dead",
        "alive": False,
        "heartbeat_age_s": err["details"]["worker"]["heartbeat_age_s"],
        "error": "RuntimeError: boom",
    }
    body = (await _get(app, "/metrics")).text
    assert _gauge(body, "tutorscore_worker_up") == 0
    assert 'tutorscore_worker_state{state="dead"} 1.0' in body


async def test_healthz_without_a_worker_says_nothing_about_one(
    engine: Engine, rules: RulesConfig, tmp_path: Path
) -> None:
    app = create_app(_settings(tmp_path, engine), rules, engine)
    r = await _get(app, "/healthz")
    assert r.status_code == 200 and "worker" not in r.json()
    assert "tutorscore_worker_up" not in (await _get(app, "/metrics")).text


async def test_serve_worker_thread_that_dies_turns_healthz_503(
    engine: Engine, rules: RulesConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutorscore.cli.web import _start_worker
    from tutorscore.evaluation import worker as worker_module

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("judge construction failed")

    monkeypatch.setattr(worker_module, "HeuristicJudge", broken)
    status = WorkerStatus()
    stop = threading.Event()
    thread = _start_worker(engine, _settings(tmp_path, engine), rules, stop, status)
    assert thread is not None
    thread.join(timeout=30)
    assert not thread.is_alive()
    app = create_app(_settings(tmp_path, engine), rules, engine, worker_status=status.snapshot)
    r = await _get(app, "/healthz")
    assert r.status_code == 503
    assert r.json()["error"]["details"]["worker"]["error"] == (
        "RuntimeError: judge construction failed"
    )


def test_a_stale_heartbeat_is_a_stalled_worker() -> None:
    snap = {"state": "running", "heartbeat": 1000.0, "error": None}
    assert assess(snap, now=1000.0 + health.STALE_AFTER_SECONDS - 1)["alive"] is True
    late = assess(snap, now=1000.0 + health.STALE_AFTER_SECONDS + 1)
    assert late["alive"] is False and late["state"] == "stalled"
    assert assess(None)["state"] == "missing" and assess(None)["alive"] is False


def test_status_file_is_what_other_processes_read(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    status = WorkerStatus(path)
    assert health.read_status_file(path)["state"] == "starting"  # type: ignore[index]
    status.set(health.DEAD, "boom")
    read = health.read_status_file(path)
    assert read is not None and read["state"] == "dead" and read["error"] == "boom"
    assert health.read_status_file(tmp_path / "absent.json") is None


def test_backoff_is_capped_exponential_with_jitter() -> None:
    import random

    outage = health.DatabaseOutage(
        base_seconds=0.5, max_seconds=5.0, worker_id="w", rng=random.Random(1)
    )
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 5.0), (12, 5.0)]:
        delays = [outage.delay(failures) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not one fixed value


# -- done-job retention ------------------------------------------------------------------


def test_done_jobs_past_the_retention_are_deleted(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 4)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    now = utcnow()
    ages = {"S0000": 40, "S0001": 10, "S0002": 40}  # S0002 stays dead, S0003 queued
    with transaction(engine) as s:
        for sid, days in ages.items():
            s.execute(
                update(Job)
                .where(Job.session_id == sid)
                .values(
                    status="dead" if sid == "S0002" else "done",
                    finished_at=now - timedelta(days=days),
                )
            )
    with transaction(engine) as s:
        assert prune_done_jobs(s, older_than_days=30, batch=1) == 1
    assert sorted(j.session_id or "" for j in jobs(engine)) == ["S0001", "S0002", "S0003"]


def test_the_worker_prunes_done_jobs_by_the_configured_days(
    engine: Engine, rules: RulesConfig
) -> None:
    add_sessions(engine, 3)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
        s.execute(
            update(Job)
            .where(Job.session_id == "S0000")
            .values(status="done", finished_at=utcnow() - timedelta(days=3))
        )
    stop = threading.Event()
    rules = quick(rules, done_job_retention_days=2)
    thread = threading.Thread(
        target=run_worker, args=(engine, SETTINGS, rules), kwargs={"stop_event": stop}
    )
    thread.start()
    try:
        wait_until(lambda: count(engine, Job) == 2 and done_jobs(engine) == 2, 60, "prune and work")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert sorted(j.session_id or "" for j in jobs(engine)) == ["S0001", "S0002"]


# -- LISTEN/NOTIFY wake-ups ---------------------------------------------------------------


def test_an_idle_worker_on_postgres_is_woken_by_the_enqueue(
    engine: Engine, rules: RulesConfig
) -> None:
    """With both poll intervals at an hour, only the enqueue's NOTIFY can wake the
    worker; it then finishes the job, and after the listener lost its connection
    (an outage) it listens again."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite workers poll (no LISTEN/NOTIFY)")
    add_sessions(engine, 2)
    rules = quick(rules, poll_seconds=3600, listen_poll_seconds=3600)
    stop = threading.Event()
    status = WorkerStatus()
    weng = worker_engine(engine)
    thread = threading.Thread(
        target=run_worker,
        args=(weng, SETTINGS, rules),
        kwargs={"stop_event": stop, "status": status},
    )
    thread.start()
    try:
        wait_until(lambda: status.snapshot()["state"] == health.RUNNING, 60, "the worker")
        time.sleep(1.0)  # its slots made their first (empty) claims and went idle
        with transaction(engine) as s:
            enqueue_evaluations(s, session_ids=["S0000"], rules=rules)
        wait_until(lambda: done_jobs(engine) == 1, 60, "the notified job")
        with database_outage(engine):  # the listener's connection is terminated too
            time.sleep(0.5)
        time.sleep(2.0)  # the listener reconnects (backoff 0.5 s, then 1 s)
        with transaction(engine) as s:
            enqueue_evaluations(s, session_ids=["S0001"], rules=rules)
        wait_until(lambda: done_jobs(engine) == 2, 60, "the job notified after the outage")
    finally:
        stop.set()
        thread.join(timeout=30)
        weng.dispose()
    assert not thread.is_alive()


def test_worker_with_the_llm_judge_rides_out_a_database_outage(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess
) -> None:
    """The LLM path (claim, heuristic, calls, batched writes) through the same outage:
    the worker stays up and every session ends with one evaluation per judge."""
    n = 40
    add_sessions(engine, n)
    rules = quick(rules)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    fake.control(latency_ms=100, latency_max_ms=200)  # calls in flight when it happens
    settings = Settings(
        DATABASE_URL="sqlite://",
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_MODEL="gpt-4o-mini",
        TUTORSCORE_LLM_RPM=10_000,
        TUTORSCORE_LLM_TPM=50_000_000,
        TUTORSCORE_LLM_MAX_CONCURRENCY=4,
    )
    status = WorkerStatus()
    stop = threading.Event()
    errors: list[BaseException] = []
    weng = worker_engine(engine)

    def target() -> None:
        try:
            run_worker(weng, settings, rules, stop_event=stop, status=status)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        wait_until(lambda: done_jobs(engine) >= 3, 90, "the first jobs")
        with database_outage(engine):
            for _ in range(40):
                time.sleep(0.05)
                assert thread.is_alive(), errors
        wait_until(lambda: done_jobs(engine) == n, 120, "the queue to drain after the outage")
    finally:
        stop.set()
        thread.join(timeout=60)
        weng.dispose()
    assert not errors, errors
    assert status.snapshot()["state"] == health.STOPPED
    with transaction(engine) as s:
        per = s.execute(
            select(SessionEvaluation.judge, func.count(), func.count(func.distinct(
                SessionEvaluation.session_id
            ))).group_by(SessionEvaluation.judge)
        ).all()  # fmt: skip
    assert sorted(tuple(r) for r in per) == [("heuristic", n, n), ("llm", n, n)]
