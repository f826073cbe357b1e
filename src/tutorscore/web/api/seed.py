"""POST /api/seed-data: replace synthetic data with a fresh seeded set (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

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


@router.post("/seed-data", response_model=SeedResponse)
def seed_data(body: SeedRequest, state: State, user: AdminUser) -> SeedResponse:
    """Synthetic tutors, students, sessions and transcripts (deterministic by `seed`).

    Runs synchronously; large requests take a while (1M sessions: about a minute).
    """
    from tutorscore.analytics.service import compute_all
    from tutorscore.ingest.synthetic import seed

    as_of = (body.as_of or datetime.now(UTC)).astimezone(UTC)
    summary = seed(
        state.engine,
        tutors=body.tutors,
        students=body.students,
        sessions=body.sessions,
        days=body.days,
        transcripts=body.transcripts,
        seed=body.seed,
        as_of=as_of,
    )
    analytics = None
    if body.run_analytics:
        analytics = _as_dict(compute_all(state.engine, as_of=as_of, rules=state.rules))
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
    return SeedResponse(summary=summary_dict, analytics=analytics, as_of=as_of)
