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


def _admin_conninfo() -> str:
    return (
        make_url(pg_admin_url()).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def refuse_connections(url: str) -> int:
    """Take the Postgres database at `url` offline: new connections are refused and
    its current backends terminated (the server and its other databases keep running).
    Returns how many backends were terminated. Undo with `allow_connections`."""
    import psycopg

    name = make_url(normalise_url(url)).database
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        killed = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(killed[0]) if killed else 0


def allow_connections(url: str) -> None:
    """Bring a database taken offline by `refuse_connections` back."""
    import psycopg

    name = make_url(normalise_url(url)).database
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
