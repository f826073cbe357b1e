"""Did it work? A completed intervention's tutor metrics before vs after, against comparable tutors.

Before = the N days up to the intervention's creation; after = the N days from
its completion (cut at `as_of` while still running). Metrics are recomputed
from the sessions table with one grouped query per window, for the coached
tutor and for the comparison group: tutors who had the same flag at the
intervention's creation and no intervention of their own in the period.

    effect = (after - before)[coached] - mean over comparison tutors of (after - before)

a difference-in-differences estimate: the comparison group absorbs what would
have changed anyway (season, platform changes). Small samples get a caution.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, cast, func, or_, select
from sqlalchemy.orm import Session

from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.models import Intervention, SessionEvaluation, TutoringSession, TutorMetrics
from tutorscore.interventions.playbook import FLAG_KEYS, tag_keys

# (metric, label, which direction is better)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("tutor_reschedule_rate", "reschedule rate", "lower"),
    ("tutor_no_show_rate", "no-show rate", "lower"),
    ("first_session_dropout_rate", "first-session dropout rate", "lower"),
    ("avg_student_rating", "average rating", "higher"),
    ("ai_avg_quality_score", "AI quality score", "higher"),
)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def window_metrics(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    rules: RulesConfig,
    tutor_ids: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """docs/rules.md metrics per tutor, sessions scheduled in (start, end], one grouped query."""
    s = TutoringSession.__table__.c
    ev = (
        select(SessionEvaluation.session_id, func.avg(SessionEvaluation.quality_score).label("q"))
        .group_by(SessionEvaluation.session_id)
        .subquery("ev")
    )
    completed = s.status == "completed"
    first = and_(completed, s.is_first_session.is_(True))
    dropout = and_(
        first,
        or_(
            s.student_churned_after_session.is_(True),
            s.student_rating <= rules.thresholds.poor_first_session_max_rating,
        ),
    )

    def count_if(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    query = (
        select(
            s.tutor_id,
            count_if(s.status.in_(("completed", "no_show", "rescheduled"))).label("total"),
            count_if(and_(s.status == "rescheduled", s.reschedule_initiator == "tutor")).label(
                "resched"
            ),
            count_if(
                and_(s.status == "no_show", or_(s.no_show_by == "tutor", s.no_show_by.is_(None)))
            ).label("no_show"),
            count_if(and_(completed, s.student_rating.is_not(None))).label("rated"),
            func.avg(case((completed, s.student_rating))).label("rating"),
            count_if(first).label("firsts"),
            count_if(dropout).label("dropouts"),
            count_if(and_(completed, ev.c.q.is_not(None))).label("evaluated"),
            func.avg(case((completed, ev.c.q))).label("ai"),
        )
        .select_from(TutoringSession.__table__.outerjoin(ev, ev.c.session_id == s.session_id))
        .where(s.scheduled_start_at > start, s.scheduled_start_at <= end)
        .group_by(s.tutor_id)
    )
    if tutor_ids is not None:
        query = query.where(s.tutor_id.in_(tutor_ids))
    out: dict[str, dict[str, Any]] = {}
    for r in session.execute(query):
        out[r.tutor_id] = {
            "total_sessions": int(r.total),
            "rated_sessions": int(r.rated),
            "first_sessions": int(r.firsts),
            "evaluated_sessions": int(r.evaluated),
            "tutor_reschedule_rate": _ratio(int(r.resched), int(r.total)),
            "tutor_no_show_rate": _ratio(int(r.no_show), int(r.total)),
            "first_session_dropout_rate": _ratio(int(r.dropouts), int(r.firsts)),
            "avg_student_rating": None if r.rating is None else float(r.rating),
            "ai_avg_quality_score": None if r.ai is None else float(r.ai),
        }
    return out


def flagged_tutors(
    session: Session, *, flag: str | None, at: datetime, rules: RulesConfig
) -> set[str]:
    """Tutors who carried `flag` at time `at` (their latest metrics row, or tags in the window)."""
    window = timedelta(days=rules.analytics.window_days)
    columns = {key: (column, value) for column, value, key in FLAG_KEYS}
    if flag in columns:
        column, value = columns[flag]
        latest = (
            select(TutorMetrics.tutor_id, func.max(TutorMetrics.as_of).label("as_of"))
            .where(TutorMetrics.as_of <= at, TutorMetrics.as_of > at - window)
            .group_by(TutorMetrics.tutor_id)
            .subquery()
        )
        query = (
            select(TutorMetrics.tutor_id)
            .join(
                latest,
                and_(
                    latest.c.tutor_id == TutorMetrics.tutor_id,
                    latest.c.as_of == TutorMetrics.as_of,
                ),
            )
            .where(getattr(TutorMetrics, column) == value)
        )
        return set(session.scalars(query))
    if flag in tag_keys(rules):
        s = TutoringSession
        ev = SessionEvaluation
        tagged = cast(ev.risk_tags, String).contains(f'"{flag}"', autoescape=True)
        query = (
            select(s.tutor_id)
            .join(ev, ev.session_id == s.session_id)
            .where(s.scheduled_start_at > at - window, s.scheduled_start_at <= at, tagged)
            .group_by(s.tutor_id)
            .having(func.count(func.distinct(s.session_id)) >= rules.interventions.min_tag_sessions)
        )
        return set(session.scalars(query))
    query = (
        select(TutoringSession.tutor_id)
        .where(
            TutoringSession.scheduled_start_at > at - window,
            TutoringSession.scheduled_start_at <= at,
        )
        .distinct()
    )
    return set(session.scalars(query))


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def intervention_outcome(
    session: Session, iv: Intervention, *, rules: RulesConfig, as_of: datetime | None = None
) -> dict[str, Any]:
    """Before/after and difference-in-differences for one intervention (see module docstring)."""
    as_of = as_of or utcnow()
    cfg = rules.interventions
    days = cfg.outcome_window_days
    base: dict[str, Any] = {
        "intervention_id": iv.id,
        "tutor_id": iv.tutor_id,
        "type": iv.type,
        "flag": iv.flag,
        "window_days": days,
    }
    if iv.status != "done" or iv.completed_at is None:
        return {**base, "status": "not_completed", "metrics": [], "cautions": []}
    before_start, before_end = iv.created_at - timedelta(days=days), iv.created_at
    after_start = iv.completed_at
    after_end = min(iv.completed_at + timedelta(days=days), as_of)
    if after_end <= after_start:
        return {
            **base,
            "status": "pending",
            "metrics": [],
            "cautions": ["completed too recently: no sessions after it yet"],
        }

    peers = flagged_tutors(session, flag=iv.flag, at=iv.created_at, rules=rules)
    busy = set(
        session.scalars(
            select(Intervention.tutor_id).where(
                Intervention.created_at <= after_end,
                or_(Intervention.completed_at.is_(None), Intervention.completed_at > before_start),
            )
        )
    )
    controls = sorted(peers - busy - {iv.tutor_id})
    ids = [iv.tutor_id, *controls]
    before = window_metrics(session, start=before_start, end=before_end, rules=rules, tutor_ids=ids)
    after = window_metrics(session, start=after_start, end=after_end, rules=rules, tutor_ids=ids)
    empty: dict[str, Any] = {}
    tb, ta = before.get(iv.tutor_id, empty), after.get(iv.tutor_id, empty)

    rows = []
    used_controls: set[str] = set()
    for metric, label, better in METRICS:
        b, a = tb.get(metric), ta.get(metric)
        change = None if a is None or b is None else a - b
        pairs = [
            (before[c][metric], after[c][metric])
            for c in controls
            if before.get(c, empty).get(metric) is not None
            and after.get(c, empty).get(metric) is not None
        ]
        used_controls.update(
            c
            for c in controls
            if before.get(c, empty).get(metric) is not None
            and after.get(c, empty).get(metric) is not None
        )
        cb = sum(p[0] for p in pairs) / len(pairs) if pairs else None
        ca = sum(p[1] for p in pairs) / len(pairs) if pairs else None
        c_change = None if cb is None or ca is None else ca - cb
        did = None if change is None or c_change is None else change - c_change
        rows.append(
            {
                "metric": metric,
                "label": label,
                "better": better,
                "before": b,
                "after": a,
                "change": change,
                "control_before": cb,
                "control_after": ca,
                "control_change": c_change,
                "control_tutors": len(pairs),
                "did": did,
                "improved": None if did is None else (did < 0 if better == "lower" else did > 0),
            }
        )
    sessions_before = int(tb.get("total_sessions", 0))
    sessions_after = int(ta.get("total_sessions", 0))
    cautions = []
    if min(sessions_before, sessions_after) < cfg.small_sample_sessions:
        cautions.append(
            f"small sample: {sessions_before} sessions before and {sessions_after} after "
            f"(fewer than {cfg.small_sample_sessions} on a side); read the change as a hint"
        )
    if len(used_controls) < cfg.small_sample_tutors:
        cautions.append(
            f"only {len(used_controls)} comparison tutors with the same flag and no intervention "
            f"(fewer than {cfg.small_sample_tutors}): the comparison is weak"
        )
    if after_end < iv.completed_at + timedelta(days=days):
        cautions.append(f"the after window is still running (until {_iso(after_end)} so far)")
    return {
        **base,
        "status": "ok",
        "before_window": {"from": _iso(before_start), "to": _iso(before_end)},
        "after_window": {"from": _iso(after_start), "to": _iso(after_end)},
        "sample": {
            "sessions_before": sessions_before,
            "sessions_after": sessions_after,
            "control_tutors": len(used_controls),
            "control_candidates": len(controls),
        },
        "metrics": rows,
        "cautions": cautions,
    }


def outcome_summary(
    session: Session, *, rules: RulesConfig, as_of: datetime | None = None
) -> list[dict[str, Any]]:
    """Per intervention type: how many completed, mean change and mean effect per metric."""
    done = session.scalars(
        select(Intervention).where(Intervention.status == "done").order_by(Intervention.id)
    )
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for iv in done:
        result = intervention_outcome(session, iv, rules=rules, as_of=as_of)
        if result["status"] == "ok":
            by_type[iv.type].append(result)
    cfg = rules.interventions
    summary = []
    for type_, results in sorted(by_type.items()):
        metrics = []
        for metric, label, better in METRICS:
            changes = [m["change"] for r in results for m in r["metrics"] if m["metric"] == metric]
            dids = [m["did"] for r in results for m in r["metrics"] if m["metric"] == metric]
            changes = [c for c in changes if c is not None]
            dids = [d for d in dids if d is not None]
            metrics.append(
                {
                    "metric": metric,
                    "label": label,
                    "better": better,
                    "mean_change": sum(changes) / len(changes) if changes else None,
                    "mean_did": sum(dids) / len(dids) if dids else None,
                    "n": len(dids),
                }
            )
        n = len(results)
        cautions = []
        if n < cfg.small_sample_tutors:
            cautions.append(f"only {n} completed interventions of this type: too few to conclude")
        summary.append(
            {
                "type": type_,
                "interventions": n,
                "sessions_before": sum(r["sample"]["sessions_before"] for r in results),
                "sessions_after": sum(r["sample"]["sessions_after"] for r in results),
                "metrics": metrics,
                "cautions": cautions,
            }
        )
    return summary
