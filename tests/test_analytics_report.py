"""The per-tutor report, tutor detail, first-session patterns, CLI commands and API routes."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from analytics_support import AS_OF, REPORT_CONTRACT_KEYS, Data, compute
from tutorscore.analytics.first_sessions import first_session_patterns
from tutorscore.analytics.report import tutor_detail, tutor_reports
from tutorscore.config import RulesConfig
from tutorscore.db.models.analytics import TutorMetrics
from tutorscore.errors import NotFound, UserError
from web_support import bearer

pytestmark = pytest.mark.usefixtures("private_data_dir")

REASON_KEYS = {"flag", "value", "threshold", "numerator", "denominator", "text"}


def _world(d: Data) -> None:
    """RISKY: high rescheduler + poor first sessions; OK: fine; NEW: two sessions; IDLE: none."""
    d.tutor("RISKY", subjects=("SAT Math", "Chemistry"))
    d.tutor("OK", subjects=("Chemistry",))
    d.tutor("NEW")
    d.tutor("IDLE")
    d.sessions_n("RISKY", 8, student_rating=3)
    d.sessions_n("RISKY", 4, status="rescheduled", reschedule_initiator="tutor")
    for i in range(4):
        sid = d.session("RISKY", days_ago=2 + i, subject="Chemistry", is_first_session=True,
                        student_rating=1 if i < 3 else 5, student_id=f"STR{i}")
        d.evaluation(sid, 2.0, risk_tags=("low_student_talk_ratio", "answer_giveaway")
                     if i < 3 else ("answer_giveaway",))
    d.evaluation("S00001", 4.0, judge="llm", model="m", created_at=AS_OF - timedelta(days=3))
    d.sessions_n("OK", 12, student_rating=5, subject="Chemistry")
    for i in range(4):
        sid = d.session("OK", days_ago=3 + i, subject="Chemistry", is_first_session=True,
                        student_rating=5, student_id=f"STO{i}")
        d.evaluation(sid, 4.0, risk_tags=("answer_giveaway",) if i == 0 else ())
    d.sessions_n("NEW", 2, student_rating=4)


@pytest.fixture
def world(engine: Engine) -> Engine:
    d = Data()
    _world(d)
    d.flush(engine)
    compute(engine)
    return engine


def test_items_follow_the_contract(world: Engine) -> None:
    with Session(world) as session:
        items, total = tutor_reports(session, as_of=AS_OF, limit=None)
    assert total == 4 and len(items) == 4
    by_id = {i["tutor_id"]: i for i in items}
    for item in items:
        assert REPORT_CONTRACT_KEYS <= set(item)
        assert item["as_of"] == "2026-11-24T00:00:00Z" and item["window_days"] == 30
        for r in item["reasons"]:
            assert REASON_KEYS <= set(r) and r["text"]
    risky = by_id["RISKY"]
    assert risky["subjects"] == ["SAT Math", "Chemistry"]
    assert risky["total_sessions"] == 16 and risky["first_sessions"] == 4
    assert risky["tutor_reschedule_rate"] == pytest.approx(0.25)
    assert risky["high_rescheduler_flag"] and risky["poor_first_session_flag"]
    assert risky["churn_risk_label"] == "high" and risky["churn_probability"] is None
    idle = by_id["IDLE"]
    assert idle["tutor_reschedule_rate"] is None and idle["first_session_dropout_rate"] is None
    assert idle["risk_level"] == "not_enough_data" and idle["insufficient_data"] is True
    json.dumps(items)  # serialisable as is


def test_sorting_filters_and_paging(world: Engine) -> None:
    with Session(world) as session:
        ranked, _ = tutor_reports(session, as_of=AS_OF)
        assert [i["tutor_id"] for i in ranked][0] == "RISKY"
        assert [i["tutor_id"] for i in ranked][-2:] == ["NEW", "IDLE"]  # not enough data last
        by_rate, _ = tutor_reports(session, as_of=AS_OF, sort="reschedule_rate")
        assert [i["tutor_id"] for i in by_rate] == ["RISKY", "NEW", "OK", "IDLE"]  # nulls last
        reverse, _ = tutor_reports(session, as_of=AS_OF, sort="-tutor_reschedule_rate")
        assert [i["tutor_id"] for i in reverse][:1] == ["NEW"]
        assert [i["tutor_id"] for i in reverse][-1] == "IDLE"
        high, n = tutor_reports(session, as_of=AS_OF, risk="high")
        assert n == 1 and high[0]["tutor_id"] == "RISKY"
        unsure, n = tutor_reports(session, as_of=AS_OF, risk="not_enough_data", sort="tutor_id")
        assert [i["tutor_id"] for i in unsure] == ["IDLE", "NEW"]
        chem, n = tutor_reports(session, as_of=AS_OF, subject="Chemistry", sort="tutor_id")
        assert [i["tutor_id"] for i in chem] == ["OK", "RISKY"]
        busy, n = tutor_reports(session, as_of=AS_OF, min_sessions=10, sort="tutor_id")
        assert [i["tutor_id"] for i in busy] == ["OK", "RISKY"]
        flagged, n = tutor_reports(session, as_of=AS_OF, flags=["poor_first_session_flag"])
        assert [i["tutor_id"] for i in flagged] == ["RISKY"]
        page, n = tutor_reports(session, as_of=AS_OF, sort="tutor_id", limit=2, offset=1)
        assert n == 4 and [i["tutor_id"] for i in page] == ["NEW", "OK"]
        for bad in ({"sort": "nope"}, {"risk": "extreme"}, {"flags": ["x"]}):
            with pytest.raises(UserError):
                tutor_reports(session, as_of=AS_OF, **bad)


def test_report_computes_a_missing_as_of(engine: Engine, rules: RulesConfig) -> None:
    d = Data()
    _world(d)
    d.flush(engine)
    with Session(engine) as session, session.begin():
        items, total = tutor_reports(session, rules=rules)  # nothing yet: computes at now
        assert total == 4
        assert session.scalar(select(func.count()).select_from(TutorMetrics)) == 4
    later = AS_OF + timedelta(days=1)
    with Session(engine) as session, session.begin():
        items, total = tutor_reports(session, as_of=later, rules=rules)
        assert session.scalar(select(func.count()).select_from(TutorMetrics)) == 8
    assert total == 4 and {i["as_of"] for i in items} == {"2026-11-25T00:00:00Z"}


def test_current_report_shows_each_tutors_latest_row(world: Engine) -> None:
    compute(world, as_of=AS_OF - timedelta(days=7))  # an older run does not win
    with Session(world) as session:
        items, total = tutor_reports(session, ensure=False)
    assert total == 4 and {i["as_of"] for i in items} == {"2026-11-24T00:00:00Z"}


def test_tutor_detail(world: Engine, rules: RulesConfig) -> None:
    compute(world, as_of=AS_OF - timedelta(days=7))
    with Session(world) as session, session.begin():
        detail = tutor_detail(session, "RISKY", rules=rules)
        with pytest.raises(NotFound):
            tutor_detail(session, "nobody", rules=rules)
    assert REPORT_CONTRACT_KEYS <= set(detail)
    assert [h["as_of"] for h in detail["history"]] == ["2026-11-17T00:00:00Z",
                                                       "2026-11-24T00:00:00Z"]
    assert len(detail["weekly"]) == 5 and detail["weekly"][-1]["week_end"] == detail["as_of"]
    assert sum(w["sessions"] for w in detail["weekly"]) == detail["total_sessions"]
    chem = {s["subject"]: s for s in detail["first_sessions_by_subject"]}["Chemistry"]
    assert chem["dropout_rate"] == pytest.approx(0.75) and chem["poor_first_session_flag"]
    sessions = {s["session_id"]: s for s in detail["recent_sessions"]}
    assert len(sessions) == 16
    firsts = [s for s in sessions.values() if s["is_first_session"]]
    assert len(firsts) == 4 and sum(s["first_session_failed"] for s in firsts) == 3
    assert sessions["S00001"]["evaluation"]["judge"] == "llm"
    assert sessions["S00001"]["evaluation"]["quality_score"] == 4.0
    assert all(s["in_window"] for s in sessions.values())


def test_first_session_patterns(world: Engine, rules: RulesConfig) -> None:
    with Session(world) as session:
        result = first_session_patterns(session, as_of=AS_OF, rules=rules)
    assert result["first_sessions"] == 8 and result["dropouts"] == 3
    chem = {s["subject"]: s for s in result["subjects"]}["Chemistry"]
    assert chem["first_sessions"] == 8 and chem["dropout_rate"] == pytest.approx(3 / 8)
    assert [w["tutor_id"] for w in chem["worst_tutors"]] == ["RISKY", "OK"]
    assert chem["worst_tutors"][0]["dropout_rate"] == pytest.approx(0.75)
    tags = {t["tag"]: t for t in result["risk_tags"]}
    talk = tags["low_student_talk_ratio"]
    assert (talk["failed_with_tag"], talk["failed_evaluated"]) == (3, 3)
    assert talk["successful_with_tag"] == 0 and talk["lift"] is None
    assert talk["over_represented"] is True
    give = tags["answer_giveaway"]  # 3/3 failed vs 2/5 successful
    assert give["lift"] == pytest.approx(2.5) and give["over_represented"] is True
    assert result["risk_tags"][0]["tag"] == "low_student_talk_ratio"


def test_first_session_patterns_guard_worst_tutors(engine: Engine, rules: RulesConfig) -> None:
    d = Data()
    d.tutor("T")
    for i in range(3):  # below min_first_sessions
        d.session("T", days_ago=1 + i, is_first_session=True, student_rating=1)
    d.flush(engine)
    with Session(engine) as session:
        result = first_session_patterns(session, as_of=AS_OF, rules=rules)
    assert result["subjects"][0]["dropout_rate"] == 1.0
    assert result["subjects"][0]["worst_tutors"] == []
    assert result["risk_tags"] == []


# -- CLI --


@pytest.fixture
def cli(world: Engine, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    import tutorscore.cli.analytics as module

    monkeypatch.setattr(module, "get_engine", lambda: world)
    return CliRunner()


def test_cli_tutors_json_csv_table(cli: CliRunner, world: Engine) -> None:
    from tutorscore.cli import app as cli_app

    result = cli.invoke(cli_app, ["tutors", "--format", "json", "--as-of", "2026-11-24T00:00:00Z"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    with Session(world) as session:
        expected, _ = tutor_reports(session, as_of=AS_OF, limit=None)
    assert items == json.loads(json.dumps(expected))
    result = cli.invoke(cli_app, ["tutors", "--format", "csv", "--as-of", "2026-11-24",
                              "--risk", "high"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["tutor_id"] for r in rows] == ["RISKY"]
    assert rows[0]["high_rescheduler_flag"] == "true" and "rescheduled" in rows[0]["reasons"]
    result = cli.invoke(cli_app, ["tutors", "--format", "table", "--subject", "Chemistry",
                              "--min-sessions", "10", "--sort", "rating"])
    assert result.exit_code == 0, result.output
    assert "RISKY" in result.stdout and "IDLE" not in result.stdout
    result = cli.invoke(cli_app, ["tutors", "--sort", "bogus"])
    assert isinstance(result.exception, UserError)


def test_cli_analytics_and_first_sessions(cli: CliRunner, world: Engine) -> None:
    from tutorscore.cli import app as cli_app

    result = cli.invoke(cli_app, ["analytics", "--as-of", "2026-12-01T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert "4 tutors at 2026-12-01T00:00:00Z" in result.stdout
    result = cli.invoke(cli_app, ["first-sessions", "--as-of", "2026-11-24", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["first_sessions"] == 8
    result = cli.invoke(cli_app, ["first-sessions", "--as-of", "2026-11-24"])
    assert result.exit_code == 0 and "Chemistry" in result.stdout


# -- API --


async def test_api_run_analytics_needs_coach(client: httpx.AsyncClient, engine: Engine) -> None:
    d = Data()
    _world(d)
    d.flush(engine)
    viewer = bearer(engine, "viewer1", "viewer")
    r = await client.post("/api/run-analytics", json={"as_of": "2026-11-24T00:00:00Z"},
                          headers=viewer)
    assert r.status_code == 403
    coach = bearer(engine, "coach1", "coach")
    r = await client.post("/api/run-analytics", json={"as_of": "2026-11-24T00:00:00Z"},
                          headers=coach)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tutors"] == 4 and body["as_of"] == "2026-11-24T00:00:00Z"
    assert body["risk"]["high"] == 1
    r = await client.post("/api/run-analytics", json={"as_of": "2026-11-24T00:00:00"},
                          headers=coach)
    assert r.status_code == 400
    # the thresholds behind the run, by the fingerprint every report row carries
    r = await client.get(f"/api/analytics/configs/{body['config_hash']}", headers=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["config_hash"] == body["config_hash"]
    assert r.json()["config"]["thresholds"]["high_rescheduler_rate"] == 0.15
    r = await client.get("/api/analytics/configs/0000", headers=viewer)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await client.get("/api/first-sessions", params={"as_of": "2026-11-24T00:00:00Z"},
                         headers=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["first_sessions"] == 8
    r = await client.get("/api/first-sessions")
    assert r.status_code == 401
