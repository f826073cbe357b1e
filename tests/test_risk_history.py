"""Risk over time (`analytics.history`): counts per week over hand-inserted metrics rows,
the same numbers in `GET /api/risk-history` and `tutorscore risk-history`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from tutorscore.analytics.history import (
    HISTORY_FLAGS,
    RISK_LEVELS,
    compute_weekly_history,
    risk_history,
)
from tutorscore.analytics.service import compute_all
from tutorscore.config import RulesConfig
from tutorscore.db.engine import transaction
from tutorscore.db.models import TutorMetrics
from tutorscore.errors import UserError
from tutorscore.ingest.synthetic import seed
from tutorscore.web.charts import count_chart
from web_support import add_people, bearer, login

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
DAY = timedelta(days=1)

# (tutor, days before AS_OF, churn label, insufficient data, flags raised)
ROWS: list[tuple[str, float, str, bool, tuple[str, ...]]] = [
    ("T1", 70, "high", False, ("high_rescheduler_flag",)),
    ("T1", 20, "medium", False, ()),
    ("T1", 1, "low", False, ()),
    ("T2", 100, "low", False, ("low_rating_flag",)),  # before the 12 weeks: still counts
    ("T2", 0, "high", False, ("poor_first_session_flag", "low_rating_flag")),
    ("T3", 30, "low", True, ()),  # not enough data
    ("T4", -3, "high", False, ("high_rescheduler_flag",)),  # a future what-if row
    ("T5", 7, "medium", False, ("low_ai_quality_flag",)),  # exactly on a week's end
    ("T5", 7.5, "high", False, ()),
]


def _insert(engine: Engine) -> None:
    add_people(engine, [{"tutor_id": f"T{i}", "name": f"Tutor {i}"} for i in range(1, 7)], [])
    with transaction(engine) as db:
        for tutor, days, label, insufficient, flags in ROWS:
            db.add(
                TutorMetrics(
                    tutor_id=tutor,
                    as_of=AS_OF - days * DAY,
                    window_days=28,
                    config_hash="test",
                    churn_risk_label=label,
                    insufficient_data=insufficient,
                    **{f: f in flags for f in HISTORY_FLAGS},
                )
            )


def _count_by_hand(end: datetime) -> dict[str, Any]:
    """Per tutor the row with the largest as_of <= end, counted in plain Python."""
    latest: dict[str, tuple[datetime, str, bool, tuple[str, ...]]] = {}
    for tutor, days, label, insufficient, flags in ROWS:
        when = AS_OF - days * DAY
        if when <= end and (tutor not in latest or when > latest[tutor][0]):
            latest[tutor] = (when, label, insufficient, flags)
    risk = dict.fromkeys(RISK_LEVELS, 0)
    flag_counts = dict.fromkeys(HISTORY_FLAGS, 0)
    for _, label, insufficient, flags in latest.values():
        risk["not_enough_data" if insufficient else label] += 1
        for f in flags:
            flag_counts[f] += 1
    return {"tutors": len(latest), "risk": risk, "flags": flag_counts}


def test_weekly_counts_equal_a_count_over_the_stored_rows(engine: Engine) -> None:
    _insert(engine)
    with transaction(engine) as db:
        result = risk_history(db, as_of=AS_OF, weeks=12)
    weeks = result["weeks"]
    assert len(weeks) == 12
    assert weeks[-1]["week_end"] == "2026-11-24T00:00:00Z"
    assert weeks[0]["week_end"] == "2026-09-08T00:00:00Z"  # 11 weeks earlier, oldest first
    for week in weeks:
        end = datetime.fromisoformat(week["week_end"].replace("Z", "+00:00"))
        expected = _count_by_hand(end)
        assert {k: week[k] for k in ("tutors", "risk", "flags")} == expected, week["week_end"]
    # the numbers spelled out for the two ends of the range
    last = weeks[-1]
    assert last["tutors"] == 4  # T1 low, T2 high, T3 not enough data, T5 medium; T4 is future
    assert last["risk"] == {"high": 1, "medium": 1, "low": 1, "not_enough_data": 1}
    assert last["flags"] == {
        "high_rescheduler_flag": 0,
        "poor_first_session_flag": 1,
        "low_rating_flag": 1,
        "low_ai_quality_flag": 1,
    }
    first = weeks[0]
    assert first["tutors"] == 1 and first["risk"]["low"] == 1
    assert first["flags"]["low_rating_flag"] == 1
    # the week ending 7 days before AS_OF counts T5's row written exactly at its end (medium,
    # replacing its high row 12 hours earlier) and T1's medium row of day -20
    assert weeks[-2]["risk"] == {"high": 0, "medium": 2, "low": 1, "not_enough_data": 1}
    assert weeks[-2]["flags"]["low_ai_quality_flag"] == 1
    with transaction(engine) as db:
        later = risk_history(db, as_of=AS_OF + 7 * DAY, weeks=1)
    assert later["weeks"][0]["risk"]["high"] == 2  # T4's what-if row once its week has come


def test_weeks_out_of_range_is_a_user_error(engine: Engine) -> None:
    with transaction(engine) as db, pytest.raises(UserError, match="weeks: expected 1..520"):
        risk_history(db, as_of=AS_OF, weeks=0)


async def test_api_and_cli_give_the_same_numbers(
    client: httpx.AsyncClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _insert(engine)
    params: dict[str, str | int] = {"as_of": "2026-11-24T00:00:00Z", "weeks": 5}
    assert (await client.get("/api/risk-history", params=params)).status_code == 401
    r = await client.get("/api/risk-history", params=params, headers=bearer(engine, "v", "viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [w["tutors"] for w in body["weeks"]] == [3, 3, 3, 4, 4]
    assert body["weeks"] == risk_history_weeks(engine, 5)
    bad = await client.get(
        "/api/risk-history", params={"weeks": 0}, headers=bearer(engine, "w", "viewer")
    )
    assert bad.status_code in (400, 422) and "error" in bad.json()

    import tutorscore.cli.analytics as module
    from tutorscore.cli import app

    monkeypatch.setattr(module, "get_engine", lambda: engine)
    args = ["risk-history", "--weeks", "5", "--as-of", "2026-11-24T00:00:00Z"]
    out = CliRunner().invoke(app, [*args, "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == body
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "2026-11-24T00:00:00Z" in table.stdout and "week ending" in table.stdout
    wrong = CliRunner().invoke(app, [*args, "--format", "xml"])
    assert wrong.exit_code != 0 and isinstance(wrong.exception, UserError)
    assert "--format: expected json or table" in str(wrong.exception)


def risk_history_weeks(engine: Engine, weeks: int) -> list[dict[str, Any]]:
    with transaction(engine) as db:
        weeks_out: list[dict[str, Any]] = risk_history(db, as_of=AS_OF, weeks=weeks)["weeks"]
    return weeks_out


# -- a seeded, computed weekly history (what `tutorscore demo` stores) --------------------


def _stored_rows(engine: Engine) -> list[tuple[str, datetime, str, bool, dict[str, bool]]]:
    with transaction(engine) as db:
        return [
            (
                m.tutor_id,
                m.as_of if m.as_of.tzinfo else m.as_of.replace(tzinfo=UTC),
                m.churn_risk_label,
                bool(m.insufficient_data),
                {f: bool(getattr(m, f)) for f in HISTORY_FLAGS},
            )
            for m in db.scalars(select(TutorMetrics))
        ]


def _count_stored(
    rows: list[tuple[str, datetime, str, bool, dict[str, bool]]], end: datetime
) -> dict[str, Any]:
    """Per tutor its stored row with the largest as_of <= end, counted in plain Python."""
    latest: dict[str, tuple[datetime, str, bool, dict[str, bool]]] = {}
    for tutor, when, label, insufficient, flags in rows:
        if when <= end and (tutor not in latest or when > latest[tutor][0]):
            latest[tutor] = (when, label, insufficient, flags)
    risk = dict.fromkeys(RISK_LEVELS, 0)
    flag_counts = dict.fromkeys(HISTORY_FLAGS, 0)
    for _, label, insufficient, flags in latest.values():
        risk["not_enough_data" if insufficient else label] += 1
        for f, raised in flags.items():
            flag_counts[f] += raised
    return {"tutors": len(latest), "risk": risk, "flags": flag_counts}


def _seeded_history(engine: Engine, rules: RulesConfig, as_of: datetime) -> None:
    seed(engine, tutors=40, students=1500, sessions=12_000, days=120, transcripts=60, seed=3,
         as_of=as_of)  # fmt: skip
    runs = compute_weekly_history(engine, as_of=as_of, rules=rules, weeks=12)
    assert [r.as_of for r in runs] == [as_of - timedelta(weeks=k) for k in range(11, 0, -1)]
    compute_all(engine, as_of=as_of, rules=rules)


def test_seeded_weekly_history_counts_equal_the_stored_rows(
    engine: Engine, rules: RulesConfig
) -> None:
    as_of = AS_OF + timedelta(hours=12)
    _seeded_history(engine, rules, as_of)
    rows = _stored_rows(engine)
    assert len(rows) == 12 * 40  # 12 weekly snapshots of every tutor
    with transaction(engine) as db:
        weeks = risk_history(db, as_of=as_of, weeks=12)["weeks"]
    for week in weeks:
        end = datetime.fromisoformat(week["week_end"].replace("Z", "+00:00"))
        assert {k: week[k] for k in ("tutors", "risk", "flags")} == _count_stored(rows, end)
        assert week["tutors"] == 40  # 12 full weekly points, every tutor in each
    # the history moves: not the same counts every week
    assert len({json.dumps(w["risk"], sort_keys=True) for w in weeks}) > 1


async def test_overview_chart_shows_the_risk_history_numbers(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    _seeded_history(engine, rules, now)
    await login(client, engine, "vic", "viewer")
    page = await client.get("/")
    assert page.status_code == 200
    api = await client.get("/api/risk-history", headers=bearer(engine, "v", "viewer"))
    weeks = api.json()["weeks"]
    html = page.text
    assert (
        '<svg class="chart"' in html
        and 'aria-labelledby="risk-chart-title risk-chart-desc"' in html
    )
    assert '<desc id="flag-chart-desc">' in html
    tables = {
        name: re.search(rf'<table id="{name}-table">(.*?)</table>', html, re.S)
        for name in ("risk-chart", "flag-chart")
    }
    risk_table, flag_table = (m.group(1) if m else "" for m in tables.values())
    risk_rows = re.findall(r"<tr><th scope=\"row\">([^<]+)</th>(.*?)</tr>", risk_table, re.S)
    flag_rows = re.findall(r"<tr><th scope=\"row\">([^<]+)</th>(.*?)</tr>", flag_table, re.S)
    assert len(risk_rows) == len(flag_rows) == 12
    for week, (label, cells), (_, flag_cells) in zip(weeks, risk_rows, flag_rows, strict=True):
        assert label == week["week_end"][5:10]
        numbers = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', cells)]
        assert numbers == [week["risk"][level] for level in RISK_LEVELS]
        flags = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', flag_cells)]
        assert flags == [week["flags"][f] for f in HISTORY_FLAGS]
    # one dot per week and line, each with its number as a tooltip
    assert html.count('<circle class="dot c-high"') == 12


async def test_overview_without_history_says_how_to_build_one(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    await login(client, engine, "vic", "viewer")
    page = await client.get("/")
    assert page.status_code == 200
    assert "No stored metrics history yet" in page.text
    assert 'id="risk-chart-table"' not in page.text


def test_count_chart_scale_and_gaps() -> None:
    points: list[dict[str, Any]] = [{"label": "a", "n": 3}, {"label": "b"}, {"label": "c", "n": 13}]
    chart = count_chart(points, [("n", "N", "c-high")])
    assert [label for _, label in chart.y_ticks] == ["0", "5", "10", "15", "20"]
    (s,) = chart.series
    assert s.path.count("M") == 2 and "L" not in s.path  # the missing week breaks the line
    assert [tip for _, _, tip in s.dots] == ["N: 3 (a)", "N: 13 (c)"]
    assert count_chart([], [("n", "N", "c-high")]).empty
