"""Coaching interventions, playbook recommendations, outcomes and alerts over JSON.

Reading needs a login; creating and changing interventions needs the coach (or
admin) role. Invalid status moves answer 409; every change is audited.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from tutorscore.auth.users import Principal
from tutorscore.interventions import alerts, outcomes, playbook, service
from tutorscore.web.deps import CurrentUser, DbSession, State, require_role

router = APIRouter(prefix="/api", tags=["interventions"])


def _aware(as_of: datetime | None) -> datetime | None:
    from tutorscore.web.params import checked_as_of

    return checked_as_of(as_of)


Coach = Annotated[Principal, Depends(require_role("coach"))]
Status = Literal["open", "in_progress", "done"]


class InterventionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tutor_id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=200, description="the action, e.g. a playbook one")
    flag: str | None = Field(default=None, max_length=64, description="playbook key it answers")
    owner: str | None = Field(default=None, max_length=100)
    due_date: date | None = None
    notes: str | None = Field(default=None, max_length=20000)


class InterventionUpdate(BaseModel):
    """Only the fields sent change; `null` clears owner, due date or notes."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    type: str | None = Field(default=None, min_length=1, max_length=200)
    owner: str | None = Field(default=None, max_length=100)
    due_date: date | None = None
    notes: str | None = Field(default=None, max_length=20000)


class Intervention(BaseModel):
    id: int
    tutor_id: str
    type: str
    flag: str | None
    status: Status
    owner: str | None
    due_date: str | None
    notes: str | None
    created_by: str | None
    created_at: str | None
    updated_at: str | None
    started_at: str | None
    completed_at: str | None
    overdue: bool
    allowed_transitions: list[str]
    outcome: dict[str, Any] | None = None


class InterventionPage(BaseModel):
    items: list[Intervention]
    total: int
    limit: int
    offset: int


@router.get("/interventions", response_model=InterventionPage)
def list_interventions(
    db: DbSession,
    user: CurrentUser,
    status: Annotated[Status | None, Query()] = None,
    owner: Annotated[str | None, Query(max_length=100)] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    tutor_id: Annotated[str | None, Query(max_length=64)] = None,
    overdue: Annotated[bool | None, Query(description="true: past due and not done")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Coaching tasks, not-done first and by due date; overdue ones are marked."""
    items, total = service.list_interventions(
        db,
        status=status,
        owner=owner,
        type=type,
        tutor_id=tutor_id,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )
    return {
        "items": [service.serialize(iv) for iv in items],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.post(
    "/interventions",
    response_model=Intervention,
    status_code=201,
    responses={403: {"description": "viewers cannot"}, 404: {"description": "no such tutor"}},
)
def create_intervention(
    body: InterventionCreate, db: DbSession, state: State, user: Coach
) -> dict[str, Any]:
    """Open a coaching task for a tutor (usually from a playbook recommendation)."""
    iv = service.create_intervention(
        db,
        tutor_id=body.tutor_id,
        type=body.type,
        flag=body.flag,
        owner=body.owner,
        due_date=body.due_date,
        notes=body.notes,
        actor=user.username,
        rules=state.rules,
    )
    return service.serialize(iv)


@router.get(
    "/interventions/outcomes",
    tags=["interventions"],
)
def outcome_summary(
    db: DbSession,
    state: State,
    user: CurrentUser,
    as_of: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
) -> dict[str, Any]:
    """Per intervention type: completed count, mean change and effect vs comparison tutors."""
    return {"items": outcomes.outcome_summary(db, rules=state.rules, as_of=_aware(as_of))}


@router.get(
    "/interventions/{intervention_id}",
    response_model=Intervention,
    responses={404: {"description": "no such intervention"}},
)
def get_intervention(
    intervention_id: int,
    db: DbSession,
    state: State,
    user: CurrentUser,
    as_of: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
) -> dict[str, Any]:
    """One task with its outcome (before vs after, and against comparable tutors) once done."""
    iv = service.get_intervention(db, intervention_id)
    return {
        **service.serialize(iv),
        "outcome": outcomes.intervention_outcome(db, iv, rules=state.rules, as_of=_aware(as_of)),
    }


@router.patch(
    "/interventions/{intervention_id}",
    response_model=Intervention,
    responses={
        403: {"description": "viewers cannot"},
        404: {"description": "no such intervention"},
        409: {"description": "status move not allowed (open -> in_progress -> done)"},
    },
)
def update_intervention(
    intervention_id: int, body: InterventionUpdate, db: DbSession, user: Coach
) -> dict[str, Any]:
    """Move the status along open -> in_progress -> done, or edit owner, due date, notes."""
    given = body.model_fields_set
    changes: dict[str, Any] = {k: getattr(body, k) for k in given}
    if "status" in changes and changes["status"] is None:
        changes.pop("status")
    iv = service.update_intervention(db, intervention_id, actor=user.username, **changes)
    return service.serialize(iv)


@router.get("/tutors/{tutor_id}/recommendations", tags=["interventions"])
def recommendations(
    tutor_id: str, db: DbSession, state: State, user: CurrentUser
) -> dict[str, Any]:
    """Playbook actions for the tutor's current flags and frequent risk tags."""
    from tutorscore.db.models import Tutor
    from tutorscore.errors import NotFound

    if db.get(Tutor, tutor_id) is None:
        raise NotFound(f"tutor {tutor_id!r} not found")
    recs = playbook.tutor_recommendations(db, tutor_id, rules=state.rules)
    return {"tutor_id": tutor_id, "items": [r.as_dict() for r in recs]}


@router.get("/alerts", tags=["interventions"])
def list_alerts(
    db: DbSession,
    user: CurrentUser,
    tutor_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Recent alerts (became high risk, failed first sessions) and their webhook delivery."""
    return {"items": alerts.list_alerts(db, tutor_id=tutor_id, limit=limit)}
