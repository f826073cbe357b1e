"""Server-rendered pages: content, state in the URL, escaping, roles on the pages."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.flows.metrics import nightly_recompute
from tutorscore.web.charts import trend_chart
from tutorscore.web.dashboard.views import highlight_turns
from web_support import login

EVIL = '<script>alert("x")</script>'


def _world(engine: Engine, rules: RulesConfig) -> None:
    """One tutor with a hostile name and a rescheduling habit, one ordinary tutor.

    Computed as of now, so the overview counts its flags as raised in the last day.
    """
    as_of = utcnow().replace(microsecond=0)
    with transaction(engine) as db:
        db.add(Tutor(tutor_id="T-evil", name=EVIL, subjects=["<b>Math</b>"]))
        db.add(Tutor(tutor_id="T-ok", name="Olu Okafor", subjects=["Chemistry"]))
        db.add(Student(student_id="S1"))
        db.flush()
        for i in range(12):
            when = as_of - timedelta(days=1, hours=i)
            status = "rescheduled" if i < 4 else "completed"
            db.add(
                TutoringSession(
                    session_id=f"E{i}",
                    tutor_id="T-evil",
                    student_id="S1",
                    subject="<b>Math</b>",
                    scheduled_start_at=when,
                    actual_start_at=when if status == "completed" else None,
                    duration_minutes=50 if status == "completed" else None,
                    status=status,
                    reschedule_initiator="tutor" if status == "rescheduled" else None,
                    student_rating=4 if status == "completed" else None,
                    is_first_session=i == 11,
                )
            )
        db.add(
            TutoringSession(
                session_id="K1",
                tutor_id="T-ok",
                student_id="S1",
                subject="Chemistry",
                scheduled_start_at=as_of - timedelta(days=2),
                status="completed",
                student_rating=5,
            )
        )
        db.flush()
        turns = [
            {"speaker": "tutor", "text": "<img src=x onerror=alert(1)> What is 2+2?"},
            {"speaker": "student", "text": "4"},
        ]
        db.add(
            SessionTranscript(
                session_id="E5", turns=turns, raw_text="x", turn_count=2, content_hash="h"
            )
        )
    nightly_recompute(engine, as_of=as_of, rules=rules)


async def test_pages_escape_hostile_text(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    _world(engine, rules)
    await login(client, engine, "vic", "viewer")
    for path in ("/tutors", "/tutors/T-evil", "/sessions/E5", "/"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert "<script>alert" not in r.text and "<img src=x" not in r.text, path
        assert "<b>Math</b>" not in r.text, path
    listing = (await client.get("/tutors")).text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in listing
    session = (await client.get("/sessions/E5")).text
    assert "&lt;img src=x onerror=alert(1)&gt; What is 2+2?" in session


async def test_tutor_list_state_lives_in_the_url(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    _world(engine, rules)
    await login(client, engine, "vic", "viewer")
    r = await client.get("/tutors", params={"sort": "-name", "flags": "high_rescheduler_flag"})
    assert r.status_code == 200
    rows = re.findall(r'data-tutor-id="([^"]+)"', r.text)
    assert rows == ["T-evil"]
    # sort links keep the filter and flip the direction of the active column
    assert 'href="?sort=name&amp;flags=high_rescheduler_flag&amp;page=1"' in r.text
    assert 'value="high_rescheduler_flag" checked' in r.text
    r = await client.get("/tutors", params={"sort": "name"})  # "<" sorts before "O"
    assert re.findall(r'data-tutor-id="([^"]+)"', r.text) == ["T-evil", "T-ok"]
    r = await client.get("/tutors", params={"sort": "-name"})
    assert re.findall(r'data-tutor-id="([^"]+)"', r.text) == ["T-ok", "T-evil"]
    r = await client.get("/tutors", params={"risk": "purple"})
    assert r.status_code == 422 and "risk" in r.text


async def test_tutor_page_shows_reasons_with_session_links(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    _world(engine, rules)
    await login(client, engine, "vic", "viewer")
    r = await client.get("/tutors/T-evil")
    assert r.status_code == 200
    assert "4 of 12 sessions rescheduled by the tutor" in r.text
    for i in range(4):  # the rescheduled sessions behind the flag are linked
        assert f'href="/sessions/E{i}"' in r.text
    assert '<svg class="chart"' in r.text
    assert "first session</span>" in r.text
    assert 'id="interventions"' in r.text
    missing = await client.get("/tutors/nobody")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


async def test_overview_and_first_sessions_render(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    _world(engine, rules)
    await login(client, engine, "vic", "viewer")
    r = await client.get("/")
    assert r.status_code == 200
    assert "Evaluation backlog" in r.text and "LLM spend today" in r.text
    assert "high rescheduler" in r.text  # a flag raised within the last day
    r = await client.get("/first-sessions")
    assert r.status_code == 200 and "By subject" in r.text


async def test_viewer_cannot_log_out_others_or_act_without_csrf(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    await login(client, engine, "vic", "viewer")
    r = await client.post("/logout", data={"csrf_token": "forged"})
    assert r.status_code == 403
    assert (await client.get("/api/me")).status_code == 200  # still logged in


def test_trend_chart_breaks_lines_at_gaps() -> None:
    points: list[dict[str, Any]] = [
        {"label": "a", "avg_rating": 4.0, "avg_ai_score": None},
        {"label": "b", "avg_rating": None, "avg_ai_score": 3.0},
        {"label": "c", "avg_rating": 5.0, "avg_ai_score": 3.5},
    ]
    chart = trend_chart(points)
    rating, ai = chart.series
    assert rating.path.count("M") == 2 and "L" not in rating.path
    assert ai.path.count("M") == 1 and ai.path.count("L") == 1
    assert not chart.empty and trend_chart([]).empty


def test_quotes_are_marked_without_markup_in_python() -> None:
    turns = [{"speaker": "tutor", "text": "Does <that> make sense? Good."}]
    out = highlight_turns(turns, [{"turn": 0, "quote": "Does <that> make sense?"}])
    assert out[0]["quoted"]
    assert out[0]["segments"] == [("Does <that> make sense?", True), (" Good.", False)]
