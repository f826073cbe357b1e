"""Throwaway databases for tests and benchmarks: SQLite files and fresh Postgres databases."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from tutorscore.db.engine import make_engine, normalise_url
from tutorscore.db.migrate import upgrade
from tutorscore.db.models import Base

DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_admin_url() -> str:
    return normalise_url(os.environ.get("TUTORSCORE_TEST_PG_URL", DEFAULT_PG_ADMIN_URL))


@contextmanager
def temporary_database(backend: str, *, label: str = "test") -> Iterator[str]:
    """Yield the URL of a new, migrated database; drop it afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"tutorscore-{label}-") as tmp:
            url = f"sqlite:///{tmp}/tutorscore.db"
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            yield url
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}")
    import psycopg

    admin = make_url(pg_admin_url())
    name = f"tutorscore_{label}_{os.getpid()}_{secrets.token_hex(4)}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        engine.dispose()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(engine: Engine) -> None:
    """Empty every table (between tests), keeping the schema."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
