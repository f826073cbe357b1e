"""Reads never write (issue 14): GETs with any as_of leave the database as it was,
computed-on-read reports equal stored ones, their cost is bounded, and a future run
never becomes current (with the repair path for databases where one did)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from tutorscore.analytics.service import compute_all, repair_current, update_tutor
from tutorscore.config import RulesConfig
from tutorscore.db.base import Base, utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Student, Tutor, TutoringSession, TutorMetrics
from tutorscore.web.computed_reports import ComputedReports
from tutorscore.web.errors import TooManyRequests
from web_support import bearer

FUTURE = datetime(2030, 1, 1, tzinfo=UTC)


def _world(engine: Engine) -> datetime:
    """Four tutors with different habits over the last 20 days; returns now (to the second)."""
    now = utcnow().replace(microsecond=0)
    with transaction(engine) as db:
        for i, name in enumerate(("Ada", "Bea", "Cy", "Dee")):
            db.add(Tutor(tutor_id=f"T{i}", name=f"{name} Tutor", subjects=["Math", f"S{i % 2}"]))
        for s in range(4):
            db.add(Student(student_id=f"S{s}"))
        db.flush()
        n = 0
        for t in range(4):
            for k in range(6 + 4 * t):
                when = now - timedelta(days=1 + k * 1.5, hours=t)
                status = "rescheduled" if k % (t + 2) == 0 else "completed"
                if t == 3 and k % 5 == 1:
                    status = "no_show"
                done = status == "completed"
                db.add(
                    TutoringSession(
                        session_id=f"X{n}",
                        tutor_id=f"T{t}",
                        student_id=f"S{k % 4}",
                        subject="Math",
                        scheduled_start_at=when,
                        actual_start_at=when if done else None,
                        duration_minutes=50 if done else None,
                        status=status,
                        no_show_by="tutor" if status == "no_show" else None,
                        reschedule_initiator="tutor" if status == "rescheduled" else None,
                        student_rating=(1 + (k + t) % 5) if done else None,
                        is_first_session=k == 6 + 4 * t - 1,
                        student_churned_after_session=done and k % 7 == 3,
                    )
                )
                n += 1
    return now


def _snapshot(engine: Engine) -> dict[str, Any]:
    """Row counts of every table, and which metrics rows exist and are current."""
    with Session(engine) as db:
        counts = {
            t.name: db.scalar(select(func.count()).select_from(t))
            for t in Base.metadata.sorted_tables
        }
        metrics = set(
            db.execute(select(TutorMetrics.tutor_id, TutorMetrics.as_of, TutorMetrics.is_current))
        )
    return {"counts": counts, "metrics": metrics}


def _z(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


async def test_viewer_gets_with_any_as_of_write_nothing(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    now = _world(engine)
    compute_all(engine, as_of=now, rules=rules)
    headers = bearer(engine, "vera", "viewer")
    before = _snapshot(engine)
    past = now - timedelta(days=5)
    for when in (FUTURE, past):
        for path in (
            "/api/tutors",
            "/api/tutors/T1",
            "/api/no-show-risk",
            "/api/first-sessions",
            "/api/interventions/outcomes",
            "/first-sessions",
            "/no-shows",
        ):
            r = await client.get(path, params={"as_of": _z(when)}, headers=headers)
            assert r.status_code == 200, (path, r.text)
        r = await client.get("/api/tutors", params={"as_of": _z(when)}, headers=headers)
        assert {it["as_of"] for it in r.json()["items"]} == {_z(when)}
        assert r.json()["total"] == 4
    for path in ("/api/tutors", "/tutors", "/tutors/T2", "/", "/api/tutors/T2"):
        assert (await client.get(path, headers=headers)).status_code == 200, path
    assert _snapshot(engine) == before
    # the current view is still the run at now
    r = await client.get("/api/tutors", headers=headers)
    assert {it["as_of"] for it in r.json()["items"]} == {_z(now)}
    assert sum(it["total_sessions"] for it in r.json()["items"]) > 0


async def test_tutor_without_metrics_is_computed_on_read_not_stored(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    _world(engine)  # no analytics run at all
    headers = bearer(engine, "vera", "viewer")
    before = _snapshot(engine)
    r = await client.get("/api/tutors/T3", headers=headers)
    assert r.status_code == 200 and r.json()["total_sessions"] == 18
    assert (await client.get("/tutors/T3", headers=headers)).status_code == 200
    r = await client.get("/api/tutors", headers=headers)
    assert r.status_code == 200 and r.json()["total"] == 0  # nothing stored yet: nothing current
    assert _snapshot(engine) == before


SORTS = [
    "risk", "-risk", "tutor_reschedule_rate", "-tutor_reschedule_rate",
    "avg_student_rating", "ai_avg_quality_score", "total_sessions", "name", "-name",
    "tutor_id", "first_session_dropout_rate", "rating_trend", "tutor_no_show_rate",
]  # fmt: skip
FILTERS: list[dict[str, Any]] = [
    {},
    {"risk": "high"},
    {"risk": "low"},
    {"risk": "not_enough_data"},
    {"subject": "S1"},
    {"min_sessions": 10},
    {"flags": "high_rescheduler_flag"},
    {"flags": ["low_rating_flag", "insufficient_data"]},
    {"limit": 2, "offset": 1},
]


async def test_computed_on_read_equals_the_stored_run(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    """The in-memory path filters and sorts exactly as the SQL over stored rows does."""
    now = _world(engine)
    compute_all(engine, as_of=now, rules=rules)
    headers = bearer(engine, "vera", "viewer")
    at = _z(now - timedelta(days=3))

    async def pages() -> list[Any]:
        out = []
        for sort in SORTS:
            for extra in FILTERS:
                params = {"as_of": at, "sort": sort, **extra}
                r = await client.get("/api/tutors", params=params, headers=headers)
                assert r.status_code == 200, (params, r.text)
                body = r.json()
                for it in body["items"]:
                    it.pop("computed_at")
                out.append((sort, extra, body))
        r = await client.get("/api/tutors/T2", params={"as_of": at}, headers=headers)
        detail = r.json()
        detail.pop("computed_at")
        out.append(detail)
        return out

    computed = await pages()
    compute_all(engine, as_of=now - timedelta(days=3), rules=rules)
    stored = await pages()
    for key in computed[-1]:
        assert computed[-1][key] == stored[-1][key], key
    assert computed == stored
    # the orders differ between sorts (the comparison is not vacuous)
    assert len({tuple(it["tutor_id"] for it in p[2]["items"]) for p in computed[:-1]}) > 3


def test_one_computation_at_a_time_others_refused(engine: Engine, rules: RulesConfig) -> None:
    from tutorscore.analytics import report

    _world(engine)
    cache = ComputedReports()
    started, release = threading.Event(), threading.Event()
    real = report.computed_reports

    def slow(db: Session, *, as_of: datetime, rules: RulesConfig) -> list[dict[str, Any]]:
        started.set()
        release.wait(30)
        return real(db, as_of=as_of, rules=rules)

    results: dict[str, Any] = {}
    first_at = datetime(2026, 11, 1, tzinfo=UTC)

    def run(name: str) -> None:
        with Session(engine) as db:
            results[name] = cache.get(db, first_at, rules)

    pytest.MonkeyPatch().setattr(report, "computed_reports", slow)
    try:
        first = threading.Thread(target=run, args=("first",))
        first.start()
        assert started.wait(30)
        with Session(engine) as db, pytest.raises(TooManyRequests) as refused:
            cache.get(db, first_at + timedelta(days=1), rules)
        assert refused.value.retry_after > 0 and "as_of" in refused.value.message
        same = threading.Thread(target=run, args=("same",))  # same as_of: waits, no 2nd run
        same.start()
        release.set()
        first.join(30)
        same.join(30)
    finally:
        release.set()
        pytest.MonkeyPatch().undo()
    report.computed_reports = real
    assert cache.computed == 1
    assert results["first"] == results["same"] and len(results["first"]) == 4


async def test_as_of_computation_in_flight_answers_429(
    client: httpx.AsyncClient, engine: Engine, app: Any
) -> None:
    _world(engine)
    headers = bearer(engine, "vera", "viewer")
    state = app.state.tutorscore
    state.computed_reports._running[(FUTURE, "other")] = threading.Event()
    r = await client.get("/api/tutors", params={"as_of": _z(FUTURE)}, headers=headers)
    assert r.status_code == 429 and r.headers["Retry-After"]
    assert r.json()["error"]["code"] == "too_many_requests"


def _current(engine: Engine) -> dict[str, datetime]:
    with Session(engine) as db:
        rows = db.execute(
            select(TutorMetrics.tutor_id, TutorMetrics.as_of).where(TutorMetrics.is_current)
        ).all()
    assert len(rows) == len({t for t, _ in rows}), "one current row per tutor"
    return {row.tutor_id: row.as_of for row in rows}


def test_a_future_run_never_becomes_current(engine: Engine, rules: RulesConfig) -> None:
    now = _world(engine)
    earlier = now - timedelta(hours=1)
    compute_all(engine, as_of=earlier, rules=rules)
    compute_all(engine, as_of=FUTURE, rules=rules)  # CLI --as-of 2030
    update_tutor(engine, "T1", rules=rules, as_of=FUTURE + timedelta(days=1))
    assert set(_current(engine).values()) == {earlier}
    compute_all(engine, as_of=now, rules=rules)  # newer runs: current
    assert set(_current(engine).values()) == {now}


def _damage(engine: Engine) -> None:
    """What an earlier version did on GET ?as_of=2030: the 2030 rows became current."""
    with engine.begin() as conn:
        conn.execute(update(TutorMetrics).values(is_current=TutorMetrics.as_of == FUTURE))


def test_analytics_repairs_a_database_hit_by_a_future_as_of(
    engine: Engine, rules: RulesConfig
) -> None:
    now = _world(engine)
    compute_all(engine, as_of=now - timedelta(days=1), rules=rules)
    compute_all(engine, as_of=FUTURE, rules=rules)
    _damage(engine)
    assert set(_current(engine).values()) == {FUTURE}
    # the live path repairs its tutor
    update_tutor(engine, "T0", rules=rules)
    cur = _current(engine)
    assert cur["T0"] <= utcnow() and cur["T1"] == FUTURE
    # a full run repairs everyone and its rows become current
    later = utcnow().replace(microsecond=0)  # not before the live row
    compute_all(engine, as_of=later, rules=rules)
    assert set(_current(engine).values()) == {later}
    # the explicit repair: latest row at or before now
    _damage(engine)
    assert repair_current(engine) == 8
    assert set(_current(engine).values()) == {later}
    assert repair_current(engine) == 0


def test_cli_repair_current(
    engine: Engine, rules: RulesConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tutorscore.cli.analytics as module
    from tutorscore.cli import app as cli

    now = _world(engine)
    compute_all(engine, as_of=now, rules=rules)
    compute_all(engine, as_of=FUTURE, rules=rules)
    _damage(engine)
    monkeypatch.setattr(module, "get_engine", lambda: engine)
    result = CliRunner().invoke(cli, ["analytics", "--repair-current"])
    assert result.exit_code == 0, result.output
    assert "8 rows changed" in result.output
    assert set(_current(engine).values()) == {now}
