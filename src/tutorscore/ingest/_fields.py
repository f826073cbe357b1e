"""Import bundle column types (docs/data-format.md): parse one cell, or say what was expected.

The same parsers serve CSV cells (always strings) and JSONL values (native JSON
types or strings), so `POST /api/sessions`, the importer and the exporter agree
on one definition of every column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from tutorscore.db.models.core import PARTIES, SESSION_STATUSES
from tutorscore.textcheck import printable, text_problem

_INT_RE = re.compile(r"[+-]?\d+")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class FieldError(ValueError):
    """A cell does not fit its column; `expected` completes "expected …"."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def render_got(value: Any) -> str:
    """How a bad value appears after "got" in an error: quoted, short, `nothing` for null."""
    if value is None:
        return "nothing"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > 60:
        text = text[:57] + "..."
    if isinstance(value, str):
        # NUL is escaped by json.dumps; a lone surrogate would not print or encode
        return printable(json.dumps(text, ensure_ascii=False))
    return text


def field_message(where: str, column: str, expected: str, value: Any) -> str:
    """`sessions.csv:17: student_rating: expected an integer 1-5, got "6"`."""
    return f"{where}: {column}: expected {expected}, got {render_got(value)}"


Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class Column:
    name: str
    parse: Parser
    expected: str
    required: bool = False


def is_null(value: Any) -> bool:
    """Empty cell, JSON null and empty string all mean null."""
    return value is None or (isinstance(value, str) and value.strip() == "")


def _storable(value: str) -> None:
    problem = text_problem(value)
    if problem is not None:
        raise StorableTextError(problem)


class StorableTextError(FieldError):
    """Text with a NUL or a lone surrogate: the message says which and where."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"text without NUL characters or unpaired surrogates (found {problem})")


# ids appear in URL paths (/tutors/{id}, /sessions/{id}): no "/" (and no controls)
_ID_FORBIDDEN = re.compile(r"[/\x00-\x1f\x7f]")


def _identifier(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("")
    text = value.strip()
    if not 1 <= len(text) <= 64 or _ID_FORBIDDEN.search(text):
        raise FieldError("")
    _storable(text)
    return text


def _text(max_len: int | None, *, strip: bool) -> Parser:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError("")
        _storable(value)
        text = value.strip() if strip else value
        if max_len is not None and len(text) > max_len:
            raise FieldError("")
        return text

    return parse


def _integer(low: int, high: int | None) -> Parser:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise FieldError("")
        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            raise FieldError("")
        if number < low or (high is not None and number > high):
            raise FieldError("")
        return number

    return parse


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        parsed = _BOOLEANS.get(value.strip().lower())
        if parsed is not None:
            return parsed
    raise FieldError("")


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 with an offset or `Z`, returned in UTC; naive times are refused."""
    if not isinstance(value, str):
        raise FieldError("")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FieldError("") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise FieldError("")
    return parsed.astimezone(UTC)


def _date(value: Any) -> date:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value.strip()):
        raise FieldError("")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise FieldError("") from None


def _choice(choices: Sequence[str]) -> Parser:
    allowed = frozenset(choices)

    def parse(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in allowed:
            raise FieldError("")
        return value.strip().lower()

    return parse


@lru_cache(maxsize=1024)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError, OSError for odd paths
        return False
    return True


def _timezone(value: Any) -> str:
    if not isinstance(value, str) or len(value.strip()) > 64 or not _known_zone(value.strip()):
        raise FieldError("")
    return value.strip()


def _subjects(value: Any) -> list[str]:
    if isinstance(value, str):
        items: list[Any] = value.split(";")
    elif isinstance(value, list):
        items = value
    else:
        raise FieldError("")
    subjects: list[str] = []
    for item in items:
        if not isinstance(item, str) or len(item.strip()) > 200:
            raise FieldError("")
        _storable(item)
        if item.strip() and item.strip() not in subjects:
            subjects.append(item.strip())
    if not subjects:
        raise FieldError("")
    return subjects


def _or(choices: Sequence[str]) -> str:
    return " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)


ID = "an id of 1-64 characters without '/' or control characters"
TIMESTAMP = "an ISO 8601 timestamp with an offset or Z"
BOOL = "a boolean (true/false/1/0/yes/no)"
PARTY = _or(PARTIES)
STATUS = _or(SESSION_STATUSES)

TUTOR_COLUMNS: tuple[Column, ...] = (
    Column("tutor_id", _identifier, ID, required=True),
    Column("name", _text(200, strip=True), "a name of at most 200 characters", required=True),
    Column("subjects", _subjects, "a ;-separated list of subjects", required=True),
    Column("years_experience", _integer(0, None), "an integer >= 0"),
    Column("timezone", _timezone, "an IANA time zone name such as America/New_York"),
    Column("hire_date", _date, "a date YYYY-MM-DD"),
    Column("churned_on", _date, "a date YYYY-MM-DD"),
)

STUDENT_COLUMNS: tuple[Column, ...] = (
    Column("student_id", _identifier, ID, required=True),
    Column("grade_level", _integer(1, 16), "an integer 1-16"),
    Column("segment", _text(100, strip=True), "a string of at most 100 characters"),
)

SESSION_COLUMNS: tuple[Column, ...] = (
    Column("session_id", _identifier, ID, required=True),
    Column("tutor_id", _identifier, ID, required=True),
    Column("student_id", _identifier, ID, required=True),
    Column("subject", _text(200, strip=True), "a subject of at most 200 characters", required=True),
    Column("scheduled_start_at", parse_timestamp, TIMESTAMP, required=True),
    Column("actual_start_at", parse_timestamp, TIMESTAMP),
    Column("duration_minutes", _integer(0, None), "an integer >= 0"),
    Column("status", _choice(SESSION_STATUSES), STATUS, required=True),
    Column("no_show_by", _choice(PARTIES), PARTY),
    Column("reschedule_initiator", _choice(PARTIES), PARTY),
    Column("rescheduled_from_session_id", _identifier, ID),
    Column("is_first_session_for_student", parse_bool, BOOL),
    Column("student_rating", _integer(1, 5), "an integer 1-5"),
    Column("student_feedback", _text(None, strip=False), "a string"),
    Column("student_churned_after_session", parse_bool, BOOL),
)

TRANSCRIPT_ID = Column("session_id", _identifier, ID, required=True)


def clean_cells(
    columns: Sequence[Column], cells: Sequence[Any], where: str
) -> tuple[list[Any], list[str], set[str]]:
    """Parse one record's cells (aligned with `columns`, None when absent).

    Returns the clean values, the error messages and the names of the columns that failed.
    """
    values: list[Any] = []
    errors: list[str] = []
    failed: set[str] = set()
    append = values.append
    for column, value in zip(columns, cells, strict=True):
        if value is None or value == "" or (value.__class__ is str and value.isspace()):
            if column.required:
                errors.append(field_message(where, column.name, column.expected, None))
                failed.add(column.name)
            append(None)
            continue
        try:
            append(column.parse(value))
        except StorableTextError as exc:
            errors.append(field_message(where, column.name, exc.expected, value))
            failed.add(column.name)
            append(None)
        except FieldError:
            errors.append(field_message(where, column.name, column.expected, value))
            failed.add(column.name)
            append(None)
    return values, errors, failed


_SESSION_NAMES = [c.name for c in SESSION_COLUMNS]
_STATUS, _NO_SHOW_BY, _INITIATOR = (
    _SESSION_NAMES.index(name) for name in ("status", "no_show_by", "reschedule_initiator")
)


def session_row_checks(values: list[Any], where: str, failed: set[str]) -> list[str]:
    """Rules that span columns of one session (values in SESSION_COLUMNS order).

    Normalises `no_show_by`: null means tutor for a no-show.
    """
    status = values[_STATUS]
    if (
        status == "rescheduled"
        and values[_INITIATOR] is None
        and ("reschedule_initiator" not in failed)
    ):
        expected = f"{PARTY} when status is rescheduled"
        return [field_message(where, "reschedule_initiator", expected, None)]
    if status == "no_show" and values[_NO_SHOW_BY] is None and "no_show_by" not in failed:
        values[_NO_SHOW_BY] = "tutor"
    return []
