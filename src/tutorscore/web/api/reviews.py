"""Human reviews over HTTP: submit and read a session's reviews.

A review is the caller's own (reviewer = the authenticated username); a second
review of the same session by the same reviewer replaces the first (200 instead of
201). Coaches and admins may review; viewers read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from tutorscore.errors import NotFound
from tutorscore.reviews.service import (
    review_from_request,
    review_to_dict,
    save_review,
    session_reviews,
)
from tutorscore.web.deps import CoachUser, CurrentUser, DbSession, State

router = APIRouter(prefix="/api", tags=["reviews"])


class RubricIn(BaseModel):
    clarity: float | None = Field(default=None, ge=1, le=5)
    pacing: float | None = Field(default=None, ge=1, le=5)
    engagement: float | None = Field(default=None, ge=1, le=5)
    goal_alignment: float | None = Field(default=None, ge=1, le=5)


class ReviewIn(BaseModel):
    quality_score: float = Field(ge=1, le=5, description="1-5, decimals allowed")
    rubric: RubricIn | None = None
    tags: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="risk-tag names (judge vocabulary) that apply; unlisted ones do not",
    )
    note: str | None = Field(default=None, max_length=20000)
    saw_ai_score: bool = Field(
        default=False, description="the reviewer saw the AI evaluation before scoring"
    )


@router.post(
    "/sessions/{session_id}/reviews",
    status_code=201,
    responses={
        200: {"description": "the caller's earlier review of this session was replaced"},
        404: {"description": "no such session"},
        422: {"description": "validation errors (e.g. a tag outside the vocabulary)"},
    },
)
def submit_review(
    session_id: str, body: ReviewIn, response: Response, db: DbSession, user: CoachUser
) -> dict[str, Any]:
    """Review a session as the calling user (created 201, replaced 200)."""
    values: dict[str, Any] = {
        "quality_score": body.quality_score,
        "tags": body.tags,
        "note": body.note,
        **(body.rubric.model_dump(exclude_none=True) if body.rubric else {}),
    }
    review = review_from_request(
        session_id, user.username, values, joined_tags=False, saw_ai_score=body.saw_ai_score
    )
    row, replaced = save_review(db, review, source="api", actor=user.username)
    if replaced:
        response.status_code = 200
    return {**review_to_dict(row), "replaced": replaced}


@router.get("/sessions/{session_id}/reviews", responses={404: {"description": "no such session"}})
def get_reviews(session_id: str, db: DbSession, user: CurrentUser) -> dict[str, Any]:
    """Every review of the session and their mean score (the session's human score)."""
    return session_reviews(db, session_id)


@router.get("/judges/agreement")
def judges_agreement(
    db: DbSession,
    state: State,
    user: CurrentUser,
    judge: Annotated[str | None, Query(max_length=32, description="only this judge")] = None,
) -> dict[str, Any]:
    """Agreement of each judge version with the human reviews (same JSON as
    `tutorscore agreement --format json`)."""
    from tutorscore.reviews.agreement import agreement_report

    cfg = state.rules.reviews
    return agreement_report(
        db, judge=judge or None, seed=cfg.bootstrap_seed, resamples=cfg.bootstrap_resamples
    )


@router.get(
    "/reviews/next",
    responses={
        403: {"description": "viewers do not review"},
        404: {"description": "nothing left for this reviewer to review"},
    },
)
def next_review(
    db: DbSession,
    state: State,
    user: CoachUser,
    stratum: Annotated[
        Literal["band", "disagreement", "first_session"] | None,
        Query(description="try this stratum first (default: drawn with the configured shares)"),
    ] = None,
) -> dict[str, Any]:
    """The next session the caller should review (never one they already reviewed)."""
    from tutorscore.reviews.queue import next_for_review

    found = next_for_review(db, user.username, state.rules, stratum=stratum)
    if found is None:
        raise NotFound(f"no evaluated session left that {user.username} has not reviewed")
    return found.as_dict()
