"""Authentication, roles, CSRF, throttling and structured errors over the ASGI app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select

from tutorscore.auth.throttle import LoginThrottle
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import ApiToken, AuditLog, LoginFailure
from tutorscore.web.app import create_app
from web_support import PASSWORD, bearer, login, make_user


def _error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def test_api_needs_login(client: httpx.AsyncClient) -> None:
    _error(await client.get("/api/me"), 401, "unauthorized")
    _error(await client.get("/api/tutors"), 401, "unauthorized")


async def test_page_without_login_redirects_to_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/tutors?risk=high")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Ftutors%3Frisk%3Dhigh"


async def test_bearer_token_authenticates_and_is_stored_hashed(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    headers = bearer(engine, "robot", "viewer")
    r = await client.get("/api/me", headers=headers)
    assert r.status_code == 200
    assert r.json()["username"] == "robot" and r.json()["via"] == "token"
    plain = headers["Authorization"].split()[1]
    with transaction(engine) as db:
        stored = db.scalars(select(ApiToken.token_hash)).all()
    assert plain not in stored and len(stored) == 1 and len(stored[0]) == 64


async def test_bad_tokens_are_refused(client: httpx.AsyncClient, engine: Engine) -> None:
    _error(
        await client.get("/api/me", headers={"Authorization": "Bearer nope"}), 401, "unauthorized"
    )
    _error(await client.get("/api/me", headers={"Authorization": "Basic abc"}), 401, "unauthorized")


async def test_login_form_needs_csrf_and_sets_session(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "carol", "coach")
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"username": "carol", "password": PASSWORD, "next": "/tutors"}
    r = await client.post("/login", data=form)
    assert r.status_code == 403
    r = await client.post("/login", data={**form, "csrf_token": token.group(1)})
    assert r.status_code == 303 and r.headers["location"] == "/tutors"
    me = await client.get("/api/me")
    assert me.json()["username"] == "carol" and me.json()["role"] == "coach"


async def test_login_never_redirects_off_site(client: httpx.AsyncClient, engine: Engine) -> None:
    make_user(engine, "dave", "viewer")
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"username": "dave", "password": PASSWORD, "next": "//evil.example/x"}
    r = await client.post("/login", data={**form, "csrf_token": token.group(1)})
    assert r.status_code == 303 and r.headers["location"] == "/"


async def test_wrong_password_shows_the_form_again(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "erin", "viewer")
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    r = await client.post(
        "/login", data={"username": "erin", "password": "wrong", "csrf_token": token.group(1)}
    )
    assert r.status_code == 401 and "wrong username or password" in r.text


async def test_cookie_mutations_need_csrf_bearer_does_not(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    csrf = await login(client, engine, "frank", "viewer")
    _error(await client.post("/api/tokens", json={}), 403, "forbidden")
    _error(
        await client.post("/api/tokens", json={}, headers={"X-CSRF-Token": "forged"}),
        403,
        "forbidden",
    )
    r = await client.post("/api/tokens", json={"name": "laptop"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201
    token = r.json()["token"]
    async with httpx.AsyncClient(
        transport=client._transport,
        base_url="http://testserver",  # no cookies
    ) as other:
        r = await other.post("/api/tokens", json={}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 201


async def test_login_throttled_after_five_failures(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, "gina", "viewer")
    for _ in range(5):
        _error(
            await client.post("/api/login", json={"username": "gina", "password": "bad"}),
            401,
            "unauthorized",
        )
    r = await client.post("/api/login", json={"username": "gina", "password": PASSWORD})
    _error(r, 429, "too_many_requests")
    assert int(r.headers["retry-after"]) > 0
    # another username from the same address is not locked out
    make_user(engine, "hank", "viewer")
    r = await client.post("/api/login", json={"username": "hank", "password": PASSWORD})
    assert r.status_code == 200


async def test_login_throttle_is_shared_by_every_web_process(
    app: FastAPI, engine: Engine, rules: RulesConfig, web_settings: Settings
) -> None:
    """Two apps on one database (two `serve --workers` processes) count failures together."""
    make_user(engine, "lena", "viewer")
    other_app = create_app(web_settings, rules, engine)
    bad = {"username": "LENA", "password": "bad"}  # usernames count case-insensitively
    for i in range(5):
        target = app if i % 2 else other_app
        transport = httpx.ASGITransport(app=target, client=("10.0.0.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            _error(await c.post("/api/login", json=bad), 401, "unauthorized")
    for target in (app, other_app):
        transport = httpx.ASGITransport(app=target, client=("10.0.0.9", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            good = {"username": "lena", "password": PASSWORD}
            _error(await c.post("/api/login", json=good), 429, "too_many_requests")
    # the same user from another address is not locked out
    transport = httpx.ASGITransport(app=other_app, client=("10.0.0.10", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.post("/api/login", json={"username": "lena", "password": PASSWORD})
        assert r.status_code == 200, r.text


def test_login_throttle_window_and_reset(engine: Engine) -> None:
    now = [datetime(2026, 11, 25, 12, 0, tzinfo=UTC)]
    throttle = LoginThrottle(engine, max_failures=3, window_seconds=60, clock=lambda: now[0])
    for _ in range(2):
        throttle.failure("mo", "1.2.3.4")
        now[0] += timedelta(seconds=10)
    assert throttle.retry_after("mo", "1.2.3.4") is None  # 2 of 3
    throttle.failure("MO", "1.2.3.4")
    # locked until the oldest failure (t=0) leaves the 60 s window; now is t=20
    assert throttle.retry_after("mo", "1.2.3.4") == 41
    assert throttle.retry_after("mo", "5.6.7.8") is None
    now[0] += timedelta(seconds=40)  # t=60: the first failure is out of the window
    assert throttle.retry_after("mo", "1.2.3.4") is None
    throttle.failure("mo", "1.2.3.4")  # prunes rows older than the window
    with engine.connect() as conn:
        stamps = list(conn.scalars(select(LoginFailure.failed_at)))
    assert len(stamps) == 3 and min(stamps) > now[0] - timedelta(seconds=60)
    assert throttle.retry_after("mo", "1.2.3.4") == 11  # oldest left (t=10) ends at t=70
    throttle.success("mo", "1.2.3.4")
    assert throttle.retry_after("mo", "1.2.3.4") is None


@pytest.mark.parametrize(
    ("role", "allowed"), [("viewer", False), ("coach", False), ("admin", True)]
)
async def test_roles_on_user_management(
    client: httpx.AsyncClient, engine: Engine, role: str, allowed: bool
) -> None:
    headers = bearer(engine, f"u-{role}", role)
    body = {"username": f"new-{role}", "password": PASSWORD, "role": "viewer"}
    r = await client.post("/api/users", json=body, headers=headers)
    if allowed:
        assert r.status_code == 201, r.text
    else:
        err = _error(r, 403, "forbidden")
        assert err["details"] == {"role": role, "allowed": ["admin"]}
    # every role may read
    assert (await client.get("/api/me", headers=headers)).status_code == 200


async def test_user_creation_codes_and_audit(client: httpx.AsyncClient, engine: Engine) -> None:
    headers = bearer(engine, "root", "admin")
    body = {"username": "ivy", "password": PASSWORD, "role": "coach"}
    assert (await client.post("/api/users", json=body, headers=headers)).status_code == 201
    _error(await client.post("/api/users", json=body, headers=headers), 409, "conflict")
    weak = {"username": "jack", "password": "short", "role": "coach"}
    _error(await client.post("/api/users", json=weak, headers=headers), 400, "bad_request")
    bad_role = {"username": "kim", "password": PASSWORD, "role": "owner"}
    err = _error(
        await client.post("/api/users", json=bad_role, headers=headers), 422, "validation_error"
    )
    assert [d["field"] for d in err["details"]] == ["role"]
    with transaction(engine) as db:
        rows = db.scalars(
            select(AuditLog).where(AuditLog.action == "user.create", AuditLog.entity_id == "ivy")
        ).all()
    assert len(rows) == 1
    assert rows[0].actor == "root" and rows[0].after == {"username": "ivy", "role": "coach"}
    assert rows[0].before is None and rows[0].request_id


async def test_structured_404_405_422(client: httpx.AsyncClient, engine: Engine) -> None:
    headers = bearer(engine, "viewer1", "viewer")
    _error(await client.get("/api/nothing-here", headers=headers), 404, "not_found")
    _error(await client.delete("/api/me", headers=headers), 405, "method_not_allowed")
    err = _error(
        await client.get("/api/tutors?limit=0&risk=purple", headers=headers),
        422,
        "validation_error",
    )
    fields = sorted(d["field"] for d in err["details"])
    assert fields == ["limit", "risk"]
    err = _error(
        await client.post(
            "/api/login", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "validation_error",
    )


async def test_oversized_body_is_413(
    engine: Engine, rules: RulesConfig, web_settings: Settings
) -> None:
    small = create_app(web_settings, rules, engine, max_body_bytes=1000)
    transport = httpx.ASGITransport(app=small)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        _error(await c.post("/api/login", content=b"x" * 2000), 413, "payload_too_large")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
            for _ in range(5):
                yield b"y" * 500

        r = await c.post(
            "/api/login", content=chunks(), headers={"content-type": "application/json"}
        )
        _error(r, 413, "payload_too_large")


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = (await client.get("/healthz")).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


async def test_healthz_and_metrics(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    await client.get("/api/me")
    text = (await client.get("/metrics")).text
    series = 'tutorscore_http_request_duration_seconds_count{method="GET",route="/api/me"'
    assert f'{series},status="401"}} 1.0' in text
    for name in (
        "tutorscore_oldest_queued_job_age_seconds",
        "tutorscore_llm_cost_today_usd",
        "tutorscore_llm_errors_total",
    ):
        assert name in text


async def test_healthz_503_when_database_down(rules: RulesConfig, web_settings: Settings) -> None:
    down = make_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    app = create_app(web_settings, rules, down)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        _error(await c.get("/healthz"), 503, "unavailable")
    down.dispose()


async def test_api_docs_are_served_without_a_cdn(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert (await client.get(asset)).status_code == 200
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "tutorscore"
