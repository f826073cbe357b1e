"""Before/after and difference-in-differences on a hand-checked example."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from tutorscore.config import RulesConfig
from tutorscore.db.engine import transaction
from tutorscore.db.models import Intervention, Student, Tutor, TutoringSession, TutorMetrics
from tutorscore.interventions.outcomes import intervention_outcome, outcome_summary

CREATED = datetime(2026, 10, 1, 12, tzinfo=UTC)
COMPLETED = CREATED + timedelta(days=5)
AS_OF = CREATED + timedelta(days=60)


def _sessions(
    tutor_id: str, start: datetime, *, reschedules: int, completed: int, rating: int
) -> list[TutoringSession]:
    """`reschedules` tutor reschedules then `completed` rated sessions, one a day from start."""
    out = []
    for i in range(reschedules + completed):
        resched = i < reschedules
        out.append(
            TutoringSession(
                session_id=f"{tutor_id}-{start:%m%d}-{i}",
                tutor_id=tutor_id,
                student_id="S",
                subject="Math",
                scheduled_start_at=start + timedelta(days=i + 1),
                status="rescheduled" if resched else "completed",
                reschedule_initiator="tutor" if resched else None,
                student_rating=None if resched else rating,
            )
        )
    return out


@pytest.fixture
def example(engine: Engine) -> int:
    before = CREATED - timedelta(days=20)
    after = COMPLETED
    with transaction(engine) as s:
        s.add(Student(student_id="S"))
        for tid in ("T1", "C1", "C2", "C3", "C4"):
            s.add(Tutor(tutor_id=tid, name=tid, subjects=["Math"]))
        s.flush()
        # the flag at creation time: T1, C1, C2, C4 have low ratings; C3 does not
        for tid in ("T1", "C1", "C2", "C3", "C4"):
            s.add(
                TutorMetrics(
                    tutor_id=tid,
                    as_of=CREATED - timedelta(days=1),
                    window_days=30,
                    config_hash="x",
                    low_rating_flag=tid != "C3",
                )
            )
        plan = {
            # tutor: (before: reschedules, completed, rating), (after: ...)
            "T1": ((3, 7, 2), (1, 9, 4)),  # 30% -> 10%, 2.0 -> 4.0
            "C1": ((2, 8, 3), (2, 8, 3)),  # 20% -> 20%, 3.0 -> 3.0
            "C2": ((4, 6, 2), (2, 8, 3)),  # 40% -> 20%, 2.0 -> 3.0
            "C3": ((9, 1, 1), (0, 10, 5)),  # not flagged: ignored
            "C4": ((9, 1, 1), (0, 10, 5)),  # has its own intervention: ignored
        }
        for tid, ((rb, cb, rtb), (ra, ca, rta)) in plan.items():
            s.add_all(_sessions(tid, before, reschedules=rb, completed=cb, rating=rtb))
            s.add_all(_sessions(tid, after, reschedules=ra, completed=ca, rating=rta))
        iv = Intervention(
            tutor_id="T1",
            type="Review recent low-rated sessions with a coach",
            flag="low_rating",
            status="done",
            created_at=CREATED,
            started_at=CREATED,
            completed_at=COMPLETED,
            outcome={},
        )
        s.add(iv)
        s.add(
            Intervention(
                tutor_id="C4",
                type="Other",
                flag="low_rating",
                status="in_progress",
                created_at=CREATED + timedelta(days=2),
                outcome={},
            )
        )
        s.flush()
        return iv.id


def test_before_after_and_difference_in_differences(
    engine: Engine, rules: RulesConfig, example: int
) -> None:
    with transaction(engine) as s:
        out = intervention_outcome(s, s.get_one(Intervention, example), rules=rules, as_of=AS_OF)
    assert out["status"] == "ok"
    m = {row["metric"]: row for row in out["metrics"]}
    resched = m["tutor_reschedule_rate"]
    assert resched["before"] == pytest.approx(0.3) and resched["after"] == pytest.approx(0.1)
    assert resched["change"] == pytest.approx(-0.2)
    # comparison: C1 0.2 -> 0.2 (0), C2 0.4 -> 0.2 (-0.2): mean -0.1
    assert resched["control_change"] == pytest.approx(-0.1)
    assert resched["did"] == pytest.approx(-0.1)
    assert resched["improved"] is True
    rating = m["avg_student_rating"]
    assert rating["change"] == pytest.approx(2.0)
    assert rating["control_change"] == pytest.approx(0.5)  # (0 + 1) / 2
    assert rating["did"] == pytest.approx(1.5)
    assert rating["control_tutors"] == 2
    assert out["sample"] == {
        "sessions_before": 10,
        "sessions_after": 10,
        "control_tutors": 2,
        "control_candidates": 2,
    }
    # 10 sessions a side is enough; 2 comparison tutors is not
    assert len(out["cautions"]) == 1 and "comparison tutors" in out["cautions"][0]
    assert m["ai_avg_quality_score"]["did"] is None


def test_after_window_cut_at_as_of_and_summary_per_type(
    engine: Engine, rules: RulesConfig, example: int
) -> None:
    with transaction(engine) as s:
        iv = s.get_one(Intervention, example)
        early = intervention_outcome(s, iv, rules=rules, as_of=COMPLETED + timedelta(days=3))
        pending = intervention_outcome(s, iv, rules=rules, as_of=COMPLETED)
        summary = outcome_summary(s, rules=rules, as_of=AS_OF)
    # only the after sessions on days 1-3 count so far: 1 reschedule, 2 completed
    assert early["sample"]["sessions_after"] == 3
    assert any("still running" in c for c in early["cautions"])
    assert any("small sample" in c for c in early["cautions"])
    assert pending["status"] == "pending"
    assert [row["type"] for row in summary] == ["Review recent low-rated sessions with a coach"]
    row = summary[0]
    assert row["interventions"] == 1 and row["sessions_before"] == 10
    by_metric = {x["metric"]: x for x in row["metrics"]}
    assert by_metric["tutor_reschedule_rate"]["mean_did"] == pytest.approx(-0.1)
    assert row["cautions"]  # one intervention is too few to conclude


def test_not_completed_has_no_outcome(engine: Engine, rules: RulesConfig, example: int) -> None:
    with transaction(engine) as s:
        other = s.query(Intervention).filter(Intervention.tutor_id == "C4").one()
        out = intervention_outcome(s, other, rules=rules, as_of=AS_OF)
    assert out["status"] == "not_completed" and out["metrics"] == []
