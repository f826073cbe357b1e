"""Shared fixtures: every database test runs on SQLite and on the local Postgres.

`TUTORSCORE_TEST_BACKENDS=sqlite` (or `postgres`) narrows the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tutorscore.config import RulesConfig, load_rules
from tutorscore.db.engine import make_engine
from tutorscore.testing.databases import temporary_database, truncate_all

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
