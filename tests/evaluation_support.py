"""Small data builders for the evaluation, queue and worker tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from tutorscore.db.engine import transaction
from tutorscore.db.models import (
    Job,
    SessionEvaluation,
    SessionTranscript,
    Student,
    Tutor,
    TutoringSession,
    TutorMetrics,
)
from tutorscore.evaluation.judge import EvaluationResult, Evidence, JudgeUnavailable, Rubric
from tutorscore.ingest.transcript_format import Turn, content_hash, parse_text, render_text

DATA = Path(__file__).parent / "data" / "evaluation"
GOOD = parse_text((DATA / "good_session.txt").read_text())
POOR = parse_text((DATA / "poor_session.txt").read_text())
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def add_sessions(
    engine: Engine,
    n: int,
    *,
    tutor: str = "T1",
    first: set[int] | None = None,
    prefix: str = "S",
    transcripts: bool = True,
) -> list[str]:
    """n completed sessions of one tutor, alternating good and poor transcripts."""
    ids = [f"{prefix}{i:04d}" for i in range(n)]
    with transaction(engine) as s:
        if s.get(Tutor, tutor) is None:
            s.add(Tutor(tutor_id=tutor, name=f"Tutor {tutor}", subjects=["Algebra"]))
        if s.get(Student, "ST1") is None:
            s.add(Student(student_id="ST1"))
        s.flush()
        for i, sid in enumerate(ids):
            s.add(
                TutoringSession(
                    session_id=sid,
                    tutor_id=tutor,
                    student_id="ST1",
                    subject="Algebra",
                    scheduled_start_at=T0 + timedelta(hours=i),
                    actual_start_at=T0 + timedelta(hours=i),
                    duration_minutes=60,
                    status="completed",
                    is_first_session=bool(first and i in first),
                )
            )
        s.flush()
        if transcripts:
            for i, sid in enumerate(ids):
                set_transcript(s, sid, GOOD if i % 2 == 0 else POOR)
    return ids


def set_transcript(s: Any, session_id: str, turns: list[Turn]) -> None:
    row = s.get(SessionTranscript, session_id)
    values = {
        "turns": [dict(t) for t in turns],
        "raw_text": render_text(turns),
        "turn_count": len(turns),
        "content_hash": content_hash(turns),
    }
    if row is None:
        s.add(SessionTranscript(session_id=session_id, **values))
    else:
        for k, v in values.items():
            setattr(row, k, v)


def mark_tutor_high_risk(engine: Engine, tutor: str) -> None:
    with transaction(engine) as s:
        s.add(
            TutorMetrics(
                tutor_id=tutor,
                as_of=T0,
                window_days=30,
                config_hash="test",
                churn_risk_label="high",
                is_current=True,  # the tutor's latest row, as analytics.service marks it
            )
        )


def count(engine: Engine, model: Any, *where: Any) -> int:
    with transaction(engine) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def jobs(engine: Engine) -> list[Job]:
    with transaction(engine) as s:
        return list(s.scalars(select(Job).order_by(Job.id)))


def evaluations(engine: Engine) -> list[SessionEvaluation]:
    with transaction(engine) as s:
        return list(s.scalars(select(SessionEvaluation).order_by(SessionEvaluation.id)))


class CountingJudge:
    """A judge that records its calls; fails or is unavailable on request."""

    def __init__(
        self,
        name: str = "llm",
        *,
        model: str = "fake-model",
        fail: BaseException | None = None,
        unavailable_after: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.prompt_version = "test-v1"
        self.calls: list[str | None] = []
        self.fail = fail
        self.unavailable_after = unavailable_after
        self.retry_after_s = retry_after_s

    async def evaluate(
        self, turns: list[Turn], *, session_id: str | None = None
    ) -> EvaluationResult:
        self.calls.append(session_id)
        if self.fail is not None:
            raise self.fail
        if self.unavailable_after is not None and len(self.calls) > self.unavailable_after:
            raise JudgeUnavailable("rate limited", retry_after_s=self.retry_after_s)
        return EvaluationResult(
            quality_score=4.0,
            rubric=Rubric(clarity=4, pacing=4, engagement=4, goal_alignment=4),
            strengths=["fake strength"],
            risk_tags=[],
            evidence=[Evidence(turn=0, quote=turns[0]["text"], note="first turn")],
        )
