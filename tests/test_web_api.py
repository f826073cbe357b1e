"""JSON API: tutors report, recording sessions (validation, evaluation queue, metrics, audit)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

from analytics_support import REPORT_CONTRACT_KEYS
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import AuditLog, Job, SessionTranscript, TutoringSession, TutorMetrics
from web_support import AS_OF, TRANSCRIPT, add_people, bearer, session_record


def _people(engine: Engine) -> None:
    add_people(
        engine,
        [{"tutor_id": "T1", "name": "Ada Tutor"}, {"tutor_id": "T2", "name": "Bo Tutor"}],
        ["S1", "S2", "S3"],
    )


async def test_record_session_creates_queues_updates_and_audits(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig
) -> None:
    _people(engine)
    headers = bearer(engine, "ingest", "admin")
    when = AS_OF - timedelta(days=1)
    body = session_record("X1", "T1", "S1", when=when, student_rating=5, turns=TRANSCRIPT)
    r = await client.post("/api/sessions", json=body, headers=headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["session_id"] == "X1" and out["created"] is True
    # the student's first completed session with this tutor goes first in the queue
    assert out["evaluation_priority"] == rules.evaluation.priority_first_session
    with transaction(engine) as db:
        job = db.get(Job, out["evaluation_job_id"])
        assert job is not None and job.session_id == "X1" and job.status == "queued"
        assert db.get(SessionTranscript, "X1").turn_count == len(TRANSCRIPT)  # type: ignore[union-attr]
        row = db.get(TutoringSession, "X1")
        assert row is not None and row.is_first_session
        metrics = db.scalars(select(TutorMetrics).where(TutorMetrics.tutor_id == "T1")).all()
        assert len(metrics) == 1 and metrics[0].total_sessions == 1
        audit = db.scalars(select(AuditLog).where(AuditLog.entity_id == "X1")).one()
        assert audit.actor == "ingest" and audit.action == "session.create"
        assert audit.before is None and audit.after["student_rating"] == 5  # type: ignore[index]

    body["student_rating"] = 2
    r = await client.post("/api/sessions", json=body, headers=headers)
    assert r.status_code == 200 and r.json()["created"] is False
    with transaction(engine) as db:
        update = db.scalars(
            select(AuditLog).where(AuditLog.action == "session.update", AuditLog.entity_id == "X1")
        ).one()
        assert update.before["student_rating"] == 5  # type: ignore[index]
        assert update.after["student_rating"] == 2  # type: ignore[index]
        # still one queued job for the session: re-posting does not duplicate work
        queued = db.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.session_id == "X1", Job.status == "queued")
        )
        assert queued == 1

    r = await client.get("/api/tutors/T1", headers=headers)
    assert r.status_code == 200
    assert r.json()["avg_student_rating"] == 2.0


async def test_session_without_transcript_is_not_queued(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    _people(engine)
    headers = bearer(engine, "ingest", "admin")
    body = session_record("X2", "T2", "S2", when=AS_OF, status="no_show", no_show_by="tutor")
    r = await client.post("/api/sessions", json=body, headers=headers)
    assert r.status_code == 201
    assert r.json()["evaluation_job_id"] is None
    r = await client.get("/api/tutors/T2", headers=headers)
    assert r.json()["total_sessions"] == 1 and r.json()["tutor_no_show_rate"] == 1.0


async def test_invalid_session_gets_importer_messages(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    _people(engine)
    headers = bearer(engine, "ingest", "admin")
    body = session_record("X3", "T1", "S1", when=AS_OF, student_rating=6)
    body["status"] = "done"
    r = await client.post("/api/sessions", json=body, headers=headers)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_error"
    messages = err["details"]
    assert any(
        m.startswith("request body: student_rating: expected an integer 1-5") for m in messages
    )
    assert any(m.startswith("request body: status: expected") for m in messages)
    missing = await client.post("/api/sessions", json={"session_id": "X4"}, headers=headers)
    assert missing.status_code == 422
    text = " ".join(missing.json()["error"]["details"])
    for field in ("tutor_id", "student_id", "subject", "scheduled_start_at", "status"):
        assert field in text


async def test_unknown_tutor_is_422_naming_the_field(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    _people(engine)
    headers = bearer(engine, "ingest", "admin")
    body = session_record("X5", "T404", "S1", when=AS_OF)
    r = await client.post("/api/sessions", json=body, headers=headers)
    assert r.status_code == 422
    assert "tutor_id" in r.json()["error"]["message"]
    with transaction(engine) as db:
        assert db.get(TutoringSession, "X5") is None


async def test_only_admins_record_sessions(client: httpx.AsyncClient, engine: Engine) -> None:
    _people(engine)
    body = session_record("X6", "T1", "S1", when=AS_OF)
    for role in ("viewer", "coach"):
        r = await client.post("/api/sessions", json=body, headers=bearer(engine, role, role))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    with transaction(engine) as db:
        assert db.get(TutoringSession, "X6") is None


async def test_tutor_list_items_sort_filter_paginate(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    _people(engine)
    headers = bearer(engine, "ingest", "admin")
    for i in range(12):  # T1: 12 sessions, 3 rescheduled by the tutor -> high rescheduler
        status = "rescheduled" if i < 3 else "completed"
        extra = {"reschedule_initiator": "tutor"} if status == "rescheduled" else {}
        body = session_record(
            f"A{i}",
            "T1",
            f"S{1 + i % 3}",
            when=AS_OF - timedelta(hours=i + 1),
            status=status,
            **extra,
        )
        assert (await client.post("/api/sessions", json=body, headers=headers)).status_code == 201
    body = session_record("B1", "T2", "S1", when=AS_OF - timedelta(hours=2))
    assert (await client.post("/api/sessions", json=body, headers=headers)).status_code == 201

    r = await client.get("/api/tutors", headers=headers)
    assert r.status_code == 200
    page = r.json()
    assert page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    assert REPORT_CONTRACT_KEYS <= set(page["items"][0])
    first = page["items"][0]
    assert first["tutor_id"] == "T1" and first["high_rescheduler_flag"] is True
    reason = next(x for x in first["reasons"] if x["flag"] == "high_rescheduler_flag")
    assert reason["numerator"] == 3 and reason["denominator"] == 12 and reason["text"]

    r = await client.get("/api/tutors", params={"flags": "high_rescheduler_flag"}, headers=headers)
    assert [x["tutor_id"] for x in r.json()["items"]] == ["T1"]
    r = await client.get("/api/tutors", params={"min_sessions": 5}, headers=headers)
    assert r.json()["total"] == 1
    r = await client.get("/api/tutors", params={"sort": "name", "limit": 1}, headers=headers)
    assert r.json()["total"] == 2 and [x["name"] for x in r.json()["items"]] == ["Ada Tutor"]
    r = await client.get(
        "/api/tutors", params={"sort": "-name", "limit": 1, "offset": 1}, headers=headers
    )
    assert [x["name"] for x in r.json()["items"]] == ["Ada Tutor"]
    r = await client.get("/api/tutors", params={"sort": "shoe_size"}, headers=headers)
    assert r.status_code == 400 and "sort" in r.json()["error"]["message"]
    r = await client.get("/api/tutors/T404", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_posted_session_is_evaluated_by_the_worker(
    client: httpx.AsyncClient, engine: Engine, web_settings: Settings, rules: RulesConfig
) -> None:
    from tutorscore.evaluation.worker import run_worker_async

    _people(engine)
    headers = bearer(engine, "ingest", "admin")
    body = session_record("E1", "T1", "S1", when=AS_OF, student_rating=4, turns=TRANSCRIPT)
    assert (await client.post("/api/sessions", json=body, headers=headers)).status_code == 201
    await run_worker_async(engine, web_settings, rules, once=True)
    r = await client.get("/api/tutors/T1", headers=headers)
    assert r.json()["ai_avg_quality_score"] is not None
    page = await client.get("/sessions/E1", headers=headers)
    assert page.status_code == 200 and "Waiting for evaluation" not in page.text
    assert "Quality score" in page.text


async def test_seed_data_is_admin_only_and_audited(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    body = {
        "tutors": 3,
        "students": 20,
        "sessions": 60,
        "days": 7,
        "transcripts": 5,
        "seed": 3,
        "as_of": "2026-11-24T00:00:00Z",
    }
    r = await client.post("/api/seed-data", json=body, headers=bearer(engine, "v", "viewer"))
    assert r.status_code == 403
    r = await client.post("/api/seed-data", json=body, headers=bearer(engine, "root", "admin"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["summary"]["tutors"] == 3 and out["summary"]["sessions"] == 60
    assert out["analytics"] is not None
    listing = await client.get("/api/tutors", headers=bearer(engine, "v2", "viewer"))
    assert listing.json()["total"] == 3
    with transaction(engine) as db:
        audit = db.scalars(select(AuditLog).where(AuditLog.action == "data.seed")).one()
        assert audit.actor == "root" and audit.after["summary"]["tutors"] == 3  # type: ignore[index]
    too_big = await client.post(
        "/api/seed-data", json={"tutors": 10**6}, headers=bearer(engine, "root2", "admin")
    )
    assert too_big.status_code == 422


async def test_cached_report_pages_follow_new_sessions(
    client: httpx.AsyncClient, engine: Engine, app: Any
) -> None:
    _people(engine)
    headers = bearer(engine, "ingest", "admin")
    body = session_record("C1", "T1", "S1", when=AS_OF - timedelta(hours=3))
    assert (await client.post("/api/sessions", json=body, headers=headers)).status_code == 201

    async def t1_sessions() -> int:
        r = await client.get("/api/tutors", params={"sort": "name"}, headers=headers)
        return int(next(x for x in r.json()["items"] if x["tutor_id"] == "T1")["total_sessions"])

    assert await t1_sessions() == 1
    assert await t1_sessions() == 1
    cache = app.state.tutorscore.report_cache
    assert cache.hits >= 1
    body = session_record("C2", "T1", "S2", when=AS_OF - timedelta(hours=2))
    assert (await client.post("/api/sessions", json=body, headers=headers)).status_code == 201
    assert await t1_sessions() == 2


async def test_served_app_limits_its_handler_threads(
    engine: Engine, rules: RulesConfig, web_settings: Settings
) -> None:
    """TUTORSCORE_WEB_THREADS caps the thread pool that runs sync handlers (docs/web.md)."""
    import anyio.to_thread

    from tutorscore.web.app import create_app

    settings = web_settings.model_copy(update={"web_threads": 3})
    app = create_app(settings, rules, engine)
    async with app.router.lifespan_context(app):
        assert anyio.to_thread.current_default_thread_limiter().total_tokens == 3


def test_served_app_memory_maps_sqlite(tmp_path: Any, rules: RulesConfig) -> None:
    """The app's own SQLite engine maps the file (docs/web.md "Performance")."""
    from sqlalchemy import text

    from tutorscore.web.app import SQLITE_MMAP_BYTES, create_app

    settings = Settings(
        DATABASE_URL=f"sqlite:///{tmp_path}/web.db",
        TUTORSCORE_SECRET_KEY="test-secret-key-" * 3,
        TUTORSCORE_DATA_DIR=str(tmp_path),
    )
    app = create_app(settings, rules)
    with app.state.tutorscore.engine.connect() as conn:
        assert conn.scalar(text("PRAGMA mmap_size")) == SQLITE_MMAP_BYTES
    app.state.tutorscore.engine.dispose()


async def test_report_cache_can_be_switched_off(
    engine: Engine, rules: RulesConfig, web_settings: Settings
) -> None:
    """TUTORSCORE_REPORT_CACHE_TTL=0: every tutor-report request is computed afresh."""
    from tutorscore.flows.metrics import nightly_recompute
    from tutorscore.web.app import create_app

    _people(engine)
    nightly_recompute(engine, as_of=AS_OF, rules=rules)
    headers = bearer(engine, "reader", "viewer")
    app = create_app(web_settings.model_copy(update={"report_cache_ttl": 0}), rules, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        for _ in range(2):
            r = await c.get("/api/tutors", params={"sort": "name"}, headers=headers)
            assert [x["name"] for x in r.json()["items"]] == ["Ada Tutor", "Bo Tutor"]
    cache = app.state.tutorscore.report_cache
    assert (cache.hits, cache.misses) == (0, 2)


async def test_concurrent_writes_finish_with_a_single_handler_thread(
    engine: Engine, rules: RulesConfig, web_settings: Settings
) -> None:
    """Writes that wait on each other's locks still all finish (one handler thread).

    Each POST enqueues an evaluation (Postgres: an advisory lock until commit; SQLite:
    the write lock). Handlers blocked on that lock can hold every handler thread, so
    commits run on threads of their own; with commits in the handlers' pool this hung.
    """
    import asyncio

    from tutorscore.web.app import create_app

    _people(engine)
    headers = bearer(engine, "ingest-many", "admin")
    app = create_app(web_settings.model_copy(update={"web_threads": 1}), rules, engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            bodies = [
                session_record(
                    f"M{i}", "T1" if i % 2 else "T2", "S1",
                    when=AS_OF - timedelta(hours=i + 1), turns=TRANSCRIPT,
                )  # fmt: skip
                for i in range(6)
            ]
            posts = [c.post("/api/sessions", json=b, headers=headers) for b in bodies]
            answers = await asyncio.wait_for(asyncio.gather(*posts), timeout=60)
    assert [r.status_code for r in answers] == [201] * 6
    with transaction(engine) as db:
        queued = db.scalar(select(func.count()).select_from(Job).where(Job.session_id.like("M%")))
    assert queued == 6


async def test_seed_data_refuses_unknown_keys_and_says_what_it_deletes(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    admin = bearer(engine, "root", "admin")
    body = {"tutors": 3, "students": 20, "sessions": 60, "transcripts": 5, "seed": 3,
            "as_of": "2026-11-24T00:00:00Z", "run_analytics": False}  # fmt: skip
    r = await client.post("/api/seed-data", json={**body, "tutor": 5}, headers=admin)
    assert r.status_code == 422
    assert [d["field"] for d in r.json()["error"]["details"]] == ["tutor"]
    assert (await client.post("/api/seed-data", json=body, headers=admin)).status_code == 200
    with transaction(engine) as db:
        tutor_id = db.scalars(select(TutorMetrics.tutor_id)).first() or db.scalar(
            select(TutoringSession.tutor_id)
        )
    r = await client.post(
        "/api/interventions",
        json={"tutor_id": tutor_id, "type": "Coaching call", "notes": "ours"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = await client.post("/api/seed-data", json={**body, "dry_run": True}, headers=admin)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["dry_run"] is True and plan["summary"] == {}
    assert plan["would_delete"]["interventions"] == 1
    assert plan["would_delete"]["tutors"] == 3 and plan["would_delete"]["sessions"] == 60
    with transaction(engine) as db:  # the dry run wrote nothing
        assert db.scalar(select(func.count()).select_from(TutoringSession)) == 60
    r = await client.post("/api/seed-data", json=body, headers=admin)
    assert r.status_code == 200
    assert r.json()["would_delete"]["interventions"] == 1
    assert r.json()["summary"]["deleted"]["interventions"] == 1
