from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, inspect, select

from tutorscore.db.engine import transaction
from tutorscore.db.migrate import current_revision
from tutorscore.db.models import Student, Tutor, TutoringSession


def test_migrations_create_every_table_and_index(engine: Engine) -> None:
    assert current_revision(engine) == "0001"
    insp = inspect(engine)
    tables = set(insp.get_table_names())
    for name in (
        "tutors",
        "students",
        "sessions",
        "session_transcripts",
        "tutor_metrics",
        "session_evaluations",
        "jobs",
        "llm_calls",
        "interventions",
        "users",
        "api_tokens",
        "audit_log",
    ):
        assert name in tables
    indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes("sessions")}
    assert ("tutor_id", "scheduled_start_at") in indexed
    assert ("student_id",) in indexed
    assert ("status",) in indexed


def test_datetimes_round_trip_as_utc(engine: Engine) -> None:
    local = datetime(2026, 11, 24, 10, 30, tzinfo=timezone(timedelta(hours=-5)))
    with transaction(engine) as s:
        s.add(Tutor(tutor_id="T1", name="Ada", subjects=["Chemistry"]))
        s.add(Student(student_id="S1"))
        s.flush()
        s.add(
            TutoringSession(
                session_id="X1",
                tutor_id="T1",
                student_id="S1",
                subject="Chemistry",
                scheduled_start_at=local,
                status="completed",
            )
        )
    with transaction(engine) as s:
        got = s.scalars(select(TutoringSession)).one().scheduled_start_at
    assert got == local
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got == datetime(2026, 11, 24, 15, 30, tzinfo=UTC)


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), transaction(engine) as s:
        s.add(
            TutoringSession(
                session_id="X1",
                tutor_id="nobody",
                student_id="nobody",
                subject="Chemistry",
                scheduled_start_at=datetime.now(UTC),
                status="completed",
            )
        )


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    from sqlalchemy.exc import StatementError

    with pytest.raises(StatementError, match="naive datetime"), transaction(engine) as s:
        s.add(Tutor(tutor_id="T1", name="Ada", subjects=[], created_at=datetime(2026, 1, 1)))
