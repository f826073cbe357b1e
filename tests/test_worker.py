"""The worker: heuristic then second judge, retries, dead letters, stop, and crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, update

from evaluation_support import CountingJudge, add_sessions, count, evaluations, jobs
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Job, LLMCall, SessionEvaluation, TutorMetrics
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.judge import Judge
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.evaluation.service import get_evaluation
from tutorscore.evaluation.worker import evaluate_pending, run_worker
from tutorscore.testing.fake_llm import FakeServerProcess

SETTINGS = Settings(DATABASE_URL="sqlite://")  # the engine fixture decides the database

def fast(rules: RulesConfig, **evaluation: object) -> RulesConfig:
    """Rules with a short poll and no analytics debounce wait (tests stay quick)."""
    values = {"poll_seconds": 0.05, "analytics_debounce_seconds": 0.05, **evaluation}
    return rules.model_copy(update={"evaluation": rules.evaluation.model_copy(update=values)})


def queue_all(engine: Engine, rules: RulesConfig, **kwargs: object) -> int:
    with transaction(engine) as s:
        return enqueue_evaluations(s, rules=rules, **kwargs)  # type: ignore[arg-type]


def test_worker_drains_the_queue_once_per_session(engine: Engine, rules: RulesConfig) -> None:
    rules = fast(rules)
    ids = add_sessions(engine, 12, first={3})
    add_sessions(engine, 4, tutor="T2", prefix="U")
    queue_all(engine, rules)
    stats = run_worker(engine, SETTINGS, rules, once=True, concurrency=3)
    assert stats.done == 16 and stats.evaluated == 16 and stats.dead == 0
    assert {j.status for j in jobs(engine)} == {"done"}
    assert len(evaluations(engine)) == 16
    assert {e.session_id for e in evaluations(engine)} >= set(ids)
    with transaction(engine) as s:
        evaluated = s.scalar(
            select(TutorMetrics.evaluated_sessions)
            .where(TutorMetrics.tutor_id == "T1")
            .order_by(TutorMetrics.as_of.desc(), TutorMetrics.id.desc())
            .limit(1)
        )
    assert evaluated == 12  # the debounced analytics refresh ran before the worker returned
    # everything again: all cache hits, no new rows
    queue_all(engine, rules)
    again = run_worker(engine, SETTINGS, rules, once=True)
    assert again.cached == 16 and again.evaluated == 0
    assert len(evaluations(engine)) == 16


def test_second_judge_runs_after_the_heuristic_and_is_cached(
    engine: Engine, rules: RulesConfig
) -> None:
    rules = fast(rules)
    ids = add_sessions(engine, 5)
    queue_all(engine, rules)
    llm = CountingJudge()
    judges: list[Judge] = [HeuristicJudge(), llm]
    stats = run_worker(engine, SETTINGS, rules, once=True, judges=judges, concurrency=2)
    assert stats.done == 5 and stats.evaluated == 10
    assert sorted(c or "" for c in llm.calls) == sorted(ids)
    with transaction(engine) as s:
        shown = get_evaluation(s, ids[0])
    assert shown is not None and shown["judge"] == "llm"
    assert [e["judge"] for e in shown["evaluations"]] == ["heuristic", "llm"]
    queue_all(engine, rules)
    run_worker(engine, SETTINGS, rules, once=True, judges=judges)
    assert len(llm.calls) == 5  # cache hit: no second call


def test_unavailable_llm_keeps_the_heuristic_and_retries_later(
    engine: Engine, rules: RulesConfig
) -> None:
    rules = fast(rules)
    (sid,) = add_sessions(engine, 1)
    queue_all(engine, rules)
    llm = CountingJudge(unavailable_after=0, retry_after_s=30)
    before = utcnow()
    stats = run_worker(engine, SETTINGS, rules, once=True, judges=[HeuristicJudge(), llm])
    assert stats.retried == 1 and stats.done == 0
    (job,) = jobs(engine)
    assert job.status == "queued" and job.attempts == 0
    assert job.run_after >= before + timedelta(seconds=30)
    assert "judge unavailable" in (job.last_error or "")
    with transaction(engine) as s:
        shown = get_evaluation(s, sid)
    assert shown is not None and shown["judge"] == "heuristic"


def test_failing_judge_is_dead_lettered_with_its_reason(engine: Engine, rules: RulesConfig) -> None:
    rules = fast(rules, max_attempts=3, backoff_base_seconds=0.0)
    add_sessions(engine, 1)
    queue_all(engine, rules)
    broken = CountingJudge(fail=ValueError("model returned nonsense"))
    stats = run_worker(engine, SETTINGS, rules, once=True, judges=[broken])
    assert len(broken.calls) == 3
    assert stats.dead == 1 and stats.retried == 2
    (job,) = jobs(engine)
    assert job.status == "dead" and job.attempts == 3
    assert job.last_error == "ValueError: model returned nonsense"


def test_missing_transcript_is_dead_at_once(engine: Engine, rules: RulesConfig) -> None:
    rules = fast(rules)
    (sid,) = add_sessions(engine, 1)
    queue_all(engine, rules)
    with transaction(engine) as s:
        s.execute(delete(SessionEvaluation))
        from tutorscore.db.models import SessionTranscript

        s.execute(delete(SessionTranscript))
    stats = run_worker(engine, SETTINGS, rules, once=True)
    (job,) = jobs(engine)
    assert stats.dead == 1 and job.status == "dead"
    assert job.last_error == f"session {sid!r} has no transcript"


def test_stop_event_ends_a_continuous_worker(engine: Engine, rules: RulesConfig) -> None:
    rules = fast(rules)
    add_sessions(engine, 3)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(engine, SETTINGS, rules), kwargs={"stop_event": stop}
    )
    thread.start()
    queue_all(engine, rules)  # picked up while running
    deadline = time.monotonic() + 20
    while count(engine, Job, Job.status == "done") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert count(engine, Job, Job.status == "done") == 3


async def test_evaluate_pending_counts_new_evaluations(engine: Engine, rules: RulesConfig) -> None:
    rules = fast(rules)
    add_sessions(engine, 4)
    assert await evaluate_pending(engine, SETTINGS, rules) == 4
    assert await evaluate_pending(engine, SETTINGS, rules) == 0


def llm_settings(fake: FakeServerProcess) -> Settings:
    return Settings(
        DATABASE_URL="sqlite://",
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_MODEL="gpt-4o-mini",
        TUTORSCORE_LLM_RPM=10_000,
        TUTORSCORE_LLM_TPM=50_000_000,
    )


def test_configured_llm_judge_runs_after_the_heuristic(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess
) -> None:
    rules = fast(rules)
    ids = add_sessions(engine, 4)
    queue_all(engine, rules)
    stats = run_worker(engine, llm_settings(fake), rules, once=True, concurrency=2)
    assert stats.done == 4 and stats.evaluated == 8
    by_judge = sorted((e.session_id, e.judge) for e in evaluations(engine))
    assert by_judge == sorted((sid, j) for sid in ids for j in ("heuristic", "llm"))
    assert count(engine, LLMCall, LLMCall.status == "ok") == 4
    with transaction(engine) as s:
        shown = get_evaluation(s, ids[0])
    assert shown is not None and shown["judge"] == "llm" and shown["model"] == "gpt-4o-mini"


def test_llm_outage_keeps_heuristic_results_and_requeues(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess
) -> None:
    from tutorscore.evaluation.costs import MemoryLedger
    from tutorscore.evaluation.limiter import RateLimiter
    from tutorscore.evaluation.llm_judge import LLMJudge, RetryPolicy

    rules = fast(rules, backoff_base_seconds=60.0)
    ids = add_sessions(engine, 2)
    queue_all(engine, rules)
    llm = LLMJudge(
        base_url=fake.base_url,
        model="gpt-4o-mini",
        limiter=RateLimiter(10_000, 50_000_000),
        ledger=MemoryLedger(),
        retry=RetryPolicy(max_attempts=1),
    )
    judges: list[Judge] = [HeuristicJudge(), llm]
    fake.control(error_rate=1.0)
    before = utcnow()
    stats = run_worker(engine, SETTINGS, rules, once=True, concurrency=2, judges=judges)
    assert stats.done == 0 and stats.retried == 2
    assert sorted(e.session_id for e in evaluations(engine)) == sorted(ids)
    assert {e.judge for e in evaluations(engine)} == {"heuristic"}
    assert {(j.status, j.attempts) for j in jobs(engine)} == {("queued", 0)}
    assert all(j.run_after >= before + timedelta(seconds=60) for j in jobs(engine))
    fake.control(error_rate=0.0)
    with transaction(engine) as s:  # make the retry due now
        s.execute(update(Job).values(run_after=utcnow()))
    again = run_worker(engine, SETTINGS, rules, once=True, judges=judges)
    assert again.done == 2 and again.cached == 2 and again.evaluated == 2


def _start_worker(url: str, name: str, log_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TUTORSCORE_EVALUATION__LEASE_SECONDS": "2",
        "TUTORSCORE_EVALUATION__POLL_SECONDS": "0.1",
        "TUTORSCORE_LOG_LEVEL": "WARNING",
    }
    env.pop("TUTORSCORE_LLM_BASE_URL", None)
    out = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "tutorscore", "worker", "--concurrency", "3", "--worker-id", name],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _wait_started(log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while "started" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)


def _held_by(engine: Engine, worker: str) -> bool:
    return count(engine, Job, Job.status == "running", Job.locked_by.like(f"{worker}/%")) > 0


def _wait_for(engine: Engine, done: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = count(engine, Job, Job.status == "done")
        if n >= done:
            break
        time.sleep(0.1)
    return n


def test_killing_a_worker_mid_batch_loses_and_duplicates_nothing(
    engine: Engine, rules: RulesConfig, tmp_path: Path
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several worker processes need Postgres")
    n = 80
    for k in range(4):
        add_sessions(engine, n // 4, tutor=f"T{k}", prefix=f"K{k}_", first={0})
    queue_all(engine, rules)
    url = engine.url.render_as_string(hide_password=False)
    procs = {name: _start_worker(url, name, tmp_path) for name in ("victim", "steady")}
    try:
        assert _wait_for(engine, 10, timeout=40) >= 10, "workers did not start"
        deadline = time.monotonic() + 20
        while not _held_by(engine, "victim") and time.monotonic() < deadline:
            time.sleep(0.01)
        killed_at = utcnow()
        procs["victim"].send_signal(signal.SIGKILL)  # while it holds claimed jobs
        procs["victim"].wait(timeout=10)
        with transaction(engine) as s:
            orphaned = list(
                s.scalars(
                    select(Job.id).where(Job.status == "running", Job.locked_by.like("victim/%"))
                )
            )
        procs["late"] = _start_worker(url, "late", tmp_path)
        assert _wait_for(engine, n, timeout=40) == n, (tmp_path / "steady.log").read_text()
        for name in ("steady", "late"):
            _wait_started(tmp_path / f"{name}.log")  # its SIGTERM handler is installed
            procs[name].send_signal(signal.SIGTERM)
        for name in ("steady", "late"):
            # generous: a worker started on a loaded machine may still be importing
            assert procs[name].wait(timeout=90) == 0, (tmp_path / f"{name}.log").read_text()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
    rows = jobs(engine)
    assert len(rows) == n and {j.status for j in rows} == {"done"}
    with transaction(engine) as s:
        per_session = s.execute(
            select(SessionEvaluation.session_id, func.count()).group_by(
                SessionEvaluation.session_id
            )
        ).all()
    assert len(per_session) == n and {c for _, c in per_session} == {1}
    by_id = {j.id: j for j in rows}
    assert orphaned, "the victim held no job when it was killed"
    stored_at = {e.session_id: e.created_at for e in evaluations(engine)}
    for job_id in orphaned:  # the victim's in-flight jobs were reclaimed after the lease...
        job = by_id[job_id]
        # ...unless the victim finished the job itself: a COMMIT it sent just before
        # SIGKILL can land on its backend after it died (and after `orphaned` was read),
        # leaving attempts == 1 and an evaluation stored before the kill
        assert job.attempts >= 2 or stored_at[str(job.session_id)] <= killed_at, (
            job_id, job.attempts, stored_at[str(job.session_id)], killed_at
        )  # fmt: skip
