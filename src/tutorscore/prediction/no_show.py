"""No-show risk for upcoming sessions: Bayesian-smoothed rates combined in log-odds.

For each component c (the tutor, the student, the hour of day, the booking lead
time) the history gives n_c sessions that were due to happen (completed or
no-show) of which x_c were no-shows. With the overall rate g and a prior
strength k (config `prediction.no_show_prior_strength`):

    p_c = (x_c + k * g) / (n_c + k)          # shrunk towards g when n_c is small
    logit(p) = logit(g) + sum_c (logit(p_c) - logit(g))

i.e. naive Bayes with each component's evidence shrunk by its sample size: a
new tutor or student simply contributes nothing. Every number is shown so ops
can see why a session is listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, cast, extract, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tutorscore.config import RulesConfig, Settings
from tutorscore.db.models import TutoringSession

DEFAULT_RATE = 0.03  # used only when there is no history at all
HOUR_BUCKETS = ((0, 6, "night"), (6, 12, "morning"), (12, 18, "afternoon"), (18, 24, "evening"))
LEAD_BUCKETS = ((None, 1.0, "booked < 1 day ahead"), (1.0, 7.0, "booked 1-7 days ahead"),
                (7.0, None, "booked > 7 days ahead"))  # fmt: skip


@dataclass
class Component:
    name: str
    key: str
    no_shows: int
    sessions: int
    smoothed_rate: float
    shift: float  # logit(p_c) - logit(g)

    def text(self) -> str:
        if self.sessions == 0:
            return f"{self.name} {self.key}: no history"
        return (
            f"{self.name} {self.key}: {self.no_shows} no-shows in {self.sessions} sessions "
            f"(smoothed {self.smoothed_rate:.0%})"
        )


@dataclass
class NoShowRisk:
    session_id: str
    tutor_id: str
    student_id: str
    subject: str
    scheduled_start_at: datetime
    probability: float
    components: list[Component] = field(default_factory=list)
    status: str = "scheduled"
    hour: int = 0
    lead_days: float | None = None
    rescheduled_from: str | None = None
    formula_probability: float = 0.0
    source: str = "formula"  # or "model" (a trained no-show model that passed its gate)
    factors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "tutor_id": self.tutor_id,
            "student_id": self.student_id,
            "subject": self.subject,
            "scheduled_start_at": self.scheduled_start_at.isoformat().replace("+00:00", "Z"),
            "no_show_probability": round(self.probability, 4),
            "source": self.source,
            "formula_probability": round(self.formula_probability, 4),
            "factors": self.factors,
            "reasons": [
                {
                    "component": c.name,
                    "key": c.key,
                    "no_shows": c.no_shows,
                    "sessions": c.sessions,
                    "smoothed_rate": round(c.smoothed_rate, 4),
                    "log_odds_shift": round(c.shift, 4),
                    "text": c.text(),
                }
                for c in self.components
            ],
        }


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _hour_expr(session: Session) -> ColumnElement[Any]:
    col = TutoringSession.scheduled_start_at
    if session.get_bind().dialect.name == "postgresql":
        return extract("hour", func.timezone("UTC", col))
    return extract("hour", col)


def _lead_days_expr(session: Session) -> ColumnElement[Any]:
    """Days between recording the session and its start (the booking lead time)."""
    start, created = TutoringSession.scheduled_start_at, TutoringSession.created_at
    if session.get_bind().dialect.name == "postgresql":
        return extract("epoch", start - created) / 86400.0
    return func.julianday(start) - func.julianday(created)


def _hour_bucket(hour: int) -> str:
    return next(name for lo, hi, name in HOUR_BUCKETS if lo <= hour < hi)


def _lead_bucket(days: float | None) -> str | None:
    """None for sessions recorded after they were scheduled (imports): no lead time known."""
    if days is None or days < 0:
        return None
    for lo, hi, name in LEAD_BUCKETS:
        if (lo is None or days >= lo) and (hi is None or days < hi):
            return name
    return None


def _bucket_case(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    return case(
        *[(and_(expr >= lo, expr < hi), literal(name)) for lo, hi, name in HOUR_BUCKETS],
        else_=literal("night"),
    )


def _lead_case(expr: ColumnElement[Any]) -> ColumnElement[Any]:
    whens = []
    for lo, hi, name in LEAD_BUCKETS:
        conds = [expr >= 0]
        if lo is not None:
            conds.append(expr >= lo)
        if hi is not None:
            conds.append(expr < hi)
        whens.append((and_(*conds), literal(name)))
    return case(*whens, else_=literal(None))


def no_show_risks(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    days: float = 7.0,
    min_probability: float | None = None,
    limit: int | None = None,
    statuses: tuple[str, ...] = ("scheduled",),
    settings: Settings | None = None,
    use_model: bool = True,
) -> list[NoShowRisk]:
    """Scheduled sessions in (as_of, as_of + days], riskiest first.

    The probability comes from the trained no-show model when one passed its gate
    on this database (`prediction.no_show_model`), else from the formula; the
    formula's components are listed either way, and the model's top factors too.
    `min_probability` filters (ops' list uses prediction.no_show_alert_probability).
    `statuses` other than scheduled score sessions that already happened (backtest).
    """
    risks = formula_risks(session, as_of=as_of, rules=rules, days=days, statuses=statuses)
    if use_model and risks:
        from tutorscore.prediction.no_show_model import apply_model

        apply_model(session, risks, as_of=as_of, rules=rules, days=days, settings=settings)
    if min_probability is not None:
        risks = [r for r in risks if r.probability >= min_probability]
    risks.sort(key=lambda r: (-r.probability, r.scheduled_start_at))
    return risks[:limit] if limit is not None else risks


def formula_risks(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    days: float = 7.0,
    statuses: tuple[str, ...] = ("scheduled",),
) -> list[NoShowRisk]:
    """Today's formula for every session in (as_of, as_of + days] with these statuses."""
    cfg = rules.prediction
    k = cfg.no_show_prior_strength
    s = TutoringSession
    history = and_(
        s.scheduled_start_at > as_of - timedelta(days=cfg.no_show_history_days),
        s.scheduled_start_at <= as_of,
        s.status.in_(("completed", "no_show")),
    )
    is_ns = func.sum(cast(s.status == "no_show", Integer))
    hour = _hour_expr(session)
    lead = _lead_days_expr(session)

    total = session.execute(select(func.count(), is_ns).where(history)).one()
    n_all, x_all = int(total[0] or 0), int(total[1] or 0)
    g = (x_all + 1.0) / (n_all + 1.0 / DEFAULT_RATE) if n_all else DEFAULT_RATE

    def stats(key: Any) -> dict[Any, tuple[int, int]]:
        rows = session.execute(
            select(key.label("k"), func.count(), is_ns).where(history).group_by(key)
        )
        return {r[0]: (int(r[2] or 0), int(r[1])) for r in rows}

    tutor_stats = stats(s.tutor_id)
    student_stats = stats(s.student_id)
    hour_stats = stats(_bucket_case(hour))
    lead_stats = stats(_lead_case(lead))

    upcoming = session.execute(
        select(
            s.session_id,
            s.tutor_id,
            s.student_id,
            s.subject,
            s.scheduled_start_at,
            s.status,
            s.rescheduled_from_session_id,
            hour.label("hour"),
            lead.label("lead"),
        )
        .where(
            s.status.in_(statuses),
            s.scheduled_start_at > as_of,
            s.scheduled_start_at <= as_of + timedelta(days=days),
        )
        .order_by(s.scheduled_start_at)
    ).all()

    base = _logit(g)

    def component(name: str, key: Any, table: dict[Any, tuple[int, int]]) -> Component:
        x, n = table.get(key, (0, 0))
        p = (x + k * g) / (n + k)
        return Component(name, str(key), x, n, p, _logit(p) - base)

    out: list[NoShowRisk] = []
    for row in upcoming:
        comps = [
            component("tutor", row.tutor_id, tutor_stats),
            component("student", row.student_id, student_stats),
            component("time of day", _hour_bucket(int(row.hour)), hour_stats),
        ]
        bucket = _lead_bucket(None if row.lead is None else float(row.lead))
        if bucket is not None:
            comps.append(component("lead time", bucket, lead_stats))
        logit = base + sum(c.shift for c in comps)
        p = 1.0 / (1.0 + math.exp(-logit))
        out.append(
            NoShowRisk(
                row.session_id,
                row.tutor_id,
                row.student_id,
                row.subject,
                row.scheduled_start_at,
                p,
                comps,
                row.status,
                hour=int(row.hour),
                lead_days=None if row.lead is None else float(row.lead),
                rescheduled_from=row.rescheduled_from_session_id,
                formula_probability=p,
            )
        )
    out.sort(key=lambda r: (r.scheduled_start_at, r.session_id))
    return out


def backtest(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    days: float = 7.0,
    settings: Settings | None = None,
    use_model: bool = True,
) -> dict[str, Any]:
    """Score sessions that already took place in (as_of, as_of + days] from history up to
    `as_of` only, and compare with what happened: ROC AUC and calibration (the
    formula's AUC beside whatever scored them, when a model did)."""
    from sklearn.metrics import roc_auc_score

    risks = no_show_risks(
        session,
        as_of=as_of,
        rules=rules,
        days=days,
        statuses=("completed", "no_show"),
        settings=settings,
        use_model=use_model,
    )
    y = [1 if r.status == "no_show" else 0 for r in risks]
    p = [r.probability for r in risks]
    auc = float(roc_auc_score(y, p)) if 0 < sum(y) < len(y) else None
    threshold = rules.prediction.no_show_alert_probability
    flagged = [t for t, q in zip(y, p, strict=True) if q >= threshold]
    return {
        "as_of": as_of.isoformat().replace("+00:00", "Z"),
        "days": days,
        "sessions": len(y),
        "no_shows": sum(y),
        "auc": auc,
        "mean_predicted": sum(p) / len(p) if p else None,
        "actual_rate": sum(y) / len(y) if y else None,
        "flagged": len(flagged),
        "flagged_no_shows": sum(flagged),
        "threshold": threshold,
        "source": risks[0].source if risks else "formula",
        "formula_auc": float(roc_auc_score(y, [r.formula_probability for r in risks]))
        if 0 < sum(y) < len(y)
        else None,
    }
