"""Reviews: import (errors with file:line, all or nothing), export, replacement, API and form.

Every test runs on SQLite and on Postgres (the `engine` fixture).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import AuditLog, Review, Student, Tutor, TutoringSession
from tutorscore.ingest.importer import ImportFailed
from tutorscore.reviews.files import export_reviews, import_reviews
from web_support import bearer, login


def _sessions(engine: Engine, ids: list[str]) -> None:
    now = utcnow()
    with transaction(engine) as db:
        db.add(Tutor(tutor_id="T1", name="Ada", subjects=["Math"]))
        db.add(Student(student_id="S1"))
        db.flush()
        for i, sid in enumerate(ids):
            db.add(
                TutoringSession(
                    session_id=sid,
                    tutor_id="T1",
                    student_id="S1",
                    subject="Math",
                    scheduled_start_at=now - timedelta(days=1, hours=i),
                    status="completed",
                )
            )


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _count(engine: Engine) -> int:
    with transaction(engine) as db:
        return int(db.scalar(select(func.count(Review.id))) or 0)


def test_import_csv_and_jsonl_then_export_round_trips(engine: Engine, tmp_path: Path) -> None:
    _sessions(engine, ["A", "B", "C"])
    csv_file = _write(
        tmp_path / "reviews.csv",
        "session_id,reviewer,quality_score,tags,note,clarity\n"
        "A,ana,3.5,answer_giveaway;long_monologue,too much telling,3\n"
        "B,ana,4,,,\n",
    )
    jsonl_file = _write(
        tmp_path / "more.jsonl",
        json.dumps({"session_id": "A", "reviewer": "ben", "quality_score": 2,
                    "tags": ["answer_giveaway"], "pacing": 2}) + "\n",
    )  # fmt: skip
    report = import_reviews(engine, [csv_file, jsonl_file])
    assert (report.rows, report.created, report.replaced) == (3, 3, 0)
    with transaction(engine) as db:
        a = db.scalars(
            select(Review).where(Review.session_id == "A", Review.reviewer == "ana")
        ).one()
        assert a.quality_score == 3.5
        assert a.tags == ["answer_giveaway", "long_monologue"]  # vocabulary order
        assert a.rubric == {"clarity": 3.0}
        assert a.note == "too much telling"
        assert a.source == "import"
    out = tmp_path / "out"
    for fmt in ("csv", "jsonl"):
        path, count = export_reviews(engine, out, fmt=fmt)
        assert count == 3
        # re-importing the export replaces each review by itself: nothing new, nothing lost
        again = import_reviews(engine, [path])
        assert (again.rows, again.created, again.replaced) == (3, 0, 3)
    assert _count(engine) == 3
    with transaction(engine) as db:
        a = db.scalars(
            select(Review).where(Review.session_id == "A", Review.reviewer == "ana")
        ).one()
        assert (a.quality_score, a.tags, a.rubric) == (
            3.5, ["answer_giveaway", "long_monologue"], {"clarity": 3.0},
        )  # fmt: skip


def test_import_errors_name_file_line_and_column_and_write_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    _sessions(engine, ["A", "B"])
    csv_file = _write(
        tmp_path / "reviews.csv",
        "session_id,reviewer,quality_score,tags\n"
        "A,ana,4,\n"
        "B,ana,6,\n"
        "B,ben,x,not_a_tag\n"
        "NOPE,ana,3,\n"
        "A,ana,2,\n"
        "A,cy\n",
    )
    jsonl_file = _write(
        tmp_path / "reviews.jsonl",
        '{"session_id": "A", "reviewer": "dee", "quality_score": 3, "tags": "answer_giveaway"}\n'
        "{not json}\n"
        '{"session_id": "B", "reviewer": "dee", "quality_score": 0.5, "clarity": 9}\n',
    )
    with pytest.raises(ImportFailed) as caught:
        import_reviews(engine, [csv_file, jsonl_file])
    errors = caught.value.errors
    # the exact list, in file and line order
    assert errors[:5] == [
        'reviews.csv:3: quality_score: expected a number from 1 to 5, got "6"',
        'reviews.csv:4: quality_score: expected a number from 1 to 5, got "x"',
        errors[2],
        'reviews.csv:5: session_id: expected a session in the database, got "NOPE"',
        "reviews.csv:6: reviewer: expected one review per reviewer per session, got a second"
        " review of A by ana (first at reviews.csv:2)",
    ]
    assert errors[2].startswith("reviews.csv:4: tags: expected one of low_student_talk_ratio")
    assert errors[2].endswith('got "not_a_tag"')
    assert errors[5:] == [
        "reviews.csv:7: expected 4 fields as in the header, got 2",
        "reviews.jsonl:1: tags: expected a JSON array of risk-tag names from the judge"
        " vocabulary (" + errors[6].split("vocabulary (", 1)[1],
        "reviews.jsonl:2: expected a JSON object, got invalid JSON"
        " (Expecting property name enclosed in double quotes at column 2)",
        "reviews.jsonl:3: quality_score: expected a number from 1 to 5, got 0.5",
        "reviews.jsonl:3: clarity: expected a number from 1 to 5, got 9",
    ]
    assert caught.value.message == "import rejected: 10 errors; nothing was written"
    assert _count(engine) == 0


def test_import_header_problems(engine: Engine, tmp_path: Path) -> None:
    bad = _write(tmp_path / "r.csv", "session,reviewer,reviewer\nA,ana,ana\n")
    with pytest.raises(ImportFailed) as caught:
        import_reviews(engine, [bad])
    assert caught.value.errors == [
        "r.csv:1: header: expected a column named session_id, got no such column",
        "r.csv:1: header: expected a column named quality_score, got no such column",
        'r.csv:1: header: expected each column once, got "reviewer" twice',
    ]


def test_cli_import_prints_errors_and_exits_1(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutorscore.cli import app as cli_app
    from tutorscore.cli.common import get_engine

    _sessions(engine, ["A"])
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    from tutorscore.config import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        bad = _write(tmp_path / "r.csv", "session_id,reviewer,quality_score\nA,ana,7\n")
        result = CliRunner().invoke(cli_app, ["reviews", "import", str(bad)])
        assert result.exit_code == 1
        assert 'r.csv:2: quality_score: expected a number from 1 to 5, got "7"' in result.output
        good = _write(tmp_path / "g.csv", "session_id,reviewer,quality_score\nA,ana,4.5\n")
        result = CliRunner().invoke(cli_app, ["reviews", "import", str(good)])
        assert result.exit_code == 0, result.output
        assert "1 rows, 1 new" in result.output
        result = CliRunner().invoke(cli_app, ["reviews", "export", str(tmp_path / "x")])
        assert result.exit_code == 0
        assert (tmp_path / "x" / "reviews.csv").read_text().splitlines()[1].startswith("A,ana,4.5,")
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()
    assert _count(engine) == 1


async def test_api_review_create_replace_and_roles(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    _sessions(engine, ["A"])
    coach = bearer(engine, "coach1", "coach")
    viewer = bearer(engine, "viewer1", "viewer")
    body = {"quality_score": 3.5, "tags": ["answer_giveaway"], "rubric": {"clarity": 4}}
    r = await client.post("/api/sessions/A/reviews", json=body, headers=viewer)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    r = await client.post("/api/sessions/A/reviews", json=body, headers=coach)
    assert r.status_code == 201, r.text
    assert r.json()["reviewer"] == "coach1" and r.json()["replaced"] is False
    r = await client.post(
        "/api/sessions/A/reviews", json={**body, "quality_score": 2}, headers=coach
    )
    assert r.status_code == 200 and r.json()["replaced"] is True
    r = await client.post(
        "/api/sessions/A/reviews", json={"quality_score": 3, "tags": ["nope"]}, headers=coach
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"] == [
        "request body: tags: expected one of "
        + ", ".join(__import__("tutorscore.evaluation.judge", fromlist=["RISK_TAGS"]).RISK_TAGS)
        + ', got "nope"'
    ]
    r = await client.post("/api/sessions/A/reviews", json={"quality_score": 6}, headers=coach)
    assert r.status_code == 422
    r = await client.post("/api/sessions/ZZ/reviews", json=body, headers=coach)
    assert r.status_code == 404
    r = await client.get("/api/sessions/A/reviews", headers=viewer)
    assert r.status_code == 200
    data = r.json()
    assert data["mean_quality_score"] == 2.0
    assert [(x["reviewer"], x["quality_score"], x["tags"]) for x in data["reviews"]] == [
        ("coach1", 2.0, ["answer_giveaway"])
    ]
    with transaction(engine) as db:
        actions = list(db.scalars(select(AuditLog.action).where(AuditLog.entity_type == "review")))
    assert actions == ["review.create", "review.update"]


async def test_api_review_with_cookie_needs_csrf(engine: Engine, client: httpx.AsyncClient) -> None:
    _sessions(engine, ["A"])
    token = await login(client, engine, "coach2", "coach")
    r = await client.post("/api/sessions/A/reviews", json={"quality_score": 4})
    assert r.status_code == 403
    r = await client.post(
        "/api/sessions/A/reviews", json={"quality_score": 4}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 201


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def test_review_form_hides_the_ai_until_submitted(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    from tutorscore.db.models import SessionTranscript
    from tutorscore.evaluation.heuristic import HeuristicJudge
    from tutorscore.evaluation.service import evaluate_session
    from tutorscore.ingest.transcript_format import content_hash, render_text
    from web_support import TRANSCRIPT

    _sessions(engine, ["A"])
    with transaction(engine) as db:
        db.add(
            SessionTranscript(
                session_id="A",
                turns=TRANSCRIPT,
                raw_text=render_text(TRANSCRIPT),  # type: ignore[arg-type]
                turn_count=len(TRANSCRIPT),
                content_hash=content_hash(TRANSCRIPT),  # type: ignore[arg-type]
            )
        )
        db.flush()
        evaluate_session(db, "A", HeuristicJudge(), update_analytics=False)
    # another reviewer was first
    with transaction(engine) as db:
        db.add(Review(session_id="A", reviewer="other", quality_score=1.5, tags=[], rubric={}))
    await login(client, engine, "coach3", "coach")
    page = (await client.get("/sessions/A")).text
    assert 'id="ai-hidden"' in page and "Quality score <span" not in page
    assert "1 other review, shown after you submit yours" in page
    assert 'data-reviewer="other"' not in page
    token = _csrf(page)
    # without the token: refused, nothing stored
    form = {"quality_score": "4.2", "tags": ["answer_giveaway", "long_monologue"], "clarity": "4"}
    r = await client.post("/sessions/A/reviews", data=form)
    assert r.status_code == 403
    r = await client.post("/sessions/A/reviews", data={**form, "csrf_token": "wrong"})
    assert r.status_code == 403
    r = await client.post("/sessions/A/reviews", data={**form, "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/sessions/A#reviews"
    page = (await client.get("/sessions/A")).text
    assert 'id="ai-hidden"' not in page
    assert "heuristic" in page  # the evaluation beside the reviews
    assert 'data-reviewer="coach3"' in page and 'data-reviewer="other"' in page
    assert 'id="human-mean">2.85<' in page
    assert "Replace my review" in page
    with transaction(engine) as db:
        mine = db.scalars(select(Review).where(Review.reviewer == "coach3")).one()
    assert (mine.quality_score, mine.tags, mine.rubric, mine.saw_ai_score, mine.source) == (
        4.2, ["answer_giveaway", "long_monologue"], {"clarity": 4.0}, False, "dashboard",
    )  # fmt: skip


async def test_show_ai_first_is_recorded_and_viewers_cannot_review(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    _sessions(engine, ["A"])
    await login(client, engine, "coach4", "coach")
    page = (await client.get("/sessions/A?show_ai=1")).text
    assert 'id="ai-hidden"' not in page
    assert 'name="saw_ai_score" value="1"' in page
    r = await client.post(
        "/sessions/A/reviews",
        data={"quality_score": "3", "saw_ai_score": "1", "csrf_token": _csrf(page)},
    )
    assert r.status_code == 303
    with transaction(engine) as db:
        assert db.scalars(select(Review.saw_ai_score)).one() is True
    await client.post("/api/logout", headers={"X-CSRF-Token": _csrf(page)})
    await login(client, engine, "viewer2", "viewer")
    page = (await client.get("/sessions/A")).text
    assert 'id="review-form"' not in page and 'id="ai-hidden"' not in page
    assert 'data-reviewer="coach4"' in page  # viewers read the reviews
    r = await client.post(
        "/sessions/A/reviews", data={"quality_score": "5", "csrf_token": _csrf(page)}
    )
    assert r.status_code == 403
    assert _count(engine) == 1
