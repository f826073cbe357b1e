"""`tutorscore reviews import FILE...` / `tutorscore reviews export DIR`.

Files: CSV (header row; `tags` joined by `;`) or JSONL (one object per line; `tags`
a JSON array). Columns: `session_id`, `reviewer`, `quality_score` (required),
`tags`, `note`, the rubric scores `clarity`, `pacing`, `engagement`,
`goal_alignment`, and `created_at` (all optional). All or nothing: every file is
validated first (errors `file:line: column: expected …, got …`, the first 100
sorted by file and line), and only a clean set is written, in one transaction. A
review for a (session, reviewer) already in the database replaces it; two in the
files are an error.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Review, TutoringSession
from tutorscore.errors import UserError
from tutorscore.ingest._fields import FieldError, parse_timestamp, render_got
from tutorscore.ingest.importer import MAX_ERRORS, ImportFailed, _encoding_problem
from tutorscore.reviews.service import (
    RUBRIC_KEYS,
    ReviewInput,
    review_values,
    upsert_statement,
    validate_review,
)

COLUMNS = ("session_id", "reviewer", "quality_score", "tags", "note", *RUBRIC_KEYS, "created_at")
REQUIRED = ("session_id", "reviewer", "quality_score")
_CHUNK = 500


@dataclass
class ReviewImportReport:
    files: list[Path]
    rows: int
    created: int
    replaced: int
    warnings: list[str]
    dry_run: bool


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise UserError(
        f"{path}: expected a .csv or .jsonl file, got {render_got(path.suffix or path.name)}"
    )


class _Collector:
    def __init__(self) -> None:
        self.kept: list[tuple[int, int, str]] = []
        self.total = 0

    def add(self, file_no: int, line: int, message: str) -> None:
        self.total += 1
        self.kept.append((file_no, line, message))

    def at(self, file_no: int, label: str, line: int, message: str) -> None:
        """`label:line: message`."""
        self.add(file_no, line, f"{label}:{line}: {message}")

    def first(self) -> list[str]:
        return [m for _, _, m in sorted(self.kept, key=lambda k: (k[0], k[1]))[:MAX_ERRORS]]


def _csv_header(
    reader: Any, err: Callable[[int, str], None], label: str, warnings: list[str]
) -> list[str] | None:
    """The header row's column names, or None (reported) when it is unusable."""
    try:
        header = next(reader, None)
    except csv.Error as exc:
        err(1, f"expected a CSV header row, got a malformed line ({exc})")
        return None
    if header is None or not any(cell.strip() for cell in header):
        names = ", ".join(REQUIRED)
        err(1, f"expected a header row naming the columns ({names}), got an empty file")
        return None
    header = [cell.strip() for cell in header]
    missing = [name for name in REQUIRED if name not in header]
    for name in missing:
        err(1, f"header: expected a column named {name}, got no such column")
    twice = [name for name in dict.fromkeys(header) if header.count(name) > 1]
    for name in twice:
        err(1, f"header: expected each column once, got {render_got(name)} twice")
    if missing or twice:
        return None
    for name in header:
        if name not in COLUMNS:
            warnings.append(f"{label}:1: ignoring unknown column {render_got(name)}")
    return header


def _csv_records(
    path: Path, label: str, errors: _Collector, file_no: int, warnings: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    def err(line: int, message: str) -> None:
        errors.at(file_no, label, line, message)

    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = _csv_header(reader, err, label, warnings)
        if header is None:
            return
        previous = reader.line_num
        try:
            for row in reader:
                line = previous + 1
                previous = reader.line_num
                if not row:
                    continue
                if len(row) != len(header):
                    err(line, f"expected {len(header)} fields as in the header, got {len(row)}")
                    continue
                yield line, dict(zip(header, row, strict=True))
        except csv.Error as exc:
            err(previous + 1, f"expected a well-formed CSV record, got an error ({exc})")


def _jsonl_records(
    path: Path, label: str, errors: _Collector, file_no: int, warnings: list[str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    warned: set[str] = set()
    with path.open(encoding="utf-8-sig") as fh:
        for line, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                errors.at(
                    file_no,
                    label,
                    line,
                    f"expected a JSON object, got invalid JSON ({exc.msg} at column {exc.colno})",
                )
                continue
            if not isinstance(record, dict):
                errors.at(file_no, label, line, f"expected a JSON object, got {render_got(record)}")
                continue
            for key in sorted(record.keys() - set(COLUMNS) - warned):
                warned.add(key)
                warnings.append(f"{label}:{line}: ignoring unknown field {render_got(key)}")
            yield line, record


def read_review_files(
    paths: Sequence[Path],
) -> tuple[list[tuple[str, int, ReviewInput]], list[str], _Collector]:
    """Parse and check every file: (clean reviews with where they came from, warnings, errors)."""
    errors = _Collector()
    warnings: list[str] = []
    clean: list[tuple[str, int, ReviewInput]] = []
    first_seen: dict[tuple[str, str], str] = {}
    for file_no, path in enumerate(paths):
        label = path.name if len({p.name for p in paths}) == len(paths) else str(path)
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        fmt = _format_of(path)
        problem = _encoding_problem(path)
        if problem is not None:
            errors.at(file_no, label, 1, f"expected UTF-8 text, got {problem}")
            continue
        reader = _csv_records if fmt == "csv" else _jsonl_records
        for line, record in reader(path, label, errors, file_no, warnings):
            where = f"{label}:{line}"
            review, problems = validate_review(record, joined_tags=fmt == "csv")
            for p in problems:
                errors.add(file_no, line, f"{where}: {p}")
            created_raw = record.get("created_at")
            created = None
            if created_raw not in (None, ""):
                try:
                    created = parse_timestamp(created_raw)
                except FieldError as exc:
                    expected = exc.expected or "an ISO 8601 timestamp with an offset or Z"
                    got = render_got(created_raw)
                    errors.add(
                        file_no, line, f"{where}: created_at: expected {expected}, got {got}"
                    )
                    continue
            if review is None:
                continue
            review.created_at = created
            key = (review.session_id, review.reviewer)
            if key in first_seen:
                errors.add(
                    file_no,
                    line,
                    f"{where}: reviewer: expected one review per reviewer per session, got a"
                    f" second review of {review.session_id} by {review.reviewer}"
                    f" (first at {first_seen[key]})",
                )
                continue
            first_seen[key] = where
            clean.append((where, file_no, review))
    return clean, warnings, errors


def import_reviews(
    engine: Engine, paths: Sequence[Path], *, dry_run: bool = False
) -> ReviewImportReport:
    """Validate every file, check the sessions exist, then write all of it or nothing."""
    clean, warnings, errors = read_review_files(paths)
    with transaction(engine) as db:
        ids = sorted({review.session_id for _, _, review in clean})
        known: set[str] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            known.update(
                db.scalars(
                    select(TutoringSession.session_id).where(TutoringSession.session_id.in_(chunk))
                )
            )
        for where, file_no, review in clean:
            if review.session_id not in known:
                line = int(where.rsplit(":", 1)[1])
                got = render_got(review.session_id)
                errors.add(
                    file_no,
                    line,
                    f"{where}: session_id: expected a session in the database, got {got}",
                )
        if errors.total:
            raise ImportFailed(errors.first(), max(0, errors.total - MAX_ERRORS), warnings)
        existing: set[tuple[str, str]] = set()
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            existing.update(
                (s, r)
                for s, r in db.execute(
                    select(Review.session_id, Review.reviewer).where(Review.session_id.in_(chunk))
                )
            )
        replaced = sum((r.session_id, r.reviewer) in existing for _, _, r in clean)
        if not dry_run:
            now = utcnow()
            rows = [review_values(r, "import", now) for _, _, r in clean]
            dialect = engine.dialect.name
            for start in range(0, len(rows), _CHUNK):
                db.execute(upsert_statement(dialect, rows[start : start + _CHUNK]))
    return ReviewImportReport(
        files=list(paths),
        rows=len(clean),
        created=len(clean) - replaced,
        replaced=replaced,
        warnings=warnings,
        dry_run=dry_run,
    )


def _cells(row: Review) -> dict[str, Any]:
    rubric = dict(row.rubric or {})
    return {
        "session_id": row.session_id,
        "reviewer": row.reviewer,
        "quality_score": row.quality_score,
        "tags": list(row.tags or []),
        "note": row.note,
        **{key: rubric.get(key) for key in RUBRIC_KEYS},
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


def export_reviews(engine: Engine, directory: Path, *, fmt: str = "csv") -> tuple[Path, int]:
    """Every review, in the import format (so an export imports back unchanged)."""
    if fmt not in ("csv", "jsonl"):
        raise UserError(f"--format: expected csv or jsonl, got {render_got(fmt)}")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"reviews.{fmt}"
    tmp = target.with_name(target.name + ".tmp")
    count = 0
    with transaction(engine) as db, tmp.open("w", encoding="utf-8", newline="") as fh:
        rows = db.scalars(select(Review).order_by(Review.session_id, Review.reviewer))
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS)) if fmt == "csv" else None
        if writer is not None:
            writer.writeheader()
        for row in rows:
            cells = _cells(row)
            count += 1
            if writer is not None:
                cells["tags"] = ";".join(cells["tags"])
                writer.writerow({k: "" if v is None else v for k, v in cells.items()})
            else:
                fh.write(json.dumps(cells, ensure_ascii=False) + "\n")
    tmp.replace(target)
    return target, count
