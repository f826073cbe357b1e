"""Evaluating one session and storing the result, cached by transcript hash.

The cache key is session x judge x model x prompt_version x transcript hash (a
unique constraint): evaluating the same transcript again with the same judge
returns the stored row without calling the judge. After a new evaluation is
stored, the tutor's metrics are updated incrementally, followed by the caller's
`after_write` step (`tutorscore.flows.metrics.after_metrics`: churn, alerts, webhooks).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tutorscore.analytics.service import AfterWrite, update_tutor
from tutorscore.config import RulesConfig, get_rules
from tutorscore.db.base import utcnow
from tutorscore.db.models import SessionEvaluation, SessionTranscript, TutoringSession
from tutorscore.errors import NotFound
from tutorscore.evaluation.judge import EvaluationResult, Judge
from tutorscore.evaluation.queries import chosen_evaluation_ids
from tutorscore.ingest.transcript_format import Turn, content_hash

log = logging.getLogger(__name__)


class NoTranscript(NotFound):
    """The session exists but has no transcript to evaluate."""


@dataclass(frozen=True)
class TranscriptInfo:
    session_id: str
    tutor_id: str
    turns: list[Turn]
    transcript_hash: str


def load_transcript(session: Session, session_id: str) -> TranscriptInfo:
    """The turns and hash to evaluate; NotFound / NoTranscript when there is nothing."""
    row = session.execute(
        select(TutoringSession.tutor_id, SessionTranscript.turns, SessionTranscript.content_hash)
        .outerjoin(SessionTranscript, SessionTranscript.session_id == TutoringSession.session_id)
        .where(TutoringSession.session_id == session_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"session {session_id!r} does not exist")
    tutor_id, turns, digest = row
    if turns is None:
        raise NoTranscript(f"session {session_id!r} has no transcript")
    typed = cast(list[Turn], list(turns))
    return TranscriptInfo(session_id, tutor_id, typed, digest or content_hash(typed))


def find_cached(
    session: Session, session_id: str, judge: Judge, transcript_hash: str
) -> SessionEvaluation | None:
    return session.scalars(
        select(SessionEvaluation).where(
            SessionEvaluation.session_id == session_id,
            SessionEvaluation.judge == judge.name,
            SessionEvaluation.model == judge.model,
            SessionEvaluation.prompt_version == judge.prompt_version,
            SessionEvaluation.transcript_hash == transcript_hash,
        )
    ).first()


_EVALUATIONS = cast(Table, SessionEvaluation.__table__)
_PG_INSERT = pg_insert(_EVALUATIONS).on_conflict_do_nothing(
    constraint="uq_session_evaluations_cache_key"
)
_SQLITE_INSERT = sqlite_insert(_EVALUATIONS).on_conflict_do_nothing()


def insert_evaluation(
    session: Session, info: TranscriptInfo, judge: Judge, result: EvaluationResult
) -> int | None:
    """INSERT ... ON CONFLICT DO NOTHING on the cache key; the new id, None when it existed.

    Two workers racing on one session therefore store one row: the second sees
    a conflict and reports a cache hit. Core statements built once: this runs
    for every job.
    """
    values: dict[str, Any] = {
        "session_id": info.session_id,
        "judge": judge.name,
        "model": judge.model,
        "prompt_version": judge.prompt_version,
        "transcript_hash": info.transcript_hash,
        "quality_score": result.quality_score,
        "rubric": result.rubric.model_dump(),
        "strengths": list(result.strengths),
        "areas_for_improvement": list(result.areas_for_improvement),
        "risk_tags": list(result.risk_tags),
        "evidence": [e.model_dump() for e in result.evidence],
        "features": dict(result.features),
        "created_at": utcnow(),
    }
    base = _PG_INSERT if session.get_bind().dialect.name == "postgresql" else _SQLITE_INSERT
    new_id = session.execute(base.values(**values).returning(_EVALUATIONS.c.id)).scalar()
    return None if new_id is None else int(new_id)


def store_evaluation(
    session: Session,
    info: TranscriptInfo,
    judge: Judge,
    result: EvaluationResult,
    *,
    rules: RulesConfig | None = None,
    update_analytics: bool = True,
    after_write: AfterWrite | None = None,
) -> tuple[SessionEvaluation, bool]:
    """Insert the result unless the same cache key is already stored (then that row, True)."""
    new_id = insert_evaluation(session, info, judge, result)
    if new_id is None:
        cached = find_cached(session, info.session_id, judge, info.transcript_hash)
        if cached is None:  # pragma: no cover - the conflicting row must exist
            raise RuntimeError(f"evaluation of {info.session_id} vanished after a conflict")
        return cached, True
    row = session.get(SessionEvaluation, new_id)
    assert row is not None
    if update_analytics:
        refresh_tutor_metrics(session, info.tutor_id, rules or get_rules(), after_write=after_write)
    return row, False


def refresh_tutor_metrics(
    session: Session,
    tutor_id: str,
    rules: RulesConfig,
    *,
    savepoint: bool = True,
    after_write: AfterWrite | None = None,
) -> None:
    """Incremental analytics for the tutor; a failure there never loses the evaluation.

    `savepoint=False` is for callers with a transaction of its own: on SQLite a
    SAVEPOINT opened before any write starts a read transaction that cannot
    later take the write lock when another connection wrote meanwhile.
    """
    if not savepoint:
        update_tutor(session, tutor_id, rules=rules, after_write=after_write)
        return
    try:
        with session.begin_nested():
            update_tutor(session, tutor_id, rules=rules, after_write=after_write)
    except Exception:
        log.exception("analytics update for tutor %s failed; the nightly run will fix it", tutor_id)


def run_judge(judge: Judge, turns: list[Turn], session_id: str | None = None) -> EvaluationResult:
    """Call an async judge from synchronous code (CLI, sync web handlers)."""
    sync = getattr(judge, "evaluate_sync", None)
    if sync is not None:
        result: EvaluationResult = sync(turns)
        return result
    coro = judge.evaluate(turns, session_id=session_id)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:  # called from inside an event loop
        return pool.submit(asyncio.run, coro).result()


def evaluate_session(
    session: Session,
    session_id: str,
    judge: Judge,
    *,
    rules: RulesConfig | None = None,
    update_analytics: bool = True,
    after_write: AfterWrite | None = None,
) -> tuple[SessionEvaluation, bool]:
    """Evaluate one session with `judge` (cache hit: no judge call). Returns (row, cached)."""
    info = load_transcript(session, session_id)
    cached = find_cached(session, session_id, judge, info.transcript_hash)
    if cached is not None:
        return cached, True
    result = run_judge(judge, info.turns, session_id)
    return store_evaluation(
        session,
        info,
        judge,
        result,
        rules=rules,
        update_analytics=update_analytics,
        after_write=after_write,
    )


def evaluation_to_dict(row: SessionEvaluation) -> dict[str, Any]:
    """The docs/data-format.md evaluation object (plus cache key fields and features)."""
    return {
        "session_id": row.session_id,
        "judge": row.judge,
        "model": row.model or None,
        "prompt_version": row.prompt_version,
        "quality_score": row.quality_score,
        "rubric": dict(row.rubric),
        "strengths": list(row.strengths),
        "areas_for_improvement": list(row.areas_for_improvement),
        "risk_tags": list(row.risk_tags),
        "evidence": list(row.evidence),
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
        "transcript_hash": row.transcript_hash,
        "features": dict(row.features),
    }


def _counted_params(session: Session, rules: RulesConfig | None) -> dict[str, str]:
    from tutorscore.reviews.counted import counted_params

    return counted_params(session, rules or get_rules())


def get_evaluation(
    session: Session, session_id: str, *, rules: RulesConfig | None = None
) -> dict[str, Any] | None:
    """The session's evaluation object, with every judge's evaluations under `evaluations`.

    The top-level object is the evaluation that counts (`[evaluation.counted]`)."""
    # the evaluation that counts, as analytics picks it (`evaluation.queries`), in the
    # same statement as the rows
    chosen = chosen_evaluation_ids(_counted_params(session, rules), [session_id]).subquery()
    found = session.execute(
        select(SessionEvaluation, SessionEvaluation.id.in_(select(chosen.c.evaluation_id)))
        .where(SessionEvaluation.session_id == session_id)
        .order_by(SessionEvaluation.created_at, SessionEvaluation.id)
    ).all()
    if not found:
        return None
    rows = [row for row, _ in found]
    out = evaluation_to_dict(next(row for row, counts in found if counts))
    out["evaluations"] = [evaluation_to_dict(r) for r in rows]
    return out


def list_evaluations(
    session: Session,
    session_ids: list[str] | None = None,
    *,
    all_judges: bool = False,
    limit: int | None = None,
    rules: RulesConfig | None = None,
) -> list[dict[str, Any]]:
    """Stored evaluations: the preferred one per session, or every row with `all_judges`."""
    stmt = select(SessionEvaluation).order_by(
        SessionEvaluation.session_id, SessionEvaluation.created_at, SessionEvaluation.id
    )
    if session_ids:
        stmt = stmt.where(SessionEvaluation.session_id.in_(session_ids))
    if not all_judges:  # the evaluation that counts per session (`evaluation.queries`)
        counted = _counted_params(session, rules)
        chosen = chosen_evaluation_ids(counted, session_ids or None).subquery()
        stmt = stmt.where(SessionEvaluation.id.in_(select(chosen.c.evaluation_id)))
    rows = list(session.scalars(stmt))
    out = [evaluation_to_dict(r) for r in rows]
    return out[:limit] if limit is not None else out
