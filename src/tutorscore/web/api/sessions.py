"""POST /api/sessions: record one finished session (and its transcript) as it happens.

The importer's validation decides what is valid, so the API and `tutorscore import`
give the same messages. Then the session's evaluation is queued at its priority and
its tutor's metrics are updated incrementally, in the same transaction.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import inspect

from tutorscore.auth.audit import record
from tutorscore.db.models import TutoringSession
from tutorscore.errors import ValidationFailed
from tutorscore.web.deps import AdminUser, DbSession, State
from tutorscore.web.schemas import SessionIn, SessionRecorded

router = APIRouter(prefix="/api", tags=["sessions"])

_ROW_FIELDS = [c.key for c in inspect(TutoringSession).mapper.column_attrs]


def _snapshot(row: TutoringSession | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {name: getattr(row, name) for name in _ROW_FIELDS if name not in ("updated_at",)}


@router.post(
    "/sessions",
    response_model=SessionRecorded,
    status_code=201,
    responses={
        200: {"description": "an existing session was updated", "model": SessionRecorded},
        422: {"description": "validation errors, one message per field, as the importer"},
    },
)
def record_session(
    body: SessionIn, response: Response, db: DbSession, state: State, user: AdminUser
) -> SessionRecorded:
    """Create (201) or update (200) one session; queue its evaluation; update its tutor."""
    from tutorscore.analytics.service import update_tutor
    from tutorscore.evaluation.queue import enqueue_evaluation
    from tutorscore.ingest.importer import upsert_session_record, validate_session_record

    raw = body.model_dump(exclude_unset=True)
    clean, errors = validate_session_record(raw, where="request body")
    if clean is None or errors:
        raise ValidationFailed(
            "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            details=errors,
        )
    session_id = str(clean["session_id"])
    before = _snapshot(db.get(TutoringSession, session_id))
    created = upsert_session_record(db, clean)
    db.flush()
    row = db.get(TutoringSession, session_id)
    if row is not None:
        db.refresh(row)
    job_id: int | None = None
    priority: int | None = None
    has_transcript = clean.get("transcript") is not None
    if has_transcript:
        job_id = enqueue_evaluation(db, session_id, judge="heuristic", rules=state.rules)
        priority = _job_priority(db, job_id)
        if state.settings.llm_enabled:
            enqueue_evaluation(db, session_id, judge="llm", rules=state.rules)
    update_tutor(db, str(clean["tutor_id"]), rules=state.rules)
    if before is not None and before.get("tutor_id") != clean["tutor_id"]:
        update_tutor(db, str(before["tutor_id"]), rules=state.rules)
    record(
        db,
        actor=user.username,
        action="session.create" if created else "session.update",
        entity_type="session",
        entity_id=session_id,
        before=before,
        after=_snapshot(row),
    )
    response.status_code = 201 if created else 200
    return SessionRecorded(
        session_id=session_id,
        created=created,
        evaluation_job_id=job_id,
        evaluation_priority=priority,
    )


def _job_priority(db: DbSession, job_id: int | None) -> int | None:
    if job_id is None:
        return None
    from tutorscore.db.models import Job

    job = db.get(Job, job_id)
    return job.priority if job is not None else None
