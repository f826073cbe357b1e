"""`tutorscore export`: write the database back as an import bundle (docs/data-format.md).

The output re-imports to the same rows: timestamps in UTC with `Z`, booleans as
true/false, null as an empty cell (CSV) or null (JSONL), subjects `;`-joined in
CSV. Transcripts are written in the `turns` form. CSV text cells that a spreadsheet
would run as formulas are prefixed with `'` (`csvsafe.neutralise`) unless `raw=True`
(`--raw`), which is what re-imports exactly. Rows stream from the database
in id order, so memory stays flat on a million sessions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine, Table, func, select

from tutorscore.csvsafe import neutralise
from tutorscore.db.models import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.errors import UserError
from tutorscore.ingest._fields import SESSION_COLUMNS, STUDENT_COLUMNS, TUTOR_COLUMNS

ProgressCallback = Callable[[str, int, int], None]
_FETCH = 5000

_TABLES: dict[str, tuple[Table, tuple[str, ...]]] = {
    "tutors": (Tutor.__table__, tuple(c.name for c in TUTOR_COLUMNS)),  # type: ignore[dict-item]
    "students": (Student.__table__, tuple(c.name for c in STUDENT_COLUMNS)),  # type: ignore[dict-item]
    "sessions": (TutoringSession.__table__, tuple(c.name for c in SESSION_COLUMNS)),  # type: ignore[dict-item]
}


@dataclass
class ExportReport:
    directory: Path
    fmt: str
    rows: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def format_timestamp(value: datetime) -> str:
    """UTC with `Z`; microseconds only when present."""
    text = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _stream(engine: Engine, table: Table, names: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    key = table.primary_key.columns.values()[0]
    query = select(*(table.c[name] for name in names)).order_by(key)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=_FETCH).execute(query)
        for row in result:
            yield tuple(row)


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def export_bundle(
    engine: Engine,
    directory: str | Path,
    *,
    fmt: str = "csv",
    progress: ProgressCallback | None = None,
    raw: bool = False,
) -> ExportReport:
    """Write tutors, students, sessions (CSV or JSONL) and transcripts.jsonl into `directory`.

    CSV text cells starting with `=`, `+`, `-`, `@`, tab or CR get a leading `'` unless
    `raw` (JSONL is never changed: it is not opened by spreadsheets).
    """
    if fmt not in ("csv", "jsonl"):
        raise UserError(f"--format: expected csv or jsonl, got {fmt!r}")
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UserError(f"{directory}: exists and is not a directory")
    target.mkdir(parents=True, exist_ok=True)
    report = ExportReport(target, fmt)
    for kind, (table, names) in _TABLES.items():
        path = target / f"{kind}.{fmt}"
        total = _count(engine, table)
        with path.open("w", encoding="utf-8", newline="") as fh:
            rows = _stream(engine, table, names)
            written = (
                _write_csv(fh, names, rows, kind, total, progress, raw=raw)
                if fmt == "csv"
                else _write_jsonl(fh, names, rows, kind, total, progress)
            )
        report.rows[kind] = written
        report.files.append(path)
    report.rows["transcripts"] = _write_transcripts(engine, target, progress)
    report.files.append(target / "transcripts.jsonl")
    return report


def _tick(progress: ProgressCallback | None, kind: str, done: int, total: int) -> None:
    if progress is not None and (done % _FETCH == 0 or done == total):
        progress(f"exporting {kind}", done, total)


def _write_csv(
    fh: TextIO,
    names: tuple[str, ...],
    rows: Iterator[tuple[Any, ...]],
    kind: str,
    total: int,
    progress: ProgressCallback | None,
    *,
    raw: bool = False,
) -> int:
    # RFC 4180 CRLF: the writer then quotes any field holding a lone \r as well as \n.
    writer = csv.writer(fh, lineterminator="\r\n")
    writer.writerow(names)
    count = 0
    for row in rows:
        cells = [_csv_cell(v) for v in row]
        if not raw:
            # only text: numbers and dates are written from non-str values
            cells = [
                neutralise(c) if isinstance(v, str | list) else c
                for c, v in zip(cells, row, strict=True)
            ]
        writer.writerow(cells)
        count += 1
        _tick(progress, kind, count, total)
    return count


def _write_jsonl(
    fh: TextIO,
    names: tuple[str, ...],
    rows: Iterator[tuple[Any, ...]],
    kind: str,
    total: int,
    progress: ProgressCallback | None,
) -> int:
    count = 0
    for row in rows:
        record = {name: _json_value(v) for name, v in zip(names, row, strict=True)}
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
        _tick(progress, kind, count, total)
    return count


def _write_transcripts(engine: Engine, target: Path, progress: ProgressCallback | None) -> int:
    table: Table = SessionTranscript.__table__  # type: ignore[assignment]
    total = _count(engine, table)
    count = 0
    with (target / "transcripts.jsonl").open("w", encoding="utf-8", newline="") as fh:
        for session_id, turns in _stream(engine, table, ("session_id", "turns")):
            fh.write(json.dumps({"session_id": session_id, "turns": turns}, ensure_ascii=False))
            fh.write("\n")
            count += 1
            _tick(progress, "transcripts", count, total)
    return count
