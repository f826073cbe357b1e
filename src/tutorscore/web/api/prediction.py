"""Churn model status and the no-show risk list for ops."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from tutorscore.db.base import utcnow
from tutorscore.prediction.churn import model_status
from tutorscore.prediction.model_store import list_models
from tutorscore.prediction.no_show import no_show_risks
from tutorscore.prediction.no_show_model import PREFIX, no_show_model_status
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.params import checked_as_of

router = APIRouter(prefix="/api", tags=["prediction"])


@router.get("/no-show-risk")
def no_show_risk(
    db: DbSession,
    state: State,
    user: CurrentUser,
    as_of: Annotated[datetime | None, Query(description="ISO 8601; default: now")] = None,
    days: Annotated[float, Query(gt=0, le=90, description="look this far ahead")] = 7.0,
    min_probability: Annotated[
        float | None,
        Query(ge=0, le=1, description="default: prediction.no_show_alert_probability"),
    ] = None,
    all: Annotated[bool, Query(description="list every upcoming session")] = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> dict[str, Any]:
    """Upcoming scheduled sessions whose no-show probability reaches the alert threshold."""
    when = checked_as_of(as_of) or utcnow()
    threshold = (
        None
        if all
        else (
            min_probability
            if min_probability is not None
            else state.rules.prediction.no_show_alert_probability
        )
    )
    risks = no_show_risks(
        db,
        as_of=when,
        rules=state.rules,
        days=days,
        min_probability=threshold,
        limit=limit,
        settings=state.settings,
    )
    return {
        "as_of": when.isoformat().replace("+00:00", "Z"),
        "days": days,
        "threshold": threshold,
        "model": no_show_model_status(state.settings),
        "items": [r.as_dict() for r in risks],
    }


@router.get("/churn-model")
def churn_model(state: State, user: CurrentUser) -> dict[str, Any]:
    """Whether the churn model decides churn_risk_label (its gate), its held-out scores and
    reliability table (predicted decile vs observed churn rate), and its stored versions."""
    return {
        "status": model_status(state.settings),
        "versions": list_models(state.settings.data_dir)[:20],
    }


@router.get("/no-show-model")
def no_show_model(state: State, user: CurrentUser) -> dict[str, Any]:
    """Whether the trained no-show model or the formula scores sessions, and why."""
    return {
        "status": no_show_model_status(state.settings),
        "versions": list_models(state.settings.data_dir, PREFIX)[:20],
    }
