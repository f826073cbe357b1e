"""`/`: risk counts, new flags, evaluation backlog and LLM spend at a glance."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tutorscore.analytics.queries import current_as_of
from tutorscore.evaluation.backlog import llm_backlog
from tutorscore.reviews.service import reviews_since
from tutorscore.web.dashboard import views
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, db: DbSession, state: State, user: CurrentUser) -> HTMLResponse:
    counts = views.risk_counts(db)
    new, new_total = views.new_flags(db)
    llm = views.llm_today(db)
    llm.update(enabled=state.settings.llm_enabled, budget=state.settings.llm_budget_usd)
    return render(
        request,
        "overview.html",
        {
            "risk_counts": counts,
            "tutor_count": sum(counts.values()),
            "latest_as_of": current_as_of(db),
            "new_flags": new,
            "new_flags_total": new_total,
            "backlog": views.backlog(db),
            "llm_backlog": llm_backlog(db, state.settings),
            "evaluated": views.evaluated_count(db),
            "llm": llm,
            "reviews": reviews_since(db, days=7),
        },
    )
