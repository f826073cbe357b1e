"""`/`: risk counts, new flags, evaluation backlog and LLM spend at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tutorscore.analytics.flags import label as flag_label
from tutorscore.analytics.history import RISK_LEVELS, risk_history
from tutorscore.analytics.queries import current_as_of
from tutorscore.analytics.service import live_as_of
from tutorscore.evaluation.backlog import llm_backlog
from tutorscore.reviews.service import reviews_since
from tutorscore.web.charts import count_chart
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
            **risk_over_time(db),
        },
    )


RISK_LINES = [
    (level, name, css)
    for level, name, css in zip(
        RISK_LEVELS,
        ("High churn risk", "Medium", "Low", "Not enough data"),
        ("c-high", "c-medium", "c-low", "c-na"),
        strict=True,
    )
]
HISTORY_WEEKS = 12


def risk_over_time(db: DbSession) -> dict[str, Any]:
    """The last 12 weeks of `GET /api/risk-history` (same function, same default as_of)."""
    history = risk_history(db, as_of=live_as_of(), weeks=HISTORY_WEEKS)
    flags = history["flags"]
    flag_lines = [(f, _upper_first(flag_label(f)), f"c-f{i + 1}") for i, f in enumerate(flags)]
    rows: list[dict[str, Any]] = []
    for week in history["weeks"]:
        row: dict[str, Any] = {"label": week["week_end"][5:10], "tutors": week["tutors"]}
        row.update(week["risk"])
        row.update(week["flags"])
        rows.append(row)
    shown = rows if any(r["tutors"] for r in rows) else []  # no history: the empty message
    return {
        "risk_rows": rows,
        "risk_lines": RISK_LINES,
        "flag_lines": flag_lines,
        "risk_chart": count_chart(shown, RISK_LINES),
        "flag_chart": count_chart(shown, flag_lines),
        "risk_history_as_of": history["as_of"],
    }


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]
