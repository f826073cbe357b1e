"""POST /api/seed-data: replace synthetic data with a fresh seeded set (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Engine, text

from tutorscore.auth.audit import record
from tutorscore.db.engine import transaction
from tutorscore.web.deps import AdminUser, State
from tutorscore.web.schemas import SeedRequest, SeedResponse

router = APIRouter(prefix="/api", tags=["data"])


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if hasattr(value, "as_dict"):
        as_dict: dict[str, Any] = value.as_dict()
        return as_dict
    if hasattr(value, "model_dump"):
        dumped: dict[str, Any] = value.model_dump(mode="json")
        return dumped
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return {"result": str(value)}


# What `ingest.synthetic.delete_synthetic` removes, counted the same way.
_SYNTHETIC_SESSIONS = "SELECT session_id FROM sessions WHERE is_synthetic = :yes"
_SYNTHETIC_TUTORS = "SELECT tutor_id FROM tutors WHERE is_synthetic = :yes"
_WOULD_DELETE = {
    "jobs": f"SELECT count(*) FROM jobs WHERE session_id IN ({_SYNTHETIC_SESSIONS})",
    "session_evaluations": "SELECT count(*) FROM session_evaluations"
    f" WHERE session_id IN ({_SYNTHETIC_SESSIONS})",
    "session_transcripts": "SELECT count(*) FROM session_transcripts"
    f" WHERE session_id IN ({_SYNTHETIC_SESSIONS})",
    "sessions": "SELECT count(*) FROM sessions WHERE is_synthetic = :yes",
    "tutor_metrics": f"SELECT count(*) FROM tutor_metrics WHERE tutor_id IN ({_SYNTHETIC_TUTORS})",
    "alerts": f"SELECT count(*) FROM alerts WHERE tutor_id IN ({_SYNTHETIC_TUTORS})",
    "interventions": f"SELECT count(*) FROM interventions WHERE tutor_id IN ({_SYNTHETIC_TUTORS})",
    "students": "SELECT count(*) FROM students WHERE is_synthetic = :yes",
    "tutors": "SELECT count(*) FROM tutors WHERE is_synthetic = :yes",
}


def would_delete(engine: Engine) -> dict[str, int]:
    """Rows a reseed deletes now, per table (coaching work on synthetic tutors included)."""
    with engine.connect() as conn:
        return {
            table: int(conn.execute(text(sql), {"yes": True}).scalar_one())
            for table, sql in _WOULD_DELETE.items()
        }


@router.post(
    "/seed-data",
    response_model=SeedResponse,
    responses={422: {"description": "an unknown key or a value out of range"}},
)
def seed_data(body: SeedRequest, state: State, user: AdminUser) -> SeedResponse:
    """Synthetic tutors, students, sessions and transcripts (deterministic by `seed`).

    Replaces the earlier synthetic data and everything that hangs off it, including
    interventions and alerts on synthetic tutors: `would_delete` says how many rows
    (`"dry_run": true` answers only that and writes nothing). Unknown keys are 422.
    Runs synchronously; large requests take a while (1M sessions: about a minute).
    """
    from tutorscore.flows.demo import seed_synthetic

    as_of = (body.as_of or datetime.now(UTC)).astimezone(UTC)
    doomed = would_delete(state.engine)
    if body.dry_run:
        return SeedResponse(summary={}, as_of=as_of, dry_run=True, would_delete=doomed)
    summary, run = seed_synthetic(
        state.engine,
        rules=state.rules,
        as_of=as_of,
        seed=body.seed,
        sizes={
            "tutors": body.tutors,
            "students": body.students,
            "sessions": body.sessions,
            "days": body.days,
            "transcripts": body.transcripts,
        },
        analytics=body.run_analytics,
    )
    analytics = None if run is None else _as_dict(run)
    summary_dict = _as_dict(summary)
    with transaction(state.engine) as db:
        record(
            db,
            actor=user.username,
            action="data.seed",
            entity_type="dataset",
            entity_id="synthetic",
            before=None,
            after={"request": body.model_dump(mode="json"), "summary": summary_dict},
        )
    return SeedResponse(summary=summary_dict, analytics=analytics, as_of=as_of, would_delete=doomed)
