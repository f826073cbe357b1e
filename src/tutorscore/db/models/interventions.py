"""Coaching interventions and alerts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tutorscore.db.base import Base, JSONType, utcnow


class Intervention(Base):
    __tablename__ = "interventions"
    __table_args__ = (Index("ix_interventions_tutor_id", "tutor_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tutor_id: Mapped[str] = mapped_column(ForeignKey("tutors.tutor_id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(200))
    flag: Mapped[str | None] = mapped_column(String(64))  # the playbook key it came from
    status: Mapped[str] = mapped_column(String(16), default="open")  # open|in_progress|done
    owner: Mapped[str | None] = mapped_column(String(100))
    due_date: Mapped[date | None] = mapped_column(Date)
    notes: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    outcome: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_dedup", "tutor_id", "flag"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tutor_id: Mapped[str] = mapped_column(ForeignKey("tutors.tutor_id", ondelete="CASCADE"))
    flag: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
