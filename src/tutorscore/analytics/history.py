"""Risk over time: per week, tutors at each churn-risk level and with each flag.

Read from the stored metrics history (`tutor_metrics`), nothing is recomputed.
Week k (k = 0 the most recent) is `(as_of - 7(k+1) days, as_of - 7k days]`; each
tutor counts in a week by its latest row whose `as_of` is at or before the week's
end, so a tutor last computed three weeks ago still counts with that row, and a
tutor whose first row is later than the week's end does not count at all. Rows
written at a future `as_of` (what-if runs) only count in weeks ending after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, and_, case, func, select
from sqlalchemy.orm import Session

from tutorscore.analytics.flags import FLAG_NAMES
from tutorscore.analytics.rules import risk_level
from tutorscore.analytics.service import RunSummary, compute_all
from tutorscore.analytics.window import iso
from tutorscore.config import RulesConfig
from tutorscore.db.models import TutorMetrics
from tutorscore.errors import UserError

METRICS = cast(Table, TutorMetrics.__table__)
RISK_LEVELS = ("high", "medium", "low", "not_enough_data")
HISTORY_FLAGS = FLAG_NAMES
MAX_WEEKS = 520


def _week_counts(bind: Session | Connection, end: datetime) -> dict[str, Any]:
    m = METRICS
    latest = (
        select(m.c.tutor_id, func.max(m.c.as_of).label("latest"))
        .where(m.c.as_of <= end)
        .group_by(m.c.tutor_id)
        .subquery()
    )
    flag_sums = [func.sum(case((m.c[f].is_(True), 1), else_=0)) for f in HISTORY_FLAGS]
    query = (
        select(m.c.churn_risk_label, m.c.insufficient_data, func.count(), *flag_sums)
        .join(latest, and_(m.c.tutor_id == latest.c.tutor_id, m.c.as_of == latest.c.latest))
        .group_by(m.c.churn_risk_label, m.c.insufficient_data)
    )
    risk = dict.fromkeys(RISK_LEVELS, 0)
    flags = dict.fromkeys(HISTORY_FLAGS, 0)
    tutors = 0
    for label, insufficient, n, *sums in bind.execute(query):
        level = risk_level(label, bool(insufficient))
        risk[level] = risk.get(level, 0) + int(n)
        tutors += int(n)
        for name, value in zip(HISTORY_FLAGS, sums, strict=True):
            flags[name] += int(value or 0)
    return {"tutors": tutors, "risk": risk, "flags": flags}


def risk_history(bind: Session | Connection, *, as_of: datetime, weeks: int = 12) -> dict[str, Any]:
    """Counts per week for the `weeks` weeks ending at `as_of`, oldest week first."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise UserError(f"weeks: expected 1..{MAX_WEEKS}, got {weeks}")
    out = []
    for k in reversed(range(weeks)):
        end = as_of - timedelta(days=7 * k)
        counts = _week_counts(bind, end)
        out.append({"week_start": iso(end - timedelta(days=7)), "week_end": iso(end), **counts})
    return {
        "as_of": iso(as_of),
        "risk_levels": list(RISK_LEVELS),
        "flags": list(HISTORY_FLAGS),
        "weeks": out,
    }


def compute_weekly_history(
    engine: Engine, *, as_of: datetime, rules: RulesConfig, weeks: int = 12
) -> list[RunSummary]:
    """Full metrics runs at `as_of - 7k days` for k = weeks-1 .. 1, oldest first.

    What `tutorscore demo` stores so the overview's risk-over-time chart has a
    history to read; the caller computes `as_of` itself afterwards. Rules-only
    labels (no churn model scores past weeks).
    """
    if not 1 <= weeks <= MAX_WEEKS:
        raise UserError(f"weeks: expected 1..{MAX_WEEKS}, got {weeks}")
    return [
        compute_all(engine, as_of=as_of - timedelta(days=7 * k), rules=rules)
        for k in range(weeks - 1, 0, -1)
    ]


__all__ = ["HISTORY_FLAGS", "MAX_WEEKS", "RISK_LEVELS", "compute_weekly_history", "risk_history"]
