"""Helpers shared by the analytics tests: tiny, explicit fixtures of tutors and sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from tutorscore.analytics.service import compute_all
from tutorscore.config import RulesConfig, load_rules
from tutorscore.db.models.analytics import TutorMetrics
from tutorscore.db.models.core import Student, Tutor, TutoringSession
from tutorscore.db.models.evaluation import SessionEvaluation

# The per-tutor report's names in docs/data-format.md (a contract: outside tools rely on them).
REPORT_CONTRACT_KEYS = {
    "tutor_id", "name", "subjects", "window_days", "as_of", "total_sessions", "first_sessions",
    "tutor_reschedule_rate", "tutor_no_show_rate", "first_session_dropout_rate",
    "avg_student_rating", "ai_avg_quality_score", "high_rescheduler_flag",
    "poor_first_session_flag", "no_show_risk_label", "churn_risk_label", "churn_probability",
    "reasons",
}  # fmt: skip

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)

SESSION_DEFAULTS: dict[str, Any] = {
    "subject": "SAT Math",
    "status": "completed",
    "actual_start_at": None,
    "duration_minutes": 60,
    "no_show_by": None,
    "reschedule_initiator": None,
    "rescheduled_from_session_id": None,
    "is_first_session_for_student": None,
    "is_first_session": False,
    "student_rating": None,
    "student_feedback": None,
    "student_churned_after_session": None,
    "is_synthetic": False,
}


class Data:
    """Builds rows for one test; `flush(engine)` writes them with executemany."""

    def __init__(self) -> None:
        self.tutors: list[dict[str, Any]] = []
        self.students: list[dict[str, Any]] = []
        self.sessions: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self._n = 0

    def tutor(self, tutor_id: str, subjects: tuple[str, ...] = ("SAT Math",)) -> str:
        self.tutors.append(
            {"tutor_id": tutor_id, "name": f"Tutor {tutor_id}", "subjects": list(subjects),
             "is_synthetic": False}
        )
        return tutor_id

    def student(self, student_id: str) -> str:
        self.students.append({"student_id": student_id, "is_synthetic": False})
        return student_id

    def session(
        self, tutor_id: str, *, days_ago: float = 1.0, at: datetime | None = None,
        student_id: str = "ST1", **fields: Any,
    ) -> str:
        self._n += 1
        sid = fields.pop("session_id", f"S{self._n:05d}")
        when = at if at is not None else AS_OF - timedelta(days=days_ago)
        row = {**SESSION_DEFAULTS, **fields, "session_id": sid, "tutor_id": tutor_id,
               "student_id": student_id, "scheduled_start_at": when}
        self.sessions.append(row)
        return str(sid)

    def sessions_n(self, tutor_id: str, n: int, **fields: Any) -> list[str]:
        """n sessions spread over the window (days 1..29)."""
        return [self.session(tutor_id, days_ago=1 + (i * 28) / max(n, 1), **fields)
                for i in range(n)]

    def evaluation(
        self, session_id: str, score: float, *, judge: str = "heuristic",
        created_at: datetime | None = None, risk_tags: tuple[str, ...] = (), model: str = "",
    ) -> None:
        self.evaluations.append(
            {"session_id": session_id, "judge": judge, "model": model, "prompt_version": "v1",
             "transcript_hash": f"h{len(self.evaluations)}", "quality_score": score,
             "rubric": {}, "strengths": [], "areas_for_improvement": [],
             "risk_tags": list(risk_tags), "evidence": [], "features": {},
             "created_at": created_at or AS_OF}
        )

    def flush(self, engine: Engine) -> None:
        with engine.begin() as conn:
            known = set(conn.scalars(select(Student.student_id)))
            for sid in {s["student_id"] for s in self.sessions} - known - {
                s["student_id"] for s in self.students
            }:
                self.students.append({"student_id": sid, "is_synthetic": False})
            for model, rows in ((Tutor, self.tutors), (Student, self.students),
                                (TutoringSession, self.sessions),
                                (SessionEvaluation, self.evaluations)):
                if rows:
                    conn.execute(insert(model), rows)
        self.tutors, self.students, self.sessions, self.evaluations = [], [], [], []


def rules_with(**overrides: Any) -> RulesConfig:
    """Default rules with `section__key=value` overrides, e.g. analytics__window_days=14."""
    env = {f"TUTORSCORE_{k.upper()}": str(v) for k, v in overrides.items()}
    return load_rules(None, environ=env)


def compute(engine: Engine, rules: RulesConfig | None = None, as_of: datetime = AS_OF) -> None:
    compute_all(engine, as_of=as_of, rules=rules or load_rules(None, environ={}))


def metrics_row(engine: Engine, tutor_id: str, as_of: datetime = AS_OF) -> TutorMetrics:
    with Session(engine) as session:
        row = session.scalar(
            select(TutorMetrics).where(TutorMetrics.tutor_id == tutor_id,
                                       TutorMetrics.as_of == as_of)
        )
        assert row is not None, f"no tutor_metrics row for {tutor_id} at {as_of}"
        return row


def reason(row: TutorMetrics, flag: str, kind: str | None = None) -> dict[str, Any]:
    found = [r for r in row.reasons if r["flag"] == flag and (kind is None or r["kind"] == kind)]
    assert found, f"no reason for {flag} ({kind}) in {row.reasons}"
    return found[0]
