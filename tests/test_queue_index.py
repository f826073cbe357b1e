"""At most one queued evaluation job per (session, judge), held by a partial unique
index (no lock shared by every enqueue); jobs going back to the queue merge with one."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, text

from evaluation_support import add_sessions, jobs
from tutorscore.config import RulesConfig
from tutorscore.db.engine import session_factory, transaction
from tutorscore.evaluation.queue import (
    claim_jobs,
    enqueue_evaluation,
    enqueue_evaluations,
    fail_job,
    release_job,
    requeue_dead,
)


def queued(engine: Engine, session_id: str) -> list[tuple[int, int]]:
    return [
        (j.id, j.priority)
        for j in jobs(engine)
        if j.session_id == session_id and j.status == "queued" and j.judge == "heuristic"
    ]


def test_enqueues_of_other_sessions_do_not_wait_for_each_other(
    engine: Engine, rules: RulesConfig
) -> None:
    """Postgres used to serialise every enqueue on one advisory lock; now an open
    enqueue of S0000 does not hold up one of S0001, and a racing enqueue of S0000
    itself waits on the index and then adds nothing."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time by design")
    add_sessions(engine, 2)
    first = session_factory(engine)()
    first.begin()
    try:
        enqueue_evaluations(first, session_ids=["S0000"], rules=rules)  # not committed yet
        with transaction(engine) as s:
            # a lock wait fails fast instead of hanging the test
            s.execute(text("SET LOCAL lock_timeout = '5s'"))
            assert enqueue_evaluations(s, session_ids=["S0001"], rules=rules) == 1
        result: list[int] = []

        def racing() -> None:
            with transaction(engine) as s:
                s.execute(text("SET LOCAL lock_timeout = '30s'"))
                result.append(enqueue_evaluations(s, session_ids=["S0000"], rules=rules))

        thread = threading.Thread(target=racing)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive()  # waiting on the index entry of the open transaction
        first.commit()
        thread.join(timeout=30)
        assert result == [0]
    finally:
        first.close()
    assert len(queued(engine, "S0000")) == 1 and len(queued(engine, "S0001")) == 1


def test_a_failed_job_merges_with_the_queued_job_of_its_session(
    engine: Engine, rules: RulesConfig
) -> None:
    (sid,) = add_sessions(engine, 1)
    with transaction(engine) as s:
        enqueue_evaluation(s, sid, rules=rules)
        (job,) = claim_jobs(s, "w1", lease_seconds=60)
        # the transcript changed while the job ran: a new, more urgent job is queued
        newer = enqueue_evaluation(s, sid, priority=1, rules=rules)
    assert newer != job.id
    with transaction(engine) as s:
        assert fail_job(s, job, "boom", rules=rules) == "queued"
    assert queued(engine, sid) == [(job.id, 1)]  # the sibling folded in, its priority kept
    (row,) = jobs(engine)
    assert row.attempts == 1 and row.last_error == "boom"


def test_a_released_job_merges_too(engine: Engine, rules: RulesConfig) -> None:
    (sid,) = add_sessions(engine, 1)
    with transaction(engine) as s:
        enqueue_evaluation(s, sid, rules=rules)
        (job,) = claim_jobs(s, "w1", lease_seconds=60)
        enqueue_evaluation(s, sid, rules=rules)
    with transaction(engine) as s:
        assert release_job(s, job, "database unavailable")
    (row,) = jobs(engine)
    assert (row.id, row.status, row.attempts) == (job.id, "queued", 0)


def test_requeue_dead_keeps_one_queued_job_per_session(engine: Engine, rules: RulesConfig) -> None:
    a, b = add_sessions(engine, 2)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
        claimed = claim_jobs(s, "w1", limit=2, lease_seconds=60)
        for job in claimed:
            fail_job(s, job, "bad", rules=rules, permanent=True)
        enqueue_evaluations(s, session_ids=[b], rules=rules)
        (again,) = claim_jobs(s, "w1", limit=2, lease_seconds=60)
        fail_job(s, again, "bad again", rules=rules, permanent=True)  # b: two dead jobs
        enqueue_evaluations(s, session_ids=[a], rules=rules)  # a queued again already
    with transaction(engine) as s:
        assert requeue_dead(s) == 1  # b's newest; a keeps its queued job
    assert len(queued(engine, a)) == 1
    assert queued(engine, b) == [(again.id, again.priority)]
    with transaction(engine) as s:
        assert requeue_dead(s) == 0
