"""Shared fixtures: every database test runs on SQLite and on the local Postgres.

`TUTORSCORE_TEST_BACKENDS=sqlite` (or `postgres`) narrows the run. The web, LLM
and analytics fixtures live here too, so test modules ask for them by name and
import only helpers (from `web_support`, `llm_support`, `analytics_support`, …).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher, profiles
from fastapi import FastAPI
from sqlalchemy import Engine

from tutorscore.auth import passwords
from tutorscore.config import RulesConfig, Settings, get_settings, load_rules
from tutorscore.db.engine import make_engine
from tutorscore.testing.databases import temporary_database, truncate_all
from tutorscore.testing.fake_llm import FakeServerProcess, start_fake_server
from tutorscore.web.app import create_app

# Tests hash many passwords; argon2's cheapest profile keeps them fast. Production
# keeps argon2-cffi's default (RFC 9106 low-memory) parameters.
passwords._hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)

BACKENDS = [
    b for b in os.environ.get("TUTORSCORE_TEST_BACKENDS", "sqlite,postgres").split(",") if b
]


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database per backend per test process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with temporary_database(request.param, label=worker) as url:
        yield url


@pytest.fixture(scope="session")
def _engine_cache() -> Iterator[dict[str, Engine]]:
    cache: dict[str, Engine] = {}
    yield cache
    for engine in cache.values():
        engine.dispose()


@pytest.fixture
def engine(db_url: str, _engine_cache: dict[str, Engine]) -> Iterator[Engine]:
    """An engine on an empty, migrated database (tables truncated before each test)."""
    if db_url not in _engine_cache:
        _engine_cache[db_url] = make_engine(db_url)
    eng = _engine_cache[db_url]
    truncate_all(eng)
    yield eng


@pytest.fixture
def rules() -> RulesConfig:
    return load_rules(None, environ={})


@pytest.fixture
def private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """TUTORSCORE_DATA_DIR in tmp_path: no churn model from a developer's ./data leaks in."""
    monkeypatch.setenv("TUTORSCORE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


# -- web: the ASGI app in-process --


@pytest.fixture
def web_settings(tmp_path: Path, engine: Engine) -> Settings:
    return Settings(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        TUTORSCORE_SECRET_KEY="test-secret-key-" * 3,
        TUTORSCORE_DATA_DIR=str(tmp_path),
    )


@pytest.fixture
def app(engine: Engine, rules: RulesConfig, web_settings: Settings) -> FastAPI:
    return create_app(web_settings, rules, engine)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# -- LLM: the fake OpenAI-compatible server as a real subprocess --


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServerProcess]:
    """Started once per module on a free port, stopped by its PID."""
    server = start_fake_server(rpm=10_000, tpm=50_000_000, batch_delay_s=0.2)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake(fake_server: FakeServerProcess) -> FakeServerProcess:
    """The module's server with counters, script and rates reset for this test."""
    fake_server.control(
        reset=True,
        rpm=10_000,
        tpm=50_000_000,
        latency_ms=0,
        latency_max_ms=0,
        error_rate=0,
        malformed_rate=0,
    )
    return fake_server
