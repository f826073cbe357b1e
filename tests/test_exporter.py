"""`tutorscore export`: the bundle it writes imports back to the same rows (both formats)."""

from __future__ import annotations

import csv
import io
import json
import os
import string
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from tutorscore.db.engine import transaction
from tutorscore.db.models import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.errors import UserError
from tutorscore.ingest._fields import SESSION_COLUMNS, STUDENT_COLUMNS, TUTOR_COLUMNS
from tutorscore.ingest.exporter import export_bundle, format_timestamp
from tutorscore.ingest.importer import import_bundle
from tutorscore.testing.databases import truncate_all

NAMES = {
    "tutors": [c.name for c in TUTOR_COLUMNS],
    "students": [c.name for c in STUDENT_COLUMNS],
    "sessions": [c.name for c in SESSION_COLUMNS],
}
MODELS: dict[str, Any] = {"tutors": Tutor, "students": Student, "sessions": TutoringSession}

identifiers = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=12)
# Free text as people type it: any printable character, leading/trailing spaces trimmed.
words = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters=";"),
    min_size=1,
    max_size=20,
).filter(lambda s: s == s.strip() and s != "")
# Feedback keeps its inner line breaks and quotes.
feedback = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
days = st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def bundles(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    tutor_ids = draw(st.lists(identifiers, min_size=1, max_size=3, unique=True))
    student_ids = draw(st.lists(identifiers, min_size=1, max_size=3, unique=True))
    tutors = [
        {
            "tutor_id": tid,
            "name": draw(words),
            "subjects": draw(st.lists(words, min_size=1, max_size=3, unique=True)),
            "years_experience": draw(maybe(st.integers(0, 60))),
            "timezone": draw(maybe(st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]))),
            "hire_date": draw(maybe(days)),
            "churned_on": draw(maybe(days)),
        }
        for tid in tutor_ids
    ]
    students = [
        {
            "student_id": sid,
            "grade_level": draw(maybe(st.integers(1, 16))),
            "segment": draw(maybe(words)),
        }
        for sid in student_ids
    ]
    sessions = []
    for sid in draw(st.lists(identifiers, max_size=5, unique=True)):
        status = draw(
            st.sampled_from(["completed", "no_show", "rescheduled", "cancelled", "scheduled"])
        )
        no_show_by = draw(maybe(st.sampled_from(["tutor", "student"])))
        sessions.append(
            {
                "session_id": sid,
                "tutor_id": draw(st.sampled_from(tutor_ids)),
                "student_id": draw(st.sampled_from(student_ids)),
                "subject": draw(words),
                "scheduled_start_at": draw(instants),
                "actual_start_at": draw(maybe(instants)),
                "duration_minutes": draw(maybe(st.integers(0, 240))),
                "status": status,
                "no_show_by": "tutor" if status == "no_show" and no_show_by is None else no_show_by,
                "reschedule_initiator": draw(st.sampled_from(["tutor", "student"]))
                if status == "rescheduled"
                else draw(maybe(st.sampled_from(["tutor", "student"]))),
                "rescheduled_from_session_id": draw(maybe(identifiers)),
                "is_first_session_for_student": draw(maybe(st.booleans())),
                "student_rating": draw(maybe(st.integers(1, 5))),
                "student_feedback": draw(maybe(feedback)),
                "student_churned_after_session": draw(maybe(st.booleans())),
            }
        )
    transcripts = [
        {
            "session_id": s["session_id"],
            "turns": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {"speaker": st.sampled_from(["tutor", "student"]), "text": feedback},
                        optional={"start_s": st.floats(0, 5000, allow_nan=False)},
                    ),
                    min_size=1,
                    max_size=3,
                )
            ),
        }
        for s in sessions
        if draw(st.booleans())
    ]
    return {
        "tutors": tutors,
        "students": students,
        "sessions": sessions,
        "transcripts": transcripts,
    }


def _source_cell(value: Any) -> str:
    """How an outside tool might write a cell: offsets as +00:00, booleans as yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


def write_source(directory: Path, data: dict[str, list[dict[str, Any]]], fmt: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for kind in ("tutors", "students", "sessions"):
        path = directory / f"{kind}.{fmt}"
        with path.open("w", encoding="utf-8", newline="") as fh:
            if fmt == "csv":
                writer = csv.writer(fh)
                writer.writerow(NAMES[kind])
                for row in data[kind]:
                    writer.writerow([_source_cell(row[n]) for n in NAMES[kind]])
            else:
                for row in data[kind]:
                    fh.write(
                        json.dumps(
                            {
                                k: v.isoformat() if isinstance(v, datetime | date) else v
                                for k, v in row.items()
                            }
                        )
                        + "\n"
                    )
    with (directory / "transcripts.jsonl").open("w", encoding="utf-8") as fh:
        for record in data["transcripts"]:
            fh.write(json.dumps(record) + "\n")


def database_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """The bundle columns of every row, as the ORM reads them back."""
    out: dict[str, list[dict[str, Any]]] = {}
    with transaction(engine) as s:
        for kind, model in MODELS.items():
            key = getattr(model, NAMES[kind][0])
            out[kind] = [
                {name: getattr(obj, name) for name in NAMES[kind]}
                for obj in s.scalars(select(model).order_by(key))
            ]
        out["transcripts"] = [
            {"session_id": t.session_id, "turns": t.turns}
            for t in s.scalars(select(SessionTranscript).order_by(SessionTranscript.session_id))
        ]
    return out


def _expected(data: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for kind in ("tutors", "students", "sessions", "transcripts"):
        key = "session_id" if kind == "transcripts" else NAMES[kind][0]
        rows = sorted(data[kind], key=lambda r: r[key])
        if kind == "transcripts":
            rows = [
                {
                    "session_id": r["session_id"],
                    "turns": [
                        {**t, "start_s": float(t["start_s"])} if "start_s" in t else t
                        for t in r["turns"]
                    ],
                }
                for r in rows
            ]
        out[kind] = rows
    return out


def _sort_key_safe(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Postgres and SQLite order ids by collation; compare as sets of rows instead."""
    return {
        k: sorted(v, key=lambda r: json.dumps(r, default=str, sort_keys=True))
        for k, v in rows.items()
    }


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=bundles(), fmt=st.sampled_from(["csv", "jsonl"]))
def test_import_export_import_round_trips(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any], fmt: str
) -> None:
    truncate_all(engine)
    source = tmp_path_factory.mktemp("source")
    write_source(source, data, fmt)
    import_bundle(engine, [source])
    imported = database_rows(engine)
    assert _sort_key_safe(imported) == _sort_key_safe(_expected(data))

    exported = tmp_path_factory.mktemp("export")
    export_bundle(engine, exported, fmt=fmt, raw=True)  # raw: what re-imports exactly
    truncate_all(engine)
    import_bundle(engine, [exported])
    assert database_rows(engine) == imported
    again = tmp_path_factory.mktemp("again")
    export_bundle(engine, again, fmt=fmt, raw=True)
    assert _files(again) == _files(exported)


def test_export_writes_the_bundle_format(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_source(
        source,
        {
            "tutors": [
                {
                    "tutor_id": "T1",
                    "name": "Ada",
                    "subjects": ["SAT Math", "Chemistry"],
                    "years_experience": None,
                    "timezone": None,
                    "hire_date": date(2024, 1, 2),
                    "churned_on": None,
                }
            ],
            "students": [{"student_id": "S1", "grade_level": 10, "segment": None}],
            "sessions": [
                {
                    "session_id": "X1",
                    "tutor_id": "T1",
                    "student_id": "S1",
                    "subject": "SAT Math",
                    "scheduled_start_at": datetime(2026, 1, 5, 15, 0, tzinfo=UTC),
                    "actual_start_at": None,
                    "duration_minutes": 50,
                    "status": "completed",
                    "no_show_by": None,
                    "reschedule_initiator": None,
                    "rescheduled_from_session_id": None,
                    "is_first_session_for_student": True,
                    "student_rating": 5,
                    "student_feedback": 'Said "thanks",\nthen left',
                    "student_churned_after_session": None,
                }
            ],
            "transcripts": [{"session_id": "X1", "turns": [{"speaker": "tutor", "text": "Hi"}]}],
        },
        "csv",
    )
    import_bundle(engine, [source])
    out = tmp_path / "out"
    report = export_bundle(engine, out)
    assert report.rows == {"tutors": 1, "students": 1, "sessions": 1, "transcripts": 1}
    assert (out / "tutors.csv").read_bytes().decode() == (
        "tutor_id,name,subjects,years_experience,timezone,hire_date,churned_on\r\n"
        "T1,Ada,SAT Math;Chemistry,,,2024-01-02,\r\n"
    )
    sessions = (out / "sessions.csv").read_bytes().decode()
    assert '2026-01-05T15:00:00Z,,50,completed,,,,true,5,"Said ""thanks"",\nthen left",' in sessions
    assert json.loads((out / "transcripts.jsonl").read_text()) == {
        "session_id": "X1",
        "turns": [{"speaker": "tutor", "text": "Hi"}],
    }
    export_bundle(engine, tmp_path / "out-jsonl", fmt="jsonl")
    line = json.loads((tmp_path / "out-jsonl" / "sessions.jsonl").read_text())
    assert line["scheduled_start_at"] == "2026-01-05T15:00:00Z"
    assert line["is_first_session_for_student"] is True and line["actual_start_at"] is None


def test_format_timestamp_is_utc_with_z() -> None:
    from datetime import timedelta, timezone

    local = datetime(2026, 1, 5, 10, 0, 0, 5, tzinfo=timezone(timedelta(hours=-5)))
    assert format_timestamp(local) == "2026-01-05T15:00:00.000005Z"


def test_export_refuses_a_file_or_an_unknown_format(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a directory"):
        export_bundle(engine, tmp_path / "file")
    with pytest.raises(UserError, match="expected csv or jsonl"):
        export_bundle(engine, tmp_path / "out", fmt="xml")


def test_cli_export(engine: Engine, db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    result = subprocess.run(
        [sys.executable, "-m", "tutorscore", "export", str(tmp_path / "out"), "--format", "jsonl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "sessions.jsonl",
        "students.jsonl",
        "transcripts.jsonl",
        "tutors.jsonl",
    ]


HOSTILE = ["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx",
           "'=already quoted", "plain", "a=b"]  # fmt: skip


def test_csv_export_neutralises_formula_cells_and_raw_round_trips(
    engine: Engine, tmp_path: Path
) -> None:
    from tutorscore.csvsafe import neutralise, restore

    for text in HOSTILE:
        assert restore(neutralise(text)) == text
    tutors = [
        {"tutor_id": f"T{i}", "name": name, "subjects": [name if i % 2 else "Math"],
         "years_experience": i, "timezone": None, "hire_date": None, "churned_on": None}
        for i, name in enumerate(HOSTILE)
    ]  # fmt: skip
    write_source(
        tmp_path / "source",
        {"tutors": tutors, "students": [], "sessions": [], "transcripts": []},
        "csv",
    )
    import_bundle(engine, [tmp_path / "source"])
    before = database_rows(engine)
    export_bundle(engine, tmp_path / "safe")
    with (tmp_path / "safe" / "tutors.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = [r["name"] for r in rows]
    for cell in names + [r["subjects"] for r in rows]:
        assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), cell
    with transaction(engine) as db:
        stored = list(db.scalars(select(Tutor.name)))  # names are stripped on import
    assert sorted(names) == sorted(neutralise(n) for n in stored)
    assert "plain" in names and "a=b" in names and "''=already quoted" in names
    assert {r["years_experience"] for r in rows} == {str(i) for i in range(len(HOSTILE))}
    # --raw writes the values as stored: the import reproduces the database exactly
    export_bundle(engine, tmp_path / "raw", raw=True)
    truncate_all(engine)
    import_bundle(engine, [tmp_path / "raw"])
    assert database_rows(engine) == before


def test_cli_export_and_tutors_csv_neutralise_unless_raw(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import tutorscore.cli.analytics as analytics_cli
    import tutorscore.cli.ingest as ingest_cli
    from tutorscore.cli import app as cli

    monkeypatch.setattr(ingest_cli, "get_engine", lambda: engine)
    monkeypatch.setattr(analytics_cli, "get_engine", lambda: engine)
    tutors = [{"tutor_id": "T1", "name": "=1+1", "subjects": ["@Math"], "years_experience": None,
               "timezone": None, "hire_date": None, "churned_on": None}]  # fmt: skip
    write_source(
        tmp_path / "source",
        {"tutors": tutors, "students": [], "sessions": [], "transcripts": []},
        "csv",
    )
    import_bundle(engine, [tmp_path / "source"])
    runner = CliRunner()
    assert runner.invoke(cli, ["export", str(tmp_path / "a")]).exit_code == 0
    assert "T1,'=1+1,'@Math" in (tmp_path / "a" / "tutors.csv").read_text()
    assert runner.invoke(cli, ["export", str(tmp_path / "b"), "--raw"]).exit_code == 0
    assert "T1,=1+1,@Math" in (tmp_path / "b" / "tutors.csv").read_text()
    result = runner.invoke(cli, ["tutors", "--format", "csv"])
    assert result.exit_code == 0, result.output
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert row["name"] == "'=1+1" and row["subjects"] == "'@Math"
    result = runner.invoke(cli, ["tutors", "--format", "csv", "--raw"])
    row = next(csv.DictReader(io.StringIO(result.stdout)))
    assert row["name"] == "=1+1" and row["subjects"] == "@Math"
