"""No-show risk: the smoothed-rate formula on a hand-checked history, and the ops list."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine

from tutorscore.config import RulesConfig
from tutorscore.db.engine import transaction
from tutorscore.db.models import Student, Tutor, TutoringSession
from tutorscore.prediction.no_show import no_show_risks
from web_support import bearer

AS_OF = datetime(2026, 11, 24, 12, tzinfo=UTC)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture
def history(engine: Engine) -> None:
    """T1 taught 10 sessions at 10:00 UTC: S1 missed 1 of 5, S2 missed 1 of 5."""
    with transaction(engine) as s:
        s.add_all([Tutor(tutor_id=t, name=t, subjects=["Math"]) for t in ("T1", "T2")])
        s.add_all([Student(student_id=x) for x in ("S1", "S2", "S3")])
        s.flush()
        for i in range(10):
            student = "S1" if i < 5 else "S2"
            when = (AS_OF - timedelta(days=i + 1)).replace(hour=10)
            s.add(
                TutoringSession(
                    session_id=f"H{i}",
                    tutor_id="T1",
                    student_id=student,
                    subject="Math",
                    scheduled_start_at=when,
                    status="no_show" if i in (0, 5) else "completed",
                    no_show_by="student" if i in (0, 5) else None,
                    created_at=when + timedelta(hours=2),  # imported afterwards: no lead time
                )
            )
        # cancelled and rescheduled sessions were never due to happen: not in the history
        s.add(
            TutoringSession(
                session_id="R",
                tutor_id="T1",
                student_id="S1",
                subject="Math",
                scheduled_start_at=AS_OF - timedelta(days=2),
                status="rescheduled",
                reschedule_initiator="tutor",
            )
        )
        for sid, tutor, student, hour in (("U1", "T1", "S1", 10), ("U2", "T2", "S3", 20)):
            s.add(
                TutoringSession(
                    session_id=sid,
                    tutor_id=tutor,
                    student_id=student,
                    subject="Math",
                    scheduled_start_at=(AS_OF + timedelta(days=1)).replace(hour=hour),
                    status="scheduled",
                    created_at=AS_OF - timedelta(days=2),  # booked 3 days ahead
                )
            )
        # already past as_of's horizon: not listed
        s.add(
            TutoringSession(
                session_id="U3",
                tutor_id="T1",
                student_id="S1",
                subject="Math",
                scheduled_start_at=AS_OF + timedelta(days=30),
                status="scheduled",
            )
        )


def test_smoothed_rates_by_hand(engine: Engine, rules: RulesConfig, history: None) -> None:
    k = rules.prediction.no_show_prior_strength
    with transaction(engine) as s:
        risks = {r.session_id: r for r in no_show_risks(s, as_of=AS_OF, rules=rules)}
    assert set(risks) == {"U1", "U2"}
    # overall: 2 no-shows in 10, with one pseudo no-show at 3% (1 in 33.3 sessions)
    g = (2 + 1) / (10 + 1 / 0.03)
    # U2: new tutor, new student, an evening slot with no history, a lead time with no
    # history: every component is the overall rate, so p = g
    assert risks["U2"].probability == pytest.approx(g)
    # U1: tutor 2/10, student S1 1/5, morning 2/10 (the lead-time bucket has no history)
    p_tutor = (2 + k * g) / (10 + k)
    p_student = (1 + k * g) / (5 + k)
    p_morning = (2 + k * g) / (10 + k)
    expected = logit(g) + sum(logit(p) - logit(g) for p in (p_tutor, p_student, p_morning))
    assert risks["U1"].probability == pytest.approx(1 / (1 + math.exp(-expected)))
    assert risks["U1"].probability > risks["U2"].probability
    texts = [c.text() for c in risks["U1"].components]
    assert "tutor T1: 2 no-shows in 10 sessions" in texts[0]
    assert [c.name for c in risks["U1"].components] == [
        "tutor",
        "student",
        "time of day",
        "lead time",
    ]


def test_threshold_filters_the_ops_list(engine: Engine, rules: RulesConfig, history: None) -> None:
    with transaction(engine) as s:
        every = no_show_risks(s, as_of=AS_OF, rules=rules)
        cut = (every[0].probability + every[1].probability) / 2
        risky = no_show_risks(s, as_of=AS_OF, rules=rules, min_probability=cut)
    assert [r.session_id for r in every] == ["U1", "U2"]  # riskiest first
    assert [r.session_id for r in risky] == ["U1"]


async def test_api_lists_sessions_above_the_alert_probability(
    engine: Engine, rules: RulesConfig, history: None, client: httpx.AsyncClient
) -> None:
    h = bearer(engine, "ops", "viewer")
    r = await client.get(
        "/api/no-show-risk", params={"as_of": AS_OF.isoformat(), "all": "true"}, headers=h
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [i["session_id"] for i in body["items"]] == ["U1", "U2"]
    assert body["threshold"] is None
    p_u1 = body["items"][0]["no_show_probability"]
    r = await client.get(
        "/api/no-show-risk",
        params={"as_of": AS_OF.isoformat(), "min_probability": p_u1 - 0.001},
        headers=h,
    )
    assert [i["session_id"] for i in r.json()["items"]] == ["U1"]
    r = await client.get("/api/no-show-risk", params={"as_of": AS_OF.isoformat()}, headers=h)
    assert r.json()["threshold"] == rules.prediction.no_show_alert_probability
    assert all(
        i["no_show_probability"] >= rules.prediction.no_show_alert_probability
        for i in r.json()["items"]
    )
    r = await client.get("/api/no-show-risk", params={"days": 0}, headers=h)
    assert r.status_code == 422


def test_backtest_scores_past_sessions_from_earlier_history_only(
    engine: Engine, rules: RulesConfig, history: None
) -> None:
    from tutorscore.prediction.no_show import backtest

    with transaction(engine) as s:
        report = backtest(s, as_of=AS_OF - timedelta(days=5), rules=rules, days=5)
    # H0..H3 (10:00 on days -1..-4) are scored, H4 (10:00, 5 days and 2 h before AS_OF)
    # is history; the rescheduled session was never due
    assert report["sessions"] == 4 and report["no_shows"] == 1
    # all four share tutor, hour and (no) student history, so they tie: AUC 0.5
    assert report["auc"] == pytest.approx(0.5)
    assert report["actual_rate"] == pytest.approx(0.25)
