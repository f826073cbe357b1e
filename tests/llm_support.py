"""Helpers shared by the LLM judge tests; the fake server fixtures (fake_server, fake) are
in conftest.py."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from tutorscore.db.engine import transaction
from tutorscore.db.models.core import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.ingest.transcript_format import Turn, content_hash, render_text

TRANSCRIPT: list[Turn] = [
    {"speaker": "tutor", "text": "Hi, I'm Sofia. Today we'll work on solving linear equations."},
    {"speaker": "student", "text": "Okay. I always get lost when there are x on both sides."},
    {"speaker": "tutor", "text": "Good to know. What would you do first with 3x + 2 = x + 10?"},
    {"speaker": "student", "text": "Take x away from both sides? So 2x + 2 = 10."},
    {"speaker": "tutor", "text": "Exactly. Does that make sense as a first step?"},
    {
        "speaker": "student",
        "text": "Yes. Then 2x = 8 and x = 4. You can email me at kid@example.com",
    },
]


def add_session(
    engine: Engine,
    session_id: str,
    turns: list[Turn],
    *,
    tutor_name: str = "Zebulon Quackenbush",
    tutor_id: str = "T1",
    first: bool = False,
) -> None:
    """A tutor, student, completed session and transcript (created once per id)."""
    with transaction(engine) as s:
        if s.get(Tutor, tutor_id) is None:
            s.add(Tutor(tutor_id=tutor_id, name=tutor_name, subjects=["Algebra"]))
        if s.get(Student, "ST1") is None:
            s.add(Student(student_id="ST1"))
        s.flush()
        s.add(
            TutoringSession(
                session_id=session_id,
                tutor_id=tutor_id,
                student_id="ST1",
                subject="Algebra",
                scheduled_start_at=datetime(2026, 11, 20, 15, tzinfo=UTC),
                actual_start_at=datetime(2026, 11, 20, 15, tzinfo=UTC),
                duration_minutes=50,
                status="completed",
                is_first_session=first,
            )
        )
        s.flush()
        s.add(
            SessionTranscript(
                session_id=session_id,
                turns=[dict(t) for t in turns],
                raw_text=render_text(turns),
                turn_count=len(turns),
                content_hash=content_hash(turns),
            )
        )
