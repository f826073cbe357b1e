"""docs/rules.md in code: counts in, flags, labels and their reasons out (no I/O).

Guards (small samples) follow docs/rules.md; a rule whose guard is not met is never
raised and gets a `not_enough_data` reason instead. Rates with a zero
denominator are None. The falling-trend signal uses the guard of the quantity
it is about (>= min_ratings ratings, >= min_evaluations evaluations in the
window) and needs a value in both halves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from tutorscore.analytics import flags
from tutorscore.analytics.flags import (
    CHURN_RISK,
    CHURN_SIGNALS,
    FALLING_TREND,
    HIGH_RESCHEDULER,
    INSUFFICIENT_DATA,
    LOW_AI_QUALITY,
    LOW_RATING,
    NO_SHOW_RISK,
    POOR_FIRST_SESSION,
)
from tutorscore.analytics.metrics import Tally, TutorCounts, mean
from tutorscore.analytics.reasons import FLAG, NOT_ENOUGH_DATA, SUMMARY, Reason, num, pct, plural
from tutorscore.analytics.window import Window, iso
from tutorscore.config import RulesConfig

LABELS = ("high", "medium", "low")


def rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _trend(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return None
    return round(second - first, 6)


@dataclass
class Assessment:
    tutor_id: str
    total_sessions: int
    first_sessions: int
    tutor_reschedules: int
    tutor_no_shows: int
    first_session_dropouts: int
    rated_sessions: int
    evaluated_sessions: int
    tutor_reschedule_rate: float | None
    tutor_no_show_rate: float | None
    first_session_dropout_rate: float | None
    avg_student_rating: float | None
    ai_avg_quality_score: float | None
    rating_trend: float | None
    ai_score_trend: float | None
    high_rescheduler_flag: bool = False
    poor_first_session_flag: bool = False
    low_rating_flag: bool = False
    low_ai_quality_flag: bool = False
    no_show_risk_label: str = "low"
    churn_risk_label: str = "low"
    insufficient_data: bool = False
    reasons: list[Reason] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """Values for a tutor_metrics row (reasons serialised)."""
        out = {name: getattr(self, name) for name in METRIC_COLUMNS}
        out["reasons"] = [r.as_dict() for r in self.reasons]
        out["details"] = self.details
        return out


# every field of an Assessment but its reasons and details is a tutor_metrics column
METRIC_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in fields(Assessment) if f.name not in ("reasons", "details")
)


def _slice(tally: Tally) -> dict[str, Any]:
    return {
        "sessions": tally.total_sessions,
        "ratings": tally.rated_sessions,
        "avg_rating": tally.avg_rating,
        "evaluations": tally.evaluated_sessions,
        "avg_ai_score": tally.avg_quality,
    }


def assess(counts: TutorCounts, rules: RulesConfig, window: Window) -> Assessment:
    """Apply every rule of docs/rules.md to one tutor's counts."""
    t = rules.thresholds
    w = counts.window
    days = window.days
    first, second = counts.halves[1], counts.halves[2]
    a = Assessment(
        tutor_id=counts.tutor_id,
        total_sessions=w.total_sessions,
        first_sessions=w.first_sessions,
        tutor_reschedules=w.tutor_reschedules,
        tutor_no_shows=w.tutor_no_shows,
        first_session_dropouts=w.first_session_dropouts,
        rated_sessions=w.rated_sessions,
        evaluated_sessions=w.evaluated_sessions,
        tutor_reschedule_rate=rate(w.tutor_reschedules, w.total_sessions),
        tutor_no_show_rate=rate(w.tutor_no_shows, w.total_sessions),
        first_session_dropout_rate=rate(w.first_session_dropouts, w.first_sessions),
        avg_student_rating=w.avg_rating,
        ai_avg_quality_score=w.avg_quality,
        rating_trend=_trend(first.avg_rating, second.avg_rating),
        ai_score_trend=_trend(first.avg_quality, second.avg_quality),
    )
    reasons = a.reasons
    sessions_ok = w.total_sessions >= t.min_sessions
    first_ok = w.first_sessions >= t.min_first_sessions
    ratings_ok = w.rated_sessions >= t.min_ratings
    evals_ok = w.evaluated_sessions >= t.min_evaluations
    a.insufficient_data = not sessions_ok
    sessions_text = plural(w.total_sessions, "session")

    if not sessions_ok:
        reasons.append(
            Reason(
                INSUFFICIENT_DATA.name,
                w.total_sessions,
                t.min_sessions,
                w.total_sessions,
                None,
                f"Not enough data: {sessions_text} in the last {days} days"
                f" (needs {t.min_sessions}) to judge reschedules and no-shows",
                kind=NOT_ENOUGH_DATA,
            )
        )

    # high_rescheduler_flag
    r_rate = a.tutor_reschedule_rate
    if sessions_ok and r_rate is not None and r_rate > t.high_rescheduler_rate:
        a.high_rescheduler_flag = True
        reasons.append(
            Reason(
                HIGH_RESCHEDULER.name,
                r_rate,
                t.high_rescheduler_rate,
                w.tutor_reschedules,
                w.total_sessions,
                f"{w.tutor_reschedules} of {sessions_text} rescheduled by the tutor"
                f" ({pct(r_rate, t.high_rescheduler_rate)} > {pct(t.high_rescheduler_rate)})",
                evidence="tutor_reschedule",
            )
        )

    # no_show_risk_label
    ns_rate = a.tutor_no_show_rate
    avg_rating = a.avg_student_rating
    if not sessions_ok:
        reasons.append(
            Reason(
                NO_SHOW_RISK.name,
                w.total_sessions,
                t.min_sessions,
                w.total_sessions,
                None,
                f"Too few sessions to judge no-show risk: {sessions_text} in the last"
                f" {days} days (needs {t.min_sessions}); shown as low",
                kind=NOT_ENOUGH_DATA,
                extra={"label": "low"},
            )
        )
    elif ns_rate is not None:
        missed = f"{w.tutor_no_shows} of {sessions_text} missed by the tutor"
        if ns_rate > t.no_show_high_rate:
            a.no_show_risk_label = "high"
            reasons.append(
                Reason(
                    NO_SHOW_RISK.name,
                    ns_rate,
                    t.no_show_high_rate,
                    w.tutor_no_shows,
                    w.total_sessions,
                    f"{missed} ({pct(ns_rate, t.no_show_high_rate)} > {pct(t.no_show_high_rate)})",
                    evidence="tutor_no_show",
                    extra={"label": "high"},
                )
            )
        if (
            r_rate is not None
            and r_rate > t.no_show_high_combo_reschedule_rate
            and avg_rating is not None
            and avg_rating < t.no_show_high_combo_max_rating
        ):
            a.no_show_risk_label = "high"
            reasons.append(
                Reason(
                    NO_SHOW_RISK.name,
                    r_rate,
                    t.no_show_high_combo_reschedule_rate,
                    w.tutor_reschedules,
                    w.total_sessions,
                    f"{w.tutor_reschedules} of {sessions_text} rescheduled by the tutor"
                    f" ({pct(r_rate, t.no_show_high_combo_reschedule_rate)} >"
                    f" {pct(t.no_show_high_combo_reschedule_rate)}) with an average rating of"
                    f" {num(avg_rating)} (< {num(t.no_show_high_combo_max_rating)})",
                    evidence="tutor_reschedule",
                    extra={
                        "label": "high",
                        "avg_student_rating": avg_rating,
                        "rating_threshold": t.no_show_high_combo_max_rating,
                    },
                )
            )
        if a.no_show_risk_label != "high":
            if ns_rate > t.no_show_medium_rate:
                a.no_show_risk_label = "medium"
                text = f"{missed} ({pct(ns_rate, t.no_show_medium_rate)} > "
                text += f"{pct(t.no_show_medium_rate)})"
                evidence: str | None = "tutor_no_show"
                kind = FLAG
                threshold = t.no_show_medium_rate
            else:
                text = f"{missed} ({pct(ns_rate, t.no_show_medium_rate)}, at most "
                text += f"{pct(t.no_show_medium_rate)}): low no-show risk"
                evidence, kind, threshold = None, SUMMARY, t.no_show_medium_rate
            reasons.append(
                Reason(
                    NO_SHOW_RISK.name,
                    ns_rate,
                    threshold,
                    w.tutor_no_shows,
                    w.total_sessions,
                    text,
                    kind=kind,
                    evidence=evidence,
                    extra={"label": a.no_show_risk_label},
                )
            )

    # poor_first_session_flag (per tutor, then per tutor x subject)
    f_rate = a.first_session_dropout_rate
    failed_words = "ended with the student leaving or rating it"
    failed_words += f" {t.poor_first_session_max_rating} or lower"
    if not first_ok:
        reasons.append(
            Reason(
                POOR_FIRST_SESSION.name,
                w.first_sessions,
                t.min_first_sessions,
                w.first_sessions,
                None,
                f"Not enough data for first sessions: {plural(w.first_sessions, 'first session')}"
                f" in the last {days} days (needs {t.min_first_sessions})",
                kind=NOT_ENOUGH_DATA,
            )
        )
    elif f_rate is not None and f_rate > t.poor_first_session_rate:
        a.poor_first_session_flag = True
        reasons.append(
            Reason(
                POOR_FIRST_SESSION.name,
                f_rate,
                t.poor_first_session_rate,
                w.first_session_dropouts,
                w.first_sessions,
                f"{w.first_session_dropouts} of {w.first_sessions} first sessions {failed_words}"
                f" ({pct(f_rate, t.poor_first_session_rate)} > {pct(t.poor_first_session_rate)})",
                evidence="first_session_failed",
            )
        )
    by_subject = []
    for subj in counts.subjects:
        s_rate = rate(subj.dropouts, subj.first_sessions)
        s_ok = subj.first_sessions >= t.min_first_sessions
        s_flag = bool(s_ok and s_rate is not None and s_rate > t.poor_first_session_rate)
        by_subject.append(
            {
                "subject": subj.subject,
                "first_sessions": subj.first_sessions,
                "dropouts": subj.dropouts,
                "dropout_rate": s_rate,
                POOR_FIRST_SESSION.name: s_flag,
                INSUFFICIENT_DATA.name: not s_ok,
            }
        )
        if s_flag and s_rate is not None:
            reasons.append(
                Reason(
                    POOR_FIRST_SESSION.name,
                    s_rate,
                    t.poor_first_session_rate,
                    subj.dropouts,
                    subj.first_sessions,
                    f"In {subj.subject}, {subj.dropouts} of {subj.first_sessions} first sessions"
                    f" {failed_words} ({pct(s_rate, t.poor_first_session_rate)} >"
                    f" {pct(t.poor_first_session_rate)})",
                    evidence="first_session_failed",
                    subject=subj.subject,
                )
            )

    # low rating / low AI quality signals
    if not ratings_ok:
        reasons.append(
            Reason(
                LOW_RATING.name,
                w.rated_sessions,
                t.min_ratings,
                w.rated_sessions,
                None,
                f"Not enough data for ratings: {plural(w.rated_sessions, 'rated session')}"
                f" in the last {days} days (needs {t.min_ratings})",
                kind=NOT_ENOUGH_DATA,
            )
        )
    elif avg_rating is not None and avg_rating < t.low_rating:
        a.low_rating_flag = True
        reasons.append(
            Reason(
                LOW_RATING.name,
                avg_rating,
                t.low_rating,
                w.rating_sum,
                w.rated_sessions,
                f"Average student rating {num(avg_rating)} over"
                f" {plural(w.rated_sessions, 'rated session')} (< {num(t.low_rating)})",
                evidence="low_rating",
            )
        )
    ai = a.ai_avg_quality_score
    if not evals_ok:
        reasons.append(
            Reason(
                LOW_AI_QUALITY.name,
                w.evaluated_sessions,
                t.min_evaluations,
                w.evaluated_sessions,
                None,
                f"Not enough data for AI quality:"
                f" {plural(w.evaluated_sessions, 'evaluated session')} in the last {days} days"
                f" (needs {t.min_evaluations})",
                kind=NOT_ENOUGH_DATA,
            )
        )
    elif ai is not None and ai < t.low_ai_quality:
        a.low_ai_quality_flag = True
        reasons.append(
            Reason(
                LOW_AI_QUALITY.name,
                ai,
                t.low_ai_quality,
                round(w.quality_sum, 6),
                w.evaluated_sessions,
                f"Average AI quality score {num(ai)} over"
                f" {plural(w.evaluated_sessions, 'evaluated session')}"
                f" (< {num(t.low_ai_quality)})",
                evidence="low_ai_quality",
            )
        )

    # falling trends (second half minus first half of the window)
    falling = []
    for name, label, trend, ok, a1, a2 in (
        ("rating_trend", "Average rating", a.rating_trend, ratings_ok,
         first.avg_rating, second.avg_rating),
        ("ai_score_trend", "Average AI quality score", a.ai_score_trend, evals_ok,
         first.avg_quality, second.avg_quality),
    ):  # fmt: skip
        if ok and trend is not None and a1 is not None and a2 is not None:
            if trend <= -t.falling_trend_drop:
                falling.append(name)
                reasons.append(
                    Reason(
                        name,
                        trend,
                        -t.falling_trend_drop,
                        None,
                        None,
                        f"{label} fell from {num(a1)} to {num(a2)} between the first and second"
                        f" half of the last {days} days ({num(trend)}; a fall of"
                        f" {num(t.falling_trend_drop)} or more counts)",
                        extra={"first_half": a1, "second_half": a2},
                    )
                )

    # churn_risk_label from rules (the churn model may override it later)
    row = {name: getattr(a, name) for name in METRIC_COLUMNS}
    signals = {
        f.name: bool(falling) if f is FALLING_TREND else f.raised_in(row) for f in CHURN_SIGNALS
    }
    raised = [name for name, on in signals.items() if on]
    n = len(raised)
    if n >= t.churn_high_signals:
        a.churn_risk_label, threshold = "high", t.churn_high_signals
    elif n >= t.churn_medium_signals:
        a.churn_risk_label, threshold = "medium", t.churn_medium_signals
    else:
        a.churn_risk_label, threshold = "low", t.churn_medium_signals
    names = ", ".join(flags.label(r) for r in raised)
    if a.churn_risk_label == "low":
        text = f"No churn risk signals among the {len(signals)} checked"
        if a.insufficient_data:
            text += ", but there is not enough data to call it low risk"
    else:
        text = (
            f"{plural(n, 'risk signal')} ({names}): {a.churn_risk_label} churn risk with"
            f" {threshold} or more"
        )
    reasons.append(
        Reason(
            CHURN_RISK.name,
            n,
            threshold,
            n,
            len(signals),
            text,
            kind=SUMMARY,
            extra={"label": a.churn_risk_label, "signals": raised, "source": "rules"},
        )
    )

    # weekly series oldest first; week bounds and half bounds follow from as_of and
    # window_days (window_series adds them back when read) so rows stay small
    empty = Tally()
    weekly = [_slice(counts.weeks.get(week, empty)) for week in reversed(range(window.weeks))]
    a.details = {
        "counts": {
            "completed": w.completed,
            "student_reschedules": w.student_reschedules,
            "student_no_shows": w.student_no_shows,
            "cancelled": w.cancelled,
            "rating_sum": w.rating_sum,
            "quality_sum": round(w.quality_sum, 6),
        },
        "halves": {"first": _slice(first), "second": _slice(second)},
        "weekly": weekly,
        "first_sessions_by_subject": by_subject,
        "guards": {
            "sessions": sessions_ok,
            "first_sessions": first_ok,
            "ratings": ratings_ok,
            "evaluations": evals_ok,
        },
        "signals": raised,
    }
    return a


def window_series(details: dict[str, Any], window: Window) -> dict[str, Any]:
    """The stored weekly series and halves with their time bounds, for charts."""
    weekly = []
    stored = details.get("weekly", [])
    for week, point in zip(reversed(range(window.weeks)), stored, strict=False):
        lower, upper = window.week_bounds(week)
        weekly.append({"week_start": iso(lower), "week_end": iso(upper), **point})
    halves = details.get("halves", {})
    bounds = {"first": (window.start, window.mid), "second": (window.mid, window.as_of)}
    return {
        "window": window.describe(),
        "weekly": weekly,
        "halves": {
            name: {"start": iso(lo), "end": iso(hi), **halves.get(name, {})}
            for name, (lo, hi) in bounds.items()
        },
    }


def risk_level(churn_label: str, insufficient_data: bool) -> str:
    """What the dashboard shows: the churn label, or "not_enough_data" instead of low."""
    if churn_label == "low" and insufficient_data:
        return "not_enough_data"
    return churn_label


__all__ = ["Assessment", "assess", "mean", "rate", "risk_level", "LABELS", "METRIC_COLUMNS"]
