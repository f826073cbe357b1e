"""One home per fact: every reader of "which evaluation counts", "today's LLM spend" and
"the queue backlog" gets the same answer, on SQLite and Postgres.

The evaluations are built to trip a second definition: equal `created_at` (the id
decides), a newer row with the lower id, several judges (llm, heuristic, a third one),
several versions of one judge, failed jobs and failed LLM calls (which store no
evaluation), and a session with no evaluation at all. `expected` states the rule
(`docs/reviews.md`) independently of the code under test.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tutorscore.analytics.metrics import aggregate
from tutorscore.analytics.queries import recent_sessions
from tutorscore.analytics.report import tutor_detail
from tutorscore.analytics.window import Window
from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import (
    Job,
    LLMCall,
    SessionEvaluation,
    Student,
    Tutor,
    TutoringSession,
)
from tutorscore.evaluation.costs import spent_on_day
from tutorscore.evaluation.queries import (
    chosen_evaluation_ids,
    day_start,
    llm_spend_today,
    queue_backlog,
)
from tutorscore.evaluation.service import get_evaluation, list_evaluations
from tutorscore.reviews.counted import counted_params
from tutorscore.web.dashboard import views

RUBRIC = {"clarity": 3, "pacing": 3, "engagement": 3, "goal_alignment": 3}
NO_PREFERENCE = {"counted_judge": "", "counted_model": "", "counted_prompt_version": ""}
PREFER_HEURISTIC_V1 = {
    "counted_judge": "heuristic",
    "counted_model": "",
    "counted_prompt_version": "heuristic-v1",
}
PREFER_LLM_OLD = {"counted_judge": "llm", "counted_model": "m-old", "counted_prompt_version": "p1"}


def _world(engine: Engine) -> datetime:
    """Sessions S1-S7 of tutor T1 with awkward evaluations; returns the evaluations' base time."""
    now = utcnow()
    base = now - timedelta(hours=1)
    t = [base + timedelta(minutes=i) for i in range(6)]
    # (session, judge, model, prompt_version, created_at, score), inserted in this order (ids)
    evaluations = [
        # S1: heuristic and llm at the same instant: the llm counts
        ("S1", "heuristic", "", "heuristic-v1", t[0], 1.0),
        ("S1", "llm", "m", "p1", t[0], 2.0),
        # S2: two llm rows at the same instant: the higher id counts
        ("S2", "llm", "m", "p1", t[1], 1.5),
        ("S2", "llm", "m", "p1", t[1], 2.5),
        # S3: the newer llm row was inserted first (lower id): created_at decides
        ("S3", "llm", "m-new", "p2", t[3], 4.0),
        ("S3", "llm", "m-old", "p1", t[2], 3.0),
        # S4: heuristic only, two versions at one instant: the higher id
        ("S4", "heuristic", "", "heuristic-v1", t[2], 3.5),
        ("S4", "heuristic", "", "heuristic-v2", t[2], 4.5),
        # S5: no llm: the latest of the others (a third judge)
        ("S5", "heuristic", "", "heuristic-v1", t[4], 2.0),
        ("S5", "rubric-x", "x", "x1", t[3], 5.0),
        # S6: an old heuristic-v1 beside a newer llm row
        ("S6", "heuristic", "", "heuristic-v1", t[0], 1.0),
        ("S6", "llm", "m-old", "p1", t[5], 4.5),
        # S7: never evaluated (its jobs failed)
    ]
    with transaction(engine) as db:
        db.add(Tutor(tutor_id="T1", name="Ada", subjects=["Math"]))
        db.add(Student(student_id="St"))
        db.flush()
        for i in range(1, 8):
            db.add(
                TutoringSession(
                    session_id=f"S{i}", tutor_id="T1", student_id="St", subject="Math",
                    scheduled_start_at=now - timedelta(days=1, hours=i), status="completed",
                )
            )  # fmt: skip
        db.flush()
        for n, (sid, judge, model, version, at, score) in enumerate(evaluations):
            db.add(
                SessionEvaluation(  # a new transcript hash: the same judge may evaluate again
                    session_id=sid, judge=judge, model=model, prompt_version=version,
                    transcript_hash=f"h{n}", quality_score=score, rubric=RUBRIC, created_at=at,
                )
            )  # fmt: skip
            db.flush()  # one id per row, in list order
        for sid in ("S7", "S1"):  # failed jobs store no evaluation and change no choice
            db.add(
                Job(
                    kind="evaluate", session_id=sid, judge="llm", payload={"judge": "llm"},
                    status="dead", attempts=5, last_error="invalid JSON from the model",
                )
            )  # fmt: skip
            db.add(
                LLMCall(
                    session_id=sid, model="m", prompt_version="p1", status="invalid",
                    created_at=now,
                )
            )  # fmt: skip
    return base


def expected(engine: Engine, counted: dict[str, str]) -> dict[str, int]:
    """The rule, stated plainly: preferred version first, then llm, then latest, then id."""
    with transaction(engine) as db:
        rows = list(db.scalars(select(SessionEvaluation)))
    preferred = tuple(
        counted[k] for k in ("counted_judge", "counted_model", "counted_prompt_version")
    )

    def rank(r: SessionEvaluation) -> tuple[bool, bool, datetime, int]:
        return (
            (r.judge, r.model, r.prompt_version) == preferred,
            r.judge == "llm",
            r.created_at,
            r.id,
        )

    best: dict[str, SessionEvaluation] = {}
    for r in rows:
        if r.session_id not in best or rank(r) > rank(best[r.session_id]):
            best[r.session_id] = r
    return {sid: r.id for sid, r in best.items()}


def _ids_by_score(engine: Engine) -> dict[tuple[str, float], int]:
    with transaction(engine) as db:
        return {
            (r.session_id, r.quality_score): r.id for r in db.scalars(select(SessionEvaluation))
        }


def test_the_rule_on_tricky_data(engine: Engine) -> None:
    """`expected` is right about the data (so the other tests compare with the rule)."""
    _world(engine)
    ids = _ids_by_score(engine)
    want = {
        "S1": ids["S1", 2.0],
        "S2": ids["S2", 2.5],
        "S3": ids["S3", 4.0],
        "S4": ids["S4", 4.5],
        "S5": ids["S5", 2.0],
        "S6": ids["S6", 4.5],
    }
    assert expected(engine, NO_PREFERENCE) == want
    assert expected(engine, PREFER_HEURISTIC_V1) == {
        **want, "S1": ids["S1", 1.0], "S5": ids["S5", 2.0], "S6": ids["S6", 1.0],
        "S4": ids["S4", 3.5],
    }  # fmt: skip
    assert expected(engine, PREFER_LLM_OLD) == {**want, "S3": ids["S3", 3.0]}


@pytest.mark.parametrize(
    "counted",
    [NO_PREFERENCE, PREFER_HEURISTIC_V1, PREFER_LLM_OLD],
    ids=["no-preference", "heuristic-v1", "llm-old"],
)
def test_sql_readers_choose_the_rule(engine: Engine, counted: dict[str, str]) -> None:
    """The query itself and the tutor's session list (dashboard and report) under each
    preferred version."""
    _world(engine)
    want = expected(engine, counted)
    with transaction(engine) as db:
        every: dict[str, int] = dict(db.execute(chosen_evaluation_ids(counted)).all())
        some: dict[str, int] = dict(
            db.execute(chosen_evaluation_ids(counted, ["S3", "S7", "S6"])).all()
        )
        listed = recent_sessions(db, "T1", counted=counted, limit=20)
        paged = recent_sessions(db, "T1", counted=counted, limit=3, offset=2)
    assert every == want
    assert some == {"S3": want["S3"], "S6": want["S6"]}
    assert {r["session_id"]: r["evaluation_id"] for r in listed} == {
        f"S{i}": want.get(f"S{i}") for i in range(1, 8)
    }
    assert [r["session_id"] for r in paged] == ["S3", "S4", "S5"]  # newest first: S1 is latest
    assert all(r["evaluation_id"] == want[r["session_id"]] for r in paged)


def test_every_reader_agrees_under_todays_rule(engine: Engine, rules: RulesConfig) -> None:
    """The service (API, session page, CLI), the tutor report, the dashboard's session list and
    the analytics mean all count the same evaluation per session."""
    _world(engine)
    with transaction(engine) as db:
        counted = counted_params(db, rules)
    want = expected(engine, counted)
    assert counted == NO_PREFERENCE  # today's rule, latest_llm
    with transaction(engine) as db:
        by_id = {r.id: r for r in db.scalars(select(SessionEvaluation))}
        one = {sid: get_evaluation(db, sid, rules=rules) for sid in ("S1", "S2", "S3", "S7")}
        listed = list_evaluations(db, rules=rules)
        some = list_evaluations(db, ["S4", "S5", "S7"], rules=rules)
        everything = list_evaluations(db, all_judges=True, rules=rules)
        page, total = views.tutor_sessions(db, "T1", limit=10, offset=0, counted=counted)
        detail = tutor_detail(db, "T1", rules=rules, store=False)

    def key(e: dict[str, Any] | None) -> tuple[Any, ...] | None:
        return None if e is None else (e["session_id"], e["judge"], e["model"] or "",
                                       e["prompt_version"], e["quality_score"])  # fmt: skip

    def row_key(evaluation_id: int) -> tuple[Any, ...]:
        r = by_id[evaluation_id]
        return (r.session_id, r.judge, r.model, r.prompt_version, r.quality_score)

    assert {sid: key(e) for sid, e in one.items() if e} == {
        sid: row_key(want[sid]) for sid in ("S1", "S2", "S3")
    }
    assert one["S7"] is None
    assert one["S2"] is not None and len(one["S2"]["evaluations"]) == 2
    assert [key(e) for e in listed] == [row_key(want[f"S{i}"]) for i in range(1, 7)]
    assert [key(e) for e in some] == [row_key(want["S4"]), row_key(want["S5"])]
    assert len(everything) == len(by_id)
    assert total == 7
    assert {r["session_id"]: r["quality_score"] for r in page} == {
        f"S{i}": by_id[want[f"S{i}"]].quality_score if f"S{i}" in want else None
        for i in range(1, 8)
    }
    assert {
        s["session_id"]: s["evaluation"] and s["evaluation"]["evaluation_id"]
        for s in detail["recent_sessions"]
    } == {f"S{i}": want.get(f"S{i}") for i in range(1, 8)}
    as_of = utcnow() + timedelta(minutes=1)
    with engine.connect() as conn:
        counts = aggregate(conn, Window.build(as_of, 30), rules, ["T1"], only="T1")
    chosen_scores = [by_id[i].quality_score for i in want.values()]
    assert counts["T1"].window.evaluated_sessions == 6
    assert counts["T1"].window.avg_quality == round(sum(chosen_scores) / 6, 6)


def test_llm_spend_today_is_one_number(engine: Engine) -> None:
    """The budget cap, the overview and the spend query count the same calls: today's
    only (midnight UTC), failed ones as errors."""
    now = utcnow()
    midnight = day_start(now)
    with transaction(engine) as db:
        for at, cost, status in [
            (midnight - timedelta(seconds=1), 9.0, "ok"),  # yesterday
            (midnight, 0.25, "ok"),
            (midnight + timedelta(seconds=1), 0.5, "http_429"),
            (now, 1.0, "ok"),
        ]:
            db.add(LLMCall(model="m", prompt_version="p1", status=status, cost_usd=cost,
                           created_at=at))  # fmt: skip
    with transaction(engine) as db:
        spend = llm_spend_today(db, now)
        overview = views.llm_today(db)
    assert (spend.calls, spend.cost_usd, spend.errors) == (3, 1.75, 1)
    assert overview == {"calls_today": 3, "cost_today": 1.75, "errors_today": 1}
    assert spent_on_day(engine, now) == 1.75


def test_queue_backlog_feeds_the_overview(engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as db:
        for status, priority, age in [("queued", 10, 120), ("queued", 20, 30), ("running", 20, 5),
                                      ("dead", 20, 500), ("done", 20, 600)]:  # fmt: skip
            at = now - timedelta(seconds=age)
            db.add(Job(kind="evaluate", session_id=None, judge="heuristic", priority=priority,
                       status=status, created_at=at, updated_at=at, run_after=at))  # fmt: skip
        # a batch submission is a job too, but not queue backlog
        db.add(Job(kind="llm_batch", status="waiting", created_at=now - timedelta(days=1)))
    with transaction(engine) as db:
        backlog = queue_backlog(db, now=now)
        shown = views.backlog(db)
    assert backlog["queued"] == 2 and backlog["running"] == 1 and backlog["dead"] == 1
    assert backlog["queued_by_priority"] == {10: 1, 20: 1}
    assert backlog["oldest_queued_age_s"] == pytest.approx(120, abs=1)
    assert (shown["queued"], shown["running"], shown["dead"]) == (2, 1, 1)
    assert shown["oldest_age"] is not None and shown["oldest_age"].endswith("min ago")
