"""Record-session: one finished session arrives (POST /api/sessions).

The caller validates the record (`ingest.importer.validate_session_record`, the
importer's own checks) and keeps the audit trail; this flow writes it, queues the
evaluation of its transcript and refreshes its tutor, all in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tutorscore.config import RulesConfig, Settings
from tutorscore.evaluation.queue import enqueue_evaluation
from tutorscore.flows.metrics import refresh_tutor
from tutorscore.ingest.importer import upsert_session_record


@dataclass(frozen=True)
class Recorded:
    created: bool  # False: an existing session was updated
    evaluation_job_id: int | None  # the heuristic judge's job, when there is a transcript


def record_session(
    db: Session,
    clean: dict[str, Any],
    *,
    rules: RulesConfig,
    settings: Settings,
    previous_tutor_id: str | None = None,
) -> Recorded:
    """Upsert the session, queue its evaluation(s), refresh its tutor (and the previous one).

    `clean` is a validated record; `previous_tutor_id` the tutor the session had
    before this update, whose metrics change too when the session moved.
    """
    session_id = str(clean["session_id"])
    created = upsert_session_record(db, clean)
    db.flush()
    job_id: int | None = None
    if clean.get("transcript") is not None:
        job_id = enqueue_evaluation(db, session_id, judge="heuristic", rules=rules)
        if settings.llm_enabled:
            enqueue_evaluation(db, session_id, judge="llm", rules=rules)
    tutor_id = str(clean["tutor_id"])
    refresh_tutor(db, tutor_id, rules=rules)
    if previous_tutor_id is not None and previous_tutor_id != tutor_id:
        refresh_tutor(db, previous_tutor_id, rules=rules)
    return Recorded(created=created, evaluation_job_id=job_id)
