"""The LLM path: token accounting as the provider counts, the pipelined worker, backlog time."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from evaluation_support import add_sessions, count, evaluations, jobs
from llm_support import TRANSCRIPT
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Job, LLMCall
from tutorscore.evaluation.backlog import describe_duration, llm_backlog
from tutorscore.evaluation.costs import BufferedLedger, CallRecord, MemoryLedger
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.judge import EvaluationResult, Rubric
from tutorscore.evaluation.limiter import RateLimiter
from tutorscore.evaluation.llm_judge import LLMJudge
from tutorscore.evaluation.pipeline import LLMPipeline
from tutorscore.evaluation.prompts import MAX_OUTPUT_TOKENS, build_messages, rate_limit_tokens
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.evaluation.worker import run_worker
from tutorscore.ingest.transcript_format import Turn
from tutorscore.testing.fake_llm import FakeServerProcess, limiter_tokens


def fast(rules: RulesConfig, **evaluation: object) -> RulesConfig:
    values = {"poll_seconds": 0.05, "analytics_debounce_seconds": 0.05, **evaluation}
    return rules.model_copy(update={"evaluation": rules.evaluation.model_copy(update=values)})


def queue_all(engine: Engine, rules: RulesConfig, **kwargs: Any) -> int:
    with transaction(engine) as s:
        return enqueue_evaluations(s, rules=rules, **kwargs)


def llm_settings(fake: FakeServerProcess, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": "sqlite://",
        "TUTORSCORE_LLM_BASE_URL": fake.base_url,
        "TUTORSCORE_LLM_MODEL": "gpt-4o-mini",
        "TUTORSCORE_LLM_RPM": 10_000,
        "TUTORSCORE_LLM_TPM": 50_000_000,
        **extra,
    }
    return Settings(**values)


def judge(fake: FakeServerProcess, limiter: RateLimiter, **kwargs: Any) -> LLMJudge:
    return LLMJudge(
        base_url=fake.base_url,
        model="gpt-4o-mini",
        limiter=limiter,
        ledger=kwargs.pop("ledger", MemoryLedger()),
        **kwargs,
    )


# -- token accounting -------------------------------------------------------------------


def test_client_and_fake_provider_count_a_request_alike() -> None:
    messages = build_messages(TRANSCRIPT)
    body = {"messages": messages, "max_completion_tokens": MAX_OUTPUT_TOKENS}
    chars = sum(len(m["content"]) for m in messages)
    assert rate_limit_tokens(messages, MAX_OUTPUT_TOKENS) == limiter_tokens(body)
    assert rate_limit_tokens(messages, 0) == -(-chars // 4)  # characters / 4, rounded up


async def test_reservation_is_exactly_what_the_provider_counted(fake: FakeServerProcess) -> None:
    limiter = RateLimiter(1000, 10_000_000)
    llm = judge(fake, limiter)
    for _ in range(3):
        await llm.evaluate(TRANSCRIPT)
    stats = fake.stats()
    assert stats["ok"] == 3
    # the client's window holds the same tokens as the provider's, to the token
    assert limiter._log_tokens == stats["window_tokens"]
    prepared = llm.prepare(TRANSCRIPT)
    assert stats["window_tokens"] == 3 * prepared.limit_tokens


async def test_usage_counting_hands_back_the_unused_allowance(fake: FakeServerProcess) -> None:
    limiter = RateLimiter(1000, 10_000_000)
    ledger = MemoryLedger()
    llm = judge(fake, limiter, ledger=ledger, token_counting="usage")
    await llm.evaluate(TRANSCRIPT)
    (call,) = ledger.calls
    assert call.tokens_out < MAX_OUTPUT_TOKENS
    assert limiter._log_tokens == call.tokens_in + call.tokens_out
    assert limiter._log_tokens < llm.prepare(TRANSCRIPT).limit_tokens


async def test_a_refused_request_gives_its_tokens_back_at_once(fake: FakeServerProcess) -> None:
    limiter = RateLimiter(1000, 10_000_000)
    llm = judge(fake, limiter)
    fake.control(script=[{"status": 429, "retry_after": 0.2}])
    await llm.evaluate(TRANSCRIPT)
    assert fake.stats()["http_429"] == 1
    assert limiter.granted == 2  # the refused attempt and the answered one
    assert limiter._log_tokens == llm.prepare(TRANSCRIPT).limit_tokens  # only the answered


def test_unknown_token_counting_is_refused() -> None:
    with pytest.raises(ValueError, match="token_counting"):
        LLMJudge(
            base_url="http://127.0.0.1:9/v1",
            model="m",
            limiter=RateLimiter(1, 1),
            ledger=MemoryLedger(),
            token_counting="words",
        )


def test_buffered_ledger_counts_held_and_in_transit_calls() -> None:
    ledger = BufferedLedger()
    ledger.committed(1.0)
    ledger.record(CallRecord(model="m", prompt_version="v", status="ok", cost_usd=0.25))
    assert ledger.spent_today() == pytest.approx(1.25)
    taken = ledger.take()
    assert len(taken) == 1 and ledger.held() == 0
    assert ledger.spent_today() == pytest.approx(1.25)  # written but not committed: still counted
    ledger.put_back(taken)  # the write failed
    assert ledger.held() == 1 and ledger.spent_today() == pytest.approx(1.25)
    ledger.take()
    ledger.committed(1.25)  # the database now has it
    assert ledger.spent_today() == pytest.approx(1.25)
    ledger.record(CallRecord(model="m", prompt_version="v", status="ok", cost_usd=0.5))
    ledger.take()
    ledger.committed(None)  # written without re-reading the total: added to it
    assert ledger.spent_today() == pytest.approx(1.75)


# -- the pipelined worker -----------------------------------------------------------------


def test_pipeline_evaluates_every_session_once_and_records_every_call(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess
) -> None:
    rules = fast(rules)
    ids = add_sessions(engine, 40)
    queue_all(engine, rules)
    fake.control(error_rate=0.1, malformed_rate=0.05)
    stats = run_worker(engine, llm_settings(fake), rules, once=True, concurrency=6)
    assert stats.done == 40 and stats.dead == 0 and stats.lost == 0
    assert stats.evaluated == 80  # heuristic and LLM, each once
    per_judge = sorted((e.session_id, e.judge) for e in evaluations(engine))
    assert per_judge == sorted((sid, j) for sid in ids for j in ("heuristic", "llm"))
    assert {j.status for j in jobs(engine)} == {"done"}
    served = fake.stats()
    # every HTTP call is in the ledger (held in memory, written with the results)
    assert count(engine, LLMCall) == served["requests"]
    assert count(engine, LLMCall, LLMCall.status == "ok") == 40
    assert count(engine, LLMCall, LLMCall.status == "http_500") == served.get("http_500", 0)


def test_calls_go_on_while_the_writer_is_blocked(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2 callers, 12 calls are answered before the first result is stored: calls do
    not wait for writes (a slot that stored its result before the next call would
    stop at 2)."""
    rules = fast(rules)
    add_sessions(engine, 16)
    queue_all(engine, rules)
    fake.control(latency_ms=20)
    original = LLMPipeline._write_batch
    reached = threading.Event()

    def slow_write(self: LLMPipeline, items: list[Any]) -> list[str]:
        if not reached.is_set():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and fake.stats()["ok"] < 12:
                time.sleep(0.05)
            if fake.stats()["ok"] >= 12:
                reached.set()
        return original(self, items)

    monkeypatch.setattr(LLMPipeline, "_write_batch", slow_write)
    stats = run_worker(engine, llm_settings(fake), rules, once=True, concurrency=2)
    assert reached.is_set(), "calls stopped while the writer was blocked"
    assert stats.done == 16
    assert count(engine, LLMCall, LLMCall.status == "ok") == 16


class _HeldJudge:
    """An async judge that waits until released (to take the lease away meanwhile)."""

    name = "llm"
    model = "held"
    prompt_version = "held-v1"

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    async def evaluate(self, turns: list[Turn], **_: Any) -> EvaluationResult:
        self.started.set()
        while not self.release.is_set():
            await asyncio.sleep(0.01)
        return EvaluationResult(
            quality_score=3.0,
            rubric=Rubric(clarity=3, pacing=3, engagement=3, goal_alignment=3),
            strengths=[],
            areas_for_improvement=[],
            risk_tags=[],
            evidence=[],
        )


def test_a_job_taken_over_meanwhile_is_dropped_without_storing(
    engine: Engine, rules: RulesConfig
) -> None:
    rules = fast(rules)
    add_sessions(engine, 1)
    queue_all(engine, rules)
    held = _HeldJudge()

    def steal() -> None:
        held.started.wait(30)
        with transaction(engine) as s:  # another worker took the job over
            s.execute(update(Job).values(locked_by="someone-else/0"))
        held.release.set()

    thief = threading.Thread(target=steal)
    thief.start()
    stats = run_worker(
        engine,
        Settings(DATABASE_URL="sqlite://"),
        rules,
        once=True,
        judges=[HeuristicJudge(), held],
    )
    thief.join()
    assert stats.lost == 1 and stats.done == 0
    assert {e.judge for e in evaluations(engine)} == {"heuristic"}  # the LLM result was dropped
    assert [(j.status, j.locked_by) for j in jobs(engine)] == [("running", "someone-else/0")]


def _start_llm_worker(
    url: str, name: str, fake: FakeServerProcess, log_dir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TUTORSCORE_EVALUATION__LEASE_SECONDS": "2",
        "TUTORSCORE_EVALUATION__POLL_SECONDS": "0.1",
        "TUTORSCORE_LOG_LEVEL": "WARNING",
        "TUTORSCORE_LLM_BASE_URL": fake.base_url,
        "TUTORSCORE_LLM_MODEL": "gpt-4o-mini",
        "TUTORSCORE_LLM_RPM": "1500",  # each worker half of 3,000
        "TUTORSCORE_LLM_TPM": "25000000",
        "TUTORSCORE_LLM_MAX_CONCURRENCY": "4",
    }
    out = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "tutorscore", "worker", "--worker-id", name],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def test_two_llm_workers_one_killed_store_each_session_once(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several worker processes need Postgres")
    n = 60
    ids = add_sessions(engine, n)
    queue_all(engine, rules)
    fake.control(latency_ms=150, error_rate=0.05)
    url = engine.url.render_as_string(hide_password=False)
    procs = {name: _start_llm_worker(url, name, fake, tmp_path) for name in ("victim", "steady")}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            count(engine, Job, Job.status == "done") >= 5
            and count(engine, Job, Job.status == "running", Job.locked_by.like("victim/%")) > 0
        ):
            time.sleep(0.02)
        procs["victim"].send_signal(signal.SIGKILL)  # with jobs in hand
        procs["victim"].wait(timeout=10)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and count(engine, Job, Job.status == "done") < n:
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    assert count(engine, Job, Job.status == "done") == n
    llm_rows = [e.session_id for e in evaluations(engine) if e.judge == "llm"]
    assert sorted(llm_rows) == sorted(ids)  # every session once, none twice
    with engine.connect() as conn:
        ok_sessions = conn.execute(
            select(func.count(func.distinct(LLMCall.session_id))).where(LLMCall.status == "ok")
        ).scalar_one()
    assert ok_sessions == n


# -- backlog time -------------------------------------------------------------------------


def test_backlog_time_at_the_default_token_limit(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 100)
    queue_all(engine, rules, judge="llm")
    settings = Settings(DATABASE_URL="sqlite://", TUTORSCORE_LLM_BASE_URL="http://x/v1")
    with transaction(engine) as s:
        info = llm_backlog(s, settings)
        assert llm_backlog(s, Settings(DATABASE_URL="sqlite://")) is None  # LLM off
    assert info is not None
    # no history: 2,800 prompt tokens + the 700 allowance; 30,000 TPM admits 8.6 a minute
    assert info["binding"] == "tokens" and info["tokens_source"] == "estimate"
    assert info["tokens_per_call"] == 3500
    assert info["calls_per_minute"] == pytest.approx(30_000 / 3500, abs=0.05)
    assert info["eta_s"] == pytest.approx(100 / (30_000 / 3500) * 60, rel=1e-3)
    assert info["keeps_up_with_peak"] is False
    assert info["eta"] == "12 min"


def test_backlog_time_uses_measured_calls_and_workers(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 300)
    queue_all(engine, rules, judge="llm")
    with transaction(engine) as s:
        for status in ["ok"] * 8 + ["http_500"] * 2:
            s.add(
                LLMCall(
                    model="m", prompt_version="v", mode="realtime", status=status,
                    tokens_in=2300 if status == "ok" else 0, tokens_out=150,
                    latency_ms=800, cost_usd=0.0, created_at=utcnow(),
                )
            )  # fmt: skip
    settings = Settings(
        DATABASE_URL="sqlite://",
        TUTORSCORE_LLM_BASE_URL="http://x/v1",
        TUTORSCORE_LLM_RPM=150,
        TUTORSCORE_LLM_TPM=500_000,
        TUTORSCORE_LLM_WORKERS=2,
    )
    with transaction(engine) as s:
        info = llm_backlog(s, settings)
    assert info is not None
    assert info["tokens_source"] == "measured" and info["tokens_per_call"] == 3000
    assert info["rpm"] == 300 and info["binding"] == "requests"  # 1,000,000 / 3,000 = 333 > 300
    assert info["calls_per_job"] == pytest.approx(1.25)
    assert info["eta_s"] == pytest.approx(300 * 1.25 / 300 * 60)
    assert info["keeps_up_with_peak"] is True


def test_describe_duration() -> None:
    assert describe_duration(42) == "42 s"
    assert describe_duration(600) == "10 min"
    assert describe_duration(3 * 3600 + 20 * 60) == "3 h 20 min"
    assert describe_duration(50 * 3600) == "2 days 2 h"


def test_evaluate_command_says_how_long_the_backlog_takes(
    engine: Engine, rules: RulesConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutorscore.cli import app
    from tutorscore.cli.common import get_engine
    from tutorscore.config import get_settings

    add_sessions(engine, 50)
    queue_all(engine, rules, judge="llm")
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("TUTORSCORE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        result = CliRunner().invoke(app, ["evaluate", "--stats"])
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()
    assert result.exit_code == 0, result.output
    assert '"eta": "6 min"' in result.output  # 50 jobs at 30,000 / 3,500 calls a minute
    assert '"binding": "tokens"' in result.output


async def test_queue_api_and_overview_show_the_backlog_time(
    engine: Engine, rules: RulesConfig, tmp_path: Path
) -> None:
    from tutorscore.web.app import create_app
    from web_support import bearer, login

    add_sessions(engine, 50)
    queue_all(engine, rules, judge="llm")
    settings = Settings(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        TUTORSCORE_SECRET_KEY="test-secret-key-" * 3,
        TUTORSCORE_DATA_DIR=str(tmp_path),
        TUTORSCORE_LLM_BASE_URL="http://127.0.0.1:9/v1",
    )
    app = create_app(settings, rules, engine)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.get("/api/evaluation-queue", headers=bearer(engine, "viewer1", "viewer"))
        assert r.status_code == 200
        body = r.json()
        assert body["queued"] == 50 and body["llm"]["jobs"] == 50
        assert body["llm"]["eta"] == "6 min" and body["llm"]["binding"] == "tokens"
        await login(client, engine, "coach1", "coach")
        page = await client.get("/")
        assert page.status_code == 200
        assert 'id="llm-backlog"' in page.text and "<strong>6 min</strong>" in page.text


def test_pipeline_rides_out_a_database_outage(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess
) -> None:
    """The database goes away mid-run (Postgres refuses connections and ends backends;
    SQLite: another connection holds the write lock): the continuous worker reports it,
    waits, and afterwards every session has one LLM result and every call a ledger row."""
    from test_worker_faults import database_outage, quick, wait_until, worker_engine
    from tutorscore.evaluation import health
    from tutorscore.evaluation.health import WorkerStatus

    n = 60
    ids = add_sessions(engine, n)
    rules = quick(rules)
    queue_all(engine, rules)
    fake.control(latency_ms=50)
    status = WorkerStatus()
    stop = threading.Event()
    errors: list[BaseException] = []
    weng = worker_engine(engine)
    settings = llm_settings(fake, TUTORSCORE_LLM_RPM=1200, TUTORSCORE_LLM_MAX_CONCURRENCY=4)

    def target() -> None:
        try:
            run_worker(weng, settings, rules, stop_event=stop, status=status)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    seen = set()
    try:
        wait_until(lambda: count(engine, Job, Job.status == "done") >= 5, 60, "the first jobs")
        with database_outage(engine):
            wait_until(
                lambda: status.snapshot()["state"] == health.DATABASE_UNAVAILABLE,
                30,
                "the worker to notice the outage",
            )
            seen.add(status.snapshot()["state"])
            time.sleep(2)
            assert thread.is_alive(), errors
        wait_until(lambda: count(engine, Job, Job.status == "done") == n, 90, "the queue to drain")
        seen.add(status.snapshot()["state"])
    finally:
        stop.set()
        thread.join(timeout=60)
        weng.dispose()
    assert not errors, errors
    assert seen == {health.DATABASE_UNAVAILABLE, health.RUNNING}
    llm_rows = sorted(e.session_id for e in evaluations(engine) if e.judge == "llm")
    assert llm_rows == sorted(ids)  # once each
    assert count(engine, LLMCall, LLMCall.status == "ok") >= n
    assert count(engine, LLMCall) == fake.stats()["requests"]  # no ledger row lost or doubled


def test_writer_logs_one_line_per_database_outage_not_a_traceback_per_retry(
    engine: Engine, rules: RulesConfig
) -> None:
    """The LLM result is ready while the database is down: the writer retries storing
    it (each try at DEBUG only) and the outage is one `database_unavailable` and one
    `database_recovered` line, with no traceback anywhere (issue 14: a full traceback
    per retry). Afterwards the job is done and the LLM result stored once."""
    import logging

    from test_worker_faults import database_outage, quick, wait_until, worker_engine

    rules = quick(rules, lease_seconds=120)
    add_sessions(engine, 1)
    queue_all(engine, rules)
    held = _HeldJudge()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("tutorscore")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    stop = threading.Event()
    errors: list[BaseException] = []
    weng = worker_engine(engine)

    def target() -> None:
        try:
            run_worker(weng, Settings(DATABASE_URL="sqlite://"), rules, stop_event=stop,
                       judges=[HeuristicJudge(), held])  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    def writer_retries() -> int:
        return sum(1 for r in list(records) if r.getMessage().startswith("storing job"))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        assert held.started.wait(60), "the LLM call never started"
        with database_outage(engine):
            held.release.set()  # the result reaches the writer while the database is down
            wait_until(lambda: writer_retries() >= 3, 60, "the writer to retry three times")
        wait_until(lambda: count(engine, Job, Job.status == "done") == 1, 60, "the job stored")
    finally:
        stop.set()
        thread.join(timeout=60)
        weng.dispose()
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert not errors, errors
    assert not [r.getMessage() for r in records if r.exc_info]
    retries = [r for r in records if r.getMessage().startswith("storing job")]
    assert retries and {r.levelno for r in retries} == {logging.DEBUG}
    events = [getattr(r, "event", None) for r in records if getattr(r, "event", None)]
    assert events.count("database_unavailable") == 1
    assert events.count("database_recovered") == 1
    assert sorted(e.judge for e in evaluations(engine)) == ["heuristic", "llm"]
