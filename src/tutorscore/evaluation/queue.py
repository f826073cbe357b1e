"""The evaluation job queue in the `jobs` table: priorities, leases, retries, dead letters.

Claiming is one UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) ...
RETURNING statement: on Postgres concurrent workers skip each other's rows; on
SQLite the single statement runs under the database write lock, so two
claimers never get the same job. A claim sets a lease; a worker that dies
leaves the lease to expire and the job is claimed again. Every write that
finishes a job checks `locked_by`, so a worker whose lease was taken over can
no longer complete the job (its transaction rolls back: nothing duplicated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from tutorscore.config import EvaluationConfig, RulesConfig, get_rules
from tutorscore.db.base import JSONType, UTCDateTime, utcnow
from tutorscore.db.models import (
    QUEUED_EVALUATION,
    Job,
    SessionEvaluation,
    SessionTranscript,
    TutoringSession,
    TutorMetrics,
)
from tutorscore.evaluation.notify import notify_jobs
from tutorscore.evaluation.queries import EVALUATE

JUDGES = ("heuristic", "llm")


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    session_id: str
    judge: str
    priority: int
    attempts: int
    max_attempts: int
    locked_by: str
    payload: dict[str, Any] = field(default_factory=dict)


def _judge_of(column: Any) -> ColumnElement[str]:
    return column["judge"].as_string()  # type: ignore[no-any-return]


def priority_expression(cfg: EvaluationConfig, s: Any) -> ColumnElement[int]:
    """First sessions, then sessions of high-risk tutors (latest metrics), then the rest."""
    m = aliased(TutorMetrics)
    high_risk = exists().where(
        m.tutor_id == s.tutor_id,
        m.is_current == true(),  # the tutor's latest row, kept by analytics.service
        or_(m.churn_risk_label == "high", m.no_show_risk_label == "high"),
    )
    return case(
        (s.is_first_session == true(), cfg.priority_first_session),
        (high_risk, cfg.priority_high_risk_tutor),
        else_=cfg.priority_default,
    )


def _insert_jobs(session: Session) -> Any:
    """INSERT into jobs that skips a second queued job for the same (session, judge):
    ON CONFLICT DO NOTHING on the partial unique index `uq_jobs_queued_evaluation`.

    The NOT EXISTS in the SELECT skips most such rows cheaply; the index settles
    the races (two transactions enqueueing the same session at once), with no lock
    shared by every enqueue.
    """
    insert_fn = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert_fn(Job).on_conflict_do_nothing(
        index_elements=["session_id", "judge"], index_where=text(QUEUED_EVALUATION)
    )


def enqueue_evaluations(
    session: Session,
    *,
    judge: str = "heuristic",
    session_ids: list[str] | None = None,
    pending: bool = False,
    limit: int | None = None,
    priority: int | None = None,
    rules: RulesConfig | None = None,
    now: datetime | None = None,
) -> int:
    """Queue evaluation jobs for sessions with a transcript (set-based). Returns how many.

    `pending`: only transcripts with no evaluation by `judge` for their current text.
    A session that already has a queued job for this judge is skipped.
    """
    if judge not in JUDGES:
        raise ValueError(f"judge: expected one of {', '.join(JUDGES)}, got {judge!r}")
    cfg = (rules or get_rules()).evaluation
    now = now or utcnow()
    s = aliased(TutoringSession)
    t = aliased(SessionTranscript)
    j = aliased(Job)
    prio: ColumnElement[int] = (
        literal(priority) if priority is not None else priority_expression(cfg, s)
    )
    conditions: list[ColumnElement[bool]] = [
        ~exists().where(
            j.kind == EVALUATE,
            j.session_id == s.session_id,
            j.status == "queued",
            j.judge == judge,
        )
    ]
    if session_ids is not None:
        conditions.append(s.session_id.in_(session_ids))
    if pending:
        e = aliased(SessionEvaluation)
        conditions.append(
            ~exists().where(
                e.session_id == s.session_id,
                e.judge == judge,
                e.transcript_hash == t.content_hash,
            )
        )
    ts = literal(now, UTCDateTime())
    source = (
        select(
            literal(EVALUATE),
            s.session_id,
            literal(judge),
            literal({"judge": judge}, JSONType),
            prio,
            literal("queued"),
            literal(0),
            literal(cfg.max_attempts),
            ts,
            ts,
            ts,
        )
        .join(t, t.session_id == s.session_id)
        .where(and_(*conditions))
        .order_by(prio, s.scheduled_start_at.desc(), s.session_id)
    )
    if limit is not None:
        source = source.limit(limit)
    new_ids = session.execute(
        _insert_jobs(session)
        .from_select(
            [
                "kind",
                "session_id",
                "judge",
                "payload",
                "priority",
                "status",
                "attempts",
                "max_attempts",
                "run_after",
                "created_at",
                "updated_at",
            ],
            source,
        )
        .returning(Job.id)
    ).all()
    if new_ids:
        notify_jobs(session)
    return len(new_ids)


def enqueue_evaluation(
    session: Session,
    session_id: str,
    *,
    judge: str = "heuristic",
    priority: int | None = None,
    rules: RulesConfig | None = None,
) -> int:
    """Queue one session's evaluation; returns the job id (the existing queued one if any).

    An existing queued job keeps its place unless the new priority is more urgent.
    """
    enqueue_evaluations(session, judge=judge, session_ids=[session_id], rules=rules)
    row = session.execute(
        select(Job.id, Job.priority)
        .where(
            Job.kind == EVALUATE,
            Job.session_id == session_id,
            Job.status == "queued",
            Job.judge == judge,
        )
        .order_by(Job.id)
        .limit(1)
    ).one_or_none()
    if row is None:
        from tutorscore.evaluation.service import load_transcript

        load_transcript(session, session_id)  # raises NotFound / NoTranscript
        raise RuntimeError(f"no job queued for {session_id}")  # pragma: no cover
    job_id, current = row
    if priority is not None and priority < current:
        session.execute(update(Job).where(Job.id == job_id).values(priority=priority))
    return int(job_id)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(
        Job.kind == EVALUATE,
        or_(
            and_(Job.status == "queued", Job.run_after <= now),
            and_(
                Job.status == "running",
                Job.lease_expires_at < now,
                Job.attempts < Job.max_attempts,
            ),
        ),
    )


def reap_expired(session: Session, *, now: datetime | None = None) -> int:
    """Dead-letter jobs whose lease expired on their last allowed attempt (crash loops)."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(
            Job.kind == EVALUATE,
            Job.status == "running",
            Job.lease_expires_at < now,
            Job.attempts >= Job.max_attempts,
        )
        .values(
            status="dead",
            last_error=func.coalesce(Job.locked_by, "?").concat(
                ": lease expired on the last attempt (worker crashed or hung)"
            ),
            locked_by=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def claim_jobs(
    session: Session,
    worker_id: str,
    *,
    limit: int = 1,
    lease_seconds: float,
    now: datetime | None = None,
) -> list[ClaimedJob]:
    """Claim up to `limit` jobs in priority order (commit right after to publish the lease)."""
    now = now or utcnow()
    reap_expired(session, now=now)
    candidates = (
        select(Job.id)
        .where(_claimable(now))
        .order_by(Job.priority, Job.run_after, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        update(Job)
        .where(Job.id.in_(candidates.scalar_subquery()))
        .values(
            status="running",
            attempts=Job.attempts + 1,
            locked_by=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            updated_at=now,
        )
        .returning(
            Job.id,
            Job.session_id,
            Job.judge,
            Job.payload,
            Job.priority,
            Job.attempts,
            Job.max_attempts,
        )
        .execution_options(synchronize_session=False)
    ).all()
    jobs = [
        ClaimedJob(
            id=r.id,
            session_id=r.session_id or "",
            judge=str(r.judge or (r.payload or {}).get("judge", "heuristic")),
            priority=r.priority,
            attempts=r.attempts,
            max_attempts=r.max_attempts,
            locked_by=worker_id,
            payload=dict(r.payload or {}),
        )
        for r in rows
    ]
    jobs.sort(key=lambda jb: (jb.priority, jb.id))
    return jobs


def _owned(job: ClaimedJob) -> ColumnElement[bool]:
    return and_(Job.id == job.id, Job.status == "running", Job.locked_by == job.locked_by)


def extend_lease(
    session: Session, job: ClaimedJob, *, lease_seconds: float, now: datetime | None = None
) -> bool:
    """Renew the lease; False when the job is no longer ours (it was reclaimed)."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(_owned(job))
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def complete_job(session: Session, job: ClaimedJob, *, now: datetime | None = None) -> bool:
    """Mark done; False when the lease was lost (the caller must roll back its work)."""
    now = now or utcnow()
    result = session.execute(
        update(Job)
        .where(_owned(job))
        .values(
            status="done",
            locked_by=None,
            lease_expires_at=None,
            last_error=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def backoff_seconds(cfg: EvaluationConfig, attempts: int) -> float:
    """min(backoff_max_seconds, backoff_base_seconds * 2^(attempts-1))."""
    return float(min(cfg.backoff_max_seconds, cfg.backoff_base_seconds * 2 ** max(0, attempts - 1)))


def fail_job(
    session: Session,
    job: ClaimedJob,
    reason: str,
    *,
    rules: RulesConfig | None = None,
    permanent: bool = False,
    retry_after_s: float | None = None,
    unavailable: bool = False,
    now: datetime | None = None,
) -> str | None:
    """Record a failure: back to the queue with backoff, or dead after max_attempts.

    `unavailable` (the judge cannot answer now: LLM down, rate limited, budget
    spent) does not use up an attempt; the job waits `retry_after_s` or a backoff
    that grows with each consecutive unavailability. Returns the new status, or
    None when the job was no longer ours.
    """
    cfg = (rules or get_rules()).evaluation
    now = now or utcnow()
    values: dict[str, Any] = {
        "locked_by": None,
        "lease_expires_at": None,
        "last_error": reason[:4000],
        "updated_at": now,
    }
    if unavailable:
        streak = int(job.payload.get("unavailable_streak", 0)) + 1
        delay = retry_after_s if retry_after_s is not None else backoff_seconds(cfg, streak)
        values.update(
            status="queued",
            attempts=Job.attempts - 1,
            run_after=now + timedelta(seconds=max(0.0, delay)),
            payload={**job.payload, "unavailable_streak": streak},
        )
    elif permanent or job.attempts >= job.max_attempts:
        values.update(status="dead", finished_at=now)
    else:
        delay = retry_after_s if retry_after_s is not None else backoff_seconds(cfg, job.attempts)
        values.update(status="queued", run_after=now + timedelta(seconds=delay))
    ok = _update_owned(session, job, values)
    return str(values["status"]) if ok else None


def _update_owned(session: Session, job: ClaimedJob, values: dict[str, Any]) -> bool:
    """Apply `values` to our job; False when it is no longer ours.

    A job going back to the queue may meet a queued job for the same session and
    judge (enqueued while this one ran) at `uq_jobs_queued_evaluation`: that
    never-attempted sibling is folded into this one (deleted, its more urgent
    priority kept), so the session is evaluated once and this job keeps its
    attempt count. The savepoint retries when a concurrent enqueue wins the race.
    """
    stmt = update(Job).where(_owned(job)).execution_options(synchronize_session=False)
    if values.get("status") != "queued":
        return bool(session.execute(stmt.values(**values)).rowcount)  # type: ignore[attr-defined]
    for attempt in range(3):
        try:
            with session.begin_nested():
                sibling = session.execute(
                    delete(Job)
                    .where(
                        Job.kind == EVALUATE,
                        Job.status == "queued",
                        Job.session_id == job.session_id,
                        Job.judge == job.judge,
                        Job.id != job.id,
                    )
                    .returning(Job.priority)
                    .execution_options(synchronize_session=False)
                ).first()
                merged = dict(values)
                if sibling is not None:
                    merged["priority"] = min(job.priority, int(sibling.priority))
                result = session.execute(stmt.values(**merged))
            return bool(result.rowcount)  # type: ignore[attr-defined]
        except IntegrityError:
            if attempt == 2:
                raise
    return False  # pragma: no cover - the loop returns or raises


def release_job(
    session: Session, job: ClaimedJob, reason: str, *, now: datetime | None = None
) -> bool:
    """Hand a claimed job back to the queue, due now, without using up its attempt.

    For work the worker could not do through no fault of the job (the database
    went away mid-job). False when the job was no longer ours.
    """
    now = now or utcnow()
    notify_jobs(session)
    return _update_owned(
        session,
        job,
        {
            "status": "queued",
            "attempts": Job.attempts - 1,  # the claim counted one
            "locked_by": None,
            "lease_expires_at": None,
            "last_error": reason[:4000],
            "run_after": now,
            "updated_at": now,
        },
    )


def prune_done_jobs(
    session: Session,
    *,
    older_than_days: float,
    batch: int = 5000,
    now: datetime | None = None,
) -> int:
    """Delete done jobs finished more than `older_than_days` ago; returns how many.

    Deleted in batches of `batch` rows (each its own statement) so neither backend
    holds a long lock; dead jobs are kept (they wait for a human).
    """
    cutoff = (now or utcnow()) - timedelta(days=older_than_days)
    total = 0
    while True:
        ids = select(Job.id).where(Job.status == "done", Job.finished_at < cutoff).limit(batch)
        result = session.execute(
            delete(Job)
            .where(Job.id.in_(ids.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        n = int(result.rowcount or 0)  # type: ignore[attr-defined]
        total += n
        if n < batch:
            return total


def clear_unavailable_streak(session: Session, job: ClaimedJob) -> None:
    if "unavailable_streak" in job.payload:
        payload = {k: v for k, v in job.payload.items() if k != "unavailable_streak"}
        session.execute(
            update(Job)
            .where(Job.id == job.id)
            .values(payload=payload)
            .execution_options(synchronize_session=False)
        )


def requeue_dead(session: Session, job_ids: list[int] | None = None) -> int:
    """Give dead jobs a fresh set of attempts (after fixing the cause).

    One job per session and judge goes back (the newest dead one); a session that
    already has a queued job for that judge keeps that one and its dead jobs stay.
    """
    now = utcnow()
    queued = aliased(Job)
    candidates = (
        select(Job.id, Job.session_id, Job.judge)
        .where(
            Job.kind == EVALUATE,
            Job.status == "dead",
            ~exists().where(
                queued.kind == EVALUATE,
                queued.status == "queued",
                queued.session_id == Job.session_id,
                queued.judge == Job.judge,
            ),
        )
        .order_by(Job.id.desc())
    )
    if job_ids:
        candidates = candidates.where(Job.id.in_(job_ids))
    chosen: dict[tuple[str | None, str | None], int] = {}
    for job_id, session_id, judge in session.execute(candidates):
        chosen.setdefault((session_id, judge), job_id)
    ids = list(chosen.values())
    total = 0
    for start in range(0, len(ids), 1000):
        result = session.execute(
            update(Job)
            .where(Job.id.in_(ids[start : start + 1000]))
            .values(status="queued", attempts=0, run_after=now, finished_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    if total:
        notify_jobs(session)
    return total


def list_jobs(
    session: Session, *, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Jobs newest first (dead letters with their reason for `tutorscore evaluate --dead`)."""
    stmt = select(Job).where(Job.kind == EVALUATE).order_by(Job.updated_at.desc(), Job.id.desc())
    if status:
        stmt = stmt.where(Job.status == status)
    return [
        {
            "id": j.id,
            "session_id": j.session_id,
            "judge": (j.payload or {}).get("judge"),
            "status": j.status,
            "priority": j.priority,
            "attempts": j.attempts,
            "max_attempts": j.max_attempts,
            "run_after": j.run_after.isoformat(),
            "locked_by": j.locked_by,
            "last_error": j.last_error,
            "updated_at": j.updated_at.isoformat(),
        }
        for j in session.scalars(stmt.limit(limit))
    ]
