"""Each rule of docs/rules.md called alone on a small window (no database): the
documented reason, or none, at the default thresholds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tutorscore.analytics import rules
from tutorscore.analytics.metrics import SubjectFirstSessions, Tally, TutorCounts
from tutorscore.analytics.reasons import FLAG, NOT_ENOUGH_DATA, SUMMARY
from tutorscore.analytics.window import Window
from tutorscore.config import RulesConfig, Thresholds

T = Thresholds()


def window(
    tally: Tally,
    *,
    halves: tuple[Tally, Tally] | None = None,
    subjects: list[SubjectFirstSessions] | None = None,
) -> rules.TutorWindow:
    first, second = halves or (Tally(), Tally())
    counts = TutorCounts("T1", window=tally, halves={1: first, 2: second}, subjects=subjects or [])
    return rules.TutorWindow(counts, T, 30)


def test_insufficient_data_below_the_main_guard_only() -> None:
    r = rules.insufficient_data(window(Tally(total_sessions=9)))
    assert r is not None and r.flag == "insufficient_data" and r.kind == NOT_ENOUGH_DATA
    assert (r.value, r.threshold) == (9, 10)
    assert r.text == (
        "Not enough data: 9 sessions in the last 30 days (needs 10)"
        " to judge reschedules and no-shows"
    )
    assert rules.insufficient_data(window(Tally(total_sessions=10))) is None


def test_high_rescheduler() -> None:
    r = rules.high_rescheduler(window(Tally(total_sessions=20, tutor_reschedules=4)))
    assert r is not None and r.flag == "high_rescheduler_flag" and r.kind == FLAG
    assert (r.numerator, r.denominator, r.threshold) == (4, 20, 0.15)
    assert r.text == "4 of 20 sessions rescheduled by the tutor (20% > 15%)"
    assert r.evidence == "tutor_reschedule"
    # exactly at the threshold, or below the guard: not raised
    assert rules.high_rescheduler(window(Tally(total_sessions=20, tutor_reschedules=3))) is None
    assert rules.high_rescheduler(window(Tally(total_sessions=9, tutor_reschedules=9))) is None


def test_no_show_risk_labels() -> None:
    label, reasons = rules.no_show_risk(window(Tally(total_sessions=20, tutor_no_shows=3)))
    assert label == "high" and [r.extra["label"] for r in reasons] == ["high"]
    assert reasons[0].text == "3 of 20 sessions missed by the tutor (15% > 10%)"

    label, reasons = rules.no_show_risk(window(Tally(total_sessions=20, tutor_no_shows=2)))
    assert label == "medium" and reasons[0].kind == FLAG
    assert reasons[0].text == "2 of 20 sessions missed by the tutor (10% > 5%)"

    label, reasons = rules.no_show_risk(window(Tally(total_sessions=20, tutor_no_shows=1)))
    assert label == "low" and reasons[0].kind == SUMMARY
    assert reasons[0].text == (
        "1 of 20 sessions missed by the tutor (5%, at most 5%): low no-show risk"
    )

    # many reschedules with a low average rating: high, even without no-shows
    combo = Tally(total_sessions=20, tutor_reschedules=4, rated_sessions=5, rating_sum=15)
    label, reasons = rules.no_show_risk(window(combo))
    assert label == "high" and reasons[0].threshold == T.no_show_high_combo_reschedule_rate
    assert reasons[0].text.endswith("with an average rating of 3 (< 3.5)")

    label, reasons = rules.no_show_risk(window(Tally(total_sessions=9, tutor_no_shows=9)))
    assert label == "low" and reasons[0].kind == NOT_ENOUGH_DATA


def test_poor_first_session_per_tutor_and_per_subject() -> None:
    tally = Tally(total_sessions=10, first_sessions=8, first_session_dropouts=3)
    subjects = [
        SubjectFirstSessions("algebra", 4, 2),  # 50% > 25%
        SubjectFirstSessions("physics", 4, 1),  # 25%: not above
        SubjectFirstSessions("chemistry", 3, 3),  # below the guard
    ]
    r = rules.poor_first_session(window(tally, subjects=subjects))
    assert r is not None and r.flag == "poor_first_session_flag" and r.kind == FLAG
    assert r.text == (
        "3 of 8 first sessions ended with the student leaving or rating it 2 or lower (38% > 25%)"
    )
    by_subject = rules.poor_first_session_by_subject(window(tally, subjects=subjects))
    assert [(x.subject, x.numerator, x.denominator) for x in by_subject] == [("algebra", 2, 4)]
    few = rules.poor_first_session(window(Tally(first_sessions=3, first_session_dropouts=3)))
    assert few is not None and few.kind == NOT_ENOUGH_DATA
    ok = Tally(first_sessions=4, first_session_dropouts=1)
    assert rules.poor_first_session(window(ok)) is None


def test_low_rating_and_low_ai_quality() -> None:
    r = rules.low_rating(window(Tally(rated_sessions=5, rating_sum=17)))  # 3.4
    assert r is not None and r.flag == "low_rating_flag"
    assert r.text == "Average student rating 3.4 over 5 rated sessions (< 3.5)"
    assert rules.low_rating(window(Tally(rated_sessions=5, rating_sum=18))) is None
    few = rules.low_rating(window(Tally(rated_sessions=4, rating_sum=4)))
    assert few is not None and few.kind == NOT_ENOUGH_DATA

    r = rules.low_ai_quality(window(Tally(evaluated_sessions=3, quality_sum=8.7)))  # 2.9
    assert r is not None and r.flag == "low_ai_quality_flag"
    assert r.text == "Average AI quality score 2.9 over 3 evaluated sessions (< 3)"
    assert rules.low_ai_quality(window(Tally(evaluated_sessions=3, quality_sum=9.0))) is None


def test_falling_trend_needs_both_halves_and_the_guard() -> None:
    tally = Tally(rated_sessions=6, rating_sum=24)
    halves = (Tally(rated_sessions=3, rating_sum=15), Tally(rated_sessions=3, rating_sum=9))
    (r,) = rules.falling_trend(window(tally, halves=halves))
    assert r.flag == "rating_trend" and r.value == pytest.approx(-2.0)
    assert r.text == (
        "Average rating fell from 5 to 3 between the first and second half of the last 30"
        " days (-2; a fall of 0.5 or more counts)"
    )
    one_half = (Tally(), Tally(rated_sessions=6, rating_sum=6))
    assert rules.falling_trend(window(tally, halves=one_half)) == []
    few = Tally(rated_sessions=4, rating_sum=16)
    assert rules.falling_trend(window(few, halves=halves)) == []


def test_churn_risk_counts_signals() -> None:
    signals = {"high_rescheduler_flag": True, "low_rating_flag": True, "falling_trend": False}
    r = rules.churn_risk(signals, False, T)
    assert r.extra["label"] == "high" and r.extra["signals"] == [
        "high_rescheduler_flag",
        "low_rating_flag",
    ]
    assert r.text == "2 risk signals (high rescheduler, low rating): high churn risk with 2 or more"
    assert rules.churn_risk({"low_rating_flag": True}, False, T).extra["label"] == "medium"
    low = rules.churn_risk({"low_rating_flag": False}, True, T)
    assert low.extra["label"] == "low"
    assert low.text.endswith("but there is not enough data to call it low risk")


def test_assess_composes_the_rules() -> None:
    tally = Tally(total_sessions=20, completed=16, tutor_reschedules=4, rated_sessions=5)
    tally.rating_sum = 15
    counts = window(tally).counts
    a = rules.assess(counts, RulesConfig(), Window.build(datetime(2026, 12, 1, tzinfo=UTC), 30))
    assert a.high_rescheduler_flag and a.low_rating_flag
    assert a.no_show_risk_label == "high" and a.churn_risk_label == "high"
    assert [r.flag for r in a.reasons] == [
        "high_rescheduler_flag",
        "no_show_risk_label",
        "poor_first_session_flag",
        "low_rating_flag",
        "low_ai_quality_flag",
        "churn_risk_label",
    ]
    assert a.details["signals"] == ["high_rescheduler_flag", "no_show_high", "low_rating_flag"]
