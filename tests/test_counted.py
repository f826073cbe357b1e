"""Which evaluation counts: the setting drives the SQL (analytics) and the Python (service) alike.

Sessions S1-S4 are reviewed 1, 2, 3, 4. The LLM judge scores them backwards
(4, 3, 2, 1); the heuristic in order (1.5, 2.5, 3.5, 4.5). S5 is evaluated by the
LLM only. Today's rule counts the LLM everywhere; "best agreement" counts the
heuristic where it exists and the LLM for S5. On SQLite and Postgres.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine

from tutorscore.analytics.metrics import aggregate
from tutorscore.analytics.report import tutor_detail
from tutorscore.analytics.service import compute_all
from tutorscore.analytics.window import Window
from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Review, SessionEvaluation, Student, Tutor, TutoringSession
from tutorscore.evaluation.service import get_evaluation, list_evaluations
from tutorscore.reviews.counted import choose_counted
from tutorscore.web.app import create_app
from web_support import login

RUBRIC = {"clarity": 3, "pacing": 3, "engagement": 3, "goal_alignment": 3}
LLM = {"S1": 4.0, "S2": 3.0, "S3": 2.0, "S4": 1.0, "S5": 2.0}
HEURISTIC = {"S1": 1.5, "S2": 2.5, "S3": 3.5, "S4": 4.5}
HUMAN = {"S1": 1.0, "S2": 2.0, "S3": 3.0, "S4": 4.0}


def _best(rules: RulesConfig, min_reviewed: int = 4) -> RulesConfig:
    out = rules.model_copy(deep=True)
    out.evaluation.counted.rule = "best_agreement"
    out.evaluation.counted.min_reviewed = min_reviewed
    return out


def _world(engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as db:
        db.add(Tutor(tutor_id="T1", name="Ada", subjects=["Math"]))
        db.add(Student(student_id="St"))
        db.flush()
        for i, sid in enumerate(LLM):
            db.add(
                TutoringSession(
                    session_id=sid, tutor_id="T1", student_id="St", subject="Math",
                    scheduled_start_at=now - timedelta(days=1, hours=i), status="completed",
                )
            )  # fmt: skip
        db.flush()
        for sid, score in HEURISTIC.items():
            db.add(
                SessionEvaluation(
                    session_id=sid, judge="heuristic", model="", prompt_version="heuristic-v1",
                    transcript_hash="h", quality_score=score, rubric=RUBRIC,
                )
            )  # fmt: skip
        db.flush()
        for sid, score in LLM.items():  # the LLM ones are newer
            db.add(
                SessionEvaluation(
                    session_id=sid, judge="llm", model="m", prompt_version="llm-v1",
                    transcript_hash="h", quality_score=score, rubric=RUBRIC,
                    created_at=utcnow() + timedelta(seconds=1),
                )
            )  # fmt: skip
        for sid, score in HUMAN.items():
            db.add(Review(session_id=sid, reviewer="ana", quality_score=score, tags=[]))


def _chosen(engine: Engine, rules: RulesConfig) -> tuple[dict[str, str], dict[str, str], float]:
    """(Python's choice per session, the SQL's choice per session, the SQL's mean AI score)."""
    as_of = utcnow() + timedelta(minutes=1)
    with transaction(engine) as db:
        python = {sid: get_evaluation(db, sid, rules=rules)["judge"] for sid in LLM}  # type: ignore[index]
        listed = {e["session_id"]: e["judge"] for e in list_evaluations(db, rules=rules)}
        assert listed == python
    compute_all(engine, as_of=as_of, rules=rules)
    with transaction(engine) as db:
        detail = tutor_detail(db, "T1", rules=rules)
    sql = {
        s["session_id"]: s["evaluation"]["judge"]
        for s in detail["recent_sessions"]
        if s["evaluation"]
    }
    with engine.connect() as conn:
        counts = aggregate(conn, Window.build(as_of, 30), rules, ["T1"], only="T1")
    mean = counts["T1"].window.avg_quality
    assert mean is not None
    return python, sql, mean


def test_todays_rule_counts_the_llm(engine: Engine, rules: RulesConfig) -> None:
    _world(engine)
    python, sql, mean = _chosen(engine, rules)
    assert python == sql == dict.fromkeys(LLM, "llm")
    assert mean == sum(LLM.values()) / 5
    with transaction(engine) as db:
        choice = choose_counted(db, rules)
    assert choice.version is None and "(rule latest_llm)" in choice.explanation


def test_best_agreement_counts_the_best_version_in_sql_and_python(
    engine: Engine, rules: RulesConfig
) -> None:
    _world(engine)
    best = _best(rules)
    with transaction(engine) as db:
        choice = choose_counted(db, best)
    assert choice.version is not None and choice.version.label == "heuristic/heuristic-v1"
    assert (choice.spearman, choice.n) == (1.0, 4)
    assert "heuristic/heuristic-v1, the judge version that agrees best" in choice.explanation
    assert "Spearman 1.00 on 4 reviewed sessions; at least 4 needed" in choice.explanation
    python, sql, mean = _chosen(engine, best)
    expected = {**dict.fromkeys(HEURISTIC, "heuristic"), "S5": "llm"}  # S5: fallback
    assert python == sql == expected
    assert mean == (sum(HEURISTIC.values()) + LLM["S5"]) / 5


def test_best_agreement_without_enough_reviews_keeps_todays_order(
    engine: Engine, rules: RulesConfig
) -> None:
    _world(engine)
    few = _best(rules, min_reviewed=5)
    with transaction(engine) as db:
        choice = choose_counted(db, few)
    assert choice.version is None
    assert choice.explanation == (
        "AI scores: the latest LLM evaluation of each session, else the heuristic one. The"
        " best-agreement rule needs a judge version with at least 5 reviewed sessions"
        " (most: llm/m/llm-v1 with 4)."
    )
    python, sql, _ = _chosen(engine, few)
    assert python == sql == dict.fromkeys(LLM, "llm")


async def test_tutor_page_says_which_judge_it_shows(
    engine: Engine, rules: RulesConfig, web_settings: object
) -> None:
    _world(engine)
    best = _best(rules)
    compute_all(engine, as_of=utcnow() + timedelta(minutes=1), rules=best)
    app: FastAPI = create_app(web_settings, best, engine)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await login(client, engine, "viewer1", "viewer")
        page = (await client.get("/tutors/T1")).text
        assert 'id="counted"' in page
        assert "AI scores: heuristic/heuristic-v1, the judge version that agrees best" in page
        judges = (await client.get("/judges")).text
        assert "AI scores: heuristic/heuristic-v1" in judges
