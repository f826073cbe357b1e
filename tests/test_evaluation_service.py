"""Evaluation storage and cache: same transcript + judge = no second judge call."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from evaluation_support import GOOD, POOR, CountingJudge, add_sessions, evaluations, set_transcript
from tutorscore.config import RulesConfig
from tutorscore.db.engine import transaction
from tutorscore.db.models import TutorMetrics
from tutorscore.errors import NotFound
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.service import (
    NoTranscript,
    evaluate_session,
    get_evaluation,
    list_evaluations,
)
from web_support import bearer


def test_cache_hit_makes_no_judge_call(engine: Engine, rules: RulesConfig) -> None:
    (sid,) = add_sessions(engine, 1)
    judge = CountingJudge()
    with transaction(engine) as s:
        row, cached = evaluate_session(s, sid, judge, rules=rules)
        assert not cached and row.judge == "llm" and row.model == "fake-model"
    with transaction(engine) as s:
        again, cached = evaluate_session(s, sid, judge, rules=rules)
        assert cached and again.id == row.id
    assert judge.calls == [sid]
    # a changed transcript is a new cache key: the judge runs again
    with transaction(engine) as s:
        set_transcript(s, sid, POOR)
    with transaction(engine) as s:
        _, cached = evaluate_session(s, sid, judge, rules=rules)
    assert not cached and judge.calls == [sid, sid]
    assert len(evaluations(engine)) == 2


def test_get_evaluation_prefers_llm_and_lists_all(engine: Engine, rules: RulesConfig) -> None:
    (sid,) = add_sessions(engine, 1)
    with transaction(engine) as s:
        evaluate_session(s, sid, HeuristicJudge(rules.evaluation.heuristic), rules=rules)
    with transaction(engine) as s:
        heuristic_only = get_evaluation(s, sid)
    assert heuristic_only is not None
    assert heuristic_only["judge"] == "heuristic" and heuristic_only["model"] is None
    assert heuristic_only["prompt_version"] == "heuristic-v2.1"
    assert 1 <= heuristic_only["quality_score"] <= 5
    assert set(heuristic_only["rubric"]) == {"clarity", "pacing", "engagement", "goal_alignment"}
    assert heuristic_only["created_at"].endswith("Z")
    for ev in heuristic_only["evidence"]:
        assert ev["quote"] in GOOD[ev["turn"]]["text"]
    with transaction(engine) as s:
        evaluate_session(s, sid, CountingJudge(), rules=rules)
    with transaction(engine) as s:
        both = get_evaluation(s, sid)
        listed = list_evaluations(s)
        listed_all = list_evaluations(s, all_judges=True)
    assert both is not None and both["judge"] == "llm" and both["model"] == "fake-model"
    assert [e["judge"] for e in both["evaluations"]] == ["heuristic", "llm"]
    assert [e["judge"] for e in listed] == ["llm"]
    assert len(listed_all) == 2


def test_storing_updates_the_tutors_metrics(engine: Engine, rules: RulesConfig) -> None:
    (sid,) = add_sessions(engine, 1)
    with transaction(engine) as s:
        evaluate_session(s, sid, HeuristicJudge(), rules=rules)
    with transaction(engine) as s:
        metrics = s.query(TutorMetrics).filter_by(tutor_id="T1").all()
    assert metrics, "update_tutor ran after the evaluation was stored"
    assert metrics[-1].evaluated_sessions == 1
    assert metrics[-1].ai_avg_quality_score is not None


def test_missing_session_or_transcript(engine: Engine, rules: RulesConfig) -> None:
    (sid,) = add_sessions(engine, 1, transcripts=False)
    with transaction(engine) as s, pytest.raises(NoTranscript):
        evaluate_session(s, sid, HeuristicJudge(), rules=rules)
    with transaction(engine) as s, pytest.raises(NotFound):
        evaluate_session(s, "nope", HeuristicJudge(), rules=rules)
    with transaction(engine) as s:
        assert get_evaluation(s, sid) is None


# -- HTTP API -------------------------------------------------------------------------------


async def test_api_evaluate_session_then_read_it(engine: Engine, client: httpx.AsyncClient) -> None:
    (sid,) = add_sessions(engine, 1)
    coach = bearer(engine, "coach1", "coach")
    viewer = bearer(engine, "viewer1", "viewer")
    r = await client.post("/api/evaluate-session", json={"session_id": sid}, headers=viewer)
    assert r.status_code == 403
    r = await client.get(f"/api/sessions/{sid}/evaluation", headers=viewer)
    assert r.status_code == 404
    r = await client.post("/api/evaluate-session", json={"session_id": sid}, headers=coach)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["judge"] == "heuristic" and first["cached"] is False
    r = await client.post("/api/evaluate-session", json={"session_id": sid}, headers=coach)
    assert r.json()["cached"] is True and r.json()["created_at"] == first["created_at"]
    r = await client.get(f"/api/sessions/{sid}/evaluation", headers=viewer)
    assert r.status_code == 200
    body = r.json()
    for key in (
        "session_id",
        "judge",
        "model",
        "prompt_version",
        "quality_score",
        "rubric",
        "strengths",
        "areas_for_improvement",
        "risk_tags",
        "evidence",
        "created_at",
    ):
        assert key in body
    assert body["quality_score"] == first["quality_score"]
    r = await client.post("/api/evaluate-session", json={"session_id": "nope"}, headers=coach)
    assert r.status_code == 404
    r = await client.post(
        "/api/evaluate-session", json={"session_id": sid, "judge": "llm"}, headers=coach
    )
    assert r.status_code == 409  # no LLM configured in the test settings


async def test_api_evaluate_batch_queues_jobs(engine: Engine, client: httpx.AsyncClient) -> None:
    add_sessions(engine, 3, first={1})
    coach = bearer(engine, "coach1", "coach")
    r = await client.post("/api/evaluate-batch", json={}, headers=coach)
    assert r.status_code == 202, r.text
    assert r.json()["queued"] == 3
    assert r.json()["queue"]["queued_by_priority"] == {"0": 1, "20": 2}
    r = await client.post("/api/evaluate-batch", json={}, headers=coach)
    assert r.json()["queued"] == 0  # already queued
    r = await client.get("/api/evaluation-queue", headers=coach)
    assert r.json()["queued"] == 3
