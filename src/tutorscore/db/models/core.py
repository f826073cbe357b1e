"""Tutors, students, sessions and transcripts: the imported facts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tutorscore.db.base import Base, JSONType, utcnow

SESSION_STATUSES = ("completed", "no_show", "rescheduled", "cancelled", "scheduled")
PARTIES = ("tutor", "student")


class Tutor(Base):
    __tablename__ = "tutors"

    tutor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    subjects: Mapped[list[str]] = mapped_column(JSONType, default=list)
    years_experience: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str | None] = mapped_column(String(64))
    hire_date: Mapped[date | None] = mapped_column(Date)
    churned_on: Mapped[date | None] = mapped_column(Date)
    is_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Student(Base):
    __tablename__ = "students"

    student_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    grade_level: Mapped[int | None] = mapped_column(Integer)
    segment: Mapped[str | None] = mapped_column(String(100))
    is_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TutoringSession(Base):
    """One scheduled tutoring session (named to avoid clashing with the ORM Session)."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_tutor_id_scheduled_start_at", "tutor_id", "scheduled_start_at"),
        Index("ix_sessions_student_id", "student_id"),
        Index("ix_sessions_status", "status"),
        Index("ix_sessions_scheduled_start_at", "scheduled_start_at"),
    )

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tutor_id: Mapped[str] = mapped_column(ForeignKey("tutors.tutor_id", ondelete="CASCADE"))
    student_id: Mapped[str] = mapped_column(ForeignKey("students.student_id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(200))
    scheduled_start_at: Mapped[datetime]
    actual_start_at: Mapped[datetime | None]
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    no_show_by: Mapped[str | None] = mapped_column(String(16))
    reschedule_initiator: Mapped[str | None] = mapped_column(String(16))
    rescheduled_from_session_id: Mapped[str | None] = mapped_column(String(64))
    # As given in the import (null when the source did not say).
    is_first_session_for_student: Mapped[bool | None] = mapped_column(Boolean)
    # Resolved value used by analytics: given, or derived (the student's earliest
    # completed session with that tutor). Maintained by tutorscore.ingest.first_sessions.
    is_first_session: Mapped[bool] = mapped_column(Boolean, default=False)
    student_rating: Mapped[int | None] = mapped_column(Integer)
    student_feedback: Mapped[str | None] = mapped_column(Text)
    student_churned_after_session: Mapped[bool | None] = mapped_column(Boolean)
    is_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SessionTranscript(Base):
    """A transcript: its turns (speaker, text, optional start_s) and the raw text."""

    __tablename__ = "session_transcripts"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("sessions.session_id", ondelete="CASCADE"), primary_key=True
    )
    turns: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    raw_text: Mapped[str] = mapped_column(Text)
    turn_count: Mapped[int] = mapped_column(Integer)
    # sha256 of the normalised turns: the evaluation cache key.
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
