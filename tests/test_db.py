import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError

from tutorscore.db.engine import transaction
from tutorscore.db.migrate import current_revision, downgrade, head_revision, upgrade
from tutorscore.db.models import Student, Tutor, TutoringSession


def test_migrations_create_every_table_and_index(engine: Engine) -> None:
    assert current_revision(engine) == head_revision() is not None
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
        "analytics_configs",
        "login_failures",
        "reviews",
    ):
        assert name in tables
    indexed = {tuple(ix["column_names"]) for ix in insp.get_indexes("sessions")}
    assert ("tutor_id", "scheduled_start_at") in indexed
    assert ("student_id",) in indexed
    assert ("status",) in indexed


def test_migrations_match_the_models(engine: Engine) -> None:
    """No difference between the migrated schema and the models (autogenerate sees none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from tutorscore.db.models import Base

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_0002_moves_each_run_config_into_analytics_configs(engine: Engine) -> None:
    """An 0001 database with runs keeps every config, once per fingerprint, and back."""
    from tutorscore.db.engine import make_engine
    from tutorscore.testing.databases import temporary_database

    backend = "postgres" if engine.dialect.name == "postgresql" else "sqlite"
    config_a = {"thresholds": {"high_rescheduler_rate": 0.15}}
    config_b = {"thresholds": {"high_rescheduler_rate": 0.05}}
    with temporary_database(backend, label="mig") as url:
        db = make_engine(url)
        downgrade(db, "0001")
        insert = text(
            "INSERT INTO analytics_runs (as_of, kind, started_at, tutors, config_hash, config)"
            " VALUES (:t, 'full', :t, 1, :h, :c)"
        )
        with db.begin() as conn:
            for i, (config_hash, config) in enumerate(
                [("aaa", config_a), ("aaa", config_a), ("bbb", config_b)]
            ):
                when = f"2026-11-2{i} 00:00:00"
                conn.execute(insert, {"t": when, "h": config_hash, "c": json.dumps(config)})
        upgrade(db, "0002")
        assert current_revision(db) == "0002"
        with db.connect() as conn:
            stored: dict[str, Any] = dict(
                conn.execute(text("SELECT config_hash, config FROM analytics_configs")).all()
            )
            hashes = list(conn.scalars(text("SELECT config_hash FROM analytics_runs ORDER BY id")))
        stored = {k: v if isinstance(v, dict) else json.loads(v) for k, v in stored.items()}
        assert stored == {"aaa": config_a, "bbb": config_b}
        assert hashes == ["aaa", "aaa", "bbb"]
        downgrade(db, "0001")
        with db.connect() as conn:
            back = [
                v if isinstance(v, dict) else json.loads(v)
                for v in conn.scalars(text("SELECT config FROM analytics_runs ORDER BY id"))
            ]
        assert back == [config_a, config_a, config_b]
        db.dispose()


def test_0003_moves_the_judge_to_a_column_and_merges_duplicate_queued_jobs(
    engine: Engine,
) -> None:
    """Queued evaluation jobs unique per (session, judge) after 0003; older rows keep
    their judge (from the payload) and duplicates fold into the oldest, most urgent kept."""
    from tutorscore.db.engine import make_engine
    from tutorscore.testing.databases import temporary_database

    backend = "postgres" if engine.dialect.name == "postgresql" else "sqlite"
    with temporary_database(backend, label="mig3") as url:
        db = make_engine(url)
        downgrade(db, "0002")
        insert = text(
            "INSERT INTO jobs (kind, session_id, payload, priority, status, attempts,"
            " max_attempts, run_after, created_at, updated_at)"
            " VALUES (:k, :s, :p, :prio, :st, 0, 5, :t, :t, :t)"
        )
        rows = [
            ("evaluate", "S1", {"judge": "heuristic"}, 20, "queued"),
            ("evaluate", "S1", {"judge": "heuristic"}, 0, "queued"),  # duplicate, more urgent
            ("evaluate", "S1", {"judge": "llm"}, 20, "queued"),
            ("evaluate", "S1", {"judge": "heuristic"}, 20, "done"),
            ("evaluate", "S2", {}, 20, "queued"),  # no judge in the payload: heuristic
            ("batch", None, {"batch_id": "b1"}, 20, "waiting"),
        ]
        with db.begin() as conn:
            for kind, sid, payload, prio, status in rows:
                conn.execute(
                    insert,
                    {
                        "k": kind, "s": sid, "p": json.dumps(payload), "prio": prio,
                        "st": status, "t": "2026-11-20 00:00:00",
                    },
                )  # fmt: skip
        upgrade(db, "0003")
        with db.connect() as conn:
            got = conn.execute(
                text("SELECT id, kind, session_id, judge, priority, status FROM jobs ORDER BY id")
            ).all()
        assert [tuple(r) for r in got] == [
            (1, "evaluate", "S1", "heuristic", 0, "queued"),
            (3, "evaluate", "S1", "llm", 20, "queued"),
            (4, "evaluate", "S1", "heuristic", 20, "done"),
            (5, "evaluate", "S2", "heuristic", 20, "queued"),
            (6, "batch", None, None, 20, "waiting"),
        ]
        with pytest.raises(IntegrityError), db.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO jobs (kind, session_id, judge, payload, priority, status,"
                    " attempts, max_attempts, run_after, created_at, updated_at) VALUES"
                    " ('evaluate', 'S2', 'heuristic', '{}', 20, 'queued', 0, 5, :t, :t, :t)"
                ),
                {"t": "2026-11-20 00:00:00"},
            )
        downgrade(db, "0002")
        with db.connect() as conn:
            assert "judge" not in {c["name"] for c in inspect(conn).get_columns("jobs")}
        db.dispose()


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


def test_0004_reviews_upgrade_and_downgrade(engine: Engine) -> None:
    """0004 adds the reviews table to a 0003 database and takes it away again."""
    from tutorscore.db.engine import make_engine
    from tutorscore.testing.databases import temporary_database

    backend = "postgres" if engine.dialect.name == "postgresql" else "sqlite"
    with temporary_database(backend, label="mig3") as url:
        db = make_engine(url)
        downgrade(db, "0003")
        assert "reviews" not in inspect(db).get_table_names()
        upgrade(db, "0004")
        assert current_revision(db) == "0004"
        insp = inspect(db)
        assert "reviews" in insp.get_table_names()
        uniques = {tuple(u["column_names"]) for u in insp.get_unique_constraints("reviews")}
        assert ("session_id", "reviewer") in uniques
        db.dispose()
