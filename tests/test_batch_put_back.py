"""Backlog jobs put back after a failed batch submission, while the same sessions are
queued again by another connection (issue 14: the put-back met `uq_jobs_queued_evaluation`
and raised IntegrityError, leaving every job "sent to batch" and masking the real error)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from llm_support import TRANSCRIPT, add_session
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import Job
from tutorscore.evaluation.batch import send_backlog_to_batch
from tutorscore.evaluation.judge import JudgeUnavailable
from tutorscore.evaluation.llm_judge import LLMJudge
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.ingest.transcript_format import Turn
from tutorscore.testing.fake_llm import FakeServerProcess


class FailingAfter(LLMJudge):
    """A real LLM judge whose budget check first runs `meanwhile` (another process
    queueing the same sessions while the submission is in flight), then refuses."""

    meanwhile: Any = None

    async def check_budget(self, estimate_usd: float) -> None:
        if self.meanwhile is not None:
            self.meanwhile()
        raise JudgeUnavailable("daily LLM budget reached (test)")


def _backlog(engine: Engine, rules: RulesConfig, ids: list[str]) -> None:
    for sid in ids:
        turns = [Turn(**t) for t in TRANSCRIPT]
        turns[0]["text"] += f" ({sid})"
        add_session(engine, sid, turns)
    with transaction(engine) as s:
        assert enqueue_evaluations(s, judge="llm", rules=rules) == len(ids)


def _settings(fake: FakeServerProcess) -> Settings:
    return Settings(TUTORSCORE_LLM_BASE_URL=fake.base_url, TUTORSCORE_LLM_BATCH_BACKLOG=True)


def _jobs(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Job.session_id, Job.status, Job.last_error)
            .where(Job.kind == "evaluate")
            .order_by(Job.session_id, Job.id)
        ).all()
    return [(str(r[0]), r[1], r[2]) for r in rows]


def _other_engine(engine: Engine) -> Engine:
    return make_engine(engine.url.render_as_string(hide_password=False))


def test_put_back_keeps_a_session_queued_meanwhile(
    engine: Engine, fake: FakeServerProcess, rules: RulesConfig
) -> None:
    """Another connection queues L2 again (committed) while the batch submission runs:
    the real error surfaces, L1 and L3 go back to the queue, L2's new job stands."""
    _backlog(engine, rules, ["L1", "L2", "L3"])
    settings = _settings(fake)
    judge = FailingAfter.from_settings(settings, engine)
    assert isinstance(judge, FailingAfter)
    other = _other_engine(engine)

    def queue_l2_again() -> None:
        with transaction(other) as s:
            assert enqueue_evaluations(s, judge="llm", session_ids=["L2"], rules=rules) == 1

    judge.meanwhile = queue_l2_again
    try:
        with pytest.raises(JudgeUnavailable, match="budget"):
            send_backlog_to_batch(engine, settings, rules, judge=judge)
    finally:
        other.dispose()
    jobs = _jobs(engine)
    assert [(sid, status) for sid, status, _ in jobs] == [
        ("L1", "queued"),
        ("L2", "done"),  # the one taken for the batch
        ("L2", "queued"),  # queued meanwhile: the session is evaluated once, by this one
        ("L3", "queued"),
    ]
    assert "batch submission failed" in (jobs[0][2] or "")
    assert "a queued job for the session stands" in (jobs[1][2] or "")
    assert jobs[2][2] is None


def test_put_back_waits_for_a_concurrent_enqueue_and_retries(
    engine: Engine, fake: FakeServerProcess, rules: RulesConfig
) -> None:
    """Postgres, truly concurrent: another transaction has queued L2 but not committed
    when the put-back runs. The put-back's UPDATE waits on the unique index; when the
    other commits it fails with a unique violation (what issue 14 saw), and the retry
    in a savepoint sees the committed job and leaves L2 to it."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: an uncommitted enqueue blocks the put-back outright")
    _backlog(engine, rules, ["L1", "L2"])
    settings = _settings(fake)
    judge = FailingAfter.from_settings(settings, engine)
    assert isinstance(judge, FailingAfter)
    other = _other_engine(engine)
    errors: list[BaseException] = []
    committer: list[threading.Thread] = []

    def queue_l2_uncommitted() -> None:
        conn = other.connect()
        tx = conn.begin()
        conn.execute(
            text(
                "INSERT INTO jobs (kind, session_id, judge, payload, priority, status, "
                "attempts, max_attempts, run_after, created_at, updated_at) "
                "VALUES ('evaluate', 'L2', 'llm', '{\"judge\": \"llm\"}', 20, 'queued', 0, 5, "
                "now(), now(), now())"
            )
        )
        me = conn.scalar(text("SELECT pg_backend_pid()"))

        def commit_once_blocked() -> None:
            try:
                with engine.connect() as watch:
                    for _ in range(6000):  # until the put-back waits on our row lock
                        blocked = watch.scalar(
                            text(
                                "SELECT count(*) FROM pg_stat_activity "
                                "WHERE :me = ANY(pg_blocking_pids(pid))"
                            ),
                            {"me": me},
                        )
                        watch.rollback()  # pg_stat_activity is read once per transaction
                        if blocked:
                            break
                        time.sleep(0.01)
                    else:
                        raise AssertionError("the put-back never waited on the enqueue")
                tx.commit()
                conn.close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                tx.rollback()
                conn.close()

        thread = threading.Thread(target=commit_once_blocked)
        thread.start()
        committer.append(thread)

    judge.meanwhile = queue_l2_uncommitted
    try:
        with pytest.raises(JudgeUnavailable, match="budget"):
            send_backlog_to_batch(engine, settings, rules, judge=judge)
    finally:
        for thread in committer:
            thread.join(timeout=120)
        other.dispose()
    assert not errors
    assert [(sid, status) for sid, status, _ in _jobs(engine)] == [
        ("L1", "queued"),
        ("L2", "done"),
        ("L2", "queued"),
    ]
    with engine.connect() as conn:
        queued = conn.scalar(
            select(func.count()).select_from(Job).where(Job.status == "queued")
        )
    assert queued == 2
