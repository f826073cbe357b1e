"""`/no-shows` page: ops' list of upcoming sessions at no-show risk."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine

from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Student, Tutor, TutoringSession
from tutorscore.prediction.no_show import no_show_risks
from web_support import login

EVIL = '<script>alert("x")</script>'


def _world(engine: Engine, now: datetime) -> None:
    """T-evil's sessions with S1 are mostly missed; T-ok and S2 always show up.

    Upcoming: U1 (T-evil, S1) and U2 (T-ok, S1) at risk, U3 (T-ok, S2) not.
    P1 (T-evil, S1) is still `scheduled` but already in the past.
    """
    with transaction(engine) as db:
        db.add(Tutor(tutor_id="T-evil", name=EVIL, subjects=["Math"]))
        db.add(Tutor(tutor_id="T-ok", name="Olu Okafor", subjects=["Math"]))
        db.add_all([Student(student_id="S1"), Student(student_id="S2")])
        db.flush()

        def add(sid: str, tutor: str, student: str, when: datetime, status: str) -> None:
            db.add(
                TutoringSession(
                    session_id=sid,
                    tutor_id=tutor,
                    student_id=student,
                    subject="<i>Algebra</i>",
                    scheduled_start_at=when,
                    status=status,
                    no_show_by="student" if status == "no_show" else None,
                    created_at=when - timedelta(days=3),
                )
            )

        for i in range(10):
            when = now - timedelta(days=i + 2, hours=1)
            add(f"H{i}", "T-evil", "S1", when, "no_show" if i < 7 else "completed")
        for i in range(30):
            add(f"K{i}", "T-ok", "S2", now - timedelta(days=i % 20 + 2, hours=2), "completed")
        add("U1", "T-evil", "S1", now + timedelta(days=2), "scheduled")
        add("U2", "T-ok", "S1", now + timedelta(days=1), "scheduled")
        add("U3", "T-ok", "S2", now + timedelta(days=1), "scheduled")
        add("P1", "T-evil", "S1", now - timedelta(hours=5), "scheduled")


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-session="([^"]+)">', html)


async def test_page_lists_risky_upcoming_sessions_riskiest_first(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    now = utcnow().replace(microsecond=0)
    _world(engine, now)
    await login(client, engine, "olga", "viewer")
    r = await client.get("/no-shows")
    assert r.status_code == 200, r.text
    html = r.text

    threshold = rules.prediction.no_show_alert_probability
    with transaction(engine) as db:
        every = {x.session_id: x for x in no_show_risks(db, as_of=utcnow(), rules=rules)}
    assert every["U1"].probability > every["U2"].probability >= threshold
    assert every["U3"].probability < threshold
    # listed: the risky upcoming ones, riskiest first; not the safe one, not the past one
    assert _rows(html) == ["U1", "U2"]
    # Not only absent as rows: no link or cell names them (a bare substring test would
    # also match inside the page's random CSRF token).
    assert ">U1<" in html  # how a listed session's id appears
    for sid in ("P1", "U3"):
        assert f"/sessions/{sid}" not in html and f">{sid}<" not in html

    u1 = html.split('data-session="U1"')[1].split("</tr>")[0]
    assert '<a href="/tutors/T-evil">' in u1
    assert f"{every['U1'].probability * 100:.1f}%" in u1
    assert (now + timedelta(days=2)).strftime("%Y-%m-%d %H:%M") in u1
    assert "S1" in u1
    for component in every["U1"].components:  # every factor behind the number is shown
        assert component.text() in u1
    assert "7 no-shows in 10 sessions" in u1
    # names and subjects from the data are escaped
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "<i>Algebra</i>" not in html and "&lt;i&gt;Algebra&lt;/i&gt;" in html
    assert f"{threshold * 100:.0f}%" in html
    assert 'href="/no-shows" aria-current="page"' in html


async def test_as_of_and_horizon_come_from_the_url(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    now = utcnow().replace(microsecond=0)
    _world(engine, now)
    await login(client, engine, "olga", "viewer")
    # from a day earlier P1 is still ahead; a 36-hour horizon reaches it but not U1 or U2
    earlier = now - timedelta(days=1)
    r = await client.get(
        "/no-shows", params={"as_of": earlier.isoformat().replace("+00:00", "Z"), "days": 1.5}
    )
    assert r.status_code == 200, r.text
    with transaction(engine) as db:
        p1 = no_show_risks(db, as_of=earlier, rules=rules, days=1.5)
    assert [x.session_id for x in p1] == ["P1"]
    assert p1[0].probability >= rules.prediction.no_show_alert_probability
    assert _rows(r.text) == ["P1"]

    r = await client.get("/no-shows", params={"as_of": "2026-11-24T00:00:00"})
    assert r.status_code == 400 and "needs an offset" in r.text
    r = await client.get("/no-shows", params={"days": 0})
    assert r.status_code == 422


async def test_empty_list_says_so(client: httpx.AsyncClient, engine: Engine) -> None:
    await login(client, engine, "olga", "viewer")
    r = await client.get("/no-shows")
    assert r.status_code == 200
    assert "No upcoming session reaches the threshold." in r.text and not _rows(r.text)


async def test_anonymous_request_is_redirected_to_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/no-shows?days=3")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fno-shows%3Fdays%3D3"
