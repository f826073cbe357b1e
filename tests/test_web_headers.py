"""Issue 14: security headers, a Secure session cookie behind https, HEAD on pages."""


from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from tutorscore.config import RulesConfig, Settings
from tutorscore.web.app import create_app
from web_support import PASSWORD, bearer, make_user


async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    headers = bearer(engine, "vera", "viewer")
    for path in ("/login", "/", "/tutors", "/api/tutors", "/healthz", "/nope", "/docs"):
        r = await client.get(path, headers=headers)
        assert r.headers["x-frame-options"] == "DENY", path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, path
        if path != "/docs":
            assert "script-src 'self';" in csp and "unsafe-inline" not in csp, path
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_head_is_allowed_on_pages_and_api(client: httpx.AsyncClient, engine: Engine) -> None:
    headers = bearer(engine, "vera", "viewer")
    for path in ("/login", "/", "/tutors", "/api/tutors", "/healthz"):
        get = await client.get(path, headers=headers)
        head = await client.head(path, headers=headers)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
    r = await client.head("/tutors")  # no login: the same redirect as GET
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def _login_cookie(app_: object, base_url: str) -> str:
    transport = httpx.ASGITransport(app=app_, client=("10.0.0.1", 1))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as c:
        r = await c.post("/api/login", json={"username": "sam", "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.headers["set-cookie"]


@pytest.mark.parametrize(
    ("setting", "base_url", "secure"),
    [
        (None, "http://testserver", False),
        (None, "https://testserver", True),  # served behind https: auto
        (True, "http://testserver", True),
        (False, "https://testserver", False),
    ],
)
async def test_session_cookie_secure(
    engine: Engine,
    rules: RulesConfig,
    web_settings: Settings,
    setting: bool | None,
    base_url: str,
    secure: bool,
) -> None:
    make_user(engine, "sam", "viewer")
    settings = web_settings.model_copy(update={"cookie_secure": setting})
    cookie = await _login_cookie(create_app(settings, rules, engine), base_url)
    assert cookie.startswith("tutorscore_session=")
    assert ("; secure" in cookie.lower()) is secure
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()


def test_cookie_secure_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORSCORE_COOKIE_SECURE", "true")
    assert Settings().cookie_secure is True
    monkeypatch.setenv("TUTORSCORE_COOKIE_SECURE", "0")
    assert Settings().cookie_secure is False
    monkeypatch.delenv("TUTORSCORE_COOKIE_SECURE")
    assert Settings().cookie_secure is None
