"""The jobs-table queue: priorities, dedupe, claims, leases, backoff, dead letters."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine

from evaluation_support import add_sessions, jobs, mark_tutor_high_risk
from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.evaluation.queries import queue_backlog
from tutorscore.evaluation.queue import (
    ClaimedJob,
    backoff_seconds,
    claim_jobs,
    complete_job,
    enqueue_evaluation,
    enqueue_evaluations,
    fail_job,
    list_jobs,
    requeue_dead,
)


def claim(
    engine: Engine,
    worker: str = "w1",
    *,
    limit: int = 1,
    lease: float = 60,
    now: datetime | None = None,
) -> list[ClaimedJob]:
    with transaction(engine) as s:
        return claim_jobs(s, worker, limit=limit, lease_seconds=lease, now=now)


def test_priority_order_and_dedupe(engine: Engine, rules: RulesConfig) -> None:
    rest = add_sessions(engine, 2, tutor="T1")
    first = add_sessions(engine, 2, tutor="T2", prefix="F", first={1})
    risky = add_sessions(engine, 1, tutor="T3", prefix="R")
    mark_tutor_high_risk(engine, "T3")
    with transaction(engine) as s:
        assert enqueue_evaluations(s, rules=rules) == 5
        assert enqueue_evaluations(s, rules=rules) == 0  # already queued: no second job
        again = enqueue_evaluation(s, rest[0], rules=rules)
    assert len(jobs(engine)) == 5
    assert again == next(j.id for j in jobs(engine) if j.session_id == rest[0])
    by_session = {j.session_id: j.priority for j in jobs(engine)}
    assert by_session[first[1]] == rules.evaluation.priority_first_session
    assert by_session[risky[0]] == rules.evaluation.priority_high_risk_tutor
    assert by_session[rest[0]] == by_session[first[0]] == rules.evaluation.priority_default
    order = [claim(engine)[0].session_id for _ in range(5)]
    assert order[:2] == [first[1], risky[0]]
    assert set(order[2:]) == {rest[0], rest[1], first[0]}
    assert claim(engine) == []
    # a second judge is a separate job
    with transaction(engine) as s:
        assert enqueue_evaluations(s, judge="llm", session_ids=rest, rules=rules) == 2
        stats = queue_backlog(s)
    assert stats["queued"] == 2 and stats["running"] == 5


def test_enqueue_a_more_urgent_priority_moves_the_job_up(
    engine: Engine, rules: RulesConfig
) -> None:
    (sid,) = add_sessions(engine, 1)
    with transaction(engine) as s:
        job_id = enqueue_evaluation(s, sid, rules=rules)
        assert enqueue_evaluation(s, sid, priority=1, rules=rules) == job_id
    assert jobs(engine)[0].priority == 1


def test_two_concurrent_claimers_never_share_a_job(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 40)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    got: dict[str, list[int]] = {"a": [], "b": []}
    empty = {"a": False, "b": False}
    # Rounds: both claim at the same moment, then both look at the round's results.
    # (Free-running claimers passed or failed on thread scheduling: under load one
    # thread could drain the queue before the other ran at all.)
    barrier = threading.Barrier(2, timeout=30)

    def claimer(name: str) -> None:
        while True:
            barrier.wait()
            batch = claim(engine, name, limit=3)
            got[name].extend(j.id for j in batch)
            empty[name] = not batch
            barrier.wait()
            if all(empty.values()):
                return

    threads = [threading.Thread(target=claimer, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    claimed = got["a"] + got["b"]
    assert len(claimed) == 40 and len(set(claimed)) == 40
    assert got["a"] and got["b"]
    assert {j.locked_by for j in jobs(engine)} == {"a", "b"}


def test_expired_lease_is_reclaimed_and_the_old_worker_is_fenced_off(
    engine: Engine, rules: RulesConfig
) -> None:
    add_sessions(engine, 1)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    now = utcnow()
    (old,) = claim(engine, "crashed", lease=2, now=now)
    assert claim(engine, "other", now=now + timedelta(seconds=1)) == []  # lease still held
    (new,) = claim(engine, "other", now=now + timedelta(seconds=3))
    assert new.id == old.id and new.attempts == 2
    with transaction(engine) as s:
        assert not complete_job(s, old)  # the crashed worker lost its lease
        assert complete_job(s, new)
    (job,) = jobs(engine)
    assert job.status == "done" and job.finished_at is not None


def test_failures_back_off_then_dead_letter_with_reason(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 1)
    cfg = rules.evaluation
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    now = utcnow()
    for attempt in range(1, cfg.max_attempts + 1):
        (job,) = claim(engine, now=now)
        assert job.attempts == attempt
        with transaction(engine) as s:
            status = fail_job(s, job, f"boom {attempt}", rules=rules, now=now)
        if attempt < cfg.max_attempts:
            assert status == "queued"
            (row,) = jobs(engine)
            assert row.run_after == now + timedelta(seconds=backoff_seconds(cfg, attempt))
            assert claim(engine, now=now) == []  # not before run_after
            now = row.run_after
    assert status == "dead"
    (row,) = jobs(engine)
    assert row.status == "dead" and row.last_error == f"boom {cfg.max_attempts}"
    assert backoff_seconds(cfg, 2) == 2 * backoff_seconds(cfg, 1)
    with transaction(engine) as s:
        stats = queue_backlog(s)
        dead = list_jobs(s, status="dead")
    assert stats["dead"] == 1 and stats["queued"] == 0
    assert dead[0]["last_error"] == f"boom {cfg.max_attempts}"
    with transaction(engine) as s:
        assert requeue_dead(s) == 1
    assert claim(engine)[0].attempts == 1


def test_crash_looping_job_is_dead_lettered(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 1)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    now = utcnow()
    for _ in range(rules.evaluation.max_attempts):
        assert claim(engine, lease=1, now=now)
        now += timedelta(seconds=2)
    assert claim(engine, now=now) == []
    (row,) = jobs(engine)
    assert row.status == "dead" and "lease expired" in (row.last_error or "")


def test_unavailable_judge_does_not_use_up_attempts(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 1)
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules)
    now = utcnow()
    for _ in range(rules.evaluation.max_attempts + 2):
        (job,) = claim(engine, now=now)
        assert job.attempts == 1
        with transaction(engine) as s:
            fail_job(s, job, "429", rules=rules, unavailable=True, retry_after_s=7, now=now)
        now += timedelta(seconds=7)
    (row,) = jobs(engine)
    assert row.status == "queued" and row.payload["unavailable_streak"] >= 3


def test_queue_stats_by_priority_and_age(engine: Engine, rules: RulesConfig) -> None:
    add_sessions(engine, 3, first={0})
    with transaction(engine) as s:
        enqueue_evaluations(s, rules=rules, now=utcnow() - timedelta(seconds=30))
        stats = queue_backlog(s)
    assert stats["queued"] == 3
    assert stats["queued_by_priority"] == {0: 1, 20: 2}
    assert stats["oldest_queued_age_s"] >= 30
