"""Transcript files in a bundle: `transcripts/<session_id>.vtt|.srt|.txt` and `speakers.csv`.

The importer finds these files with the rest of the bundle and hands them here
after its streaming pass, when every session and tutor of the bundle has been
seen: each file's session must exist (in the bundle or the database), its
speakers are mapped to tutor and student (speakers.csv, literal labels, or the
session's tutor name), and the turns are spooled like `transcripts.jsonl` rows,
so the same all-or-nothing write stores them. Errors read `file:line: message`.
"""

from __future__ import annotations

import codecs
import csv
import io
import marshal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import Engine, text

from tutorscore.ingest._fields import TRANSCRIPT_ID, clean_cells, field_message, render_got
from tutorscore.ingest.captions import (
    EXTENSIONS,
    ROLES,
    CaptionError,
    SpeakerRoles,
    transcript_turns,
)
from tutorscore.ingest.transcript_format import content_hash

if TYPE_CHECKING:
    from tutorscore.ingest.importer import BundleFile, _Validation

TRANSCRIPTS_DIR = "transcripts"
SPEAKERS = "speakers"
CAPTION_KIND = "transcripts"
_BATCH = 500
_DB_CHUNK = 500
_PROGRESS_EVERY = 25
_SPEAKER_COLUMNS = ("session_id", "speaker", "role")


def display_name(kind: str, fmt: str, path: Path) -> str:
    """How a file is named in messages: `transcripts/S1.vtt` inside a transcripts folder."""
    if kind == CAPTION_KIND and fmt != "jsonl" and path.parent.name == TRANSCRIPTS_DIR:
        return f"{TRANSCRIPTS_DIR}/{path.name}"
    return path.name


def is_caption_file(kind: str, fmt: str) -> bool:
    return (kind == CAPTION_KIND and fmt != "jsonl") or kind == SPEAKERS


def kind_of_file(path: Path) -> tuple[str, str] | None:
    """(kind, fmt) of a single file named on the command line, or None.

    A .vtt or .srt file is a transcript wherever it is; a .txt file only inside a
    `transcripts` folder (a stray notes.txt is not a session's transcript).
    """
    name = path.name.lower()
    ext = name.rpartition(".")[2]
    if ext in EXTENSIONS and not name.startswith("."):
        if ext != "txt" or path.parent.name == TRANSCRIPTS_DIR:
            return CAPTION_KIND, ext
    if ext == "csv" and (name == "speakers.csv" or name.startswith(("speakers-", "speakers_"))):
        return SPEAKERS, "csv"
    return None


def find_in_directory(directory: Path, *, bundle: bool) -> list[tuple[str, str, Path]]:
    """speakers.csv and every file of `transcripts/` (a wrong extension is reported later).

    A directory named `transcripts` that holds no other bundle file (`bundle` is
    False) and no `transcripts/` folder is read as that folder.
    """
    found: list[tuple[str, str, Path]] = []
    speakers = directory / "speakers.csv"
    if speakers.is_file():
        found.append((SPEAKERS, "csv", speakers))
    folder = directory / TRANSCRIPTS_DIR
    if not folder.is_dir() and directory.name == TRANSCRIPTS_DIR and not bundle and not found:
        folder = directory
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_file() and not child.name.startswith("."):
                ext = child.suffix.lower().lstrip(".")
                found.append((CAPTION_KIND, ext if ext in EXTENSIONS else "other", child))
    return found


def _decode(data: bytes) -> tuple[str | None, str | None]:
    """(text without BOM, None) or (None, why it is not UTF-8) - the importer's wording."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None, "UTF-16 text (byte order mark)"
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        return None, f"another encoding (byte 0x{bad} at offset {exc.start} is not UTF-8)"
    return content.removeprefix("\ufeff"), None


@dataclass
class CaptionCheck:
    """What the caption files need from the rest of the bundle, and their validation."""

    session_ids: set[str]
    tutor_names: dict[str, str] = field(default_factory=dict)
    session_tutors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_files(cls, files: list[BundleFile]) -> CaptionCheck | None:
        ids = {
            f.path.name.rsplit(".", 1)[0].strip()
            for f in files
            if f.kind == CAPTION_KIND and f.fmt != "jsonl"
        }
        return cls(ids) if ids or any(f.kind == SPEAKERS for f in files) else None

    def note(self, kind: str, values: list[Any]) -> None:
        """Called for every clean tutor and session row of the streaming pass."""
        if kind == "tutors" and values[0] is not None and values[1] is not None:
            self.tutor_names[values[0]] = values[1]
        elif kind == "sessions" and values[0] in self.session_ids and values[1] is not None:
            self.session_tutors[values[0]] = values[1]

    def check(self, validation: _Validation) -> None:
        """Validate speakers.csv and the transcript files; spool their rows."""
        mine = [(n, f) for n, f in enumerate(validation.files) if is_caption_file(f.kind, f.fmt)]
        speakers = SpeakerRoles.empty()
        for file_no, bundle_file in mine:
            if bundle_file.kind == SPEAKERS:
                _read_speakers(validation, file_no, bundle_file, speakers)
        captions = [(n, f) for n, f in mine if f.kind == CAPTION_KIND]
        if not captions:
            return
        tutor_of = self._tutor_names(validation)
        _Files(validation, captions, speakers, tutor_of).run()

    def _tutor_names(self, validation: _Validation) -> dict[str, str | None]:
        """session_id -> its tutor's name, for the sessions of caption files that exist."""
        in_bundle = validation.ids.get("sessions", {})
        from_db = [s for s in self.session_ids if s not in in_bundle]
        tutors = dict(self.session_tutors)
        for session_id, tutor_id in _query(
            validation.engine, "SELECT session_id, tutor_id FROM sessions", "session_id", from_db
        ):
            tutors[session_id] = tutor_id
        names: dict[str, str | None] = {}
        missing = {t for t in tutors.values() if t not in self.tutor_names}
        db_names = dict(
            _query(validation.engine, "SELECT tutor_id, name FROM tutors", "tutor_id", missing)
        )
        for session_id, tutor_id in tutors.items():
            names[session_id] = self.tutor_names.get(tutor_id) or db_names.get(tutor_id)
        return names


def _query(engine: Engine, select: str, key: str, ids: Any) -> Iterator[tuple[Any, Any]]:
    refs = sorted(ids)
    if not refs:
        return
    with engine.connect() as conn:
        for start in range(0, len(refs), _DB_CHUNK):
            chunk = refs[start : start + _DB_CHUNK]
            marks = ", ".join(f":k{i}" for i in range(len(chunk)))
            result = conn.execute(
                text(f"{select} WHERE {key} IN ({marks})"),
                {f"k{i}": ref for i, ref in enumerate(chunk)},
            )
            for row in result:
                yield row[0], row[1]


@dataclass
class _SpeakersFile:
    """One speakers.csv: its errors go to `validation` as `file:line: message`."""

    validation: _Validation
    file_no: int
    label: str
    width: int = 0  # fields in the header row

    def error(self, line: int, message: str) -> None:
        self.validation.errors.add(self.file_no, line, f"{self.label}:{line}: {message}")

    def header(self, reader: Any) -> dict[str, int] | None:
        """Column positions of the header row, or None (reported) when it is unusable."""
        try:
            header = [cell.strip() for cell in next(reader, [])]
        except csv.Error as exc:
            self.error(1, f"expected a CSV header row, got a malformed line ({exc})")
            return None
        missing = [name for name in _SPEAKER_COLUMNS if name not in header]
        if missing:
            got = render_got(",".join(header)) if any(header) else "an empty file"
            self.error(
                1, f"expected a header row naming the columns session_id, speaker, role, got {got}"
            )
            return None
        for name in header:
            if name not in _SPEAKER_COLUMNS:
                self.validation.warnings.append(
                    f"{self.label}:1: ignoring unknown column {render_got(name)}"
                )
        self.width = len(header)
        return {name: header.index(name) for name in _SPEAKER_COLUMNS}

    def fields_ok(self, line: int, session_id: str, speaker: str, role: str) -> bool:
        """Each field of one row checked; every problem reported."""
        where = f"{self.label}:{line}"
        add = self.validation.errors.add
        ok = True
        if session_id != "*":
            _values, messages, _failed = clean_cells((TRANSCRIPT_ID,), [session_id], where)
            for message in messages:
                add(self.file_no, line, message)
                ok = False
        if not speaker or len(speaker) > 200:
            expected = "a speaker name of 1-200 characters"
            add(self.file_no, line, field_message(where, "speaker", expected, speaker or None))
            ok = False
        if role.lower() not in ROLES:
            add(self.file_no, line, field_message(where, "role", "tutor or student", role))
            ok = False
        return ok

    def rows(self, reader: Any, index: dict[str, int]) -> Iterator[tuple[int, str, str, str]]:
        """(line, session_id, speaker, role) of each well-formed non-blank row."""
        previous = reader.line_num
        try:
            for row in reader:
                line, previous = previous + 1, reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != self.width:
                    self.error(
                        line, f"expected {self.width} fields as in the header, got {len(row)}"
                    )
                    continue
                session_id, speaker, role = (row[index[n]].strip() for n in _SPEAKER_COLUMNS)
                yield line, session_id, speaker, role
        except csv.Error as exc:
            self.error(previous + 1, f"expected a well-formed CSV record, got an error ({exc})")


def _read_speakers(
    validation: _Validation, file_no: int, bundle_file: BundleFile, speakers: SpeakerRoles
) -> None:
    f = _SpeakersFile(validation, file_no, bundle_file.label)
    content, problem = _decode(bundle_file.path.read_bytes())
    if content is None:
        f.error(1, f"expected UTF-8 text, got {problem}")
        return
    reader = csv.reader(io.StringIO(content, newline=""))
    index = f.header(reader)
    if index is None:
        return
    first: dict[tuple[str, str], int] = {}
    for line, session_id, speaker, role in f.rows(reader, index):
        if not f.fields_ok(line, session_id, speaker, role):
            continue
        key = (session_id, " ".join(speaker.split()).casefold())
        if key in first:
            f.error(
                line,
                f"speaker: expected each (session_id, speaker) once, got {render_got(speaker)} "
                f"for {render_got(session_id)} again (first on line {first[key]})",
            )
            continue
        first[key] = line
        speakers.add(session_id, speaker, role.lower())


@dataclass
class _Files:
    validation: _Validation
    files: list[tuple[int, BundleFile]]
    speakers: SpeakerRoles
    tutor_of: dict[str, str | None]
    first_file: dict[str, str] = field(default_factory=dict)  # session_id -> file label

    def _session_id(self, file_no: int, bundle_file: BundleFile) -> str | None:
        """The session a transcript file is named after, or None (reported) when the
        name is not a session id, repeats one, or names a session nowhere to be found."""
        check = self.validation
        label = bundle_file.label
        ids = check.ids.setdefault("transcripts", {})

        def error(message: str) -> None:
            check.errors.add(file_no, 1, f"{label}:1: {message}")

        stem = bundle_file.path.name.rsplit(".", 1)[0]
        values, messages, _failed = clean_cells((TRANSCRIPT_ID,), [stem], f"{label}:1")
        if messages:
            for message in messages:
                check.errors.add(
                    file_no, 1, message.replace("session_id:", "file name (session_id):", 1)
                )
            return None
        session_id: str = values[0]
        if session_id in self.first_file:
            again = f"{render_got(session_id)} again (first in {self.first_file[session_id]})"
            error(f"session_id: expected one transcript per session, got {again}")
            return None
        if session_id in ids:
            jsonl = [f.label for f in check.files if f.kind == CAPTION_KIND and f.fmt == "jsonl"]
            where = jsonl[0] if len(jsonl) == 1 else "a transcripts file"
            again = f"{render_got(session_id)} again (first in {where} line {ids[session_id]})"
            error(f"session_id: expected one transcript per session, got {again}")
            return None
        self.first_file[session_id] = label
        ids[session_id] = 1
        if session_id in check.ids.get("sessions", {}) or session_id in self.tutor_of:
            return session_id
        if "sessions" not in check.broken_kinds:
            error(
                "session_id: expected a session in the bundle or the database, "
                f"got {render_got(session_id)}"
            )
        return None

    def _row(self, file_no: int, bundle_file: BundleFile, data: bytes) -> tuple[Any, ...] | None:
        """The transcripts row of one caption file, or None (reported) when it has none."""
        check = self.validation
        label = bundle_file.label

        def error(line: int, message: str) -> None:
            check.errors.add(file_no, line, f"{label}:{line}: {message}")

        fmt = EXTENSIONS.get(bundle_file.fmt)
        if fmt is None:
            suffix = bundle_file.path.suffix
            got = f"a {suffix} file" if suffix else "a file without an extension"
            error(1, f"expected a transcript named <session_id>.vtt, .srt or .txt, got {got}")
            return None
        session_id = self._session_id(file_no, bundle_file)
        if session_id is None:
            return None
        content, problem = _decode(data)
        if content is None:
            error(1, f"expected UTF-8 text, got {problem}")
            return None
        try:
            turns = transcript_turns(
                fmt,
                content,
                session_id=session_id,
                tutor_name=self.tutor_of.get(session_id),
                speakers=self.speakers,
            )
        except CaptionError as exc:
            for problem_at in exc.problems:
                error(problem_at.line, problem_at.message)
            return None
        return (session_id, turns, content, len(turns), content_hash(turns), check.now, check.now)

    def run(self) -> None:
        from tutorscore.ingest.importer import BundleFile

        check = self.validation
        prepare = check._prepare["transcripts"]
        spool: IO[bytes] = tempfile.TemporaryFile()
        batch: list[tuple[Any, ...]] = []
        rows = 0
        total = sum(f.path.stat().st_size for _, f in self.files)
        done = 0
        for count, (file_no, bundle_file) in enumerate(self.files, start=1):
            data = bundle_file.path.read_bytes()
            done += len(data)
            if check.progress is not None and (
                count % _PROGRESS_EVERY == 0 or count == len(self.files)
            ):
                check.progress(f"checking {TRANSCRIPTS_DIR}/", done, total)
            row = self._row(file_no, bundle_file, data)
            if row is None or check.errors.total:
                continue  # nothing will be written: keep checking, stop spooling
            batch.append(prepare(row))
            rows += 1
            if len(batch) >= _BATCH:
                marshal.dump(batch, spool)
                batch = []
        if batch:
            marshal.dump(batch, spool)
        spool.seek(0)
        folder = self.files[0][1].path.parent
        check.spools.append(
            (BundleFile(CAPTION_KIND, "captions", folder, f"{TRANSCRIPTS_DIR}/"), spool, rows)
        )
