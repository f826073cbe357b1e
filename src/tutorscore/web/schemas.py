"""Pydantic request and response models of the JSON API (the contract lives here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RiskLevel = Literal["high", "medium", "low", "not_enough_data"]


class Reason(BaseModel):
    """Why a flag or label is set: the numbers and one sentence a coach can read aloud."""

    model_config = ConfigDict(extra="allow")

    flag: str
    value: int | float | str | bool | None = None
    threshold: int | float | str | None = None
    numerator: int | float | None = None
    denominator: int | float | None = None
    text: str


class TutorReport(BaseModel):
    """One tutor as docs/data-format.md "What the system reports per tutor" (extras kept)."""

    model_config = ConfigDict(extra="allow")

    tutor_id: str
    name: str
    subjects: list[str]
    window_days: int
    as_of: datetime | str
    total_sessions: int
    first_sessions: int
    tutor_reschedule_rate: float | None
    tutor_no_show_rate: float | None
    first_session_dropout_rate: float | None
    avg_student_rating: float | None
    ai_avg_quality_score: float | None
    high_rescheduler_flag: bool
    poor_first_session_flag: bool
    no_show_risk_label: str
    churn_risk_label: str
    churn_probability: float | None
    reasons: list[Reason]


class TutorPage(BaseModel):
    items: list[TutorReport]
    total: int = Field(description="tutors matching the filters (all pages)")
    limit: int
    offset: int


class TutorDetail(BaseModel):
    """The report of one tutor plus history, sessions and what else analytics provides."""

    model_config = ConfigDict(extra="allow")

    tutor_id: str


class TranscriptFileIn(BaseModel):
    """A transcript file as a meeting or chat tool wrote it (WebVTT, SubRip, "Name: text")."""

    model_config = ConfigDict(extra="allow")

    format: str | None = Field(
        None,
        description="vtt | srt | text",
        json_schema_extra={"enum": ["vtt", "srt", "text"]},
    )
    content: str | None = Field(None, description="the file's text")
    speakers: dict[str, Any] | None = Field(
        None,
        description='optional roles by speaker name, {"Maria Gonzalez": "tutor"}; otherwise '
        "Tutor/Teacher/Student labels or the session tutor's name decide",
    )


class SessionIn(BaseModel):
    """One `sessions.jsonl` line plus an optional transcript (`turns`, `text` or `transcript`).

    Types are deliberately loose: every field is checked by the importer's own
    validation so the API and `tutorscore import` give the same messages.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "example": {
                "session_id": "S-api-1",
                "tutor_id": "T001",
                "student_id": "ST0001",
                "subject": "SAT Math",
                "scheduled_start_at": "2026-11-24T15:00:00Z",
                "actual_start_at": "2026-11-24T15:01:00Z",
                "duration_minutes": 55,
                "status": "completed",
                "student_rating": 5,
                "turns": [
                    {"speaker": "tutor", "text": "What would you like to work on today?"},
                    {"speaker": "student", "text": "Quadratics, please."},
                ],
            }
        },
    )

    session_id: str | None = Field(None, description="1-64 characters; the same id updates")
    tutor_id: str | None = None
    student_id: str | None = None
    subject: str | None = None
    scheduled_start_at: str | None = Field(None, description="ISO 8601 with offset or Z")
    actual_start_at: str | None = None
    duration_minutes: int | str | None = None
    status: str | None = Field(
        None, description="completed | no_show | rescheduled | cancelled | scheduled"
    )
    no_show_by: str | None = None
    reschedule_initiator: str | None = None
    rescheduled_from_session_id: str | None = None
    is_first_session_for_student: bool | str | int | None = None
    student_rating: int | str | None = None
    student_feedback: str | None = None
    student_churned_after_session: bool | str | int | None = None
    turns: list[dict[str, Any]] | None = Field(
        None, description='[{"speaker": "tutor"|"student", "text": "...", "start_s": 0.0}]'
    )
    text: str | None = Field(None, description="'Tutor: ...' / 'Student: ...' lines")
    transcript: TranscriptFileIn | None = Field(
        None,
        description='a transcript file instead of turns: {"format": "vtt"|"srt"|"text", '
        '"content": "..."}',
    )


class SessionRecorded(BaseModel):
    session_id: str
    created: bool
    evaluation_job_id: int | None = Field(
        None, description="queued evaluation (when the session has a transcript)"
    )
    evaluation_priority: int | None = None


class SeedRequest(BaseModel):
    """Unknown keys are refused (422): a typo must not reseed with defaults."""

    model_config = ConfigDict(extra="forbid")

    tutors: int = Field(100, ge=1, le=10_000)
    students: int = Field(2500, ge=1, le=200_000)
    sessions: int = Field(3000, ge=0, le=1_000_000)
    days: int = Field(7, ge=1, le=365)
    transcripts: int = Field(100, ge=0, le=100_000)
    seed: int = Field(42, ge=0, le=2**31 - 1)
    as_of: datetime | None = Field(None, description="end of the seeded period (default now)")
    run_analytics: bool = Field(True, description="recompute metrics after seeding")
    dry_run: bool = Field(
        False, description="write nothing; answer what a reseed would delete (`would_delete`)"
    )


class SeedResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    summary: dict[str, Any]
    analytics: dict[str, Any] | None = None
    as_of: datetime
    dry_run: bool = False
    would_delete: dict[str, int] = Field(
        default_factory=dict,
        description="rows a reseed deletes (synthetic tutors, students, sessions and what "
        "hangs off them: evaluations, transcripts, jobs, metrics, alerts, interventions)",
    )
