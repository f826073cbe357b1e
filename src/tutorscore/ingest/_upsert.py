"""Bulk upserts of clean bundle rows: executemany on SQLite, COPY + one INSERT on Postgres.

Rows arrive as tuples in the order of `TableSpec.columns` (the model's table order:
`spec_of`; `row_builder` puts named values in it), values already parsed
(datetimes UTC-aware, dates, lists, bools). An existing row is updated only when
a value differs, so re-importing the same bundle leaves `updated_at` alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import Boolean, Column, Connection, Date, Table, text
from sqlalchemy.types import JSON as JSONBase

from tutorscore.db.base import Base, UTCDateTime, sqlite_timestamp
from tutorscore.db.models import SessionTranscript, Student, Tutor, TutoringSession

# Column kinds that need converting before they reach the driver.
TS, DATE, JSON, BOOL = "ts", "date", "json", "bool"


@dataclass(frozen=True)
class TableSpec:
    table: str
    key: str
    columns: tuple[str, ...]
    kinds: dict[str, str]
    # Set on insert only (e.g. is_first_session, kept right by derive_first_sessions).
    insert_only: tuple[str, ...] = ()

    @property
    def compared(self) -> tuple[str, ...]:
        skip = {self.key, "created_at", "updated_at", *self.insert_only}
        return tuple(c for c in self.columns if c not in skip)


_STAMPS = {"created_at": TS, "updated_at": TS}


def _kind(column: Column[Any]) -> str | None:
    """The conversion a column's values need, from its SQLAlchemy type."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return TS
    if isinstance(kind, Date):
        return DATE
    if isinstance(kind, JSONBase):
        return JSON
    if isinstance(kind, Boolean):
        return BOOL
    return None


def spec_of(model: type[Base], *, insert_only: tuple[str, ...] = ()) -> TableSpec:
    """The model's table as a TableSpec: its columns in table order, their kinds from their
    types, its single-column primary key as the conflict key."""
    table = cast(Table, model.__table__)
    (key,) = (c.name for c in table.primary_key.columns)
    kinds = {c.name: kind for c in table.columns if (kind := _kind(c)) is not None}
    return TableSpec(table.name, key, tuple(c.name for c in table.columns), kinds, insert_only)


TUTORS = spec_of(Tutor)
STUDENTS = spec_of(Student)
SESSIONS = spec_of(TutoringSession, insert_only=("is_first_session",))
TRANSCRIPTS = spec_of(SessionTranscript)


def row_builder(
    spec: TableSpec, names: Sequence[str]
) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Values named `names` (in that order) -> a row in `spec.columns` order.

    Picks by name once, here; the returned function is a C-level itemgetter. Raises
    when the table has a column `names` does not supply (a new model column needs a
    value in every writer).
    """
    missing = [c for c in spec.columns if c not in names]
    if missing:
        raise ValueError(f"{spec.table}: no value for column(s) {', '.join(missing)}")
    index = [list(names).index(c) for c in spec.columns]
    return cast(Callable[[Sequence[Any]], tuple[Any, ...]], itemgetter(*index))


def _sqlite_ts(value: datetime) -> str:
    # SQLAlchemy's SQLite text for a UTC datetime (parse_timestamp already gives UTC).
    if value.utcoffset():
        return sqlite_timestamp(value)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _pg_ts(value: datetime) -> str:
    return value.isoformat(" ", "microseconds")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _iso(value: date) -> str:
    return value.isoformat()


_CONVERTERS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "sqlite": {TS: _sqlite_ts, DATE: _iso, JSON: _json, BOOL: int},
    "postgresql": {TS: _pg_ts, DATE: _iso, JSON: _json},
}


def row_preparer(spec: TableSpec, dialect: str) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Parsed row -> the driver's values: only str/int/bool/None, so rows spool via marshal.

    Postgres takes timestamps and JSON as text (psycopg sends str untyped; COPY parses it).
    """
    table = _CONVERTERS["sqlite" if dialect == "sqlite" else "postgresql"]
    steps = [
        (i, table[kind])
        for i, c in enumerate(spec.columns)
        if (kind := spec.kinds.get(c)) is not None and kind in table
    ]

    # created_at/updated_at are the same object on every row of a run: convert them once.
    stamps = [i for i, c in enumerate(spec.columns) if c in _STAMPS]
    steps = [(i, convert) for i, convert in steps if i not in stamps]
    cache: list[Any] = [None, None]

    def prepare(row: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(row) != len(spec.columns):
            return row  # a partial row kept only for duplicate checks; never written
        out = list(row)
        for i, convert in steps:
            if out[i] is not None:
                out[i] = convert(out[i])
        for i in stamps:
            if out[i] is not cache[0]:
                cache[0], cache[1] = out[i], table[TS](out[i])
            out[i] = cache[1]
        return tuple(out)

    return prepare


def _upsert_sql(spec: TableSpec, dialect: str, source: str | None = None) -> str:
    cols = ", ".join(spec.columns)
    updated = [c for c in spec.columns if c not in {spec.key, "created_at", *spec.insert_only}]
    sets = ", ".join(f"{c} = excluded.{c}" for c in updated)
    if dialect == "sqlite":
        changed = " OR ".join(f"{spec.table}.{c} IS NOT excluded.{c}" for c in spec.compared)
        values = "VALUES (" + ", ".join("?" for _ in spec.columns) + ")"
    else:
        changed = " OR ".join(
            f"{spec.table}.{c} IS DISTINCT FROM excluded.{c}" for c in spec.compared
        )
        if source is not None:
            values = f"SELECT {cols} FROM {source}"
        else:
            values = (
                "VALUES ("
                + ", ".join(
                    "CAST(%s AS jsonb)" if spec.kinds.get(c) == JSON else "%s" for c in spec.columns
                )
                + ")"
            )
    return (
        f"INSERT INTO {spec.table} ({cols}) {values} "
        f"ON CONFLICT ({spec.key}) DO UPDATE SET {sets} WHERE {changed}"
    )


# A load at least this large into an empty table drops and rebuilds its secondary indexes.
BULK_ROWS = 50_000


@dataclass
class UpsertCount:
    """Rows an upsert changed, and of those how many it inserted (Postgres only:
    `(xmax = 0)` of each returned row; SQLite's executemany cannot return rows, so
    the importer counts inserts there under the write lock)."""

    changed: int = 0
    inserted: int | None = None


def upsert_rows(
    conn: Connection,
    spec: TableSpec,
    batches: Iterable[Sequence[tuple[Any, ...]]],
    *,
    prepared: bool = False,
    bulk: bool = False,
    count: UpsertCount | None = None,
) -> int:
    """Upsert every row of every batch inside the caller's transaction; rows changed.

    `prepared` rows already hold driver values (see row_preparer). On Postgres large
    inputs go through COPY into a temporary table and one INSERT … SELECT … ON
    CONFLICT. `bulk` (an empty table, many rows) rebuilds the secondary indexes once
    at the end instead of updating them row by row. `count`, when given, is filled in
    (on Postgres with the rows inserted, exact even while others write the table).
    """
    dialect = conn.dialect.name
    if not prepared:
        prepare = row_preparer(spec, dialect)
        batches = ([prepare(row) for row in batch] for batch in batches)
    with bulk_load(conn, spec.table, rebuild=bulk):
        if dialect == "sqlite":
            sql = _upsert_sql(spec, dialect)
            changed = 0
            for batch in batches:
                if batch:
                    changed += max(conn.exec_driver_sql(sql, list(batch)).rowcount, 0)
            if count is not None:
                count.changed += changed
            return changed
        changed, inserted = _pg_upsert(conn, spec, batches)
        if count is not None:
            count.changed += changed
            count.inserted = (count.inserted or 0) + inserted
        return changed


# The one bulk loader of seed and import: a large SQLite page cache for the write, and
# for a load into an empty (or wholesale-replaced) table its secondary indexes (and, on
# Postgres, its foreign keys) dropped first and rebuilt from their own definitions after.
#
# Settings, chosen once for both writers (they had drifted apart):
# - SQLite page cache 256 MiB. It is an upper bound on memory, not proportional to the
#   input: the import had been lowered from 512 MiB to this (1M-row import peak RSS 671 ->
#   573 MB with no loss of speed, docs/import.md), and the seed rebuilds its indexes by
#   sorting, which does not need the whole table cached. temp_store=MEMORY (where SQLite
#   allows it: outside a transaction) keeps the index sorts' spill off the disk.
# - Postgres foreign keys dropped with the indexes: a foreign key is checked by one
#   trigger query per inserted row; re-adding the constraint validates the whole table
#   with a single join. Both writers only bulk-load when DROP INDEX already holds the
#   table's exclusive lock, and both check references before writing (the import
#   validates every id; the seed generates them), so nothing else changes.
SQLITE_BULK_CACHE_KIB = 256 * 1024

ProgressCallback = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


@contextmanager
def bulk_cache(conn: Connection) -> Iterator[None]:
    """The bulk loader's SQLite page cache and in-memory temp store for this connection,
    restored afterwards (the default 2 MB cache makes a million-row load thrash the
    disk). Nothing to do on Postgres."""
    if conn.dialect.name != "sqlite":
        yield
        return
    previous = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_BULK_CACHE_KIB}")
    # SQLite refuses to change temp_store inside a transaction: the seed enters before its
    # first statement and gets it; the importer's write starts after its first reads and
    # keeps the default (its index sorts fit the cache).
    memory_temp = not conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
    if memory_temp:
        conn.exec_driver_sql("PRAGMA temp_store=MEMORY")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(previous or -2000)}")
        if memory_temp:
            conn.exec_driver_sql("PRAGMA temp_store=DEFAULT")


@contextmanager
def indexes_dropped(
    conn: Connection,
    table: str,
    *,
    enabled: bool,
    report: ProgressCallback = _no_progress,
) -> Iterator[None]:
    """Drop `table`'s secondary indexes (and, on Postgres, its foreign keys) inside the
    transaction and recreate them from their own definitions afterwards, reporting
    ("indexes", done, total); index and constraint DDL is transactional on both backends,
    so a rollback restores them."""
    if not enabled:
        yield
        return
    if conn.dialect.name == "sqlite":
        found = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = :table AND sql IS NOT NULL"
            ),
            {"table": table},
        ).all()
        foreign_keys: Sequence[Any] = []
    else:
        found = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = :table "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            ),
            {"table": table},
        ).all()
        foreign_keys = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = CAST(:table AS regclass) AND contype = 'f'"
            ),
            {"table": table},
        ).all()
    for name, _definition in foreign_keys:
        conn.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in found:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    steps = len(found) + len(foreign_keys)
    for i, (_name, definition) in enumerate(found, start=1):
        conn.exec_driver_sql(definition)
        report("indexes", i, steps)
    for i, (name, definition) in enumerate(foreign_keys, start=len(found) + 1):
        conn.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        report("indexes", i, steps)


@contextmanager
def bulk_load(conn: Connection, table: str, *, rebuild: bool) -> Iterator[None]:
    """The bulk loader for one table's write: `bulk_cache`, and with `rebuild` (an empty
    table, many rows) `indexes_dropped`."""
    with bulk_cache(conn), indexes_dropped(conn, table, enabled=rebuild):
        yield


_temp_counter = 0


# Each row the upsert wrote, and whether it was inserted: a new row's xmax is 0, a row
# updated by ON CONFLICT DO UPDATE carries the updating transaction's id there.
_RETURNING_INSERTED = " RETURNING (xmax = 0) AS inserted"


def _pg_upsert(
    conn: Connection, spec: TableSpec, batches: Iterable[Sequence[tuple[Any, ...]]]
) -> tuple[int, int]:
    """(rows changed, rows inserted)."""
    global _temp_counter
    iterator = iter(batches)
    first = next(iterator, None)
    if not first:
        return 0, 0
    second = next(iterator, None)
    if second is None and len(first) <= 50:
        sql = _upsert_sql(spec, "postgresql") + _RETURNING_INSERTED
        changed = inserted = 0
        for row in first:
            for (was_inserted,) in conn.exec_driver_sql(sql, row):
                changed += 1
                inserted += bool(was_inserted)
        return changed, inserted
    _temp_counter += 1
    temp = f"_import_{spec.table}_{_temp_counter}"
    conn.execute(
        text(f"CREATE TEMP TABLE {temp} (LIKE {spec.table} INCLUDING DEFAULTS) ON COMMIT DROP")
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    columns = ", ".join(spec.columns)
    with raw.cursor() as cur, cur.copy(f"COPY {temp} ({columns}) FROM STDIN") as copy:
        for batch in (first, *([second] if second is not None else [])):
            for row in batch:
                copy.write_row(row)
        for batch in iterator:
            for row in batch:
                copy.write_row(row)
    changed, inserted = conn.exec_driver_sql(
        f"WITH up AS ({_upsert_sql(spec, 'postgresql', source=temp)}{_RETURNING_INSERTED}) "
        "SELECT count(*), count(*) FILTER (WHERE inserted) FROM up"
    ).one()
    conn.execute(text(f"DROP TABLE {temp}"))
    return int(changed), int(inserted)
