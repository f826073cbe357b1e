"""`/no-shows`: upcoming sessions likely to be missed, for ops to confirm in advance."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from tutorscore.db.base import utcnow
from tutorscore.db.models import Tutor
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.params import checked_as_of
from tutorscore.web.templating import render

router = APIRouter(include_in_schema=False)

MAX_ROWS = 500  # a list ops can work through; the API serves longer ones


@router.get("/no-shows", response_class=HTMLResponse)
def no_shows_page(
    request: Request,
    db: DbSession,
    state: State,
    user: CurrentUser,
    as_of: Annotated[datetime | None, Query()] = None,
    days: Annotated[float, Query(gt=0, le=90)] = 7.0,
) -> HTMLResponse:
    """Same list as `tutorscore no-shows`: threshold from rules, riskiest first."""
    from tutorscore.prediction.no_show import no_show_risks
    from tutorscore.prediction.no_show_model import no_show_model_status

    when = checked_as_of(as_of) or utcnow()
    threshold = state.rules.prediction.no_show_alert_probability
    risks = no_show_risks(
        db,
        as_of=when,
        rules=state.rules,
        days=days,
        min_probability=threshold,
        limit=MAX_ROWS,
        settings=state.settings,
    )
    tutor_ids = {r.tutor_id for r in risks}
    names: dict[str, str] = {}
    if tutor_ids:
        rows = db.execute(select(Tutor.tutor_id, Tutor.name).where(Tutor.tutor_id.in_(tutor_ids)))
        names = {row.tutor_id: row.name for row in rows}
    context = {
        "risks": risks,
        "names": names,
        "as_of": when,
        "days": days,
        "threshold": threshold,
        "limit": MAX_ROWS,
        "model": no_show_model_status(state.settings),
    }
    return render(request, "no_shows.html", context)
