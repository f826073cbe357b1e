"""Column lists taken from the models' tables: a writer that has no value for a model
column is refused when it is built, not half-way through a load."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect

from tutorscore.db.models import Tutor, TutoringSession
from tutorscore.ingest import _upsert
from tutorscore.ingest.synthetic import _layout

SESSION_HEADER = "session_id,tutor_id,student_id,subject,scheduled_start_at,status\n"


def _schema(engine: Engine) -> tuple[set[str], list[tuple[str | None, str]]]:
    insp = inspect(engine)
    fks = sorted((fk["name"], fk["referred_table"]) for fk in insp.get_foreign_keys("sessions"))
    return {ix["name"] or "" for ix in insp.get_indexes("sessions")}, fks


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
