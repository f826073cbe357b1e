"""Review pages: the review form on the session page, the review queue, the judges page.

Coaches and admins review; viewers read (the form is not shown to them and its POST
answers 403). Until a reviewer has submitted their review of a session, the session
page hides the AI evaluation (and the turns it quotes) and the other reviewers'
reviews, so the score is their own; "Show the AI evaluation" lifts that and the
review then records `saw_ai_score`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from tutorscore.auth.users import Principal
from tutorscore.evaluation.judge import RISK_TAGS
from tutorscore.reviews.service import (
    RUBRIC_KEYS,
    list_reviews,
    review_from_request,
    review_to_dict,
    save_review,
)
from tutorscore.web.deps import DbSession, require_role

router = APIRouter(include_in_schema=False)

Coach = Annotated[Principal, Depends(require_role("coach"))]


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
