"""The metrics SQL: set-based aggregation in the database, portable SQLite/Postgres.

One GROUP BY pass over the window's sessions per (tutor, bucket) gives every
count the rules need; Python only adds up a handful of buckets per tutor. All
rates and means are then computed in Python from integer counts (and one float
sum, rounded), so both backends give identical numbers.

Which evaluation counts for a session is `evaluation.queries.chosen_evaluations`
(the preferred judge version's latest, else the latest `llm` one, else the latest).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text

from tutorscore.analytics.flags import (
    HIGH_RESCHEDULER,
    LOW_AI_QUALITY,
    LOW_RATING,
    NO_SHOW_RISK,
    POOR_FIRST_SESSION,
)
from tutorscore.analytics.window import Window
from tutorscore.config import RulesConfig
from tutorscore.db.base import UTCDateTime
from tutorscore.evaluation.queries import chosen_evaluations

COUNTED_STATUSES = ("completed", "no_show", "rescheduled")

# The sessions in the window (`s` is the sessions table).
IN_WINDOW = "s.scheduled_start_at > :window_start AND s.scheduled_start_at <= :as_of"
TUTOR_RESCHEDULE = "s.status = 'rescheduled' AND s.reschedule_initiator = 'tutor'"
TUTOR_NO_SHOW = "s.status = 'no_show' AND COALESCE(s.no_show_by, 'tutor') = 'tutor'"
FIRST_SESSION = "s.status = 'completed' AND s.is_first_session"
LOW_RATED = "s.status = 'completed' AND s.student_rating < :low_rating"
FIRST_SESSION_FAILED = (
    f"{FIRST_SESSION} AND (s.student_churned_after_session"
    " OR s.student_rating <= :max_first_rating)"
)


def statement(sql: str, params: Mapping[str, Any]) -> TextClause:
    """A text statement with typed binds: datetimes as UTC, lists expanded.

    Parameters the SQL does not use are skipped, so callers can pass a common set.
    """
    clause = text(sql)
    used = set(clause._bindparams)
    binds = []
    for name, value in params.items():
        if name not in used:
            continue
        if isinstance(value, datetime):
            binds.append(bindparam(name, value, type_=UTCDateTime()))
        elif isinstance(value, list | tuple):
            binds.append(bindparam(name, list(value), expanding=True))
        else:
            binds.append(bindparam(name, value))
    return clause.bindparams(*binds)


@dataclass
class Tally:
    """Counts over some slice of a tutor's window (whole window, a half, a week)."""

    total_sessions: int = 0
    completed: int = 0
    tutor_reschedules: int = 0
    student_reschedules: int = 0
    tutor_no_shows: int = 0
    student_no_shows: int = 0
    cancelled: int = 0
    first_sessions: int = 0
    first_session_dropouts: int = 0
    rated_sessions: int = 0
    rating_sum: int = 0
    evaluated_sessions: int = 0
    quality_sum: float = 0.0

    def add(self, o: Tally) -> None:
        """Written out (no getattr loop): it runs a few times per (tutor, bucket) row."""
        self.total_sessions += o.total_sessions
        self.completed += o.completed
        self.tutor_reschedules += o.tutor_reschedules
        self.student_reschedules += o.student_reschedules
        self.tutor_no_shows += o.tutor_no_shows
        self.student_no_shows += o.student_no_shows
        self.cancelled += o.cancelled
        self.first_sessions += o.first_sessions
        self.first_session_dropouts += o.first_session_dropouts
        self.rated_sessions += o.rated_sessions
        self.rating_sum += o.rating_sum
        self.evaluated_sessions += o.evaluated_sessions
        self.quality_sum += o.quality_sum

    @property
    def avg_rating(self) -> float | None:
        return mean(self.rating_sum, self.rated_sessions)

    @property
    def avg_quality(self) -> float | None:
        return mean(self.quality_sum, self.evaluated_sessions)


def _total(rows: list[list[Any]]) -> Tally:
    """A Tally of column sums over bucket rows (values in TALLY_COLUMNS order)."""
    if len(rows) == 1:  # most weeks hold one bucket
        return Tally(*rows[0])
    return Tally(*[sum(column) for column in zip(*rows, strict=True)])


def mean(total: float, count: int) -> float | None:
    """A mean rounded to 6 places (so float sums agree across backends); None for none."""
    return round(total / count, 6) if count else None


@dataclass
class SubjectFirstSessions:
    subject: str
    first_sessions: int
    dropouts: int
    failed_ids: str | None = None  # _US-separated ids of the failed ones


@dataclass
class TutorCounts:
    """Everything the rules need about one tutor in one window."""

    tutor_id: str
    window: Tally = field(default_factory=Tally)
    halves: dict[int, Tally] = field(default_factory=lambda: {1: Tally(), 2: Tally()})
    weeks: dict[int, Tally] = field(default_factory=dict)
    subjects: list[SubjectFirstSessions] = field(default_factory=list)
    # evidence kind -> bucket index -> _US-separated session ids (see evidence_ids)
    evidence: dict[str, dict[int, str]] = field(default_factory=dict)

    def evidence_ids(self, kind: str, cap: int, subject: str | None = None) -> list[str]:
        """The sessions behind a flag: most recent bucket first, ids sorted within one."""
        if subject is not None:
            found = next((x for x in self.subjects if x.subject == subject), None)
            ids = found.failed_ids.split(_US) if found and found.failed_ids else []
            return sorted(ids, reverse=True)[:cap]
        out: list[str] = []
        for _, joined in sorted(self.evidence.get(kind, {}).items()):
            out.extend(sorted(joined.split(_US), reverse=True))
            if len(out) >= cap:
                break
        return out[:cap]


TALLY_COLUMNS = tuple(Tally.__dataclass_fields__)


def _bucket_case(window: Window, column: str) -> tuple[str, dict[str, Any]]:
    """CASE giving the window bucket of `column` (bound edges, portable SQL)."""
    params: dict[str, Any] = {}
    whens = []
    for bucket in window.buckets[:-1]:
        params[f"b{bucket.index}"] = bucket.lower
        whens.append(f"WHEN {column} > :b{bucket.index} THEN {bucket.index}")
    last = window.buckets[-1].index
    return (f"CASE {' '.join(whens)} ELSE {last} END" if whens else str(last)), params


def _concat(dialect: str, expr: str) -> str:
    """Aggregate concatenation of `expr` (NULLs skipped) joined by the bound :us."""
    name = "string_agg" if dialect == "postgresql" else "group_concat"
    return f"{name}({expr}, :us)"


# the evidence columns of the sessions query, in its order (kinds from the flag registry)
EVIDENCE_KINDS = tuple(
    str(f.evidence) for f in (HIGH_RESCHEDULER, NO_SHOW_RISK, POOR_FIRST_SESSION, LOW_RATING)
)
LOW_AI_QUALITY_EVIDENCE = str(LOW_AI_QUALITY.evidence)  # from the evaluations query


def _aggregate_sql(
    window: Window, tutor_filter: str, dialect: str
) -> tuple[str, str, dict[str, Any]]:
    """Two GROUP BY (tutor, bucket) statements: sessions, and their chosen evaluations.

    Evaluations are aggregated on their own (from the few evaluated sessions)
    rather than joined to every session row: it halves the SQLite time. The
    evidence (ids of the sessions behind each flag) is concatenated in the same
    pass, so no second scan is needed; Python splits it for flagged tutors only.
    """
    bucket_expr, params = _bucket_case(window, "s.scheduled_start_at")
    counted = ", ".join(f"'{s}'" for s in COUNTED_STATUSES)
    where = f"{IN_WINDOW}{tutor_filter}"
    sessions_sql = f"""SELECT s.tutor_id AS tutor_id, {bucket_expr} AS bucket,
  COUNT(CASE WHEN s.status IN ({counted}) THEN 1 END) AS total_sessions,
  COUNT(CASE WHEN s.status = 'completed' THEN 1 END) AS completed,
  COUNT(CASE WHEN {TUTOR_RESCHEDULE} THEN 1 END) AS tutor_reschedules,
  COUNT(CASE WHEN s.status = 'rescheduled' AND COALESCE(s.reschedule_initiator, '') <> 'tutor'
    THEN 1 END) AS student_reschedules,
  COUNT(CASE WHEN {TUTOR_NO_SHOW} THEN 1 END) AS tutor_no_shows,
  COUNT(CASE WHEN s.status = 'no_show' AND NOT ({TUTOR_NO_SHOW}) THEN 1 END)
    AS student_no_shows,
  COUNT(CASE WHEN s.status = 'cancelled' THEN 1 END) AS cancelled,
  COUNT(CASE WHEN {FIRST_SESSION} THEN 1 END) AS first_sessions,
  COUNT(CASE WHEN {FIRST_SESSION_FAILED} THEN 1 END) AS first_session_dropouts,
  COUNT(CASE WHEN s.status = 'completed' THEN s.student_rating END) AS rated_sessions,
  SUM(CASE WHEN s.status = 'completed' THEN s.student_rating ELSE 0 END) AS rating_sum,
  {_concat(dialect, f"CASE WHEN {TUTOR_RESCHEDULE} THEN s.session_id END")},
  {_concat(dialect, f"CASE WHEN {TUTOR_NO_SHOW} THEN s.session_id END")},
  {_concat(dialect, f"CASE WHEN {FIRST_SESSION_FAILED} THEN s.session_id END")},
  {_concat(dialect, f"CASE WHEN {LOW_RATED} THEN s.session_id END")}
FROM sessions s
WHERE {where}
GROUP BY s.tutor_id, bucket"""
    eval_bucket, _ = _bucket_case(window, "c.scheduled_start_at")
    evaluations_sql = f"""WITH {chosen_evaluations(f"{where} AND s.status = 'completed'")}
SELECT c.tutor_id AS tutor_id, {eval_bucket} AS bucket,
  COUNT(*) AS evaluated_sessions, SUM(c.quality_score) AS quality_sum,
  {_concat(dialect, "CASE WHEN c.quality_score < :low_ai_quality THEN c.session_id END")}
FROM chosen c
GROUP BY c.tutor_id, bucket"""
    return sessions_sql, evaluations_sql, params


@contextmanager
def _whole_table_scan(conn: Connection, enabled: bool) -> Iterator[None]:
    """On Postgres, steer the full recompute's sessions pass to a (parallel) seq scan.

    The planner otherwise walks the (tutor_id, scheduled_start_at) index, fetching
    every window row from the heap in random order: at 1M sessions 4.5 s against
    2.7 s for seq scan + sort. Transaction-local, restored right after the statement.
    The one-tutor path keeps the index.
    """
    if not enabled or conn.dialect.name != "postgresql":
        yield
        return
    names = ("enable_indexscan", "enable_bitmapscan")
    before = {n: conn.scalar(text(f"SELECT current_setting('{n}')")) for n in names}
    for name in names:
        conn.execute(text(f"SELECT set_config('{name}', 'off', true)"))
    try:
        yield
    finally:
        for name, value in before.items():
            conn.execute(text(f"SELECT set_config('{name}', :v, true)"), {"v": value})


def window_params(window: Window, rules: RulesConfig) -> dict[str, Any]:
    return {
        "window_start": window.start,
        "as_of": window.as_of,
        "max_first_rating": rules.thresholds.poor_first_session_max_rating,
        "low_rating": rules.thresholds.low_rating,
        "low_ai_quality": rules.thresholds.low_ai_quality,
        "us": _US,
    }


def aggregate(
    conn: Connection,
    window: Window,
    rules: RulesConfig,
    tutor_ids: Iterable[str],
    *,
    only: str | None = None,
) -> dict[str, TutorCounts]:
    """Counts for every tutor in `tutor_ids` (zeros when a tutor has no sessions).

    `only` restricts the SQL to one tutor (the incremental path); the statement is
    otherwise the same one the full recompute runs.
    """
    from tutorscore.reviews.counted import counted_params

    base = {**window_params(window, rules), **counted_params(conn, rules)}
    tutor_filter = ""
    if only is not None:
        tutor_filter = " AND s.tutor_id = :tutor_id"
        base["tutor_id"] = only
    sessions_sql, evaluations_sql, bucket_params = _aggregate_sql(
        window, tutor_filter, conn.dialect.name
    )
    params = {**base, **bucket_params}
    out = {tid: TutorCounts(tid) for tid in tutor_ids}
    buckets = _Buckets(out)
    with _whole_table_scan(conn, only is None):
        session_rows = conn.execute(statement(sessions_sql, params)).all()
    buckets.add_sessions(session_rows)
    buckets.add_evaluations(conn.execute(statement(evaluations_sql, params)))
    _sum_slices(out, buckets.values, window)
    _first_sessions_by_subject(conn, out, tutor_filter, base)
    return out


_N_TALLY = len(TALLY_COLUMNS) - 2  # the sessions query has no evaluation columns


@dataclass
class _Buckets:
    """tutor -> bucket index -> the bucket's Tally values (sessions, then evaluations),
    for the tutors in `out`; their evidence ids are kept on the way."""

    out: dict[str, TutorCounts]
    values: dict[str, dict[int, list[Any]]] = field(default_factory=dict)

    def slot(self, tutor_id: str, bucket_index: int) -> list[Any] | None:
        if tutor_id not in self.out:
            return None
        tutor_buckets = self.values.setdefault(tutor_id, {})
        values = tutor_buckets.get(bucket_index)
        if values is None:
            values = tutor_buckets[bucket_index] = [0] * _N_TALLY + [0, 0.0]
        return values

    def keep(self, tutor_id: str, kind: str, bucket_index: int, ids: str | None) -> None:
        if ids:
            self.out[tutor_id].evidence.setdefault(kind, {})[bucket_index] = ids

    def add_sessions(self, rows: Iterable[Any]) -> None:
        for tutor_id, bucket_index, *values in rows:
            index = int(bucket_index)
            found = self.slot(tutor_id, index)
            if found is None:
                continue
            found[:_N_TALLY] = [v or 0 for v in values[:_N_TALLY]]
            for kind, ids in zip(EVIDENCE_KINDS, values[_N_TALLY:], strict=True):
                self.keep(tutor_id, kind, index, ids)

    def add_evaluations(self, rows: Iterable[Any]) -> None:
        for tutor_id, bucket_index, n, total, low_ai_ids in rows:
            index = int(bucket_index)
            found = self.slot(tutor_id, index)
            if found is None:
                continue
            found[_N_TALLY], found[_N_TALLY + 1] = n, float(total or 0)
            self.keep(tutor_id, LOW_AI_QUALITY_EVIDENCE, index, low_ai_ids)


def _sum_slices(
    out: dict[str, TutorCounts], per_bucket: dict[str, dict[int, list[Any]]], window: Window
) -> None:
    """Whole window, halves and weeks: column sums over their buckets, in bucket
    order (one Tally per slice instead of three Tally.add per SQL row)."""
    buckets = {b.index: b for b in window.buckets}
    for tutor_id, tutor_buckets in per_bucket.items():
        tutor = out[tutor_id]
        ordered = sorted(tutor_buckets.items())
        tutor.window = _total([values for _, values in ordered])
        for half in (1, 2):
            chosen = [values for i, values in ordered if buckets[i].half == half]
            if chosen:
                tutor.halves[half] = _total(chosen)
        weeks: dict[int, list[list[Any]]] = {}
        for i, values in ordered:
            weeks.setdefault(buckets[i].week, []).append(values)
        tutor.weeks = {week: _total(chosen) for week, chosen in weeks.items()}


def _first_sessions_by_subject(
    conn: Connection, out: dict[str, TutorCounts], tutor_filter: str, params: dict[str, Any]
) -> None:
    """Each tutor's first sessions per subject (sorted by subject), with the failed ids."""
    first_sql = f"""SELECT s.tutor_id AS tutor_id, s.subject AS subject,
  COUNT(*) AS first_sessions,
  COUNT(CASE WHEN {FIRST_SESSION_FAILED} THEN 1 END) AS dropouts,
  {_concat(conn.dialect.name, f"CASE WHEN {FIRST_SESSION_FAILED} THEN s.session_id END")}
    AS failed_ids
FROM sessions s
WHERE {IN_WINDOW}{tutor_filter} AND {FIRST_SESSION}
GROUP BY s.tutor_id, s.subject"""
    for row in conn.execute(statement(first_sql, params)).mappings():
        counts = out.get(row["tutor_id"])
        if counts is not None:
            counts.subjects.append(
                SubjectFirstSessions(
                    row["subject"],
                    row["first_sessions"],
                    row["dropouts"] or 0,
                    row["failed_ids"],
                )
            )
    for counts in out.values():
        counts.subjects.sort(key=lambda s: s.subject)


# Separators of the aggregated evidence ids (ASCII record / unit separators: not in ids).
_RS, _US = "\x1e", "\x1f"
