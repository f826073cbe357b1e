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
    FLAGS,
    HIGH_RESCHEDULER,
    INSUFFICIENT_DATA,
    LOW_AI_QUALITY,
    LOW_RATING,
    NO_SHOW_RISK,
    POOR_FIRST_SESSION,
    Flag,
)
from tutorscore.analytics.metrics import SubjectFirstSessions, Tally, TutorCounts, mean
from tutorscore.analytics.reasons import FLAG, NOT_ENOUGH_DATA, SUMMARY, Reason, num, pct, plural
from tutorscore.analytics.window import Window, iso
from tutorscore.config import RulesConfig, Thresholds

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


@dataclass(frozen=True)
class TutorWindow:
    """One tutor's counts over the window and the thresholds that judge them: what every
    rule below reads (a rule function needs nothing else)."""

    counts: TutorCounts
    t: Thresholds
    days: int

    @property
    def w(self) -> Tally:
        return self.counts.window

    @property
    def first(self) -> Tally:
        return self.counts.halves[1]

    @property
    def second(self) -> Tally:
        return self.counts.halves[2]

    @property
    def sessions_ok(self) -> bool:
        return self.w.total_sessions >= self.t.min_sessions

    @property
    def first_sessions_ok(self) -> bool:
        return self.w.first_sessions >= self.t.min_first_sessions

    @property
    def ratings_ok(self) -> bool:
        return self.w.rated_sessions >= self.t.min_ratings

    @property
    def evaluations_ok(self) -> bool:
        return self.w.evaluated_sessions >= self.t.min_evaluations

    @property
    def reschedule_rate(self) -> float | None:
        return rate(self.w.tutor_reschedules, self.w.total_sessions)

    @property
    def no_show_rate(self) -> float | None:
        return rate(self.w.tutor_no_shows, self.w.total_sessions)

    @property
    def dropout_rate(self) -> float | None:
        return rate(self.w.first_session_dropouts, self.w.first_sessions)

    @property
    def sessions_text(self) -> str:
        return plural(self.w.total_sessions, "session")

    def _rescheduled_text(self, threshold: float) -> str:
        r_rate = self.reschedule_rate
        assert r_rate is not None
        return (
            f"{self.w.tutor_reschedules} of {self.sessions_text} rescheduled by the tutor"
            f" ({pct(r_rate, threshold)} > {pct(threshold)})"
        )

    def _failed_words(self) -> str:
        return (
            "ended with the student leaving or rating it"
            f" {self.t.poor_first_session_max_rating} or lower"
        )


# --- one function per rule of docs/rules.md ("Flags and labels"), in the order
# assess lists their reasons


def insufficient_data(tw: TutorWindow) -> Reason | None:
    """The main guard: too few sessions to judge reschedules and no-shows."""
    if tw.sessions_ok:
        return None
    w, t = tw.w, tw.t
    return Reason(
        INSUFFICIENT_DATA.name,
        w.total_sessions,
        t.min_sessions,
        w.total_sessions,
        None,
        f"Not enough data: {tw.sessions_text} in the last {tw.days} days"
        f" (needs {t.min_sessions}) to judge reschedules and no-shows",
        kind=NOT_ENOUGH_DATA,
    )


def high_rescheduler(tw: TutorWindow) -> Reason | None:
    """high_rescheduler_flag: tutor reschedule rate above the threshold."""
    w, t, r_rate = tw.w, tw.t, tw.reschedule_rate
    if not (tw.sessions_ok and r_rate is not None and r_rate > t.high_rescheduler_rate):
        return None
    return Reason(
        HIGH_RESCHEDULER.name,
        r_rate,
        t.high_rescheduler_rate,
        w.tutor_reschedules,
        w.total_sessions,
        tw._rescheduled_text(t.high_rescheduler_rate),
        evidence=HIGH_RESCHEDULER.evidence,
    )


def _no_show_guard(tw: TutorWindow) -> Reason:
    w, t = tw.w, tw.t
    return Reason(
        NO_SHOW_RISK.name,
        w.total_sessions,
        t.min_sessions,
        w.total_sessions,
        None,
        f"Too few sessions to judge no-show risk: {tw.sessions_text} in the last"
        f" {tw.days} days (needs {t.min_sessions}); shown as low",
        kind=NOT_ENOUGH_DATA,
        extra={"label": "low"},
    )


def _no_show_high_rate(tw: TutorWindow, ns_rate: float, missed: str) -> Reason | None:
    w, t = tw.w, tw.t
    if ns_rate <= t.no_show_high_rate:
        return None
    return Reason(
        NO_SHOW_RISK.name,
        ns_rate,
        t.no_show_high_rate,
        w.tutor_no_shows,
        w.total_sessions,
        f"{missed} ({pct(ns_rate, t.no_show_high_rate)} > {pct(t.no_show_high_rate)})",
        evidence=NO_SHOW_RISK.evidence,
        extra={"label": "high"},
    )


def _no_show_high_combo(tw: TutorWindow) -> Reason | None:
    """High no-show risk from many reschedules together with a low average rating."""
    w, t = tw.w, tw.t
    r_rate, avg_rating = tw.reschedule_rate, w.avg_rating
    if not (
        r_rate is not None
        and r_rate > t.no_show_high_combo_reschedule_rate
        and avg_rating is not None
        and avg_rating < t.no_show_high_combo_max_rating
    ):
        return None
    return Reason(
        NO_SHOW_RISK.name,
        r_rate,
        t.no_show_high_combo_reschedule_rate,
        w.tutor_reschedules,
        w.total_sessions,
        f"{tw._rescheduled_text(t.no_show_high_combo_reschedule_rate)} with an average"
        f" rating of {num(avg_rating)} (< {num(t.no_show_high_combo_max_rating)})",
        evidence=HIGH_RESCHEDULER.evidence,
        extra={
            "label": "high",
            "avg_student_rating": avg_rating,
            "rating_threshold": t.no_show_high_combo_max_rating,
        },
    )


def _no_show_medium_or_low(tw: TutorWindow, ns_rate: float, missed: str) -> Reason:
    w, t = tw.w, tw.t
    threshold = t.no_show_medium_rate
    if ns_rate > threshold:
        label, kind, evidence = "medium", FLAG, NO_SHOW_RISK.evidence
        text = f"{missed} ({pct(ns_rate, threshold)} > {pct(threshold)})"
    else:
        label, kind, evidence = "low", SUMMARY, None
        text = f"{missed} ({pct(ns_rate, threshold)}, at most {pct(threshold)}): low no-show risk"
    return Reason(
        NO_SHOW_RISK.name,
        ns_rate,
        threshold,
        w.tutor_no_shows,
        w.total_sessions,
        text,
        kind=kind,
        evidence=evidence,
        extra={"label": label},
    )


def no_show_risk(tw: TutorWindow) -> tuple[str, list[Reason]]:
    """no_show_risk_label and its reasons: high (rate, or reschedules with low ratings),
    else medium or low by the rate; low with a not-enough-data reason below the guard."""
    if not tw.sessions_ok:
        return "low", [_no_show_guard(tw)]
    ns_rate = tw.no_show_rate
    if ns_rate is None:
        return "low", []
    missed = f"{tw.w.tutor_no_shows} of {tw.sessions_text} missed by the tutor"
    high = [r for r in (_no_show_high_rate(tw, ns_rate, missed), _no_show_high_combo(tw)) if r]
    if high:
        return "high", high
    reason = _no_show_medium_or_low(tw, ns_rate, missed)
    return str(reason.extra["label"]), [reason]


def _too_few(tw: TutorWindow, flag: Flag, what: str, count: int, noun: str, need: int) -> Reason:
    """The not-enough-data reason a per-count guard gives instead of its flag."""
    return Reason(
        flag.name,
        count,
        need,
        count,
        None,
        f"Not enough data for {what}: {plural(count, noun)} in the last {tw.days} days"
        f" (needs {need})",
        kind=NOT_ENOUGH_DATA,
    )


def poor_first_session(tw: TutorWindow) -> Reason | None:
    """poor_first_session_flag for the tutor (a not-enough-data reason below its guard)."""
    w, t, f_rate = tw.w, tw.t, tw.dropout_rate
    if not tw.first_sessions_ok:
        return _too_few(tw, POOR_FIRST_SESSION, "first sessions", w.first_sessions,
                        "first session", t.min_first_sessions)  # fmt: skip
    if f_rate is None or f_rate <= t.poor_first_session_rate:
        return None
    return Reason(
        POOR_FIRST_SESSION.name,
        f_rate,
        t.poor_first_session_rate,
        w.first_session_dropouts,
        w.first_sessions,
        f"{w.first_session_dropouts} of {w.first_sessions} first sessions {tw._failed_words()}"
        f" ({pct(f_rate, t.poor_first_session_rate)} > {pct(t.poor_first_session_rate)})",
        evidence=POOR_FIRST_SESSION.evidence,
    )


def _subject_rate(tw: TutorWindow, subj: SubjectFirstSessions) -> tuple[float | None, bool, bool]:
    """(dropout rate, guard met, flagged) of one subject's first sessions."""
    s_rate = rate(subj.dropouts, subj.first_sessions)
    s_ok = subj.first_sessions >= tw.t.min_first_sessions
    return s_rate, s_ok, bool(s_ok and s_rate is not None and s_rate > tw.t.poor_first_session_rate)


def poor_first_session_by_subject(tw: TutorWindow) -> list[Reason]:
    """poor_first_session_flag per tutor x subject: one reason per flagged subject."""
    t = tw.t
    reasons = []
    for subj in tw.counts.subjects:
        s_rate, _, s_flag = _subject_rate(tw, subj)
        if s_flag and s_rate is not None:
            reasons.append(
                Reason(
                    POOR_FIRST_SESSION.name,
                    s_rate,
                    t.poor_first_session_rate,
                    subj.dropouts,
                    subj.first_sessions,
                    f"In {subj.subject}, {subj.dropouts} of {subj.first_sessions} first sessions"
                    f" {tw._failed_words()} ({pct(s_rate, t.poor_first_session_rate)} >"
                    f" {pct(t.poor_first_session_rate)})",
                    evidence=POOR_FIRST_SESSION.evidence,
                    subject=subj.subject,
                )
            )
    return reasons


def first_sessions_by_subject(tw: TutorWindow) -> list[dict[str, Any]]:
    """Per-subject first-session counts for the details (charts)."""
    out = []
    for subj in tw.counts.subjects:
        s_rate, s_ok, s_flag = _subject_rate(tw, subj)
        out.append(
            {
                "subject": subj.subject,
                "first_sessions": subj.first_sessions,
                "dropouts": subj.dropouts,
                "dropout_rate": s_rate,
                POOR_FIRST_SESSION.name: s_flag,
                INSUFFICIENT_DATA.name: not s_ok,
            }
        )
    return out


def low_rating(tw: TutorWindow) -> Reason | None:
    """low_rating_flag: average student rating below the threshold."""
    w, t, avg_rating = tw.w, tw.t, tw.w.avg_rating
    if not tw.ratings_ok:
        return _too_few(tw, LOW_RATING, "ratings", w.rated_sessions, "rated session",
                        t.min_ratings)  # fmt: skip
    if avg_rating is None or avg_rating >= t.low_rating:
        return None
    return Reason(
        LOW_RATING.name,
        avg_rating,
        t.low_rating,
        w.rating_sum,
        w.rated_sessions,
        f"Average student rating {num(avg_rating)} over"
        f" {plural(w.rated_sessions, 'rated session')} (< {num(t.low_rating)})",
        evidence=LOW_RATING.evidence,
    )


def low_ai_quality(tw: TutorWindow) -> Reason | None:
    """low_ai_quality_flag: average AI quality score below the threshold."""
    w, t, ai = tw.w, tw.t, tw.w.avg_quality
    if not tw.evaluations_ok:
        return _too_few(tw, LOW_AI_QUALITY, "AI quality", w.evaluated_sessions,
                        "evaluated session", t.min_evaluations)  # fmt: skip
    if ai is None or ai >= t.low_ai_quality:
        return None
    return Reason(
        LOW_AI_QUALITY.name,
        ai,
        t.low_ai_quality,
        round(w.quality_sum, 6),
        w.evaluated_sessions,
        f"Average AI quality score {num(ai)} over"
        f" {plural(w.evaluated_sessions, 'evaluated session')}"
        f" (< {num(t.low_ai_quality)})",
        evidence=LOW_AI_QUALITY.evidence,
    )


def _falling(
    tw: TutorWindow, name: str, label: str, ok: bool, a1: float | None, a2: float | None
) -> Reason | None:
    trend = _trend(a1, a2)
    if not ok or trend is None or a1 is None or a2 is None:
        return None
    drop = tw.t.falling_trend_drop
    if trend > -drop:
        return None
    return Reason(
        name,
        trend,
        -drop,
        None,
        None,
        f"{label} fell from {num(a1)} to {num(a2)} between the first and second"
        f" half of the last {tw.days} days ({num(trend)}; a fall of"
        f" {num(drop)} or more counts)",
        extra={"first_half": a1, "second_half": a2},
    )


def falling_trend(tw: TutorWindow) -> list[Reason]:
    """The falling-trend signal: rating_trend and/or ai_score_trend fell by the drop or more."""
    first, second = tw.first, tw.second
    found = (
        _falling(tw, "rating_trend", "Average rating", tw.ratings_ok,
                 first.avg_rating, second.avg_rating),
        _falling(tw, "ai_score_trend", "Average AI quality score", tw.evaluations_ok,
                 first.avg_quality, second.avg_quality),
    )  # fmt: skip
    return [r for r in found if r is not None]


def churn_risk(signals: dict[str, bool], insufficient: bool, t: Thresholds) -> Reason:
    """churn_risk_label from the rules: the number of churn signals raised (the churn model
    may override it later). The label is the reason's `extra["label"]`."""
    raised = [name for name, on in signals.items() if on]
    n = len(raised)
    if n >= t.churn_high_signals:
        label, threshold = "high", t.churn_high_signals
    elif n >= t.churn_medium_signals:
        label, threshold = "medium", t.churn_medium_signals
    else:
        label, threshold = "low", t.churn_medium_signals
    if label == "low":
        text = f"No churn risk signals among the {len(signals)} checked"
        if insufficient:
            text += ", but there is not enough data to call it low risk"
    else:
        names = ", ".join(flags.label(r) for r in raised)
        text = f"{plural(n, 'risk signal')} ({names}): {label} churn risk with {threshold} or more"
    return Reason(
        CHURN_RISK.name,
        n,
        threshold,
        n,
        len(signals),
        text,
        kind=SUMMARY,
        extra={"label": label, "signals": raised, "source": "rules"},
    )


def _listed(reason: Reason | None) -> list[Reason]:
    return [] if reason is None else [reason]


def _raised(reasons: list[Reason]) -> bool:
    """A boolean flag is raised when its rule gave a tutor-wide reason of kind flag."""
    return any(r.kind == FLAG and r.subject is None for r in reasons)


def _measure(counts: TutorCounts) -> Assessment:
    """The metrics of docs/rules.md ("Metrics"); flags and reasons are added by assess."""
    w, first, second = counts.window, counts.halves[1], counts.halves[2]
    return Assessment(
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


def _details(tw: TutorWindow, window: Window, raised: list[str]) -> dict[str, Any]:
    """Counts, halves, the weekly series (oldest first), per-subject first sessions and
    guards; week and half bounds follow from as_of and window_days (window_series adds
    them back when read) so rows stay small."""
    w, counts = tw.w, tw.counts
    empty = Tally()
    weekly = [_slice(counts.weeks.get(week, empty)) for week in reversed(range(window.weeks))]
    return {
        "counts": {
            "completed": w.completed,
            "student_reschedules": w.student_reschedules,
            "student_no_shows": w.student_no_shows,
            "cancelled": w.cancelled,
            "rating_sum": w.rating_sum,
            "quality_sum": round(w.quality_sum, 6),
        },
        "halves": {"first": _slice(tw.first), "second": _slice(tw.second)},
        "weekly": weekly,
        "first_sessions_by_subject": first_sessions_by_subject(tw),
        "guards": {
            "sessions": tw.sessions_ok,
            "first_sessions": tw.first_sessions_ok,
            "ratings": tw.ratings_ok,
            "evaluations": tw.evaluations_ok,
        },
        "signals": raised,
    }


def assess(counts: TutorCounts, rules: RulesConfig, window: Window) -> Assessment:
    """Apply every rule of docs/rules.md to one tutor's counts."""
    tw = TutorWindow(counts, rules.thresholds, window.days)
    a = _measure(counts)
    a.insufficient_data = not tw.sessions_ok
    a.no_show_risk_label, no_show_reasons = no_show_risk(tw)
    # each registry entry's reasons, in the order the reasons are listed
    found: dict[Flag, list[Reason]] = {
        INSUFFICIENT_DATA: _listed(insufficient_data(tw)),
        HIGH_RESCHEDULER: _listed(high_rescheduler(tw)),
        NO_SHOW_RISK: no_show_reasons,
        POOR_FIRST_SESSION: [
            *_listed(poor_first_session(tw)),
            *poor_first_session_by_subject(tw),
        ],
        LOW_RATING: _listed(low_rating(tw)),
        LOW_AI_QUALITY: _listed(low_ai_quality(tw)),
        FALLING_TREND: falling_trend(tw),
    }
    for flag in FLAGS:  # the boolean Assessment fields are named after their flags
        setattr(a, flag.name, _raised(found[flag]))
    row = a.columns()
    signals = {
        f.name: bool(found[f]) if f is FALLING_TREND else f.raised_in(row) for f in CHURN_SIGNALS
    }
    churn = churn_risk(signals, a.insufficient_data, tw.t)
    a.churn_risk_label = str(churn.extra["label"])
    a.reasons = [*(r for reasons in found.values() for r in reasons), churn]
    a.details = _details(tw, window, list(churn.extra["signals"]))
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
