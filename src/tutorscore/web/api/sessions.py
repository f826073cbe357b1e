"""POST /api/sessions: record one finished session (and its transcript) as it happens.

The importer's validation decides what is valid, so the API and `tutorscore import`
give the same messages. Then the record-session flow (`tutorscore.flows.sessions`)
writes it, queues its evaluation at its priority and updates its tutor's metrics
incrementally, in the same transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from sqlalchemy import inspect

from tutorscore.auth.audit import record
from tutorscore.db.models import TutoringSession
from tutorscore.errors import ValidationFailed
from tutorscore.web.deps import AdminUser, DbSession, State
from tutorscore.web.schemas import SessionIn, SessionRecorded

router = APIRouter(prefix="/api", tags=["sessions"])

_ROW_FIELDS = [c.key for c in inspect(TutoringSession).mapper.column_attrs]

_RECORD = {
    "session_id": "S-api-1",
    "tutor_id": "T001",
    "student_id": "ST0001",
    "subject": "SAT Math",
    "scheduled_start_at": "2026-11-24T15:00:00Z",
    "actual_start_at": "2026-11-24T15:01:00Z",
    "duration_minutes": 55,
    "status": "completed",
}
_EXAMPLES: dict[str, Any] = {
    "turns": {
        "summary": "transcript as turns",
        "value": {
            **_RECORD,
            "turns": [
                {"speaker": "tutor", "text": "What would you like to work on today?"},
                {"speaker": "student", "text": "Quadratics, please."},
            ],
        },
    },
    "vtt": {
        "summary": "transcript as a WebVTT file",
        "value": {
            **_RECORD,
            "transcript": {
                "format": "vtt",
                "content": "WEBVTT\n\n00:00:01.000 --> 00:00:04.000\n<v Maria Gonzalez>What "
                "would you like to work on today?</v>\n\n00:00:04.500 --> 00:00:06.000\n"
                "<v Jordan>Quadratics, please.</v>\n",
            },
        },
    },
    "srt": {
        "summary": "transcript as a SubRip file, speakers named",
        "value": {
            **_RECORD,
            "transcript": {
                "format": "srt",
                "content": "1\n00:00:01,000 --> 00:00:04,000\nHost: What would you like to "
                "work on today?\n\n2\n00:00:04,500 --> 00:00:06,000\nJordan: Quadratics.\n",
                "speakers": {"Host": "tutor", "Jordan": "student"},
            },
        },
    },
    "text": {
        "summary": "transcript as a chat log",
        "value": {
            **_RECORD,
            "transcript": {
                "format": "text",
                "content": "[3:01:05 PM] Maria Gonzalez: What would you like to work on?\n"
                "[3:01:20 PM] Jordan: Quadratics, please.\n",
            },
        },
    },
}


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
    body: Annotated[SessionIn, Body(openapi_examples=_EXAMPLES)],
    response: Response,
    db: DbSession,
    state: State,
    user: AdminUser,
) -> SessionRecorded:
    """Create (201) or update (200) one session; queue its evaluation; update its tutor.

    The transcript is optional: `turns`, `text` (Tutor:/Student: lines) or
    `transcript` (a WebVTT, SubRip or "Name: text" file; speakers are mapped to
    tutor and student by `speakers`, Tutor/Teacher/Student labels or the tutor's name).
    """
    from tutorscore.flows.sessions import record_session as record_flow
    from tutorscore.ingest.importer import validate_session_record

    raw = body.model_dump(exclude_unset=True)
    transcript_file = raw.pop("transcript", None)
    clean, errors = validate_session_record(raw, where="request body")
    if transcript_file is not None:
        errors = errors + _transcript_file(db, raw, clean, transcript_file)
    if clean is None or errors:
        raise ValidationFailed(
            "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""),
            details=errors,
        )
    session_id = str(clean["session_id"])
    before = _snapshot(db.get(TutoringSession, session_id))
    recorded = record_flow(
        db,
        clean,
        rules=state.rules,
        settings=state.settings,
        previous_tutor_id=None if before is None else str(before["tutor_id"]),
    )
    created, job_id = recorded.created, recorded.evaluation_job_id
    row = db.get(TutoringSession, session_id)
    if row is not None:
        db.refresh(row)
    priority = _job_priority(db, job_id)
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


def _transcript_file(
    db: DbSession, raw: dict[str, Any], clean: dict[str, Any] | None, value: Any
) -> list[str]:
    """Read a `transcript` file into clean["transcript"]; the messages when it cannot be."""
    from tutorscore.db.models import Tutor
    from tutorscore.ingest.captions import check_transcript_file, turns_of_file

    where = "request body"
    if raw.get("turns") is not None or raw.get("text") is not None:
        return [f"{where}: transcript: expected one of turns, text or transcript, got more"]
    parsed, errors = check_transcript_file(value, where)
    if parsed is None or clean is None:
        return errors
    tutor = db.get(Tutor, clean["tutor_id"])
    if tutor is None:
        return []  # upsert_session_record reports the missing tutor
    result, errors = turns_of_file(
        parsed, session_id=str(clean["session_id"]), tutor_name=tutor.name, where=where
    )
    if result is not None:
        clean["transcript"] = {"turns": result[0], "raw_text": result[1]}
    return errors


def _job_priority(db: DbSession, job_id: int | None) -> int | None:
    if job_id is None:
        return None
    from tutorscore.db.models import Job

    job = db.get(Job, job_id)
    return job.priority if job is not None else None
