"""Reviews: save one (a reviewer's second review of a session replaces the first), list them.

One set of field rules serves the dashboard form, `POST /api/sessions/{id}/reviews`
and `tutorscore reviews import`, so all three say the same thing about a bad value
(`quality_score: expected a number from 1 to 5, got "6"`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tutorscore.auth import audit
from tutorscore.db.base import utcnow
from tutorscore.db.models import Review, TutoringSession
from tutorscore.errors import NotFound, ValidationFailed
from tutorscore.evaluation.judge import RISK_TAGS
from tutorscore.ingest._fields import render_got

RUBRIC_KEYS = ("clarity", "pacing", "engagement", "goal_alignment")
MAX_NOTE = 20_000
MAX_REVIEWER = 100
REVIEWS = cast(Table, Review.__table__)


@dataclass
class ReviewInput:
    """A validated review (before it is stored)."""

    session_id: str
    reviewer: str
    quality_score: float
    rubric: dict[str, float] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    saw_ai_score: bool = False
    created_at: datetime | None = None


class FieldProblem(ValueError):
    """One bad field: `column: expected …, got …`."""

    def __init__(self, column: str, expected: str, value: Any) -> None:
        super().__init__(f"{column}: expected {expected}, got {render_got(value)}")
        self.column = column


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def parse_score(column: str, value: Any, *, required: bool) -> float | None:
    """A number from 1 to 5 (decimals allowed); strings such as "3.5" are read too."""
    expected = "a number from 1 to 5"
    if _blank(value):
        if required:
            raise FieldProblem(column, expected, None if value is None else value)
        return None
    if isinstance(value, bool):
        raise FieldProblem(column, expected, value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise FieldProblem(column, expected, value) from None
    else:
        raise FieldProblem(column, expected, value)
    if not math.isfinite(number) or not 1.0 <= number <= 5.0:
        raise FieldProblem(column, expected, value)
    return round(number, 4)


def parse_tags(value: Any, *, joined: bool) -> list[str]:
    """Risk-tag names: `;`-joined text (CSV, forms) or a list of strings (JSON)."""
    expected = (
        "risk-tag names joined by ';'" if joined else "a JSON array of risk-tag names"
    ) + f" from the judge vocabulary ({', '.join(RISK_TAGS)})"
    if _blank(value):
        return []
    if isinstance(value, str) and joined:
        names = [part.strip() for part in value.split(";") if part.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        names = [v.strip() for v in value if v.strip()]
    else:
        raise FieldProblem("tags", expected, value)
    out: list[str] = []
    for name in names:
        if name not in RISK_TAGS:
            raise FieldProblem("tags", f"one of {', '.join(RISK_TAGS)}", name)
        if name not in out:
            out.append(name)
    return sorted(out, key=list(RISK_TAGS).index)


def parse_text(column: str, value: Any, max_len: int, *, required: bool) -> str | None:
    expected = f"text of 1-{max_len} characters"
    if _blank(value):
        if required:
            raise FieldProblem(column, expected, value)
        return None
    if not isinstance(value, str) or len(value.strip()) > max_len or "\x00" in value:
        raise FieldProblem(column, expected + " (no NUL characters)", value)
    return value.strip()


def validate_review(
    values: Mapping[str, Any], *, joined_tags: bool
) -> tuple[ReviewInput | None, list[FieldProblem]]:
    """Every problem of one review record (all of them, not just the first)."""
    problems: list[FieldProblem] = []

    def attempt(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FieldProblem as exc:
            problems.append(exc)
            return None

    session_id = attempt(parse_text, "session_id", values.get("session_id"), 64, required=True)
    reviewer = attempt(parse_text, "reviewer", values.get("reviewer"), MAX_REVIEWER, required=True)
    score = attempt(parse_score, "quality_score", values.get("quality_score"), required=True)
    rubric: dict[str, float] = {}
    for key in RUBRIC_KEYS:
        value = attempt(parse_score, key, values.get(key), required=False)
        if value is not None:
            rubric[key] = value
    tags = attempt(parse_tags, values.get("tags"), joined=joined_tags)
    note = attempt(parse_text, "note", values.get("note"), MAX_NOTE, required=False)
    if problems:
        return None, problems
    return (
        ReviewInput(
            session_id=session_id,
            reviewer=reviewer,
            quality_score=score,
            rubric=rubric,
            tags=tags or [],
            note=note,
        ),
        [],
    )


def review_to_dict(row: Review) -> dict[str, Any]:
    return {
        "id": row.id,
        "session_id": row.session_id,
        "reviewer": row.reviewer,
        "quality_score": row.quality_score,
        "rubric": dict(row.rubric or {}),
        "tags": list(row.tags or []),
        "note": row.note,
        "saw_ai_score": bool(row.saw_ai_score),
        "source": row.source,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": row.updated_at.isoformat().replace("+00:00", "Z"),
    }


def upsert_statement(dialect: str, rows: list[dict[str, Any]]) -> Any:
    """INSERT … ON CONFLICT (session_id, reviewer) DO UPDATE: the newer review wins."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(REVIEWS).values(rows)
    keep = {"id", "session_id", "reviewer"}
    return stmt.on_conflict_do_update(
        index_elements=["session_id", "reviewer"],
        set_={c.name: stmt.excluded[c.name] for c in REVIEWS.columns if c.name not in keep},
    )


def review_values(review: ReviewInput, source: str, now: datetime) -> dict[str, Any]:
    return {
        "session_id": review.session_id,
        "reviewer": review.reviewer,
        "quality_score": review.quality_score,
        "rubric": dict(review.rubric),
        "tags": list(review.tags),
        "note": review.note,
        "saw_ai_score": review.saw_ai_score,
        "source": source,
        "created_at": review.created_at or now,
        "updated_at": now,
    }


def save_review(
    db: Session, review: ReviewInput, *, source: str, actor: str
) -> tuple[Review, bool]:
    """Store the review; replaces the reviewer's earlier review of the session.

    Returns (row, replaced). One upsert statement, so two submissions racing for
    the same (session, reviewer) leave one row. Audited in the caller's transaction.
    """
    if db.get(TutoringSession, review.session_id) is None:
        raise NotFound(f"session {review.session_id!r} does not exist")
    before = db.scalars(
        select(Review).where(
            Review.session_id == review.session_id, Review.reviewer == review.reviewer
        )
    ).first()
    before_dict = review_to_dict(before) if before is not None else None
    dialect = db.get_bind().dialect.name
    db.execute(upsert_statement(dialect, [review_values(review, source, utcnow())]))
    db.expire_all()
    row = db.scalars(
        select(Review).where(
            Review.session_id == review.session_id, Review.reviewer == review.reviewer
        )
    ).one()
    after = review_to_dict(row)
    audit.record(
        db,
        actor=actor,
        action="review.update" if before_dict else "review.create",
        entity_type="review",
        entity_id=f"{review.session_id}/{review.reviewer}",
        before=before_dict,
        after=after,
    )
    return row, before_dict is not None


def review_from_request(
    session_id: str,
    reviewer: str,
    values: Mapping[str, Any],
    *,
    joined_tags: bool,
    saw_ai_score: bool = False,
) -> ReviewInput:
    """Validate a review sent over HTTP; ValidationFailed (422) lists every problem."""
    record = {**values, "session_id": session_id, "reviewer": reviewer}
    review, problems = validate_review(record, joined_tags=joined_tags)
    if review is None:
        details = [f"request body: {p}" for p in problems]
        raise ValidationFailed("the review has errors: " + "; ".join(details), details=details)
    review.saw_ai_score = saw_ai_score
    return review


def list_reviews(db: Session, session_id: str) -> list[Review]:
    return list(
        db.scalars(
            select(Review)
            .where(Review.session_id == session_id)
            .order_by(Review.created_at, Review.id)
        )
    )


def session_reviews(db: Session, session_id: str) -> dict[str, Any]:
    """`GET /api/sessions/{id}/reviews`: every review and the mean score (the human score)."""
    if db.get(TutoringSession, session_id) is None:
        raise NotFound(f"session {session_id!r} does not exist")
    rows = list_reviews(db, session_id)
    mean = round(sum(r.quality_score for r in rows) / len(rows), 4) if rows else None
    return {
        "session_id": session_id,
        "mean_quality_score": mean,
        "reviews": [review_to_dict(r) for r in rows],
    }


def has_reviewed(db: Session, session_id: str, reviewer: str) -> bool:
    found = db.scalar(
        select(Review.id).where(Review.session_id == session_id, Review.reviewer == reviewer)
    )
    return found is not None


def reviews_since(db: Session, days: int = 7) -> dict[str, int]:
    """Reviews (and distinct reviewers, sessions) created in the last `days` days."""
    since = utcnow() - timedelta(days=days)
    reviews, reviewers, sessions = db.execute(
        select(
            func.count(Review.id),
            func.count(func.distinct(Review.reviewer)),
            func.count(func.distinct(Review.session_id)),
        ).where(Review.updated_at >= since)
    ).one()
    total = db.scalar(select(func.count(Review.id))) or 0
    return {
        "reviews": int(reviews or 0),
        "reviewers": int(reviewers or 0),
        "sessions": int(sessions or 0),
        "total": int(total),
    }


def sorted_tags(tags: Sequence[str]) -> list[str]:
    order = list(RISK_TAGS)
    return sorted(set(tags), key=lambda t: order.index(t) if t in order else len(order))
