"""Fixtures for the LLM judge tests: the fake OpenAI-compatible server as a real subprocess.

The server is started once per module on a free port and stopped by its PID.
Test modules list it in `pytest_plugins` and import its helpers, so it is not
assertion-rewritten: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from tutorscore.db.engine import transaction
from tutorscore.db.models.core import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.ingest.transcript_format import Turn, content_hash, render_text
from tutorscore.testing.fake_llm import FakeServerProcess, start_fake_server

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


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServerProcess]:
    server = start_fake_server(rpm=10_000, tpm=50_000_000, batch_delay_s=0.2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake(fake_server: FakeServerProcess) -> FakeServerProcess:
    """The module's server with counters, script and rates reset for this test."""
    fake_server.control(
        reset=True,
        rpm=10_000,
        tpm=50_000_000,
        latency_ms=0,
        latency_max_ms=0,
        error_rate=0,
        malformed_rate=0,
    )
    return fake_server


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
