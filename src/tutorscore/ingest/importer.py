"""`tutorscore import`: read a bundle (docs/data-format.md), validate all of it, then write it.

Two phases keep the run all-or-nothing without holding a file in memory:

1. validate: stream every file in dependency order (tutors, students, sessions,
   transcripts), parse each cell, collect errors (sorted, capped at 100 plus a
   count), keep the ids seen in sets for duplicate and reference checks, and spool
   the clean rows (already in the driver's types) to a temporary file;
2. write: only when nothing failed, replay the spools into the database in one
   transaction (executemany / COPY in chunks), then derive is_first_session.

`validate_session_record` and `upsert_session_record` give POST /api/sessions the
same rules and messages for one record.
"""

from __future__ import annotations

import codecs
import csv
import json
import marshal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TextIO

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.orm import Session

from tutorscore.db.base import utcnow
from tutorscore.errors import UserError, ValidationFailed
from tutorscore.ingest import _upsert, caption_files
from tutorscore.ingest._fields import (
    SESSION_COLUMNS,
    STUDENT_COLUMNS,
    TRANSCRIPT_ID,
    TUTOR_COLUMNS,
    Column,
    clean_cells,
    field_message,
    render_got,
    session_row_checks,
)
from tutorscore.ingest.first_sessions import FULL_THRESHOLD, derive_first_sessions
from tutorscore.ingest.transcript_format import (
    TranscriptFormatError,
    Turn,
    content_hash,
    parse_text,
    render_text,
    validate_turns,
)

KINDS = ("tutors", "students", "sessions", "transcripts")
FORMATS = {
    "tutors": ("csv", "jsonl"),
    "students": ("csv", "jsonl"),
    "sessions": ("csv", "jsonl"),
    "transcripts": ("jsonl",),
}
COLUMNS: dict[str, tuple[Column, ...]] = {
    "tutors": TUTOR_COLUMNS,
    "students": STUDENT_COLUMNS,
    "sessions": SESSION_COLUMNS,
    "transcripts": (TRANSCRIPT_ID,),
}
TRANSCRIPT_FIELDS = ("session_id", "turns", "text")
MAX_ERRORS = 100
_BATCH = 2000
_PROGRESS_EVERY = 5000
_DB_CHUNK = 500
_MAX_PAIRS = 50_000

# Several-MB feedback or transcript cells are valid (docs/data-format.md).
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

ProgressCallback = Callable[[str, int, int], None]
"""progress(description, done, total): bytes while checking, rows while writing."""


@dataclass(frozen=True)
class BundleFile:
    kind: str
    fmt: str
    path: Path
    label: str


@dataclass
class KindSummary:
    rows: int = 0
    created: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        return self.rows - self.created - self.updated


@dataclass
class ImportReport:
    files: list[BundleFile]
    summary: dict[str, KindSummary]
    warnings: list[str]
    dry_run: bool
    first_sessions_changed: int = 0


class ImportFailed(ValidationFailed):
    """The bundle has errors; nothing was written. `errors` holds the first 100."""

    def __init__(self, errors: list[str], more: int, warnings: list[str]) -> None:
        total = len(errors) + more
        noun = "error" if total == 1 else "errors"
        super().__init__(
            f"import rejected: {total} {noun}; nothing was written",
            details=errors + ([f"... and {more} more errors"] if more else []),
        )
        self.errors = errors
        self.more = more
        self.warnings = warnings


# ---------------------------------------------------------------- finding files


def _kind_of(path: Path, *, strict: bool) -> tuple[str, str] | None:
    name = path.name.lower()
    stem, _, ext = name.rpartition(".")
    for kind in KINDS:
        if ext in FORMATS[kind] and (
            stem == kind or (not strict and stem.startswith(kind) and stem[len(kind)] in "-_.")
        ):
            return kind, ext
    return None


def find_bundle_files(paths: Sequence[str | Path]) -> list[BundleFile]:
    """The known files among `paths` (directories or files), in dependency order."""
    if not paths:
        raise UserError("import: name a bundle directory or files")
    found: list[tuple[str, str, Path]] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise UserError(f"{given}: no such file or directory")
        if path.is_dir():
            inside = [
                (k[0], k[1], child)
                for child in sorted(path.iterdir())
                if child.is_file() and (k := _kind_of(child, strict=True))
            ]
            inside += caption_files.find_in_directory(path, bundle=bool(inside))
            if not inside:
                raise UserError(
                    f"{given}: holds none of tutors.csv/.jsonl, students.csv/.jsonl, "
                    "sessions.csv/.jsonl, transcripts.jsonl, transcripts/"
                )
            found.extend(inside)
        else:
            kind = _kind_of(path, strict=False) or caption_files.kind_of_file(path)
            if kind is None:
                raise UserError(
                    f"{given}: expected a file named tutors, students or sessions (.csv or "
                    ".jsonl), transcripts.jsonl, speakers.csv or <session_id>.vtt/.srt/.txt"
                )
            found.append((kind[0], kind[1], path))
    unique: dict[Path, tuple[str, str, Path]] = {}
    for item in found:
        unique.setdefault(item[2].resolve(), item)
    shown = {p: caption_files.display_name(k, f, p) for k, f, p in unique.values()}
    names = list(shown.values())
    files = [
        BundleFile(kind, fmt, path, shown[path] if names.count(shown[path]) == 1 else str(path))
        for kind, fmt, path in unique.values()
    ]
    return sorted(files, key=_load_order)


def _load_order(f: BundleFile) -> int:
    if caption_files.is_caption_file(f.kind, f.fmt):
        return len(KINDS)  # speakers.csv and transcripts/ last: they need sessions and tutors
    return KINDS.index(f.kind)


# ---------------------------------------------------------------- errors


class _Errors:
    """Errors sorted by (file, line) and capped, without keeping a million of them."""

    def __init__(self) -> None:
        self.total = 0
        self._kept: list[tuple[int, int, int, str]] = []

    def add(self, file_no: int, line: int, message: str) -> None:
        self.total += 1
        self._kept.append((file_no, line, self.total, message))
        if len(self._kept) > 10 * MAX_ERRORS:
            self._kept.sort()
            del self._kept[MAX_ERRORS:]

    def count_only(self, n: int) -> None:
        self.total += n

    def first(self) -> list[str]:
        return [m for *_, m in sorted(self._kept)[:MAX_ERRORS]]


# ---------------------------------------------------------------- reading


def _encoding_problem(path: Path) -> str | None:
    """Why the file is not UTF-8, or None (checked up front so errors point at line 1)."""
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "UTF-16 text (byte order mark)"
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        offset = 0
        try:
            while chunk := fh.read(1 << 20):
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            bad = exc.object[exc.start : exc.start + 1].hex()
            return f"another encoding (byte 0x{bad} at offset {offset + exc.start} is not UTF-8)"
    return None


@dataclass
class _FileReader:
    """Yields (line, cells aligned with the kind's columns) for one file; reports problems."""

    bundle_file: BundleFile
    file_no: int
    errors: _Errors
    warnings: list[str]
    progress: ProgressCallback | None
    broken: bool = False
    _size: int = 0

    def where(self, line: int) -> str:
        return f"{self.bundle_file.label}:{line}"

    def error(self, line: int, message: str) -> None:
        self.errors.add(self.file_no, line, f"{self.where(line)}: {message}")

    def records(self, names: Sequence[str]) -> Iterator[tuple[int, list[Any]]]:
        path = self.bundle_file.path
        self._size = path.stat().st_size
        problem = _encoding_problem(path)
        if problem is not None:
            self.error(1, f"expected UTF-8 text, got {problem}")
            self.broken = True
            return
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if self.bundle_file.fmt == "csv":
                yield from self._csv(fh, names)
            else:
                yield from self._jsonl(fh, names)
        self._tick(fh, final=True)

    def _tick(self, fh: TextIO, *, final: bool = False) -> None:
        if self.progress is not None:
            done = self._size if final else min(fh.buffer.tell(), self._size)
            self.progress(f"checking {self.bundle_file.label}", done, self._size)

    def _csv_header(self, reader: Any, names: Sequence[str]) -> list[str] | None:
        """The header row's column names, or None (reported, file broken) when unusable."""
        known = set(names)
        required = [c.name for c in COLUMNS[self.bundle_file.kind] if c.required]
        try:
            header = next(reader, None)
        except csv.Error as exc:
            self.error(1, f"expected a CSV header row, got a malformed line ({exc})")
            self.broken = True
            return None
        if header is None or not any(cell.strip() for cell in header):
            self.error(
                1,
                f"expected a header row naming the columns ({', '.join(required)}), "
                "got an empty file",
            )
            self.broken = True
            return None
        header = [cell.strip() for cell in header]
        if not known & set(header):
            self.error(
                1,
                f"expected a header row naming the columns ({', '.join(required)}), "
                f"got {render_got(','.join(header))}",
            )
            self.broken = True
            return None
        missing = [name for name in required if name not in header]
        for name in missing:
            self.error(1, f"header: expected a column named {name}, got no such column")
        seen: set[str] = set()
        for name in header:
            if name in seen:
                self.error(1, f"header: expected each column once, got {render_got(name)} twice")
                missing.append(name)
            seen.add(name)
            if name not in known:
                self.warnings.append(f"{self.where(1)}: ignoring unknown column {render_got(name)}")
        if missing:
            self.broken = True
            return None
        return header

    def _csv(self, fh: TextIO, names: Sequence[str]) -> Iterator[tuple[int, list[Any]]]:
        reader = csv.reader(fh)
        header = self._csv_header(reader, names)
        if header is None:
            return
        index = {name: i for i, name in enumerate(header)}
        positions = [index.get(name) for name in names]
        width = len(header)
        previous = reader.line_num
        count = 0
        try:
            for row in reader:
                line = previous + 1
                previous = reader.line_num
                if not row:
                    continue
                if len(row) != width:
                    self.error(line, f"expected {width} fields as in the header, got {len(row)}")
                    continue
                count += 1
                if count % _PROGRESS_EVERY == 0:
                    self._tick(fh)
                yield line, [row[i] if i is not None else None for i in positions]
        except csv.Error as exc:
            self.error(previous + 1, f"expected a well-formed CSV record, got an error ({exc})")
            self.broken = True

    def _jsonl(self, fh: TextIO, names: Sequence[str]) -> Iterator[tuple[int, list[Any]]]:
        known = set(names)
        warned: set[str] = set()
        for line, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                self.error(
                    line,
                    f"expected a JSON object, got invalid JSON ({exc.msg} at column {exc.colno})",
                )
                continue
            if not isinstance(record, dict):
                self.error(line, f"expected a JSON object, got {render_got(record)}")
                continue
            for key in record.keys() - known - warned:
                warned.add(key)
                self.warnings.append(
                    f"{self.where(line)}: ignoring unknown field {render_got(key)}"
                )
            if line % _PROGRESS_EVERY == 0:
                self._tick(fh)
            yield line, [record.get(name) for name in names]


# ---------------------------------------------------------------- validation


@dataclass
class _Pending:
    """References not found in the bundle: checked against the database at the end."""

    lines: dict[str, list[tuple[int, int, str, str]]] = field(default_factory=dict)
    overflow: dict[str, int] = field(default_factory=dict)

    def add(self, ref: str, file_no: int, line: int, where: str, column: str) -> None:
        seen = self.lines.setdefault(ref, [])
        if len(seen) < MAX_ERRORS:
            seen.append((file_no, line, where, column))
        else:
            self.overflow[ref] = self.overflow.get(ref, 0) + 1


_REF_TABLES = {
    "tutors": ("tutors", "tutor_id", "a tutor in the bundle or the database"),
    "students": ("students", "student_id", "a student in the bundle or the database"),
    "sessions": ("sessions", "session_id", "a session in the bundle or the database"),
}


def _transcript_values(
    record: dict[str, Any], where: str
) -> tuple[tuple[list[Turn], str] | None, list[str]]:
    """(turns, raw text) of a transcript given as `turns` or `text`, or the errors."""
    turns_value, text_value = record.get("turns"), record.get("text")
    if turns_value is not None and text_value is not None:
        return None, [f"{where}: turns: expected either turns or text, got both"]
    if turns_value is None and text_value is None:
        return None, [f"{where}: turns: expected a list of turns or a text field, got nothing"]
    column = "turns" if turns_value is not None else "text"
    try:
        if turns_value is not None:
            turns = validate_turns(turns_value)
            raw = render_text(turns)
        else:
            if not isinstance(text_value, str):
                return None, [
                    field_message(where, "text", "a string of Tutor:/Student: lines", text_value)
                ]
            turns = parse_text(text_value)
            raw = text_value
    except TranscriptFormatError as exc:
        return None, [f"{where}: {column}: {exc}"]
    if not turns:
        return None, [f"{where}: {column}: expected at least one turn, got none"]
    return (turns, raw), []


@dataclass
class _Validation:
    engine: Engine
    files: list[BundleFile]
    progress: ProgressCallback | None
    now: datetime
    errors: _Errors = field(default_factory=_Errors)
    warnings: list[str] = field(default_factory=list)
    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    broken_kinds: set[str] = field(default_factory=set)
    pending: dict[str, _Pending] = field(default_factory=dict)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    all_pairs: bool = False
    spools: list[tuple[BundleFile, IO[bytes], int]] = field(default_factory=list)

    def run(self) -> None:
        dialect = self.engine.dialect.name
        self._prepare = {kind: _upsert.row_preparer(spec, dialect) for kind, spec in _SPECS.items()}
        self._tutor_ids = self.ids.setdefault("tutors", {})
        self._student_ids = self.ids.setdefault("students", {})
        self._captions = caption_files.CaptionCheck.for_files(self.files)
        for file_no, bundle_file in enumerate(self.files):
            if not caption_files.is_caption_file(bundle_file.kind, bundle_file.fmt):
                self._check_file(file_no, bundle_file)
        if self._captions is not None:  # transcripts/*.vtt|.srt|.txt and speakers.csv
            self._captions.check(self)
        self._resolve_pending()

    def _check_file(self, file_no: int, bundle_file: BundleFile) -> None:
        kind = bundle_file.kind
        columns = COLUMNS[kind]
        names = TRANSCRIPT_FIELDS if kind == "transcripts" else tuple(c.name for c in columns)
        reader = _FileReader(bundle_file, file_no, self.errors, self.warnings, self.progress)
        ids = self.ids.setdefault(kind, {})
        spool: IO[bytes] = tempfile.TemporaryFile()
        batch: list[tuple[Any, ...]] = []
        rows = 0
        for line, cells in reader.records(names):
            where = reader.where(line)
            if kind == "transcripts":
                row = self._transcript_row(cells, where, file_no, line)
            else:
                row = self._entity_row(kind, columns, cells, where, file_no, line)
            if row is None:
                continue
            key = row[0]
            first = ids.get(key)
            if first is not None:
                column = columns[0].name
                self.errors.add(
                    file_no,
                    line,
                    f"{where}: {column}: expected a unique id, got "
                    f"{render_got(key)} again (first on line {first})",
                )
                continue
            ids[key] = line
            if self.errors.total:
                continue  # nothing will be written: stop spooling, keep checking
            rows += 1
            batch.append(row)
            if len(batch) >= _BATCH:
                marshal.dump(batch, spool)
                batch = []
        if batch:
            marshal.dump(batch, spool)
        if reader.broken:
            self.broken_kinds.add(kind)
        spool.seek(0)
        self.spools.append((bundle_file, spool, rows))

    def _reference(
        self, target: str, ref: str, file_no: int, line: int, where: str, column: str
    ) -> None:
        if ref in self.ids.get(target, {}) or target in self.broken_kinds:
            return
        self.pending.setdefault(target, _Pending()).add(ref, file_no, line, where, column)

    def _entity_row(
        self,
        kind: str,
        columns: Sequence[Column],
        cells: list[Any],
        where: str,
        file_no: int,
        line: int,
    ) -> tuple[Any, ...] | None:
        values, messages, failed = clean_cells(columns, cells, where)
        if kind == "sessions":
            messages += session_row_checks(values, where, failed)
            tutor_id, student_id = values[_TUTOR_ID], values[_STUDENT_ID]
            if tutor_id is not None and tutor_id not in self._tutor_ids:
                self._reference("tutors", tutor_id, file_no, line, where, "tutor_id")
            if student_id is not None and student_id not in self._student_ids:
                self._reference("students", student_id, file_no, line, where, "student_id")
            if tutor_id is not None and student_id is not None and not self.all_pairs:
                self.pairs.add((tutor_id, student_id))
                if len(self.pairs) > _MAX_PAIRS:  # derive over the whole table instead
                    self.all_pairs = True
                    self.pairs.clear()
        for message in messages:
            self.errors.add(file_no, line, message)
        if values[0] is None:
            return None
        if self._captions is not None:
            self._captions.note(kind, values)
        return self._prepare[kind](table_row(kind, values, self.now))

    def _transcript_row(
        self, cells: list[Any], where: str, file_no: int, line: int
    ) -> tuple[Any, ...] | None:
        values, messages, _failed = clean_cells((TRANSCRIPT_ID,), cells[:1], where)
        parsed, more = _transcript_values({"turns": cells[1], "text": cells[2]}, where)
        for message in messages + more:
            self.errors.add(file_no, line, message)
        session_id = values[0]
        if session_id is None:
            return None
        self._reference("sessions", session_id, file_no, line, where, "session_id")
        if parsed is None:
            return (session_id,)  # still counts for duplicate checks
        turns, raw = parsed
        return self._prepare["transcripts"](transcript_row(session_id, turns, raw, self.now))

    def _resolve_pending(self) -> None:
        for target, pending in self.pending.items():
            table, key, expected = _REF_TABLES[target]
            refs = list(pending.lines)
            existing = _existing_ids(self.engine, table, key, refs)
            for ref in refs:
                if ref in existing:
                    continue
                for file_no, line, where, column in pending.lines[ref]:
                    self.errors.add(file_no, line, field_message(where, column, expected, ref))
                # Rows beyond the first 100 naming the same missing id: counted, not listed.
                self.errors.count_only(pending.overflow.get(ref, 0))


def _existing_ids(engine: Engine, table: str, key: str, refs: list[str]) -> set[str]:
    found: set[str] = set()
    with engine.connect() as conn:
        for start in range(0, len(refs), _DB_CHUNK):
            chunk = refs[start : start + _DB_CHUNK]
            marks = ", ".join(f":k{i}" for i in range(len(chunk)))
            result = conn.execute(
                text(f"SELECT {key} FROM {table} WHERE {key} IN ({marks})"),
                {f"k{i}": ref for i, ref in enumerate(chunk)},
            )
            found.update(row[0] for row in result)
    return found


_SPECS = {
    "tutors": _upsert.TUTORS,
    "students": _upsert.STUDENTS,
    "sessions": _upsert.SESSIONS,
    "transcripts": _upsert.TRANSCRIPTS,
}
_NAMES = {kind: tuple(c.name for c in columns) for kind, columns in COLUMNS.items()}
_FIRST_FOR_STUDENT = _NAMES["sessions"].index("is_first_session_for_student")
_TUTOR_ID, _STUDENT_ID = (
    _NAMES["sessions"].index("tutor_id"),
    _NAMES["sessions"].index("student_id"),
)
# Columns the bundle does not carry, after its own: first-session seed value (sessions),
# provenance, stamps.
_EXTRA_NAMES = {
    "sessions": ("is_first_session", "is_synthetic", "created_at", "updated_at"),
    "tutors": ("is_synthetic", "created_at", "updated_at"),
    "students": ("is_synthetic", "created_at", "updated_at"),
}
# bundle values + _extra -> the table's row (by column name)
_TABLE_ROW = {
    kind: _upsert.row_builder(_SPECS[kind], (*_NAMES[kind], *extra))
    for kind, extra in _EXTRA_NAMES.items()
}
_TRANSCRIPT_ROW = _upsert.row_builder(
    _upsert.TRANSCRIPTS,
    ("session_id", "turns", "raw_text", "turn_count", "content_hash", "created_at", "updated_at"),
)


def _extra(kind: str, values: list[Any], now: datetime) -> tuple[Any, ...]:
    """The values of `_EXTRA_NAMES[kind]` for one bundle row."""
    if kind == "sessions":
        given = values[_FIRST_FOR_STUDENT]
        return (bool(given) if given is not None else False, False, now, now)
    return (False, now, now)


def table_row(kind: str, values: list[Any], now: datetime) -> tuple[Any, ...]:
    """A bundle row (values in COLUMNS[kind] order) as its table's row."""
    return _TABLE_ROW[kind]((*values, *_extra(kind, values, now)))


def transcript_row(
    session_id: str, turns: list[Any], raw_text: str, now: datetime
) -> tuple[Any, ...]:
    return _TRANSCRIPT_ROW((session_id, turns, raw_text, len(turns), content_hash(turns), now, now))


def import_bundle(
    engine: Engine,
    paths: Sequence[str | Path],
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Validate every named file, then upsert all rows in one transaction (or raise ImportFailed).

    Raises UserError when a path is missing or a directory holds no bundle file.
    """
    files = find_bundle_files(paths)
    stamp = now or utcnow()
    check = _Validation(engine, files, progress, stamp)
    try:
        check.run()
        if check.errors.total:
            first = check.errors.first()
            raise ImportFailed(first, check.errors.total - len(first), check.warnings)
        summary = {kind: KindSummary() for kind in KINDS if any(f.kind == kind for f in files)}
        for bundle_file, _spool, rows in check.spools:
            summary[bundle_file.kind].rows += rows
        report = ImportReport(files, summary, check.warnings, dry_run)
        if not dry_run:
            with engine.begin() as conn:
                report.first_sessions_changed = _write(conn, check, summary, progress)
        return report
    finally:
        for _file, spool, _rows in check.spools:
            spool.close()


def _batches(
    spool: IO[bytes], label: str, total: int, progress: ProgressCallback | None
) -> Iterator[list[tuple[Any, ...]]]:
    done = 0
    while True:
        try:
            batch: list[tuple[Any, ...]] = marshal.load(spool)
        except EOFError:
            return
        yield batch
        done += len(batch)
        if progress is not None:
            progress(f"writing {label}", done, total)


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(select(func.count()).select_from(text(table))).scalar_one())


def _write(
    conn: Connection,
    check: _Validation,
    summary: dict[str, KindSummary],
    progress: ProgressCallback | None,
) -> int:
    session_rows = summary.get("sessions", KindSummary()).rows
    # Small imports re-derive only the pairs they touch, including a session's old pair.
    pairs: set[tuple[str, str]] | None = None
    if session_rows and not check.all_pairs and session_rows <= 10 * FULL_THRESHOLD:
        pairs = set(check.pairs) | _old_pairs(conn, check.ids.get("sessions", {}))
    if conn.dialect.name == "sqlite":
        # Take the write lock now (a write that matches nothing): from here on no other
        # connection commits, so the row counts below are exact. On Postgres others keep
        # writing; the upsert itself says which rows it inserted.
        conn.exec_driver_sql("DELETE FROM tutors WHERE 0")
    for kind in KINDS:
        spools = [s for s in check.spools if s[0].kind == kind]
        if not spools:
            continue
        spec = _SPECS[kind]
        before = _count(conn, spec.table)
        count = _upsert.UpsertCount()
        for bundle_file, spool, rows in spools:
            _upsert.upsert_rows(
                conn,
                spec,
                _batches(spool, bundle_file.label, rows, progress),
                prepared=True,
                bulk=before == 0 and rows >= _upsert.BULK_ROWS,
                count=count,
            )
        if count.inserted is None:
            count.inserted = _count(conn, spec.table) - before
        summary[kind].created = count.inserted
        summary[kind].updated = count.changed - count.inserted
    if not session_rows:
        return 0
    return derive_first_sessions(conn, pairs)


def _old_pairs(conn: Connection, session_ids: dict[str, int]) -> set[tuple[str, str]]:
    ids = list(session_ids)
    pairs: set[tuple[str, str]] = set()
    for start in range(0, len(ids), _DB_CHUNK):
        chunk = ids[start : start + _DB_CHUNK]
        marks = ", ".join(f":k{i}" for i in range(len(chunk)))
        result = conn.execute(
            text(f"SELECT tutor_id, student_id FROM sessions WHERE session_id IN ({marks})"),
            {f"k{i}": ref for i, ref in enumerate(chunk)},
        )
        pairs.update((row[0], row[1]) for row in result)
    return pairs


# ---------------------------------------------------------------- one record (API)


def validate_session_record(
    record: dict[str, Any], *, where: str
) -> tuple[dict[str, Any] | None, list[str]]:
    """Check one `sessions.jsonl`-shaped record (plus optional `turns`/`text`).

    Returns (clean record, []) or (None, messages) with the importer's messages,
    `where` standing in for `file:line` (e.g. "request body").
    """
    if not isinstance(record, dict):
        return None, [f"{where}: expected a JSON object, got {render_got(record)}"]
    values, messages, failed = clean_cells(
        SESSION_COLUMNS, [record.get(name) for name in _NAMES["sessions"]], where
    )
    messages += session_row_checks(values, where, failed)
    clean = dict(zip(_NAMES["sessions"], values, strict=True))
    if record.get("turns") is not None or record.get("text") is not None:
        parsed, more = _transcript_values(record, where)
        messages += more
        if parsed is not None:
            clean["transcript"] = {"turns": parsed[0], "raw_text": parsed[1]}
    if messages:
        return None, messages
    return clean, []


def upsert_session_record(
    session: Session, clean: dict[str, Any], *, where: str = "request body"
) -> bool:
    """Insert or update one validated session (and its transcript); True when created.

    Raises ValidationFailed when its tutor or student does not exist. Runs in the
    caller's transaction and keeps is_first_session right for the pair.
    """
    conn = session.connection()
    problems = []
    for table, column in (("tutors", "tutor_id"), ("students", "student_id")):
        found = conn.execute(
            text(f"SELECT 1 FROM {table} WHERE {column} = :v"), {"v": clean[column]}
        ).first()
        if found is None:
            expected = f"a {table[:-1]} that exists"
            problems.append(field_message(where, column, expected, clean[column]))
    if problems:
        raise ValidationFailed("; ".join(problems), details=problems)
    old = conn.execute(
        text("SELECT tutor_id, student_id FROM sessions WHERE session_id = :s"),
        {"s": clean["session_id"]},
    ).first()
    now = utcnow()
    row = table_row("sessions", [clean[name] for name in _NAMES["sessions"]], now)
    _upsert.upsert_rows(conn, _upsert.SESSIONS, [[row]])
    transcript = clean.get("transcript")
    if transcript is not None:
        turns, raw_text = transcript["turns"], transcript["raw_text"]
        row = transcript_row(clean["session_id"], turns, raw_text, now)
        _upsert.upsert_rows(conn, _upsert.TRANSCRIPTS, [[row]])
    pairs = {(clean["tutor_id"], clean["student_id"])}
    if old is not None:
        pairs.add((old[0], old[1]))
    derive_first_sessions(conn, pairs)
    return old is None
