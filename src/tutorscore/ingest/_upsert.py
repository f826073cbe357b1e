"""Bulk upserts of clean bundle rows: executemany on SQLite, COPY + one INSERT on Postgres.

Rows arrive as tuples in the order of `TableSpec.columns`, values already parsed
(datetimes UTC-aware, dates, lists, bools). An existing row is updated only when
a value differs, so re-importing the same bundle leaves `updated_at` alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from tutorscore.db.base import sqlite_timestamp

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

TUTORS = TableSpec(
    "tutors",
    "tutor_id",
    (
        "tutor_id",
        "name",
        "subjects",
        "years_experience",
        "timezone",
        "hire_date",
        "churned_on",
        "is_synthetic",
        "created_at",
        "updated_at",
    ),
    {"subjects": JSON, "hire_date": DATE, "churned_on": DATE, "is_synthetic": BOOL, **_STAMPS},
)
STUDENTS = TableSpec(
    "students",
    "student_id",
    ("student_id", "grade_level", "segment", "is_synthetic", "created_at", "updated_at"),
    {"is_synthetic": BOOL, **_STAMPS},
)
SESSIONS = TableSpec(
    "sessions",
    "session_id",
    (
        "session_id",
        "tutor_id",
        "student_id",
        "subject",
        "scheduled_start_at",
        "actual_start_at",
        "duration_minutes",
        "status",
        "no_show_by",
        "reschedule_initiator",
        "rescheduled_from_session_id",
        "is_first_session_for_student",
        "student_rating",
        "student_feedback",
        "student_churned_after_session",
        "is_first_session",
        "is_synthetic",
        "created_at",
        "updated_at",
    ),
    {
        "scheduled_start_at": TS,
        "actual_start_at": TS,
        "is_first_session_for_student": BOOL,
        "student_churned_after_session": BOOL,
        "is_first_session": BOOL,
        "is_synthetic": BOOL,
        **_STAMPS,
    },
    insert_only=("is_first_session",),
)
TRANSCRIPTS = TableSpec(
    "session_transcripts",
    "session_id",
    ("session_id", "turns", "raw_text", "turn_count", "content_hash", "created_at", "updated_at"),
    {"turns": JSON, **_STAMPS},
)


def _sqlite_value(kind: str | None, value: Any) -> Any:
    if value is None or kind is None:
        return value
    if kind == TS:
        assert isinstance(value, datetime)
        return sqlite_timestamp(value)
    if kind == DATE:
        assert isinstance(value, date)
        return value.isoformat()
    if kind == JSON:
        return json.dumps(value)
    if kind == BOOL:
        return int(bool(value))
    return value


def _pg_value(kind: str | None, value: Any) -> Any:
    if value is not None and kind == JSON:
        return json.dumps(value)
    return value


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


def upsert_rows(
    conn: Connection, spec: TableSpec, batches: Iterable[Sequence[tuple[Any, ...]]]
) -> int:
    """Upsert every row of every batch inside the caller's transaction; rows changed.

    On Postgres large inputs go through COPY into a temporary table and one
    INSERT … SELECT … ON CONFLICT, which is several times faster than executemany.
    """
    dialect = conn.dialect.name
    kinds = [spec.kinds.get(c) for c in spec.columns]
    changed = 0
    if dialect == "sqlite":
        sql = _upsert_sql(spec, dialect)
        for batch in batches:
            rows = [
                tuple(_sqlite_value(k, v) for k, v in zip(kinds, row, strict=True)) for row in batch
            ]
            if rows:
                changed += max(conn.exec_driver_sql(sql, rows).rowcount, 0)
        return changed
    return _pg_upsert(conn, spec, kinds, batches)


_temp_counter = 0


def _pg_upsert(
    conn: Connection,
    spec: TableSpec,
    kinds: list[str | None],
    batches: Iterable[Sequence[tuple[Any, ...]]],
) -> int:
    global _temp_counter
    iterator = iter(batches)
    first = next(iterator, None)
    if not first:
        return 0
    second = next(iterator, None)
    if second is None and len(first) <= 50:
        rows = [tuple(_pg_value(k, v) for k, v in zip(kinds, row, strict=True)) for row in first]
        return max(conn.exec_driver_sql(_upsert_sql(spec, "postgresql"), rows).rowcount, 0)
    _temp_counter += 1
    temp = f"_import_{spec.table}_{_temp_counter}"
    conn.execute(
        text(f"CREATE TEMP TABLE {temp} (LIKE {spec.table} INCLUDING DEFAULTS) ON COMMIT DROP")
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cur,
        cur.copy(f"COPY {temp} ({', '.join(spec.columns)}) FROM STDIN") as copy,
    ):
        for batch in [first] + ([second] if second is not None else []):
            for row in batch:
                copy.write_row([_pg_value(k, v) for k, v in zip(kinds, row, strict=True)])
        for batch in iterator:
            for row in batch:
                copy.write_row([_pg_value(k, v) for k, v in zip(kinds, row, strict=True)])
    result = conn.exec_driver_sql(_upsert_sql(spec, "postgresql", source=temp))
    conn.execute(text(f"DROP TABLE {temp}"))
    return max(result.rowcount, 0)
