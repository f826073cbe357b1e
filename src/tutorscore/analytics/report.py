"""Reading tutor_metrics back: the per-tutor report (docs/data-format.md) and one tutor's detail.

`as_of=None` means "current": each tutor's latest row (`is_current`, kept by
analytics.service). A given `as_of` reads the rows of that computation; when some
tutor lacks one, `store=True` (the CLI) computes and stores them first, while
`store=False` (every web read) never writes: the list then answers from
`computed_reports` (rows computed in memory, rules only) paged by `page_of`, and
the detail computes its one tutor in memory.

The list picks its page of ids on narrow columns first and loads the full rows
(with their JSON reasons/details) for those ids only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session

from tutorscore.analytics.flags import (
    BY_NAME,
    CHURN_RISK,
    FILTER_NAMES,
    HIGH_RESCHEDULER,
    INSUFFICIENT_DATA,
    LOW_AI_QUALITY,
    LOW_RATING,
    NO_SHOW_RISK,
    POOR_FIRST_SESSION,
)
from tutorscore.analytics.queries import is_current_row, recent_sessions
from tutorscore.analytics.rules import risk_level, window_series
from tutorscore.analytics.service import (
    AfterWrite,
    compute_all,
    compute_rows,
    live_as_of,
    update_tutor,
)
from tutorscore.analytics.window import Window, iso
from tutorscore.config import RulesConfig, get_rules
from tutorscore.db.models.analytics import TutorMetrics
from tutorscore.db.models.core import Tutor
from tutorscore.errors import NotFound, UserError

RISK_LEVELS = ("high", "medium", "low", "not_enough_data")
FLAG_FILTERS = FILTER_NAMES
# sort key -> (column, natural direction: True = descending, worst first)
SORT_KEYS: dict[str, tuple[Any, bool]] = {
    "tutor_reschedule_rate": (TutorMetrics.tutor_reschedule_rate, True),
    "tutor_no_show_rate": (TutorMetrics.tutor_no_show_rate, True),
    "first_session_dropout_rate": (TutorMetrics.first_session_dropout_rate, True),
    "avg_student_rating": (TutorMetrics.avg_student_rating, False),
    "ai_avg_quality_score": (TutorMetrics.ai_avg_quality_score, False),
    "rating_trend": (TutorMetrics.rating_trend, False),
    "ai_score_trend": (TutorMetrics.ai_score_trend, False),
    "total_sessions": (TutorMetrics.total_sessions, True),
    "first_sessions": (TutorMetrics.first_sessions, True),
    "churn_probability": (TutorMetrics.churn_probability, True),
    "tutor_id": (TutorMetrics.tutor_id, False),
    "name": (Tutor.name, False),
}
SORT_ALIASES = {
    "reschedule_rate": "tutor_reschedule_rate",
    "no_show_rate": "tutor_no_show_rate",
    "dropout_rate": "first_session_dropout_rate",
    "rating": "avg_student_rating",
    "ai_score": "ai_avg_quality_score",
    "sessions": "total_sessions",
}
SORT_CHOICES = ("risk", *SORT_KEYS, *SORT_ALIASES)


# The report's own columns, in docs/data-format.md order: the list reads exactly these (never
# `details`, the heavy per-tutor JSON only the detail page needs) as plain rows.
REPORT_COLUMNS: tuple[str, ...] = (
    "tutor_id",
    "window_days",
    "as_of",
    "total_sessions",
    "first_sessions",
    "tutor_reschedule_rate",
    "tutor_no_show_rate",
    "first_session_dropout_rate",
    "avg_student_rating",
    "ai_avg_quality_score",
    HIGH_RESCHEDULER.name,
    POOR_FIRST_SESSION.name,
    NO_SHOW_RISK.name,
    CHURN_RISK.name,
    "churn_probability",
    "reasons",
    LOW_RATING.name,
    LOW_AI_QUALITY.name,
    INSUFFICIENT_DATA.name,
    "rating_trend",
    "ai_score_trend",
    "tutor_reschedules",
    "tutor_no_shows",
    "first_session_dropouts",
    "rated_sessions",
    "evaluated_sessions",
    "config_hash",
    "computed_at",
)


def _report_dict(row: Any, name: str, subjects: Sequence[str] | None) -> dict[str, Any]:
    """The report item from anything with the REPORT_COLUMNS as attributes."""
    out: dict[str, Any] = {}
    for column in REPORT_COLUMNS:
        value = getattr(row, column)
        out[column] = iso(value) if column in ("as_of", "computed_at") else value
        if column == "tutor_id":
            out["name"] = name
            out["subjects"] = list(subjects or [])
        elif column == INSUFFICIENT_DATA.name:
            out["risk_level"] = risk_level(row.churn_risk_label, row.insufficient_data)
    return out


def report_item(m: TutorMetrics, name: str, subjects: Sequence[str]) -> dict[str, Any]:
    """One tutor as docs/data-format.md "What the system reports per tutor" (plus extras)."""
    return _report_dict(m, name, subjects)


# ids per IN (...) when loading full rows (SQLite's bound-parameter limit)
LOAD_CHUNK = 500


def _subject_filter(session: Session, subject: str) -> ColumnElement[bool]:
    """Tutors whose `subjects` list holds `subject` (JSON, so per dialect)."""
    if session.get_bind().dialect.name == "postgresql":
        return Tutor.subjects.op("@>")(func.jsonb_build_array(subject)).is_(True)
    each = func.json_each(Tutor.subjects).table_valued("value")
    return exists(select(1).select_from(each).where(each.c.value == subject))


def _risk_filter(level: str) -> ColumnElement[bool]:
    if level == "not_enough_data":
        return and_(TutorMetrics.churn_risk_label == "low", TutorMetrics.insufficient_data)
    if level == "low":
        return and_(TutorMetrics.churn_risk_label == "low", ~TutorMetrics.insufficient_data)
    return TutorMetrics.churn_risk_label == level


def _order_by(sort: str) -> list[Any]:
    """`key` in its natural order (worst first), `-key` reversed, or `key:asc|desc`."""
    reverse = sort.startswith("-")
    key, _, direction = sort.lstrip("-").partition(":")
    key = SORT_ALIASES.get(key, key)
    if direction not in ("", "asc", "desc"):
        raise UserError(f"sort: direction must be asc or desc, got {direction!r}")
    tie = [TutorMetrics.tutor_id.asc()]
    if key == "risk":
        rank = case(
            (TutorMetrics.churn_risk_label == "high", 0),
            (TutorMetrics.churn_risk_label == "medium", 1),
            (TutorMetrics.insufficient_data, 3),
            else_=2,
        )
        no_show = case(
            (TutorMetrics.no_show_risk_label == "high", 0),
            (TutorMetrics.no_show_risk_label == "medium", 1),
            else_=2,
        )
        prob = TutorMetrics.churn_probability
        resched = TutorMetrics.tutor_reschedule_rate
        if reverse or direction == "asc":  # lowest risk first
            return [rank.desc(), prob.is_(None).asc(), prob.asc(), no_show.desc(), *tie]
        return [
            rank.asc(), prob.is_(None).asc(), prob.desc(), no_show.asc(),
            resched.is_(None).asc(), resched.desc(), *tie,
        ]  # fmt: skip
    if key not in SORT_KEYS:
        raise UserError(f"sort: unknown key {key!r}; choose from {', '.join(SORT_CHOICES)}")
    column, descending = SORT_KEYS[key]
    if direction:
        descending = direction == "desc"
    elif reverse:
        descending = not descending
    return [column.is_(None).asc(), column.desc() if descending else column.asc(), *tie]


def _check_aware(as_of: datetime | None) -> None:
    if as_of is not None and as_of.tzinfo is None:
        raise UserError("as_of: the timestamp needs an offset or Z (times are UTC)")


def _ensure_computed(
    session: Session,
    as_of: datetime | None,
    rules: RulesConfig | None,
    after_write: AfterWrite | None,
) -> None:
    """Compute the rows a report needs when they are missing (docs/cli.md `tutors`)."""
    if as_of is None:
        # one cheap probe on the common path (metrics exist); count tutors only when not
        if session.scalar(select(TutorMetrics.id).limit(1)) is None and session.scalar(
            select(Tutor.tutor_id).limit(1)
        ):
            rules = rules or get_rules()
            compute_all(session, as_of=live_as_of(), rules=rules, after_write=after_write)
        return
    tutors = session.scalar(select(func.count()).select_from(Tutor)) or 0
    if not tutors:
        return
    have = session.scalar(
        select(func.count()).select_from(TutorMetrics).where(TutorMetrics.as_of == as_of)
    )
    if (have or 0) < tutors:
        compute_all(session, as_of=as_of, rules=rules or get_rules(), after_write=after_write)


def stored_complete(session: Session, as_of: datetime) -> bool:
    """Whether every tutor has a stored row at exactly `as_of` (a run was stored there)."""
    tutors = session.scalar(select(func.count()).select_from(Tutor)) or 0
    have = session.scalar(
        select(func.count()).select_from(TutorMetrics).where(TutorMetrics.as_of == as_of)
    )
    return (have or 0) >= tutors


def computed_reports(
    session: Session, *, as_of: datetime, rules: RulesConfig
) -> list[dict[str, Any]]:
    """Every tutor's report item at `as_of`, computed in memory (nothing is written).

    Same SQL and rules as a stored run, without the churn model (rules' labels,
    `churn_probability` null). Sorted by tutor_id; `page_of` filters and orders.
    """
    _check_aware(as_of)
    tutors = {
        t.tutor_id: (t.name, t.subjects)
        for t in session.execute(select(Tutor.tutor_id, Tutor.name, Tutor.subjects))
    }
    rows = compute_rows(session.connection(), as_of=as_of, rules=rules, tutor_ids=sorted(tutors))
    out = []
    for row in rows:
        name, subjects = tutors[row["tutor_id"]]
        out.append(_report_dict(SimpleNamespace(**row), name, subjects))
    return out


def _sorted_items(items: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """`items` in the order `_order_by(sort)` gives in SQL (nulls last, tutor_id ties)."""
    reverse = sort.startswith("-")
    key, _, direction = sort.lstrip("-").partition(":")
    key = SORT_ALIASES.get(key, key)
    by_id = sorted(items, key=lambda it: it["tutor_id"])
    if key == "risk":

        def rank(it: dict[str, Any]) -> int:
            label = it[CHURN_RISK.name]
            if label == "high":
                return 0
            if label == "medium":
                return 1
            return 3 if it[INSUFFICIENT_DATA.name] else 2

        def no_show(it: dict[str, Any]) -> int:
            return {"high": 0, "medium": 1}.get(it[NO_SHOW_RISK.name], 2)

        def num(value: Any) -> float:
            return 0.0 if value is None else float(value)

        if reverse or direction == "asc":
            return sorted(by_id, key=lambda it: (
                -rank(it), it["churn_probability"] is None, num(it["churn_probability"]),
                -no_show(it),
            ))  # fmt: skip
        return sorted(by_id, key=lambda it: (
            rank(it), it["churn_probability"] is None, -num(it["churn_probability"]),
            no_show(it), it["tutor_reschedule_rate"] is None, -num(it["tutor_reschedule_rate"]),
        ))  # fmt: skip
    descending = SORT_KEYS[key][1]
    if direction:
        descending = direction == "desc"
    elif reverse:
        descending = not descending
    present = [it for it in by_id if it[key] is not None]
    present.sort(key=lambda it: it[key], reverse=descending)  # stable: tutor_id ties stay
    return present + [it for it in by_id if it[key] is None]


def page_of(
    items: list[dict[str, Any]],
    *,
    sort: str = "risk",
    risk: str | None = None,
    subject: str | None = None,
    min_sessions: int | None = None,
    flags: Iterable[str] = (),
    limit: int | None = 50,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """What `tutor_reports` answers, for items already in memory (`computed_reports`)."""
    flags = list(flags)
    _validate(sort, risk, flags, min_sessions, limit, offset)
    chosen = []
    for it in items:
        if risk is not None:
            label, insufficient = it[CHURN_RISK.name], it[INSUFFICIENT_DATA.name]
            if risk == "not_enough_data":
                ok = label == "low" and insufficient
            elif risk == "low":
                ok = label == "low" and not insufficient
            else:
                ok = label == risk
            if not ok:
                continue
        if subject and subject not in (it["subjects"] or []):
            continue
        if min_sessions is not None and it["total_sessions"] < min_sessions:
            continue
        if not all(BY_NAME[f].raised_in(it) for f in flags):
            continue
        chosen.append(it)
    ordered = _sorted_items(chosen, sort)
    end = None if limit is None else offset + limit
    return ordered[offset:end], len(chosen)


def _validate(
    sort: str,
    risk: str | None,
    flags: list[str],
    min_sessions: int | None,
    limit: int | None,
    offset: int,
) -> None:
    if risk is not None and risk not in RISK_LEVELS:
        raise UserError(f"risk: expected one of {', '.join(RISK_LEVELS)}, got {risk!r}")
    for flag in flags:
        if flag not in FLAG_FILTERS:
            raise UserError(f"flag: expected one of {', '.join(FLAG_FILTERS)}, got {flag!r}")
    if min_sessions is not None and min_sessions < 0:
        raise UserError("min_sessions: expected an integer >= 0")
    if offset < 0 or (limit is not None and limit < 0):
        raise UserError("limit and offset must be >= 0")
    _order_by(sort)


def tutor_reports(
    session: Session,
    *,
    as_of: datetime | None = None,
    sort: str = "risk",
    risk: str | None = None,
    subject: str | None = None,
    min_sessions: int | None = None,
    flags: Iterable[str] = (),
    limit: int | None = 50,
    offset: int = 0,
    rules: RulesConfig | None = None,
    ensure: bool = True,
    after_write: AfterWrite | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The per-tutor report: a page of items and the total matching count.

    `ensure=False` reads what is stored and never writes (no rows: an empty page);
    missing rows are computed with `after_write` (see `analytics.service.AfterWrite`).
    """
    flags = list(flags)
    _validate(sort, risk, flags, min_sessions, limit, offset)
    order = _order_by(sort)
    _check_aware(as_of)
    if ensure:
        _ensure_computed(session, as_of, rules, after_write)

    where = _report_filters(session, as_of, risk, subject, min_sessions, flags)

    # Narrow first: the count and the page of ids touch only filter/sort columns;
    # tutors is joined only when a filter or the sort needs it (the FK makes the
    # inner join otherwise a no-op).
    def narrow(*columns: Any) -> Any:
        query = select(*columns).select_from(TutorMetrics)
        if subject or sort.lstrip("-").partition(":")[0] == "name":
            query = query.join(Tutor, Tutor.tutor_id == TutorMetrics.tutor_id)
        return query.where(*where)

    total = session.scalar(narrow(func.count())) or 0
    page = narrow(TutorMetrics.id).order_by(*order).offset(offset)
    if limit is not None:
        page = page.limit(limit)
    return _report_rows(session, list(session.scalars(page))), total


def _report_filters(
    session: Session,
    as_of: datetime | None,
    risk: str | None,
    subject: str | None,
    min_sessions: int | None,
    flags: list[str],
) -> list[ColumnElement[bool]]:
    """The WHERE of tutor_reports: the rows at `as_of` (or the current ones) and filters."""
    where: list[ColumnElement[bool]] = [
        is_current_row() if as_of is None else TutorMetrics.as_of == as_of
    ]
    if risk is not None:
        where.append(_risk_filter(risk))
    if subject:
        where.append(_subject_filter(session, subject))
    if min_sessions is not None:
        where.append(TutorMetrics.total_sessions >= min_sessions)
    for flag in flags:
        chosen = BY_NAME[flag]
        column = getattr(TutorMetrics, str(chosen.column))
        where.append(column.is_(True) if chosen.raised is True else column == chosen.raised)
    return where


def _report_rows(session: Session, ids: list[int]) -> list[dict[str, Any]]:
    """The report items of the metrics rows `ids`, in that order.

    Only the page's rows are read in full (their reasons JSON decoded), as plain rows:
    no ORM objects and no `details`."""
    columns = [getattr(TutorMetrics, c) for c in REPORT_COLUMNS]
    full = select(TutorMetrics.id, Tutor.name, Tutor.subjects, *columns).join(
        Tutor, Tutor.tutor_id == TutorMetrics.tutor_id
    )
    rows: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start : start + LOAD_CHUNK]
        for r in session.execute(full.where(TutorMetrics.id.in_(chunk))):
            rows[r.id] = _report_dict(r, r.name, r.subjects)
    return [rows[i] for i in ids if i in rows]


HISTORY_COLUMNS = (
    "total_sessions",
    "tutor_reschedule_rate",
    "tutor_no_show_rate",
    "first_session_dropout_rate",
    "avg_student_rating",
    "ai_avg_quality_score",
    NO_SHOW_RISK.name,
    CHURN_RISK.name,
    "churn_probability",
)


def _history_point(m: Any) -> dict[str, Any]:
    return {
        "as_of": iso(m.as_of),
        **{column: getattr(m, column) for column in HISTORY_COLUMNS},
        "risk_level": risk_level(m.churn_risk_label, m.insufficient_data),
    }


def _history(
    session: Session, tutor_id: str, upto: datetime, points: int, computed: Any = None
) -> list[dict[str, Any]]:
    """The tutor's stored rows up to `upto`, oldest first; `computed` (a row computed in
    memory at `upto`) takes the place a stored row at `upto` would have."""
    if computed is not None:
        points -= 1
    rows = session.scalars(
        select(TutorMetrics)
        .where(TutorMetrics.tutor_id == tutor_id, TutorMetrics.as_of <= upto)
        .order_by(TutorMetrics.as_of.desc())
        .limit(points)
    ).all()
    out = [_history_point(m) for m in reversed(rows)]
    if computed is not None:
        out.append(_history_point(computed))
    return out


def _recent_sessions(
    session: Session, tutor_id: str, row: TutorMetrics, rules: RulesConfig, limit: int
) -> list[dict[str, Any]]:
    """The tutor's latest sessions up to as_of, with first-session badges and evaluations."""
    from tutorscore.reviews.counted import counted_params

    window_start = row.as_of - timedelta(days=row.window_days)
    rows = recent_sessions(
        session, tutor_id, counted=counted_params(session, rules), limit=limit, upto=row.as_of
    )
    max_rating = rules.thresholds.poor_first_session_max_rating
    out = []
    for r in rows:
        at: datetime = r["scheduled_start_at"]
        first = r["is_first_session"] and r["status"] == "completed"
        risk_tags = r["risk_tags"]
        out.append(
            {
                "session_id": r["session_id"],
                "student_id": r["student_id"],
                "subject": r["subject"],
                "scheduled_start_at": iso(at),
                "status": r["status"],
                "no_show_by": r["no_show_by"],
                "reschedule_initiator": r["reschedule_initiator"],
                "duration_minutes": r["duration_minutes"],
                "student_rating": r["student_rating"],
                "student_churned_after_session": r["student_churned_after_session"],
                "is_first_session": first,
                "first_session_failed": first
                and (
                    bool(r["student_churned_after_session"])
                    or (r["student_rating"] is not None and r["student_rating"] <= max_rating)
                ),
                "in_window": window_start < at <= row.as_of,
                "evaluation": None
                if r["evaluation_id"] is None
                else {
                    "evaluation_id": r["evaluation_id"],
                    "judge": r["judge"],
                    "quality_score": r["quality_score"],
                    "risk_tags": risk_tags or [],
                },
            }
        )
    return out


def tutor_detail(
    session: Session,
    tutor_id: str,
    *,
    as_of: datetime | None = None,
    rules: RulesConfig | None = None,
    store: bool = True,
    after_write: AfterWrite | None = None,
) -> dict[str, Any]:
    """One tutor: the report item plus history, weekly series, subjects and recent sessions.

    When the tutor has no row for `as_of` (or no current row), `store=True` computes
    and stores it (`update_tutor`, then `after_write`); `store=False` computes it in
    memory only (rules' labels, no churn model), so a read never writes.
    """
    _check_aware(as_of)
    tutor = session.get(Tutor, tutor_id)
    if tutor is None:
        raise NotFound(f"tutor {tutor_id!r} not found")
    rules = rules or get_rules()
    where = is_current_row() if as_of is None else TutorMetrics.as_of == as_of
    query = select(TutorMetrics).where(TutorMetrics.tutor_id == tutor_id, where)
    row: Any = session.scalar(query)
    computed = None
    if row is None and not store:
        (values,) = compute_rows(
            session.connection(), as_of=as_of or live_as_of(), rules=rules, only=tutor_id
        )
        row = computed = SimpleNamespace(**values)
    elif row is None:
        update_tutor(session, tutor_id, rules=rules, as_of=as_of, after_write=after_write)
        row = session.scalar(query)
        if row is None:  # pragma: no cover - update_tutor always writes the row
            raise NotFound(f"no metrics for tutor {tutor_id!r}")
    item = report_item(row, tutor.name, tutor.subjects)
    details = row.details or {}
    series = window_series(details, Window.build(row.as_of, row.window_days))
    item.update(
        {
            "years_experience": tutor.years_experience,
            "timezone": tutor.timezone,
            "hire_date": tutor.hire_date.isoformat() if tutor.hire_date else None,
            "churned_on": tutor.churned_on.isoformat() if tutor.churned_on else None,
            "window": series["window"],
            "counts": details.get("counts", {}),
            "halves": series["halves"],
            "weekly": series["weekly"],
            "first_sessions_by_subject": details.get("first_sessions_by_subject", []),
            "guards": details.get("guards", {}),
            "history": _history(
                session, tutor_id, row.as_of, rules.analytics.history_points, computed
            ),
            "recent_sessions": _recent_sessions(
                session, tutor_id, row, rules, rules.analytics.recent_sessions
            ),
            "churn_model": details.get("churn_model"),
        }
    )
    return item


__all__ = [
    "computed_reports",
    "page_of",
    "stored_complete",
    "FLAG_FILTERS",
    "RISK_LEVELS",
    "SORT_CHOICES",
    "report_item",
    "tutor_detail",
    "tutor_reports",
]
