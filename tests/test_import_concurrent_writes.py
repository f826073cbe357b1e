"""Import summaries count what the import itself wrote, even while the API writes too."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import Student, Tutor, TutoringSession
from tutorscore.ingest.importer import import_bundle

HEADER = "session_id,tutor_id,student_id,subject,scheduled_start_at,status\n"


def _bundle(directory: Path, sessions: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tutors.csv").write_text("tutor_id,name,subjects\nT1,Ada,Math\n")
    (directory / "students.csv").write_text("student_id\nS1\n")
    t0 = datetime(2026, 1, 5, 15, tzinfo=UTC)
    rows = "".join(
        f"X{i},T1,S1,Math,{(t0 + timedelta(hours=i)).isoformat()},completed\n"
        for i in range(sessions)
    )
    (directory / "sessions.csv").write_text(HEADER + rows)
    return directory


@pytest.mark.parametrize("sessions", [3, 120])  # Postgres: one-row upserts, then COPY
def test_a_session_written_by_someone_else_mid_import_is_not_counted(
    engine: Engine, tmp_path: Path, sessions: int
) -> None:
    with transaction(engine) as s:
        s.add_all([Tutor(tutor_id="TC", name="Concurrent"), Student(student_id="SC")])
    other = make_engine(engine.url.render_as_string(hide_password=False))
    writers: list[threading.Thread] = []

    def write_one_session() -> None:
        with transaction(other) as s:
            s.add(
                TutoringSession(
                    session_id="API1", tutor_id="TC", student_id="SC", subject="Math",
                    scheduled_start_at=datetime(2026, 2, 1, tzinfo=UTC), status="scheduled",
                )
            )  # fmt: skip

    def progress(what: str, _done: int, _total: int) -> None:
        if what.startswith("writing sessions") and not writers:
            writer = threading.Thread(target=write_one_session)
            writers.append(writer)
            writer.start()
            if engine.dialect.name == "postgresql":
                writer.join(timeout=30)  # committed while the import runs
            # SQLite: the import holds the write lock; the writer waits for its commit

    try:
        report = import_bundle(engine, [_bundle(tmp_path, sessions)], progress=progress)
        for writer in writers:
            writer.join(timeout=60)
    finally:
        other.dispose()
    assert writers, "the import never reported writing sessions"
    summary = report.summary["sessions"]
    assert (summary.rows, summary.created, summary.updated, summary.unchanged) == (
        sessions,
        sessions,
        0,
        0,
    )
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM sessions")).scalar_one()
    assert total == sessions + 1  # the other writer's session is there too

    # the same bundle again, with one session changed: 1 updated, the rest unchanged
    csv = tmp_path / "sessions.csv"
    csv.write_text(csv.read_text().replace("X0,T1,S1,Math", "X0,T1,S1,Physics"))
    again = import_bundle(engine, [tmp_path]).summary["sessions"]
    assert (again.created, again.updated, again.unchanged) == (0, 1, sessions - 1)
