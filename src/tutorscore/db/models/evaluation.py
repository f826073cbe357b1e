"""Session evaluations, the job queue and the LLM cost ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tutorscore.db.base import Base, JSONType, utcnow


class SessionEvaluation(Base):
    __tablename__ = "session_evaluations"
    __table_args__ = (
        UniqueConstraint(
            "session_id",
            "judge",
            "model",
            "prompt_version",
            "transcript_hash",
            name="uq_session_evaluations_cache_key",
        ),
        Index("ix_session_evaluations_session_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.session_id", ondelete="CASCADE"))
    judge: Mapped[str] = mapped_column(String(32))  # heuristic | llm
    model: Mapped[str] = mapped_column(String(100), default="")  # "" for the heuristic judge
    prompt_version: Mapped[str] = mapped_column(String(32))
    transcript_hash: Mapped[str] = mapped_column(String(64))
    quality_score: Mapped[float] = mapped_column(Float)
    rubric: Mapped[dict[str, Any]] = mapped_column(JSONType)
    strengths: Mapped[list[str]] = mapped_column(JSONType, default=list)
    areas_for_improvement: Mapped[list[str]] = mapped_column(JSONType, default=list)
    risk_tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    features: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# At most one queued evaluation job per (session, judge): enqueues that race insert
# ON CONFLICT DO NOTHING against this index (evaluation.queue).
QUEUED_EVALUATION = "status = 'queued' AND kind = 'evaluate'"


class Job(Base):
    """A unit of background work with priority and a lease (lower priority runs first)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "priority", "run_after"),
        Index("ix_jobs_session_id", "session_id"),
        Index(
            "uq_jobs_queued_evaluation",
            "session_id",
            "judge",
            unique=True,
            sqlite_where=text(QUEUED_EVALUATION),
            postgresql_where=text(QUEUED_EVALUATION),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # evaluate | ...
    session_id: Mapped[str | None] = mapped_column(String(64))
    judge: Mapped[str | None] = mapped_column(String(32))  # evaluate jobs: heuristic | llm
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    priority: Mapped[int] = mapped_column(Integer, default=20)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class LLMCall(Base):
    """The cost ledger: one row per HTTP call to an LLM provider."""

    __tablename__ = "llm_calls"
    __table_args__ = (Index("ix_llm_calls_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(100))
    prompt_version: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16), default="realtime")  # realtime | batch
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(
        String(32)
    )  # ok | http_429 | http_500 | invalid | timeout | error
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
