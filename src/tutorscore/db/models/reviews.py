"""Human reviews of sessions: what coaches think of a session, to measure the judges against."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutorscore.db.base import Base, JSONType, utcnow

REVIEW_SOURCES = ("dashboard", "api", "import")


class Review(Base):
    """One reviewer's judgement of one session (a second review by them replaces it)."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("session_id", "reviewer", name="uq_reviews_session_id_reviewer"),
        Index("ix_reviews_created_at", "created_at"),
        Index("ix_reviews_reviewer", "reviewer"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.session_id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(100))
    quality_score: Mapped[float] = mapped_column(Float)  # 1-5, decimals allowed
    # optional rubric scores (clarity, pacing, engagement, goal_alignment), 1-5 each
    rubric: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # risk-tag names (judge vocabulary) the reviewer says apply; unlisted = does not apply
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    # the reviewer chose to see the AI evaluation before scoring (dashboard form)
    saw_ai_score: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="api")  # dashboard | api | import
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
