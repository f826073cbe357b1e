"""Computed per-tutor metrics, one row per tutor per `as_of` (history)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tutorscore.db.base import Base, JSONType, utcnow


class AnalyticsConfig(Base):
    """A rules config that was in force for some run, stored once per fingerprint.

    Runs (and every tutor_metrics row) carry the fingerprint; the live path writes
    a run per recorded session, so the ~3 KB config is not repeated in each.
    """

    __tablename__ = "analytics_configs"

    config_hash: Mapped[str] = mapped_column(String(32), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    first_used_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnalyticsRun(Base):
    """One computation: when, for which as_of, with which config."""

    __tablename__ = "analytics_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    as_of: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))  # full | incremental
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    tutors: Mapped[int] = mapped_column(Integer, default=0)
    config_hash: Mapped[str] = mapped_column(ForeignKey("analytics_configs.config_hash"))


CURRENT_LIST_COLUMNS = (
    "is_current",
    "tutor_id",
    "churn_risk_label",
    "insufficient_data",
    "churn_probability",
    "no_show_risk_label",
    "tutor_reschedule_rate",
    "tutor_no_show_rate",
    "first_session_dropout_rate",
    "avg_student_rating",
    "ai_avg_quality_score",
    "rating_trend",
    "ai_score_trend",
    "total_sessions",
    "first_sessions",
    "high_rescheduler_flag",
    "poor_first_session_flag",
    "low_rating_flag",
    "low_ai_quality_flag",
)


class TutorMetrics(Base):
    __tablename__ = "tutor_metrics"
    __table_args__ = (
        UniqueConstraint("tutor_id", "as_of", name="uq_tutor_metrics_tutor_id_as_of"),
        Index("ix_tutor_metrics_as_of", "as_of"),
        # The tutor list's "current" page: a partial index over the current rows (one
        # per tutor) that covers every filter and sort column, so the count and the
        # page of ids read ~10k narrow index entries, never the JSON-heavy rows.
        Index(
            "ix_tutor_metrics_current",
            *CURRENT_LIST_COLUMNS,
            sqlite_where=text("is_current = 1"),
            postgresql_where=text("is_current"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tutor_id: Mapped[str] = mapped_column(ForeignKey("tutors.tutor_id", ondelete="CASCADE"))
    as_of: Mapped[datetime]
    # True on each tutor's latest row (maintained by analytics.service on every write),
    # so "current" is an indexed filter instead of a max(as_of) per tutor.
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    window_days: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("analytics_runs.id"))
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    config_hash: Mapped[str] = mapped_column(String(32))

    total_sessions: Mapped[int] = mapped_column(Integer, default=0)
    first_sessions: Mapped[int] = mapped_column(Integer, default=0)
    tutor_reschedules: Mapped[int] = mapped_column(Integer, default=0)
    tutor_no_shows: Mapped[int] = mapped_column(Integer, default=0)
    first_session_dropouts: Mapped[int] = mapped_column(Integer, default=0)
    rated_sessions: Mapped[int] = mapped_column(Integer, default=0)
    evaluated_sessions: Mapped[int] = mapped_column(Integer, default=0)

    tutor_reschedule_rate: Mapped[float | None] = mapped_column(Float)
    tutor_no_show_rate: Mapped[float | None] = mapped_column(Float)
    first_session_dropout_rate: Mapped[float | None] = mapped_column(Float)
    avg_student_rating: Mapped[float | None] = mapped_column(Float)
    ai_avg_quality_score: Mapped[float | None] = mapped_column(Float)
    rating_trend: Mapped[float | None] = mapped_column(Float)
    ai_score_trend: Mapped[float | None] = mapped_column(Float)

    high_rescheduler_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    poor_first_session_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    low_rating_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    low_ai_quality_flag: Mapped[bool] = mapped_column(Boolean, default=False)
    no_show_risk_label: Mapped[str] = mapped_column(String(16), default="low")
    churn_risk_label: Mapped[str] = mapped_column(String(16), default="low")
    churn_probability: Mapped[float | None] = mapped_column(Float)
    # True when some guard was not met: "not enough data" on the dashboard.
    insufficient_data: Mapped[bool] = mapped_column(Boolean, default=False)

    # [{"flag", "value", "threshold", "numerator", "denominator", "text", "session_ids"}]
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # extra series/details for charts: weekly ratings and AI scores, per-subject first sessions
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
