"""One bulk loader for seed and import, and column lists taken from the models' tables.

On SQLite and Postgres: the importer's bulk path (secondary indexes, and on Postgres
foreign keys, dropped and rebuilt) leaves the schema as it was and the constraints in
force; the loader's SQLite settings are set for the write and restored; a writer that
has no value for a model column is refused when it is built, not half-way through a load.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import IntegrityError

from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Tutor, TutoringSession
from tutorscore.ingest import _upsert
from tutorscore.ingest import synthetic as synthetic_module
from tutorscore.ingest.importer import import_bundle
from tutorscore.ingest.synthetic import _layout

SESSION_HEADER = "session_id,tutor_id,student_id,subject,scheduled_start_at,status\n"


def _schema(engine: Engine) -> tuple[set[str], list[tuple[str | None, str]]]:
    insp = inspect(engine)
    fks = sorted((fk["name"], fk["referred_table"]) for fk in insp.get_foreign_keys("sessions"))
    return {ix["name"] or "" for ix in insp.get_indexes("sessions")}, fks


def test_bulk_import_rebuilds_indexes_and_foreign_keys(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _schema(engine)
    assert before[0] and before[1]  # the sessions table has both to lose
    monkeypatch.setattr(_upsert, "BULK_ROWS", 100)
    (tmp_path / "tutors.csv").write_text(
        "tutor_id,name,subjects\n" + "".join(f"T{i},Tutor {i},Math\n" for i in range(20))
    )
    (tmp_path / "students.csv").write_text("student_id\n" + "".join(f"S{i}\n" for i in range(50)))
    (tmp_path / "sessions.csv").write_text(
        SESSION_HEADER
        + "".join(
            f"X{i:04d},T{i % 20},S{i % 50},Math,2026-01-{1 + i % 28:02d}T10:00:00Z,completed\n"
            for i in range(400)
        )
    )
    report = import_bundle(engine, [tmp_path])
    assert report.summary["sessions"].created == 400
    assert _schema(engine) == before
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(TutoringSession)) == 400
    with pytest.raises(IntegrityError), transaction(engine) as s:
        s.add(
            TutoringSession(
                session_id="bad", tutor_id="nobody", student_id="S1", subject="Math",
                scheduled_start_at=utcnow(), status="scheduled",
            )
        )  # fmt: skip


def test_bulk_cache_is_set_for_the_write_and_restored(engine: Engine) -> None:
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            with _upsert.bulk_cache(conn):  # nothing to set on Postgres
                assert conn.exec_driver_sql("SELECT 1").scalar() == 1
            return
        before = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        with _upsert.bulk_cache(conn):
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -256 * 1024
            assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2  # MEMORY
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == before
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 0


def test_seed_uses_the_importers_loader() -> None:
    assert vars(synthetic_module)["bulk_cache"] is _upsert.bulk_cache
    assert vars(synthetic_module)["indexes_dropped"] is _upsert.indexes_dropped


def test_column_lists_are_the_models() -> None:
    for spec, model in [
        (_upsert.TUTORS, Tutor),
        (_upsert.SESSIONS, TutoringSession),
    ]:
        assert spec.columns == tuple(c.name for c in model.__table__.columns)
    assert _upsert.SESSIONS.kinds["scheduled_start_at"] == _upsert.TS
    assert _upsert.TUTORS.kinds["subjects"] == _upsert.JSON
    assert _upsert.TUTORS.kinds["hire_date"] == _upsert.DATE
    assert "name" not in _upsert.TUTORS.kinds


def test_a_writer_without_a_value_for_a_column_is_refused() -> None:
    names = [c for c in _upsert.TUTORS.columns if c != "timezone"]
    with pytest.raises(ValueError, match="tutors: no value for column"):
        _upsert.row_builder(_upsert.TUTORS, names)
    build = _upsert.row_builder(_upsert.TUTORS, list(reversed(_upsert.TUTORS.columns)))
    values = tuple(f"v-{c}" for c in reversed(_upsert.TUTORS.columns))
    assert build(values) == tuple(f"v-{c}" for c in _upsert.TUTORS.columns)
    with pytest.raises(
        ValueError, match="tutors: the seed writes no value for column years_experience"
    ):
        _layout(Tutor, ("tutor_id", "name", "subjects", "stamp"), {"created_at": "stamp"})
