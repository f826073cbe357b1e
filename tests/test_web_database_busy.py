"""A database that cannot be used now answers 503 with Retry-After, never a 500:
SQLite's write lock held by a long import, Postgres refusing connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import make_engine
from tutorscore.testing.databases import allow_connections, refuse_connections
from tutorscore.web.app import create_app
from web_support import AS_OF, add_people, bearer, session_record


@contextmanager
def database_busy(engine: Engine) -> Iterator[None]:
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        refuse_connections(url)
        try:
            yield
        finally:
            allow_connections(url)
        return
    conn = sqlite3.connect(make_url(url).database or "", isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")  # what `tutorscore import` holds while it writes
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def test_writes_and_reads_answer_503_with_retry_after(
    engine: Engine, rules: RulesConfig, tmp_path: Path
) -> None:
    url = engine.url.render_as_string(hide_password=False)
    app_engine = make_engine(url)
    if app_engine.dialect.name == "sqlite":  # production waits 30 s before giving up

        @event.listens_for(app_engine, "connect")
        def _short_busy(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("PRAGMA busy_timeout=200")

    settings = Settings(
        DATABASE_URL=url,
        TUTORSCORE_SECRET_KEY="busy-test-key-" * 3,
        TUTORSCORE_DATA_DIR=str(tmp_path),
    )
    app = create_app(settings, rules, app_engine)
    headers = bearer(engine, "admin", "admin")
    add_people(engine, [{"tutor_id": "T1", "name": "Ada"}], ["S1"])
    record = session_record("N1", "T1", "S1", when=AS_OF)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with database_busy(engine):
                r = await client.post("/api/sessions", json=record, headers=headers)
                assert r.status_code == 503, r.text
                assert r.headers["Retry-After"] == "5"
                err = r.json()["error"]
                assert err["code"] == "unavailable"
                reason = "locked" if engine.dialect.name == "sqlite" else "unreachable"
                assert err["details"] == {"reason": reason, "retry_after_s": 5}
                if engine.dialect.name == "postgresql":  # SQLite readers do not wait
                    r = await client.get("/api/tutors", headers=headers)
                    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
            r = await client.post("/api/sessions", json=record, headers=headers)  # retried
            assert r.status_code == 201, r.text
    finally:
        app_engine.dispose()
