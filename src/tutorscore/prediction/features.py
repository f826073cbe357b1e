"""Per-tutor features at a point in time, from the sessions and evaluations tables.

One set-based query per `as_of` (conditional aggregation grouped by tutor) gives
every tutor's rates, levels and trends; nothing after `as_of` is read, so the
same function builds training snapshots in the past and today's scoring rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
from sqlalchemy import String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tutorscore.config import RulesConfig
from tutorscore.db.models import SessionEvaluation, Tutor, TutoringSession

COUNTED_STATUSES = ("completed", "no_show", "rescheduled")


@dataclass(frozen=True)
class FeatureSpec:
    """A model input and how a coach reads it (`kind` picks the number format)."""

    name: str
    label: str
    kind: str  # rate | rate_change | count | score | score_change | days | ratio


BASE_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("total_sessions", "sessions in the last 30 days", "count"),
    FeatureSpec("volume_change", "session volume vs the 30 days before", "log_ratio"),
    FeatureSpec("sessions_14d", "sessions in the last 14 days", "count"),
    FeatureSpec("sessions_prev_14d", "sessions in the 14 days before", "count"),
    FeatureSpec("volume_change_14d", "session volume, last 14 days vs the 14 before", "log_ratio"),
    FeatureSpec(
        "volume_vs_own_level_14d",
        "session volume, last 14 days vs the tutor's own level",
        "log_ratio",
    ),
    FeatureSpec("tutor_reschedule_rate", "reschedule rate (30 days)", "rate"),
    FeatureSpec("reschedule_rate_14d", "reschedule rate (14 days)", "rate"),
    FeatureSpec("reschedule_rate_change_14d", "change in reschedule rate (14 days)", "rate_change"),
    FeatureSpec("tutor_no_show_rate", "no-show rate (30 days)", "rate"),
    FeatureSpec("no_show_rate_change_14d", "change in no-show rate (14 days)", "rate_change"),
    FeatureSpec("avg_student_rating", "average student rating (30 days)", "score"),
    FeatureSpec("rating_14d", "average student rating (14 days)", "score"),
    FeatureSpec("rating_change_14d", "rating, last 14 days vs the 14 before", "score_change"),
    FeatureSpec("ai_avg_quality_score", "AI quality score (30 days)", "score"),
    FeatureSpec("ai_score_change_14d", "AI score, last 14 days vs the 14 before", "score_change"),
    FeatureSpec("student_churn_rate", "students who left after a session", "rate"),
    FeatureSpec("tenure_days", "tenure", "days"),
    FeatureSpec("new_tutor", "tenure under 90 days", "flag"),
    FeatureSpec("days_since_last_session", "days since the last completed session", "days"),
    FeatureSpec("no_session_30d", "no completed session in 30 days", "flag"),
)
# First-session results are not model inputs: ingest marks a pair's earliest session
# in the data as its first, so their counts depend on how far a snapshot is from the
# start of the data (on the 1M synthetic set 9.1 per tutor at day 34, 1.5 at day 90)
# and adding them cost the model 0.02-0.04 held-out AUC. The rules still use them,
# and the model sees them through rules_churn_risk.
NEW_TUTOR_DAYS = 90
# Volume comparisons are per active day: a window that starts before the tutor's
# hire date (or before the first session in the database) counts only the days
# after it, and a window with fewer active days than this is unknown (NaN).
MIN_EXPOSURE_DAYS = 7.0
# A session's student_churned_after_session is only known once the student has
# stayed away for a while: flags on sessions newer than this are not read.
STUDENT_CHURN_SETTLE_DAYS = 14

# The rules' own churn_risk_label (0 low, 1 medium, 2 high), filled in by the churn
# module from the analytics rules: the model starts from what the rules know.
RULES_FEATURE = FeatureSpec("rules_churn_risk", "churn risk by the rules", "level")

# Counts the rules' small-sample guards need; kept beside the features, not fed to the model.
GUARD_COLUMNS = ("rated_sessions", "evaluated_sessions")


def risk_tags(rules: RulesConfig) -> list[str]:
    """Evaluation risk tags the playbook knows: each becomes a share-of-sessions feature."""
    from tutorscore.interventions.playbook import tag_keys

    return tag_keys(rules)


def feature_specs(rules: RulesConfig) -> list[FeatureSpec]:
    tags = [
        FeatureSpec(f"tag_{tag}_share", f"sessions tagged {tag.replace('_', ' ')}", "rate")
        for tag in risk_tags(rules)
    ]
    return [*BASE_FEATURES, *tags, RULES_FEATURE]


@dataclass
class FeatureFrame:
    """Feature matrix for the tutors known at `as_of` (NaN where a value has no data)."""

    as_of: datetime
    tutor_ids: list[str]
    names: list[str]
    X: np.ndarray[Any, np.dtype[np.float64]]
    guards: dict[str, np.ndarray[Any, np.dtype[np.float64]]] = field(default_factory=dict)
    churned_on: list[date | None] = field(default_factory=list)

    def column(self, name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        if name in self.guards:
            return self.guards[name]
        return self.X[:, self.names.index(name)]

    def only(self, tutor_ids: set[str]) -> FeatureFrame:
        """The rows of these tutors (same order); self when nothing would be dropped."""
        keep = [i for i, t in enumerate(self.tutor_ids) if t in tutor_ids]
        if len(keep) == len(self.tutor_ids):
            return self
        return FeatureFrame(
            as_of=self.as_of,
            tutor_ids=[self.tutor_ids[i] for i in keep],
            names=self.names,
            X=self.X[keep],
            guards={k: v[keep] for k, v in self.guards.items()},
            churned_on=[self.churned_on[i] for i in keep] if self.churned_on else [],
        )

    def labels(self, horizon_days: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """1 when the tutor left within (as_of, as_of + horizon]."""
        start = self.as_of.date()
        end = (self.as_of + timedelta(days=horizon_days)).date()
        return np.array(
            [1 if c is not None and start < c <= end else 0 for c in self.churned_on],
            dtype=np.int64,
        )


def _ratio(num: float | None, den: float | None) -> float:
    if num is None or not den:
        return math.nan
    return float(num) / float(den)


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def _mean(total: float, count: int) -> float | None:
    return total / count if count else None


# Periods of a session's time t before as_of (W the window, F the fortnight):
# 3 = (as_of - F, as_of], 2 = (as_of - 2F, as_of - F], 1 = the rest of the window,
# 0 = the window before it (trends and recency only).
LAST, PREV, REST, BEFORE = 3, 2, 1, 0
WINDOW_PERIODS = (LAST, PREV, REST)


def _combine(by_period: dict[int, Any], tags: list[str]) -> SimpleNamespace:
    """Window and fortnight figures from the per-period sums."""
    empty = SimpleNamespace(
        total=0, resched=0, no_show=0, completed=0, rated=0, rating_sum=0,
        student_churn=0, settled=0,
        evaluated=0, q_sum=0, first_seen=None, last_completed=None,
        **{f"tag_{tag}": 0 for tag in tags},
    )  # fmt: skip
    p = {k: by_period.get(k, empty) for k in (LAST, PREV, REST, BEFORE)}

    def tot(name: str, periods: tuple[int, ...] = WINDOW_PERIODS) -> float:
        return sum(float(getattr(p[k], name) or 0) for k in periods)

    seen = [v.first_seen for v in p.values() if v.first_seen is not None]
    last = [v.last_completed for v in p.values() if v.last_completed is not None]
    out = SimpleNamespace(
        total=tot("total"),
        prev_total=tot("total", (BEFORE,)),
        total_14=tot("total", (LAST,)),
        prev_14=tot("total", (PREV,)),
        resched=tot("resched"),
        resched_14=tot("resched", (LAST,)),
        resched_prev_14=tot("resched", (PREV,)),
        no_show=tot("no_show"),
        no_show_14=tot("no_show", (LAST,)),
        no_show_prev_14=tot("no_show", (PREV,)),
        rated=tot("rated"),
        rating=_mean(tot("rating_sum"), int(tot("rated"))),
        rating_14=_mean(tot("rating_sum", (LAST,)), int(tot("rated", (LAST,)))),
        rating_prev_14=_mean(tot("rating_sum", (PREV,)), int(tot("rated", (PREV,)))),
        evaluated=tot("evaluated"),
        ai=_mean(tot("q_sum"), int(tot("evaluated"))),
        ai_14=_mean(tot("q_sum", (LAST,)), int(tot("evaluated", (LAST,)))),
        ai_prev_14=_mean(tot("q_sum", (PREV,)), int(tot("evaluated", (PREV,)))),
        settled=tot("settled"),
        student_churn=tot("student_churn"),
        first_seen=min(seen) if seen else None,
        last_completed=max(last) if last else None,
    )
    for tag in tags:
        setattr(out, f"tag_{tag}", tot(f"tag_{tag}"))
    return out


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _log_ratio(now: float, before: float) -> float:
    """log((now + 1) / (before + 1)): 0 for no change, symmetric, never infinite."""
    return math.log((now + 1.0) / (before + 1.0))


def _active_days(started: datetime, lo: datetime, hi: datetime) -> float:
    """Days of the window (lo, hi] after `started` (the tutor's first day in the data)."""
    return max((hi - max(lo, started)).total_seconds() / 86400, 0.0)


def _volume_change(
    now: float, now_days: float, before: float, before_days: float, scale_days: float
) -> float:
    """_log_ratio of two session counts per active day, each scaled to `scale_days`;
    NaN when either window has fewer than MIN_EXPOSURE_DAYS active days."""
    if now_days < MIN_EXPOSURE_DAYS or before_days < MIN_EXPOSURE_DAYS:
        return math.nan
    return _log_ratio(now / now_days * scale_days, before / before_days * scale_days)


@dataclass(frozen=True)
class _Periods:
    """The time bounds compute_features reads (see the periods above)."""

    as_of: datetime
    window: timedelta
    fortnight: timedelta
    start: datetime  # of the window
    prev_start: datetime  # of the window before it
    f1: datetime  # start of the last fortnight
    f2: datetime  # start of the fortnight before
    settled_before: datetime  # sessions whose student churn flag is known

    @classmethod
    def of(cls, as_of: datetime, rules: RulesConfig) -> _Periods:
        window = timedelta(days=rules.analytics.window_days)
        fortnight = timedelta(days=min(rules.prediction.short_window_days, window.days / 2))
        return cls(
            as_of=as_of,
            window=window,
            fortnight=fortnight,
            start=as_of - window,
            prev_start=as_of - 2 * window,
            f1=as_of - fortnight,
            f2=as_of - 2 * fortnight,
            settled_before=as_of - timedelta(days=STUDENT_CHURN_SETTLE_DAYS),
        )

    @property
    def horizon_days(self) -> float:
        return 2 * self.window.total_seconds() / 86400


def _session_sums(p: _Periods, tutor_ids: list[str] | None) -> Any:
    """Session sums per (tutor, period).

    One row per session with its period (LAST, PREV, REST, BEFORE above) and 0/1
    flags; the outer query only sums integers grouped by (tutor, period). Repeating
    the time tests inside every aggregate was 10x slower on SQLite."""
    s = TutoringSession.__table__.c
    t = s.scheduled_start_at
    counted = s.status.in_(COUNTED_STATUSES)
    completed = s.status == "completed"
    resched = and_(s.status == "rescheduled", s.reschedule_initiator == "tutor")
    no_show = and_(s.status == "no_show", or_(s.no_show_by == "tutor", s.no_show_by.is_(None)))
    rated = and_(completed, s.student_rating.is_not(None))
    settled = and_(completed, t <= p.settled_before)
    student_left = and_(settled, s.student_churned_after_session.is_(True))

    def flag(cond: ColumnElement[bool], name: str) -> Any:
        return case((cond, 1), else_=0).label(name)

    per_session = select(
        s.tutor_id,
        case((t > p.f1, LAST), (t > p.f2, PREV), (t > p.start, REST), else_=BEFORE).label("period"),
        t.label("at"),
        flag(counted, "counted"),
        flag(resched, "resched"),
        flag(no_show, "no_show"),
        flag(completed, "completed"),
        case((rated, s.student_rating)).label("rating"),
        flag(student_left, "churned"),
        flag(settled, "settled"),
        case((completed, t)).label("completed_at"),
    ).where(t > p.prev_start, t <= p.as_of)
    if tutor_ids is not None:
        per_session = per_session.where(s.tutor_id.in_(tutor_ids))
    ps = per_session.subquery("ps")
    return select(
        ps.c.tutor_id,
        ps.c.period,
        func.sum(ps.c.counted).label("total"),
        func.sum(ps.c.resched).label("resched"),
        func.sum(ps.c.no_show).label("no_show"),
        func.sum(ps.c.completed).label("completed"),
        func.count(ps.c.rating).label("rated"),
        func.sum(ps.c.rating).label("rating_sum"),
        func.sum(ps.c.churned).label("student_churn"),
        func.sum(ps.c.settled).label("settled"),
        func.min(ps.c.at).label("first_seen"),
        func.max(ps.c.completed_at).label("last_completed"),
    ).group_by(ps.c.tutor_id, ps.c.period)


def _evaluation_sums(p: _Periods, tutor_ids: list[str] | None, tags: list[str]) -> Any:
    """Evaluation sums per (tutor, period) over completed sessions in the window.

    Aggregated on their own (one row per evaluated session, then per tutor and
    period) and added to the session sums in Python: LEFT JOINing them to every
    session row was 3-4x slower on SQLite at 1M sessions. A session's score is the
    mean of its evaluations; a tag counts once per session."""
    ev = SessionEvaluation
    s = TutoringSession.__table__.c
    t = s.scheduled_start_at
    tag_cols = [
        func.max(
            case((cast(ev.risk_tags, String).contains(f'"{tag}"', autoescape=True), 1), else_=0)
        ).label(f"tag_{tag}")
        for tag in tags
    ]
    per_eval = (
        select(
            ev.session_id,
            s.tutor_id,
            t.label("at"),
            func.avg(ev.quality_score).label("q"),
            *tag_cols,
        )
        .join_from(ev, TutoringSession.__table__, s.session_id == ev.session_id)
        .where(t > p.start, t <= p.as_of, s.status == "completed")
        .group_by(ev.session_id, s.tutor_id, t)
    )
    if tutor_ids is not None:
        per_eval = per_eval.where(s.tutor_id.in_(tutor_ids))
    pe = per_eval.subquery("pe")
    scored = pe.c.q.is_not(None)
    return select(
        pe.c.tutor_id,
        case((pe.c.at > p.f1, LAST), (pe.c.at > p.f2, PREV), else_=REST).label("period"),
        func.count(pe.c.q).label("evaluated"),
        func.sum(pe.c.q).label("q_sum"),
        *[
            func.sum(case((and_(scored, pe.c[f"tag_{tag}"] == 1), 1), else_=0)).label(f"tag_{tag}")
            for tag in tags
        ],
    ).group_by(pe.c.tutor_id, "period")


def _tutor_sums(
    session: Session, p: _Periods, tutor_ids: list[str] | None, tags: list[str]
) -> dict[str, SimpleNamespace]:
    """Each tutor's window and fortnight figures (_combine) from both queries."""
    no_evaluations = {"evaluated": 0, "q_sum": 0, **{f"tag_{tag}": 0 for tag in tags}}
    evaluated: dict[tuple[str, int], dict[str, Any]] = {}
    for row in session.execute(_evaluation_sums(p, tutor_ids, tags)).mappings():
        evaluated[(row["tutor_id"], int(row["period"]))] = dict(row)
    periods: dict[str, dict[int, Any]] = {}
    for row in session.execute(_session_sums(p, tutor_ids)).mappings():
        period = int(row["period"])
        merged = {**row, **evaluated.get((row["tutor_id"], period), no_evaluations)}
        periods.setdefault(row["tutor_id"], {})[period] = SimpleNamespace(**merged)
    return {tid: _combine(by_period, tags) for tid, by_period in periods.items()}


def _active(r: SimpleNamespace, p: _Periods, since: date, data_start: datetime) -> dict[str, float]:
    """Active days of each compared window: after the tutor's first day in the data."""
    hired = datetime(since.year, since.month, since.day, tzinfo=UTC)
    # the hire day itself (or the day of the first session read) counts as active
    started = max(hired, data_start.replace(hour=0, minute=0, second=0, microsecond=0))
    started = min(started, _aware(r.first_seen))
    return {
        "last": _active_days(started, p.f1, p.as_of),
        "prev": _active_days(started, p.f2, p.f1),
        "window": _active_days(started, p.start, p.as_of),
        "before": _active_days(started, p.prev_start, p.start),
        "own": _active_days(started, p.prev_start, p.f1),
    }


def _tutor_values(
    r: SimpleNamespace,
    p: _Periods,
    since: date,
    data_start: datetime,
    tags: list[str],
) -> dict[str, float]:
    """One tutor's feature values by name, from its sums."""
    last = r.last_completed
    tenure = max((p.as_of.date() - since).days, 0)
    active = _active(r, p, since, data_start)
    fdays, wdays = p.fortnight.total_seconds() / 86400, p.window.total_seconds() / 86400
    values = {
        "total_sessions": r.total,
        "volume_change": _volume_change(
            r.total, active["window"], r.prev_total, active["before"], wdays
        ),
        "sessions_14d": r.total_14,
        "sessions_prev_14d": r.prev_14,
        "volume_change_14d": _volume_change(
            r.total_14, active["last"], r.prev_14, active["prev"], fdays
        ),
        "volume_vs_own_level_14d": _volume_change(
            r.total_14, active["last"], r.total - r.total_14 + r.prev_total, active["own"], fdays
        ),
        "tutor_reschedule_rate": _ratio(r.resched, r.total),
        "reschedule_rate_14d": _ratio(r.resched_14, r.total_14),
        "reschedule_rate_change_14d": _ratio(r.resched_14, r.total_14)
        - _ratio(r.resched_prev_14, r.prev_14),
        "tutor_no_show_rate": _ratio(r.no_show, r.total),
        "no_show_rate_change_14d": _ratio(r.no_show_14, r.total_14)
        - _ratio(r.no_show_prev_14, r.prev_14),
        "avg_student_rating": _num(r.rating),
        "rating_14d": _num(r.rating_14),
        "rating_change_14d": _num(r.rating_14) - _num(r.rating_prev_14),
        "ai_avg_quality_score": _num(r.ai),
        "ai_score_change_14d": _num(r.ai_14) - _num(r.ai_prev_14),
        "student_churn_rate": _ratio(r.student_churn, r.settled),
        "tenure_days": tenure,
        "new_tutor": 1.0 if tenure < NEW_TUTOR_DAYS else 0.0,
        # capped at the two windows read: "none in 60 days" reads as 60
        "days_since_last_session": p.horizon_days
        if last is None
        else (p.as_of - last).total_seconds() / 86400,
        "no_session_30d": 1.0 if last is None or (p.as_of - last) > p.window else 0.0,
    }
    for tag in tags:
        values[f"tag_{tag}_share"] = _ratio(getattr(r, f"tag_{tag}"), r.evaluated)
    values[RULES_FEATURE.name] = math.nan
    return values


def compute_features(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    tutor_ids: list[str] | None = None,
    include_churned: bool = False,
) -> FeatureFrame:
    """Features of every tutor with a session in the two windows before `as_of`.

    Windows: the analytics window W (30 days) and the one before it, and the last
    two fortnights (prediction.short_window_days) inside W.

    Only (as_of - 2 windows, as_of] is read: the current window, the previous one
    for trends, and recency. A tutor idle for longer is not scored.

    Tutors who churned on or before `as_of` are left out (they are no longer at
    risk) unless `include_churned`.
    """
    p = _Periods.of(as_of, rules)
    tags = risk_tags(rules)
    agg = _tutor_sums(session, p, tutor_ids, tags)

    # Volume is compared per active day: a window before the tutor's hire date, or
    # before the first session in the database, is not "no sessions" (a new tutor's
    # fortnight before would otherwise read as growth and hide a decline).
    first_session = session.scalar(
        select(func.min(TutoringSession.scheduled_start_at)).where(
            TutoringSession.scheduled_start_at <= as_of
        )
    )
    data_start = _aware(first_session) if first_session is not None else p.prev_start

    tutor_query = select(Tutor.tutor_id, Tutor.hire_date, Tutor.churned_on).order_by(Tutor.tutor_id)
    if tutor_ids is not None:
        tutor_query = tutor_query.where(Tutor.tutor_id.in_(tutor_ids))

    names = [f.name for f in feature_specs(rules)]
    ids: list[str] = []
    churned: list[date | None] = []
    rows: list[list[float]] = []
    guards: dict[str, list[float]] = {g: [] for g in GUARD_COLUMNS}
    for tutor_id, hire_date, churned_on in session.execute(tutor_query):
        r = agg.get(tutor_id)
        if r is None:
            continue
        if churned_on is not None and churned_on <= as_of.date() and not include_churned:
            continue
        since = hire_date if hire_date is not None else r.first_seen.date()
        values = _tutor_values(r, p, since, data_start, tags)
        ids.append(tutor_id)
        churned.append(churned_on)
        rows.append([float(values[n]) for n in names])
        guards["rated_sessions"].append(float(r.rated))
        guards["evaluated_sessions"].append(float(r.evaluated))

    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(names))
    return FeatureFrame(
        as_of=as_of,
        tutor_ids=ids,
        names=names,
        X=matrix,
        guards={k: np.array(v, dtype=np.float64) for k, v in guards.items()},
        churned_on=churned,
    )


_FORMATS: dict[str, Callable[[float], str]] = {
    "rate": lambda v: f"{v:.0%}",
    "rate_change": lambda v: f"{v * 100:+.0f} pts",
    "count": lambda v: f"{v:.0f}",
    "score": lambda v: f"{v:.1f}",
    "score_change": lambda v: f"{v:+.1f}",
    "days": lambda v: f"{v:.0f} days",
    "level": lambda v: {0: "low", 1: "medium", 2: "high"}.get(int(v), f"{v:.0f}"),
    "ratio": lambda v: f"{v:+.0%}",
    "log_ratio": lambda v: f"{math.exp(v) - 1:+.0%}",
    "flag": lambda v: "yes" if v >= 0.5 else "no",
}


def describe_value(spec: FeatureSpec, value: float) -> str:
    """A feature value as a coach reads it: 22%, +8 pts, 4.1, 12 days."""
    if math.isnan(value):
        return "no data"
    fmt = _FORMATS.get(spec.kind)
    return f"{value:.3g}" if fmt is None else fmt(value)
