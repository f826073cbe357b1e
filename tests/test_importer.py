"""`tutorscore import`: every rule of docs/data-format.md "Import rules", on SQLite and Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tutorscore.db.engine import transaction
from tutorscore.db.models import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.errors import UserError, ValidationFailed
from tutorscore.ingest.first_sessions import derive_first_sessions
from tutorscore.ingest.importer import (
    ImportFailed,
    ImportReport,
    import_bundle,
    upsert_session_record,
    validate_session_record,
)

TUTORS = (
    "tutor_id,name,subjects,years_experience,timezone,hire_date\n"
    "T1,Ada,SAT Math;Chemistry,4,America/New_York,2024-01-15\n"
    "T2,Bob,Physics,,,\n"
)
STUDENTS = "student_id,grade_level,segment\nS1,11,SAT\nS2,,\n"
SESSION_HEADER = (
    "session_id,tutor_id,student_id,subject,scheduled_start_at,actual_start_at,"
    "duration_minutes,status,no_show_by,reschedule_initiator,is_first_session_for_student,"
    "student_rating,student_feedback\n"
)
SESSIONS = SESSION_HEADER + (
    "X1,T1,S1,SAT Math,2026-01-05T15:00:00Z,2026-01-05T15:02:00Z,55,completed,,,,5,Great\n"
    "X2,T1,S1,SAT Math,2026-01-12T10:00:00-05:00,,0,no_show,,,,,\n"
    "X3,T2,S2,Physics,2026-01-06T15:00:00+01:00,,,rescheduled,,tutor,,,\n"
)
GOOD_SESSION = "X9,T1,S1,SAT Math,2026-02-01T10:00:00Z,,,scheduled,,,,,\n"


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def bundle(directory: Path, **files: str | bytes) -> Path:
    """Write the default bundle into `directory`; `files` (by file name) override or add."""
    directory.mkdir(parents=True, exist_ok=True)
    contents: dict[str, str | bytes] = {
        "tutors.csv": TUTORS,
        "students.csv": STUDENTS,
        "sessions.csv": SESSIONS,
        **files,
    }
    for name, content in contents.items():
        write(directory, name, content)
    return directory


def errors_of(engine: Engine, *paths: Path) -> list[str]:
    with pytest.raises(ImportFailed) as caught:
        import_bundle(engine, list(paths))
    return caught.value.details  # type: ignore[no-any-return]


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())
            for table in ("tutors", "students", "sessions", "session_transcripts")
        }


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            table: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
            for table in ("tutors", "students", "sessions", "session_transcripts")
        }


def test_imports_a_directory_in_dependency_order(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path)
    # Named backwards on purpose: tutors and students still load before sessions.
    report = import_bundle(
        engine, [tmp_path / "sessions.csv", tmp_path / "students.csv", tmp_path / "tutors.csv"]
    )
    assert [f.kind for f in report.files] == ["tutors", "students", "sessions"]
    assert {k: (s.rows, s.created) for k, s in report.summary.items()} == {
        "tutors": (2, 2),
        "students": (2, 2),
        "sessions": (3, 3),
    }
    with transaction(engine) as s:
        ada = s.get(Tutor, "T1")
        assert ada is not None and ada.subjects == ["SAT Math", "Chemistry"]
        assert ada.years_experience == 4 and ada.timezone == "America/New_York"
        assert str(ada.hire_date) == "2024-01-15" and ada.is_synthetic is False
        x1, x2, x3 = (s.get(TutoringSession, i) for i in ("X1", "X2", "X3"))
        assert x1 is not None and x2 is not None and x3 is not None
        assert x1.actual_start_at == datetime(2026, 1, 5, 15, 2, tzinfo=UTC)
        assert x2.scheduled_start_at == datetime(2026, 1, 12, 15, 0, tzinfo=UTC)
        assert x2.no_show_by == "tutor"  # null means tutor
        assert x3.reschedule_initiator == "tutor" and x3.duration_minutes is None
        assert x1.student_feedback == "Great" and x1.student_rating == 5
        student = s.get(Student, "S2")
        assert student is not None and student.grade_level is None and student.segment is None


def test_jsonl_files_take_native_json_values(engine: Engine, tmp_path: Path) -> None:
    write(
        tmp_path,
        "tutors.jsonl",
        json.dumps(
            {"tutor_id": "T1", "name": "Ada", "subjects": ["AP Biology"], "years_experience": 3}
        )
        + "\n",
    )
    write(tmp_path, "students.jsonl", '{"student_id": "S1", "grade_level": "9"}\n\n')
    write(
        tmp_path,
        "sessions.jsonl",
        json.dumps(
            {
                "session_id": "X1",
                "tutor_id": "T1",
                "student_id": "S1",
                "subject": "AP Biology",
                "scheduled_start_at": "2026-01-05T15:00:00+00:00",
                "status": "completed",
                "is_first_session_for_student": "YES",
                "student_rating": 4,
                "student_churned_after_session": False,
            }
        )
        + "\n",
    )
    import_bundle(engine, [tmp_path])
    with transaction(engine) as s:
        x1 = s.get(TutoringSession, "X1")
        assert x1 is not None and x1.is_first_session_for_student is True
        assert x1.student_churned_after_session is False and x1.is_first_session is True
        student = s.get(Student, "S1")
        assert student is not None and student.grade_level == 9


def test_transcripts_in_both_forms_and_reimport_replaces_turns(
    engine: Engine, tmp_path: Path
) -> None:
    turns = [
        {"speaker": "tutor", "text": "Hi!", "start_s": 0},
        {"speaker": "student", "text": "Hello"},
    ]
    lines = [
        json.dumps({"session_id": "X1", "turns": turns}),
        json.dumps({"session_id": "X3", "text": "Tutor: Hi!\nwelcome back\nStudent: Hello"}),
    ]
    bundle(tmp_path, **{"transcripts.jsonl": "\n".join(lines) + "\n"})
    import_bundle(engine, [tmp_path])
    with transaction(engine) as s:
        first = s.get(SessionTranscript, "X1")
        second = s.get(SessionTranscript, "X3")
        assert first is not None and second is not None
        assert first.turns[0] == {"speaker": "tutor", "text": "Hi!", "start_s": 0.0}
        assert second.turns[0]["text"] == "Hi!\nwelcome back" and second.turn_count == 2
        old_hash = first.content_hash
    write(
        tmp_path,
        "transcripts.jsonl",
        json.dumps({"session_id": "X1", "text": "Tutor: Let's start.\nStudent: OK\nTutor: Good."})
        + "\n",
    )
    report = import_bundle(engine, [tmp_path])
    assert report.summary["transcripts"].updated == 1
    with transaction(engine) as s:
        replaced = s.get(SessionTranscript, "X1")
        assert replaced is not None and replaced.turn_count == 3
        assert replaced.content_hash != old_hash
        assert [t["speaker"] for t in replaced.turns] == ["tutor", "student", "tutor"]


def test_reimport_changes_nothing_and_a_changed_row_updates(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path)
    import_bundle(engine, [tmp_path])
    before = snapshot(engine)
    again = import_bundle(engine, [tmp_path])
    assert all(s.created == 0 and s.updated == 0 for s in again.summary.values())
    assert snapshot(engine) == before  # updated_at included
    write(tmp_path, "sessions.csv", SESSIONS.replace(",5,Great", ",3,Okay"))
    changed = import_bundle(engine, [tmp_path])
    assert (changed.summary["sessions"].updated, changed.summary["sessions"].unchanged) == (1, 2)
    with transaction(engine) as s:
        x1 = s.get(TutoringSession, "X1")
        assert x1 is not None and (x1.student_rating, x1.student_feedback) == (3, "Okay")


def test_one_bad_row_leaves_the_database_unchanged(engine: Engine, tmp_path: Path) -> None:
    import_bundle(engine, [bundle(tmp_path / "first")])
    before = snapshot(engine)
    second = tmp_path / "second"
    # Valid new tutors, students and sessions first; one bad rating on the last line.
    bundle(
        second,
        **{
            "tutors.csv": TUTORS + "T3,Cy,Chemistry,,,\n",
            "students.csv": STUDENTS + "S3,9,\n",
            "sessions.csv": SESSIONS.replace("Great", "Changed")
            + GOOD_SESSION
            + "X10,T3,S3,Chemistry,2026-02-01T10:00:00Z,,,completed,,,,6,\n",
        },
    )
    assert errors_of(engine, second) == [
        'sessions.csv:6: student_rating: expected an integer 1-5, got "6"'
    ]
    assert snapshot(engine) == before


BAD_CELLS = [
    ("student_rating", "6", 'student_rating: expected an integer 1-5, got "6"'),
    ("student_rating", "4.5", 'student_rating: expected an integer 1-5, got "4.5"'),
    (
        "scheduled_start_at",
        "2026-01-05T15:00:00",
        "scheduled_start_at: expected an ISO 8601 timestamp with an offset or Z, "
        'got "2026-01-05T15:00:00"',
    ),
    (
        "scheduled_start_at",
        "",
        "scheduled_start_at: expected an ISO 8601 timestamp with an offset or Z, got nothing",
    ),
    (
        "actual_start_at",
        "2026-01-05 15:02",
        "actual_start_at: expected an ISO 8601 timestamp with an offset or Z, "
        'got "2026-01-05 15:02"',
    ),
    (
        "status",
        "done",
        'status: expected one of completed, no_show, rescheduled, cancelled, scheduled, got "done"',
    ),
    ("no_show_by", "parent", 'no_show_by: expected tutor or student, got "parent"'),
    (
        "reschedule_initiator",
        "coach",
        'reschedule_initiator: expected tutor or student, got "coach"',
    ),
    (
        "is_first_session_for_student",
        "maybe",
        'is_first_session_for_student: expected a boolean (true/false/1/0/yes/no), got "maybe"',
    ),
    ("duration_minutes", "-5", 'duration_minutes: expected an integer >= 0, got "-5"'),
    ("session_id", "X" * 65,
     "session_id: expected an id of 1-64 characters without '/' or control characters, got"),
    ("subject", "", "subject: expected a subject of at most 200 characters, got nothing"),
    ("tutor_id", "T404", 'tutor_id: expected a tutor in the bundle or the database, got "T404"'),
    (
        "student_id",
        "S404",
        'student_id: expected a student in the bundle or the database, got "S404"',
    ),
]


@pytest.mark.parametrize(
    ("column", "value", "message"), BAD_CELLS, ids=[f"{c}={v[:12]}" for c, v, _ in BAD_CELLS]
)
def test_bad_session_cells_name_file_line_column(
    engine: Engine, tmp_path: Path, column: str, value: str, message: str
) -> None:
    names = SESSION_HEADER.strip().split(",")
    cells = GOOD_SESSION.strip().split(",")
    cells[names.index(column)] = value
    bundle(tmp_path, **{"sessions.csv": SESSIONS + ",".join(cells) + "\n"})
    errors = errors_of(engine, tmp_path)
    assert len(errors) == 1
    assert errors[0].startswith(f"sessions.csv:5: {message}")
    assert counts(engine)["tutors"] == 0


def test_rescheduled_needs_an_initiator(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path, **{"sessions.csv": SESSIONS.replace(",tutor,", ",,")})
    assert errors_of(engine, tmp_path) == [
        "sessions.csv:4: reschedule_initiator: expected tutor or student when status is "
        "rescheduled, got nothing"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "T3,Cy,,,,\n",
            "tutors.csv:4: subjects: expected a ;-separated list of subjects, got nothing",
        ),
        ("T3,Cy,Math,-1,,\n", 'tutors.csv:4: years_experience: expected an integer >= 0, got "-1"'),
        ("T3,Cy,Math,,Mars/Olympus,\n", "tutors.csv:4: timezone: expected an IANA time zone"),
        (
            "T3,Cy,Math,,,15/01/2024\n",
            'tutors.csv:4: hire_date: expected a date YYYY-MM-DD, got "15/01/2024"',
        ),
        (
            "T3,,Math,,,\n",
            "tutors.csv:4: name: expected a name of at most 200 characters, got nothing",
        ),
    ],
)
def test_bad_tutor_cells(engine: Engine, tmp_path: Path, content: str, message: str) -> None:
    bundle(tmp_path, **{"tutors.csv": TUTORS + content})
    errors = errors_of(engine, tmp_path)
    assert len(errors) == 1 and errors[0].startswith(message)


def test_bad_student_grade(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path, **{"students.csv": STUDENTS + "S3,0,\n"})
    assert errors_of(engine, tmp_path) == [
        'students.csv:4: grade_level: expected an integer 1-16, got "0"'
    ]


def test_references_may_point_into_the_database(engine: Engine, tmp_path: Path) -> None:
    people = tmp_path / "people"
    people.mkdir()
    write(people, "tutors.csv", TUTORS)
    write(people, "students.csv", STUDENTS)
    import_bundle(engine, [people])
    only_sessions = write(tmp_path, "sessions.csv", SESSIONS)
    report = import_bundle(engine, [only_sessions])
    assert report.summary["sessions"].created == 3
    write(
        tmp_path,
        "transcripts.jsonl",
        '{"session_id": "X2", "text": "Tutor: hello?"}\n'
        '{"session_id": "NOPE", "text": "Tutor: hi"}\n',
    )
    assert errors_of(engine, tmp_path / "transcripts.jsonl") == [
        "transcripts.jsonl:2: session_id: expected a session in the bundle or the database, "
        'got "NOPE"'
    ]


def test_duplicate_id_is_reported_at_its_second_occurrence(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path, **{"sessions.csv": SESSIONS + SESSIONS.splitlines()[1] + "\n"})
    write(tmp_path, "students.jsonl", '{"student_id": "S1"}\n')
    assert errors_of(engine, tmp_path) == [
        'students.jsonl:1: student_id: expected a unique id, got "S1" again (first on line 2)',
        'sessions.csv:5: session_id: expected a unique id, got "X1" again (first on line 2)',
    ]


def test_unknown_columns_are_warned_once_each(engine: Engine, tmp_path: Path) -> None:
    bundle(
        tmp_path,
        **{"tutors.csv": "tutor_id,name,subjects,shoe_size\nT1,Ada,Math,9\nT2,Bob,Physics,10\n"},
    )
    write(tmp_path, "students.csv", "")
    (tmp_path / "students.csv").unlink()
    write(
        tmp_path,
        "students.jsonl",
        '{"student_id": "S1", "mood": "ok"}\n{"student_id": "S2", "mood": "fine", "pet": "cat"}\n',
    )
    report = import_bundle(engine, [tmp_path])
    assert report.warnings == [
        'tutors.csv:1: ignoring unknown column "shoe_size"',
        'students.jsonl:1: ignoring unknown field "mood"',
        'students.jsonl:2: ignoring unknown field "pet"',
    ]
    assert counts(engine)["sessions"] == 3


def test_bom_and_crlf_are_accepted(engine: Engine, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "tutors.csv": b"\xef\xbb\xbf" + TUTORS.replace("\n", "\r\n").encode(),
        "students.csv": STUDENTS.replace("\n", "\r\n"),
        "sessions.csv": b"\xef\xbb\xbf" + SESSIONS.replace("\n", "\r\n").encode(),
    }
    bundle(tmp_path, **files)
    write(
        tmp_path,
        "transcripts.jsonl",
        b'\xef\xbb\xbf{"session_id": "X1", "text": "Tutor: hi\\r\\nStudent: yo"}\r\n',
    )
    report = import_bundle(engine, [tmp_path])
    assert report.summary["sessions"].created == 3
    with transaction(engine) as s:
        t1 = s.get(Tutor, "T1")
        assert t1 is not None and t1.hire_date is not None  # last column: no stray \r
        transcript = s.get(SessionTranscript, "X1")
        assert transcript is not None and transcript.turn_count == 2


@pytest.mark.parametrize(
    ("content", "got"),
    [
        ("student_id,segment\nS1,Élève\n".encode("latin-1"), "another encoding"),
        ("student_id\nS1\n".encode("utf-16"), "UTF-16"),
    ],
)
def test_other_encodings_are_an_error_at_line_1(
    engine: Engine, tmp_path: Path, content: bytes, got: str
) -> None:
    bundle(tmp_path, **{"students.csv": content})
    errors = errors_of(engine, tmp_path)
    assert errors[0].startswith("students.csv:1: expected UTF-8 text, got ")
    assert got in errors[0]
    # The broken students file does not flood the run with reference errors.
    assert len(errors) == 1


def test_multiline_record_is_reported_at_its_first_line(engine: Engine, tmp_path: Path) -> None:
    sessions = SESSION_HEADER + (
        'X1,T1,S1,SAT Math,2026-01-05T15:00:00Z,,,completed,,,,7,"line one\nline two\n'
        'line three"\n'
        "X2,T1,S1,SAT Math,2026-01-05T15:00:00Z,,,completed,,,,9,\n"
    )
    bundle(tmp_path, **{"sessions.csv": sessions})
    assert errors_of(engine, tmp_path) == [
        'sessions.csv:2: student_rating: expected an integer 1-5, got "7"',
        'sessions.csv:5: student_rating: expected an integer 1-5, got "9"',
    ]


def test_csv_header_rules(engine: Engine, tmp_path: Path) -> None:
    bundle(
        tmp_path,
        **{
            "tutors.csv": "T1,Ada,Math\n",
            "students.csv": "student_id,segment\n",
            "sessions.csv": "session_id,tutor_id\n",
        },
    )
    write(tmp_path, "transcripts.jsonl", "")
    errors = errors_of(engine, tmp_path)
    assert errors[0] == (
        "tutors.csv:1: expected a header row naming the columns (tutor_id, name, subjects), "
        'got "T1,Ada,Math"'
    )
    assert errors[1:] == [
        f"sessions.csv:1: header: expected a column named {name}, got no such column"
        for name in ("student_id", "subject", "scheduled_start_at", "status")
    ]


def test_header_only_csv_and_empty_jsonl_hold_zero_rows(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path, **{"sessions.csv": SESSION_HEADER})
    write(tmp_path, "transcripts.jsonl", "")
    report = import_bundle(engine, [tmp_path])
    assert report.summary["sessions"].rows == 0 and report.summary["transcripts"].rows == 0
    assert counts(engine)["tutors"] == 2


def test_empty_csv_has_no_header(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path, **{"students.csv": ""})
    assert errors_of(engine, tmp_path)[0].startswith(
        "students.csv:1: expected a header row naming the columns (student_id), got an empty file"
    )


def test_wrong_field_count_and_bad_json(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path, **{"students.csv": STUDENTS + "S3,9\n" + "S4,9,AP,extra\n"})
    write(
        tmp_path,
        "transcripts.jsonl",
        '{"session_id": "X1", "text": "Tutor: hi"}\n'
        "{oops\n[1, 2]\n"
        '{"session_id": "X2"}\n'
        '{"session_id": "X3", "turns": [], "text": "x"}\n',
    )
    assert errors_of(engine, tmp_path) == [
        "students.csv:4: expected 3 fields as in the header, got 2",
        "students.csv:5: expected 3 fields as in the header, got 4",
        "transcripts.jsonl:2: expected a JSON object, got invalid JSON "
        "(Expecting property name enclosed in double quotes at column 2)",
        "transcripts.jsonl:3: expected a JSON object, got [1, 2]",
        "transcripts.jsonl:4: turns: expected a list of turns or a text field, got nothing",
        "transcripts.jsonl:5: turns: expected either turns or text, got both",
    ]


def test_fields_of_several_megabytes_are_valid(engine: Engine, tmp_path: Path) -> None:
    feedback = "word " * 800_000  # 4 MB
    sessions = SESSIONS + f'X9,T1,S1,SAT Math,2026-02-01T10:00:00Z,,,completed,,,,5,"{feedback}"\n'
    bundle(tmp_path, **{"sessions.csv": sessions})
    long_turn = "explain " * 400_000
    write(
        tmp_path,
        "transcripts.jsonl",
        json.dumps({"session_id": "X9", "turns": [{"speaker": "tutor", "text": long_turn}]}) + "\n",
    )
    import_bundle(engine, [tmp_path])
    with transaction(engine) as s:
        x9 = s.get(TutoringSession, "X9")
        assert x9 is not None and x9.student_feedback == feedback
        transcript = s.get(SessionTranscript, "X9")
        assert transcript is not None and transcript.turns[0]["text"] == long_turn


def test_errors_from_all_files_are_capped_at_100_then_counted(
    engine: Engine, tmp_path: Path
) -> None:
    bad_students = "".join(f"B{i},99,\n" for i in range(30))
    bad_sessions = "".join(
        f"Y{i},T1,S1,SAT Math,2026-01-05T15:00:00Z,,,completed,,,,0,\n" for i in range(120)
    )
    bundle(
        tmp_path,
        **{"students.csv": STUDENTS + bad_students, "sessions.csv": SESSIONS + bad_sessions},
    )
    with pytest.raises(ImportFailed) as caught:
        import_bundle(engine, [tmp_path])
    failed = caught.value
    assert len(failed.errors) == 100 and failed.more == 50
    assert failed.errors[0] == 'students.csv:4: grade_level: expected an integer 1-16, got "99"'
    assert failed.errors[30].startswith("sessions.csv:5: student_rating:")
    assert failed.details[-1] == "... and 50 more errors"
    assert "150 errors" in failed.message


def test_missing_path_or_empty_directory_is_a_user_error(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file or directory"):
        import_bundle(engine, [tmp_path / "nope"])
    write(tmp_path, "readme.txt", "hello")
    with pytest.raises(UserError, match="holds none of"):
        import_bundle(engine, [tmp_path])
    with pytest.raises(UserError, match="expected a file named"):
        import_bundle(engine, [tmp_path / "readme.txt"])


def test_dry_run_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    bundle(tmp_path)
    report: ImportReport = import_bundle(engine, [tmp_path], dry_run=True)
    assert report.summary["sessions"].rows == 3
    assert counts(engine) == {"tutors": 0, "students": 0, "sessions": 0, "session_transcripts": 0}


def _first_flags(engine: Engine) -> dict[str, bool]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT session_id, is_first_session FROM sessions"))
        return {r[0]: bool(r[1]) for r in rows}


def test_first_session_is_derived_when_not_given(engine: Engine, tmp_path: Path) -> None:
    sessions = SESSION_HEADER + (
        # S1 with T1: a no-show first, then two completed; the earliest completed is first.
        "A,T1,S1,SAT Math,2026-01-01T10:00:00Z,,,no_show,student,,,,\n"
        "B,T1,S1,SAT Math,2026-01-08T10:00:00Z,,,completed,,,,,\n"
        "C,T1,S1,SAT Math,2026-01-03T10:00:00Z,,,completed,,,,,\n"
        # S2 with T1: the given flag wins over the derivation.
        "D,T1,S2,SAT Math,2026-01-02T10:00:00Z,,,completed,,,false,,\n"
        "E,T1,S2,SAT Math,2026-01-09T10:00:00Z,,,completed,,,true,,\n"
        # S1 with T2: a different pair has its own first session.
        "F,T2,S1,Physics,2026-01-09T10:00:00Z,,,completed,,,,,\n"
    )
    bundle(tmp_path, **{"sessions.csv": sessions})
    import_bundle(engine, [tmp_path])
    assert _first_flags(engine) == {
        "A": False,
        "B": False,
        "C": True,
        "D": False,
        "E": True,
        "F": True,
    }
    # An earlier completed session arriving later moves the flag, for that pair only.
    write(
        tmp_path,
        "sessions.csv",
        SESSION_HEADER + "G,T1,S1,SAT Math,2025-12-20T10:00:00Z,,,completed,,,,,\n",
    )
    import_bundle(engine, [tmp_path / "sessions.csv"])
    flags = _first_flags(engine)
    assert flags["G"] is True and flags["C"] is False and flags["F"] is True
    # Full recompute (pairs=None) agrees with the incremental one.
    with engine.begin() as conn:
        conn.execute(text("UPDATE sessions SET is_first_session = FALSE"))
    with transaction(engine) as s:
        derive_first_sessions(s, None)
    assert _first_flags(engine) == flags


def test_session_moved_to_another_pair_rederives_the_old_pair(
    engine: Engine, tmp_path: Path
) -> None:
    sessions = SESSION_HEADER + (
        "A,T1,S1,SAT Math,2026-01-01T10:00:00Z,,,completed,,,,,\n"
        "B,T1,S1,SAT Math,2026-01-08T10:00:00Z,,,completed,,,,,\n"
    )
    bundle(tmp_path, **{"sessions.csv": sessions})
    import_bundle(engine, [tmp_path])
    write(
        tmp_path,
        "sessions.csv",
        SESSION_HEADER + "A,T2,S1,Physics,2026-01-01T10:00:00Z,,,completed,,,,,\n",
    )
    import_bundle(engine, [tmp_path / "sessions.csv"])
    assert _first_flags(engine) == {"A": True, "B": True}


RECORD = {
    "session_id": "API1",
    "tutor_id": "T1",
    "student_id": "S1",
    "subject": "SAT Math",
    "scheduled_start_at": "2026-03-01T10:00:00Z",
    "status": "completed",
    "student_rating": 5,
}


def test_api_record_validation_uses_the_importer_messages() -> None:
    clean, errors = validate_session_record(
        {**RECORD, "student_rating": "6", "scheduled_start_at": "2026-03-01T10:00"},
        where="request body",
    )
    assert clean is None
    assert errors == [
        "request body: scheduled_start_at: expected an ISO 8601 timestamp with an offset or Z, "
        'got "2026-03-01T10:00"',
        'request body: student_rating: expected an integer 1-5, got "6"',
    ]
    _, errors = validate_session_record(
        {**RECORD, "turns": [{"speaker": "coach", "text": "x"}]}, where="request body"
    )
    assert errors == [
        "request body: turns: turn 0: speaker: expected 'tutor' or 'student', got 'coach'"
    ]


def test_api_record_upsert_creates_then_updates(engine: Engine, tmp_path: Path) -> None:
    write(tmp_path, "tutors.csv", TUTORS)
    write(tmp_path, "students.csv", STUDENTS)
    import_bundle(engine, [tmp_path])
    clean, errors = validate_session_record(
        {**RECORD, "text": "Tutor: Hi\nStudent: Hello"}, where="request body"
    )
    assert clean is not None and errors == []
    with transaction(engine) as s:
        assert upsert_session_record(s, clean) is True
    clean2, _ = validate_session_record({**RECORD, "student_rating": 2}, where="request body")
    assert clean2 is not None
    with transaction(engine) as s:
        assert upsert_session_record(s, clean2) is False
    with transaction(engine) as s:
        row = s.get(TutoringSession, "API1")
        assert row is not None and row.student_rating == 2 and row.is_first_session is True
        transcript = s.get(SessionTranscript, "API1")
        assert transcript is not None and transcript.turn_count == 2
    clean3, _ = validate_session_record({**RECORD, "tutor_id": "T404"}, where="request body")
    assert clean3 is not None
    with pytest.raises(ValidationFailed) as caught, transaction(engine) as s:
        upsert_session_record(s, clean3)
    assert caught.value.details == [
        'request body: tutor_id: expected a tutor that exists, got "T404"'
    ]


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "tutorscore", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_exit_codes(engine: Engine, db_url: str, tmp_path: Path) -> None:
    transcript = '{"session_id": "X1", "text": "Tutor: Hi!\\nStudent: Hello"}\n'
    good = bundle(tmp_path / "good", **{"transcripts.jsonl": transcript})
    ok = _cli(db_url, "import", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "sessions" in ok.stdout
    with engine.connect() as conn:  # the follow-up: evaluation queued, metrics computed
        jobs = conn.execute(text("SELECT session_id FROM jobs")).scalars().all()
        tutors_with_metrics = conn.execute(
            text("SELECT COUNT(DISTINCT tutor_id) FROM tutor_metrics")
        ).scalar_one()
        tutors = conn.execute(text("SELECT COUNT(*) FROM tutors")).scalar_one()
    assert jobs == ["X1"]
    assert tutors_with_metrics == tutors > 0
    bad = tmp_path / "bad"
    bundle(bad, **{"students.csv": STUDENTS + "S3,77,\n"})
    failed = _cli(db_url, "import", str(bad))
    assert failed.returncode == 1
    assert 'students.csv:4: grade_level: expected an integer 1-16, got "77"' in failed.stderr
    assert "Traceback" not in failed.stderr
    missing = _cli(db_url, "import", str(tmp_path / "missing"))
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr
    assert counts(engine)["sessions"] == 3


def test_session_row_selectable_after_import(engine: Engine, tmp_path: Path) -> None:
    """Rows written by raw SQL read back through the ORM types on both backends."""
    bundle(tmp_path)
    import_bundle(engine, [tmp_path])
    with transaction(engine) as s:
        rows = s.scalars(select(TutoringSession).order_by(TutoringSession.session_id)).all()
        assert [r.session_id for r in rows] == ["X1", "X2", "X3"]
        assert all(r.created_at.tzinfo is not None for r in rows)


def test_bulk_path_is_idempotent_and_updates(engine: Engine, tmp_path: Path) -> None:
    """Enough rows for several batches (executemany chunks; COPY on Postgres)."""
    tutors = "tutor_id,name,subjects\n" + "".join(f"T{i},Tutor {i},Math\n" for i in range(60))
    students = "student_id\n" + "".join(f"S{i}\n" for i in range(300))
    sessions = SESSION_HEADER + "".join(
        f"X{i},T{i % 60},S{i % 300},Math,2026-01-{1 + i % 28:02d}T10:00:00Z,,,completed,,,,"
        f"{1 + i % 5},\n"
        for i in range(2500)
    )
    bundle(tmp_path, **{"tutors.csv": tutors, "students.csv": students, "sessions.csv": sessions})
    first = import_bundle(engine, [tmp_path])
    assert first.summary["sessions"].created == 2500
    again = import_bundle(engine, [tmp_path])
    assert again.summary["sessions"].unchanged == 2500
    write(tmp_path, "sessions.csv", sessions.replace("X7,T7,S7,Math", "X7,T7,S7,Physics"))
    changed = import_bundle(engine, [tmp_path])
    assert (changed.summary["sessions"].created, changed.summary["sessions"].updated) == (0, 1)
    with engine.connect() as conn:
        firsts = conn.execute(
            text("SELECT COUNT(*) FROM sessions WHERE is_first_session = :t"), {"t": True}
        ).scalar_one()
    assert firsts == 300  # one per (tutor, student) pair: i % 60 and i % 300 give 300 pairs
