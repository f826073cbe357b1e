"""Review pages: the review form on the session page, the review queue, the judges page.

Coaches and admins review; viewers read (the form is not shown to them and its POST
answers 403). Until a reviewer has submitted their review of a session, the session
page hides the AI evaluation (and the turns it quotes) and the other reviewers'
reviews, so the score is their own; "Show the AI evaluation" lifts that and the
review then records `saw_ai_score`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from tutorscore.auth.users import Principal
from tutorscore.config import RulesConfig
from tutorscore.evaluation.judge import RISK_TAGS
from tutorscore.reviews.service import (
    RUBRIC_KEYS,
    list_reviews,
    review_from_request,
    review_to_dict,
    save_review,
)
from tutorscore.web.deps import CurrentUser, DbSession, State, require_role
from tutorscore.web.templating import render

router = APIRouter(include_in_schema=False)

Coach = Annotated[Principal, Depends(require_role("coach"))]

# why the review queue picked the session, as the session page says it (`?queue=`)
QUEUE_REASONS = {
    "band": "a stratified random sample across judge-score bands",
    "disagreement": "one of the sessions where the judge versions disagree most",
    "first_session": "a random first session",
}


def review_context(
    db: Session, session_id: str, user: Principal, *, show_ai: bool
) -> dict[str, Any]:
    """What the session page shows of reviews, and whether the AI evaluation is hidden."""
    rows = list_reviews(db, session_id)
    mine = next((r for r in rows if r.reviewer == user.username), None)
    can_review = user.can("coach")
    blind = can_review and mine is None and not show_ai
    visible = [] if (can_review and mine is None) else [review_to_dict(r) for r in rows]
    mean = round(sum(r.quality_score for r in rows) / len(rows), 2) if rows else None
    return {
        "can_review": can_review,
        "mine": review_to_dict(mine) if mine is not None else None,
        "reviews": visible,
        "review_count": len(rows),
        "human_mean": mean if visible else None,
        "hide_ai": blind,
        "show_ai": show_ai,
        "tag_names": RISK_TAGS,
        "rubric_keys": RUBRIC_KEYS,
        "queue_reasons": QUEUE_REASONS,
    }


@router.post("/sessions/{session_id}/reviews", response_model=None)
def submit_review_form(
    session_id: str,
    request: Request,
    db: DbSession,
    user: Coach,
    quality_score: Annotated[str, Form(max_length=20)],
    clarity: Annotated[str | None, Form(max_length=20)] = None,
    pacing: Annotated[str | None, Form(max_length=20)] = None,
    engagement: Annotated[str | None, Form(max_length=20)] = None,
    goal_alignment: Annotated[str | None, Form(max_length=20)] = None,
    tags: Annotated[list[str] | None, Form(max_length=50)] = None,
    note: Annotated[str | None, Form(max_length=20000)] = None,
    saw_ai_score: Annotated[str | None, Form(max_length=5)] = None,
) -> RedirectResponse:
    """The session page's review form (CSRF token checked by the user dependency)."""
    values = {
        "quality_score": quality_score,
        "clarity": clarity,
        "pacing": pacing,
        "engagement": engagement,
        "goal_alignment": goal_alignment,
        "tags": list(tags or []),
        "note": note,
    }
    review = review_from_request(
        session_id,
        user.username,
        values,
        joined_tags=False,
        saw_ai_score=saw_ai_score in ("1", "true", "on"),
    )
    save_review(db, review, source="dashboard", actor=user.username)
    return RedirectResponse(f"/sessions/{quote(session_id, safe='')}#reviews", status_code=303)


@dataclass
class Scatter:
    """An SVG scatter of judge score (x) against the human mean (y), both on 1-5."""

    label: str
    size: int
    pad: int
    ticks: list[tuple[float, str]]
    dots: list[tuple[float, float, str, str]]  # x, y, session id, tooltip
    diagonal: tuple[float, float, float, float]


def scatter(label: str, points: list[tuple[str, float, float]], size: int = 300) -> Scatter:
    pad = 34

    def at(v: float) -> float:
        return round(pad + (size - 2 * pad) * (min(max(v, 1.0), 5.0) - 1.0) / 4.0, 1)

    def y_at(v: float) -> float:
        return round(size - at(v), 1)

    dots = [
        (at(j), y_at(h), sid, f"{sid}: judge {j:.2f}, reviewers {h:.2f}") for sid, j, h in points
    ]
    ticks = [(at(float(v)), str(v)) for v in range(1, 6)]
    return Scatter(label, size, pad, ticks, dots, (at(1), y_at(1), at(5), y_at(5)))


def judges_context(db: Session, rules: RulesConfig, *, top: int = 10) -> dict[str, Any]:
    from tutorscore.reviews.agreement import agreement_report, scatter_points

    cfg = rules.reviews
    report = agreement_report(db, seed=cfg.bootstrap_seed, resamples=cfg.bootstrap_resamples)
    points = scatter_points(db)
    disagreements = {
        label: sorted(rows, key=lambda r: (-abs(r[1] - r[2]), r[0]))[:top]
        for label, rows in points.items()
    }
    from tutorscore.reviews.counted import choose_counted

    return {
        "report": report,
        "counted": choose_counted(db, rules).explanation,
        "charts": [scatter(label, rows) for label, rows in points.items()],
        "disagreements": disagreements,
    }


@router.get("/judges", response_class=HTMLResponse)
def judges_page(request: Request, db: DbSession, state: State, user: CurrentUser) -> HTMLResponse:
    """Agreement table, judge-vs-human scatter per judge version, largest disagreements."""
    context = judges_context(db, state.rules)
    context["llm_enabled"] = state.settings.llm_enabled
    return render(request, "judges.html", context)


@router.get("/reviews/next", response_model=None)
def next_review_page(request: Request, db: DbSession, state: State, user: Coach) -> Any:
    """Redirect to the next session to review, with why it was picked."""
    from tutorscore.reviews.queue import next_for_review

    found = next_for_review(db, user.username, state.rules)
    if found is None:
        return render(request, "reviews_done.html", {})
    # only the stratum travels in the URL: the page words it itself (no text from the
    # query string is shown) and never names the band, which would hint at the AI score
    query = urlencode({"queue": found.stratum})
    return RedirectResponse(f"/sessions/{quote(found.session_id, safe='')}?{query}#reviews", 303)
