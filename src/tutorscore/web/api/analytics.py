"""POST /api/run-analytics; GET /api/analytics/configs/{hash}, first-sessions, risk-history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from tutorscore.web.deps import CurrentUser, DbSession, State, require_role

router = APIRouter(prefix="/api", tags=["analytics"])


class RunAnalyticsIn(BaseModel):
    as_of: datetime | None = Field(
        None, description="End of the window, ISO 8601 with offset or Z (default: now)"
    )


class RunAnalyticsOut(BaseModel):
    run_id: int
    kind: str
    as_of: str
    tutors: int
    config_hash: str
    seconds: float
    risk: dict[str, int]
    flags: dict[str, int]
    model_scored: int
    stages: dict[str, float] = Field(
        default_factory=dict, description="seconds per stage: sql, rules, write, churn"
    )


def _aware(as_of: datetime | None) -> datetime:
    from tutorscore.analytics.service import live_as_of

    if as_of is None:
        return live_as_of()
    from tutorscore.web.params import checked_as_of

    checked = checked_as_of(as_of)
    assert checked is not None
    return checked


@router.post(
    "/run-analytics",
    response_model=RunAnalyticsOut,
    dependencies=[Depends(require_role("coach"))],
    responses={403: {"description": "needs the admin or coach role"}},
)
def run_analytics(
    db: DbSession, state: State, body: RunAnalyticsIn | None = None
) -> dict[str, Any]:
    """Recompute every tutor's metrics, flags and reasons at `as_of` (idempotent)."""
    from tutorscore.flows.metrics import nightly_recompute

    as_of = _aware(body.as_of if body else None)
    return nightly_recompute(db, as_of=as_of, rules=state.rules).as_dict()


@router.get("/first-sessions")
def first_sessions(
    db: DbSession,
    state: State,
    user: CurrentUser,
    as_of: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
) -> dict[str, Any]:
    """By subject: first sessions, dropout rate, worst tutors; risk tags over-represented."""
    from tutorscore.analytics.first_sessions import first_session_patterns

    return first_session_patterns(db, as_of=_aware(as_of), rules=state.rules)


@router.get("/risk-history")
def risk_history(
    db: DbSession,
    user: CurrentUser,
    weeks: Annotated[int, Query(ge=1, le=520, description="weeks to count")] = 12,
    as_of: Annotated[datetime | None, Query(description="end of the last week (now)")] = None,
) -> dict[str, Any]:
    """Per week, oldest first: tutors at each churn-risk level and with each flag.

    Each tutor counts by its latest stored metrics row at or before the week's end.
    """
    from tutorscore.analytics.history import risk_history as history

    return history(db, as_of=_aware(as_of), weeks=weeks)


class AnalyticsConfigOut(BaseModel):
    config_hash: str
    first_used_at: str
    config: dict[str, Any]


@router.get(
    "/analytics/configs/{config_hash}",
    response_model=AnalyticsConfigOut,
    responses={404: {"description": "no run used a config with this fingerprint"}},
)
def analytics_config(config_hash: str, db: DbSession, user: CurrentUser) -> dict[str, Any]:
    """The thresholds in force for rows carrying `config_hash` (every tutor report has one)."""
    from tutorscore.analytics.service import stored_config

    return stored_config(db, config_hash)
