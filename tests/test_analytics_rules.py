"""Every rule of docs/rules.md at its boundaries, through the SQL, on SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine

from analytics_support import AS_OF, Data, compute, metrics_row, reason, rules_with

pytestmark = pytest.mark.usefixtures("private_data_dir")


def _mixed(d: Data, tutor: str, total: int, **kinds: int) -> None:
    """`total` counted sessions: the given numbers of special ones, the rest completed."""
    used = 0
    for kind, n in kinds.items():
        used += n
        if kind == "tutor_reschedules":
            d.sessions_n(tutor, n, status="rescheduled", reschedule_initiator="tutor")
        elif kind == "student_reschedules":
            d.sessions_n(tutor, n, status="rescheduled", reschedule_initiator="student")
        elif kind == "tutor_no_shows":
            d.sessions_n(tutor, n, status="no_show", no_show_by="tutor")
        elif kind == "null_no_shows":
            d.sessions_n(tutor, n, status="no_show", no_show_by=None)
        elif kind == "student_no_shows":
            d.sessions_n(tutor, n, status="no_show", no_show_by="student")
        else:
            raise AssertionError(kind)
    d.sessions_n(tutor, total - used)


def test_reschedule_rate_exactly_at_threshold_is_not_flagged(engine: Engine) -> None:
    d = Data()
    d.tutor("AT")
    _mixed(d, "AT", 20, tutor_reschedules=3)  # 3/20 = 0.15, not > 0.15
    d.tutor("ABOVE")
    _mixed(d, "ABOVE", 20, tutor_reschedules=4)
    d.flush(engine)
    compute(engine)
    at = metrics_row(engine, "AT")
    assert at.tutor_reschedule_rate == pytest.approx(0.15)
    assert at.high_rescheduler_flag is False
    assert not [r for r in at.reasons if r["flag"] == "high_rescheduler_flag"]
    above = metrics_row(engine, "ABOVE")
    assert above.high_rescheduler_flag is True
    r = reason(above, "high_rescheduler_flag", "flag")
    assert (r["numerator"], r["denominator"], r["threshold"]) == (4, 20, 0.15)
    assert r["value"] == pytest.approx(0.2)
    assert r["text"] == "4 of 20 sessions rescheduled by the tutor (20% > 15%)"
    assert len(r["session_ids"]) == 4


def test_one_session_below_the_guard_is_not_enough_data(engine: Engine) -> None:
    d = Data()
    d.tutor("NINE")
    _mixed(d, "NINE", 9, tutor_reschedules=5, tutor_no_shows=4)
    d.tutor("TEN")
    _mixed(d, "TEN", 10, tutor_reschedules=2)
    d.flush(engine)
    compute(engine)
    nine = metrics_row(engine, "NINE")
    assert nine.total_sessions == 9
    assert nine.tutor_reschedule_rate == pytest.approx(5 / 9)
    assert nine.high_rescheduler_flag is False
    assert nine.no_show_risk_label == "low"
    assert nine.insufficient_data is True
    too_few = reason(nine, "no_show_risk_label", "not_enough_data")
    assert "too few sessions" in too_few["text"].lower()
    assert too_few["label"] == "low"
    assert "not enough data" in reason(nine, "insufficient_data")["text"].lower()
    churn = reason(nine, "churn_risk_label")
    assert "not enough data" in churn["text"]
    ten = metrics_row(engine, "TEN")
    assert ten.insufficient_data is False
    assert ten.high_rescheduler_flag is True


def test_tutor_without_sessions_gets_a_row_of_nulls(engine: Engine) -> None:
    d = Data()
    d.tutor("IDLE")
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "IDLE")
    assert row.total_sessions == 0 and row.first_sessions == 0
    for name in ("tutor_reschedule_rate", "tutor_no_show_rate", "first_session_dropout_rate",
                 "avg_student_rating", "ai_avg_quality_score", "rating_trend", "ai_score_trend"):
        assert getattr(row, name) is None, name
    assert row.insufficient_data is True
    assert row.churn_risk_label == "low"
    assert {r["flag"] for r in row.reasons if r["kind"] == "not_enough_data"} >= {
        "insufficient_data", "no_show_risk_label", "poor_first_session_flag",
        "low_rating_flag", "low_ai_quality_flag",
    }


def test_zero_denominators_give_null_rates(engine: Engine) -> None:
    d = Data()
    d.tutor("NOFIRST")
    d.sessions_n("NOFIRST", 12)  # no first sessions, no ratings, no evaluations
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "NOFIRST")
    assert row.total_sessions == 12
    assert row.tutor_reschedule_rate == 0.0 and row.tutor_no_show_rate == 0.0
    assert row.first_session_dropout_rate is None
    assert row.avg_student_rating is None
    assert row.ai_avg_quality_score is None
    assert row.poor_first_session_flag is False


def test_student_initiated_reschedules_and_no_shows_do_not_count_against_the_tutor(
    engine: Engine,
) -> None:
    d = Data()
    d.tutor("T")
    _mixed(d, "T", 20, student_reschedules=6, student_no_shows=5, null_no_shows=1)
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.total_sessions == 20  # they stay in the denominator
    assert row.tutor_reschedules == 0 and row.tutor_reschedule_rate == 0.0
    assert row.tutor_no_shows == 1  # no_show_by null means the tutor
    assert row.tutor_no_show_rate == pytest.approx(0.05)
    assert row.details["counts"]["student_reschedules"] == 6
    assert row.details["counts"]["student_no_shows"] == 5
    assert row.high_rescheduler_flag is False
    assert row.no_show_risk_label == "low"  # 0.05 is not > 0.05


def test_cancelled_scheduled_and_out_of_window_sessions_are_ignored(engine: Engine) -> None:
    d = Data()
    d.tutor("T")
    _mixed(d, "T", 10, tutor_reschedules=1)
    d.sessions_n("T", 7, status="cancelled")
    d.sessions_n("T", 7, status="scheduled")
    for days in (31, 45, 90):
        d.session("T", days_ago=days, status="rescheduled", reschedule_initiator="tutor")
    d.session("T", days_ago=-1, status="no_show")  # after as_of
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.total_sessions == 10
    assert row.tutor_reschedules == 1 and row.tutor_no_shows == 0
    assert row.details["counts"]["cancelled"] == 7


def test_window_is_open_at_the_start_and_closed_at_as_of(engine: Engine) -> None:
    d = Data()
    d.tutor("T")
    start = AS_OF - timedelta(days=30)
    d.session("T", at=AS_OF, session_id="AT_AS_OF")
    d.session("T", at=start, session_id="AT_START")
    d.session("T", at=start + timedelta(microseconds=1), session_id="JUST_INSIDE")
    d.session("T", at=AS_OF + timedelta(microseconds=1), session_id="JUST_AFTER")
    d.flush(engine)
    compute(engine)
    assert metrics_row(engine, "T").total_sessions == 2  # AT_AS_OF and JUST_INSIDE


def test_window_days_comes_from_config(engine: Engine) -> None:
    d = Data()
    d.tutor("T")
    d.session("T", days_ago=5)
    d.session("T", days_ago=10)
    d.flush(engine)
    compute(engine, rules_with(analytics__window_days=7))
    row = metrics_row(engine, "T")
    assert row.total_sessions == 1 and row.window_days == 7


@pytest.mark.parametrize(
    ("no_shows", "total", "label"),
    [(3, 20, "high"), (2, 20, "medium"), (1, 10, "medium"), (1, 20, "low"), (0, 10, "low")],
)
def test_no_show_label_boundaries(engine: Engine, no_shows: int, total: int, label: str) -> None:
    d = Data()
    d.tutor("T")
    _mixed(d, "T", total, tutor_no_shows=no_shows)
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.no_show_risk_label == label
    r = reason(row, "no_show_risk_label")
    assert r["label"] == label
    assert (r["numerator"], r["denominator"]) == (no_shows, total)
    if label != "low":
        assert len(r["session_ids"]) == no_shows


@pytest.mark.parametrize(
    ("ratings", "label"), [((3, 4, 4, 3, 3), "high"), ((4, 3, 4, 3, 3.5), "low")]
)
def test_no_show_high_from_reschedules_with_low_rating(
    engine: Engine, ratings: tuple[float, ...], label: str
) -> None:
    d = Data()
    d.tutor("T")
    _mixed(d, "T", 20, tutor_reschedules=4)  # 4 of 25 or 26 sessions: > 15%
    # ratings on more completed sessions; 3.5 as two sessions (3 and 4) keeps integers
    values = [r for r in ratings if r != 3.5] + ([3, 4] if 3.5 in ratings else [])
    for i, value in enumerate(values):
        d.session("T", days_ago=2 + i, student_rating=int(value))
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    expected_avg = sum(values) / len(values)
    assert row.avg_student_rating == pytest.approx(expected_avg)
    assert row.no_show_risk_label == label
    if label == "high":
        r = reason(row, "no_show_risk_label", "flag")
        assert r["avg_student_rating"] == pytest.approx(expected_avg)
        assert "average rating" in r["text"]


def _first(d: Data, tutor: str, n: int, failed: int, subject: str = "SAT Math") -> None:
    for i in range(n):
        if i < failed:
            # alternate the two ways a first session fails
            extra = {"student_churned_after_session": True} if i % 2 else {"student_rating": 2}
        else:
            extra = {"student_rating": 3, "student_churned_after_session": False}
        d.session(tutor, days_ago=1 + i, is_first_session=True, subject=subject, **extra)


def test_poor_first_sessions_at_threshold_and_guard(engine: Engine) -> None:
    d = Data()
    d.tutor("AT")
    _first(d, "AT", 4, 1)  # 25%, not > 25%
    d.tutor("ABOVE")
    _first(d, "ABOVE", 4, 2)
    d.tutor("FEW")
    _first(d, "FEW", 3, 3)  # one below the guard
    d.tutor("NOTFIRST")
    d.sessions_n("NOTFIRST", 4, student_rating=1)  # bad ratings, but not first sessions
    d.sessions_n("NOTFIRST", 4, is_first_session=True, status="no_show")  # not completed
    d.flush(engine)
    compute(engine)
    at = metrics_row(engine, "AT")
    assert at.first_session_dropout_rate == pytest.approx(0.25)
    assert at.poor_first_session_flag is False
    above = metrics_row(engine, "ABOVE")
    assert above.poor_first_session_flag is True
    r = reason(above, "poor_first_session_flag", "flag")
    assert (r["numerator"], r["denominator"]) == (2, 4)
    assert len(r["session_ids"]) == 2
    few = metrics_row(engine, "FEW")
    assert few.first_session_dropout_rate == 1.0 and few.poor_first_session_flag is False
    assert reason(few, "poor_first_session_flag", "not_enough_data")["value"] == 3
    nf = metrics_row(engine, "NOTFIRST")
    assert nf.first_sessions == 0 and nf.first_session_dropout_rate is None


def test_poor_first_sessions_per_subject(engine: Engine) -> None:
    d = Data()
    d.tutor("T", subjects=("SAT Math", "Chemistry"))
    _first(d, "T", 4, 3, subject="Chemistry")
    _first(d, "T", 6, 0, subject="SAT Math")
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.first_session_dropout_rate == pytest.approx(0.3)
    by_subject = {s["subject"]: s for s in row.details["first_sessions_by_subject"]}
    assert by_subject["Chemistry"]["dropout_rate"] == pytest.approx(0.75)
    assert by_subject["Chemistry"]["poor_first_session_flag"] is True
    assert by_subject["SAT Math"]["poor_first_session_flag"] is False
    subject_reasons = [r for r in row.reasons if r.get("subject") == "Chemistry"]
    assert len(subject_reasons) == 1 and len(subject_reasons[0]["session_ids"]) == 3
    assert subject_reasons[0]["text"].startswith("In Chemistry, 3 of 4 first sessions")


@pytest.mark.parametrize(
    ("ratings", "flag", "enough"),
    [((4, 4, 3, 3, 3.5), False, True), ((4, 3, 3, 3, 4), True, True), ((1, 1, 1, 1), False, False)],
)
def test_low_rating_boundaries(
    engine: Engine, ratings: tuple[float, ...], flag: bool, enough: bool
) -> None:
    d = Data()
    d.tutor("T")
    values = [int(r) for r in ratings if r != 3.5] + ([3, 4] if 3.5 in ratings else [])
    for i, value in enumerate(values):
        d.session("T", days_ago=1 + i, student_rating=value)
    d.session("T", days_ago=3, status="no_show", student_rating=1)  # not completed: ignored
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.rated_sessions == len(values)
    assert row.avg_student_rating == pytest.approx(sum(values) / len(values))
    assert row.low_rating_flag is flag
    if not enough:
        assert reason(row, "low_rating_flag", "not_enough_data")["threshold"] == 5
    if flag:
        r = reason(row, "low_rating_flag", "flag")
        assert r["denominator"] == len(values) and r["numerator"] == sum(values)
        assert len(r["session_ids"]) == sum(1 for v in values if v < 3.5)


@pytest.mark.parametrize(
    ("scores", "flag"), [((3.0, 3.0, 3.0), False), ((2.9, 2.9, 2.9), True), ((1.0, 1.0), False)]
)
def test_low_ai_quality_boundaries(
    engine: Engine, scores: tuple[float, ...], flag: bool
) -> None:
    d = Data()
    d.tutor("T")
    for i, score in enumerate(scores):
        sid = d.session("T", days_ago=1 + i)
        d.evaluation(sid, score)
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.evaluated_sessions == len(scores)
    assert row.ai_avg_quality_score == pytest.approx(sum(scores) / len(scores))
    assert row.low_ai_quality_flag is flag
    if len(scores) < 3:
        assert reason(row, "low_ai_quality_flag", "not_enough_data")["value"] == len(scores)


def test_llm_evaluation_preferred_else_latest_heuristic(engine: Engine) -> None:
    d = Data()
    d.tutor("T")
    both = d.session("T", days_ago=2)
    only_heuristic = d.session("T", days_ago=3)
    d.evaluation(both, 1.0, judge="heuristic", created_at=AS_OF)
    d.evaluation(both, 4.0, judge="llm", model="m", created_at=AS_OF - timedelta(days=1))
    d.evaluation(only_heuristic, 2.0, created_at=AS_OF - timedelta(days=2))
    d.evaluation(only_heuristic, 3.0, created_at=AS_OF - timedelta(days=1))
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.evaluated_sessions == 2
    assert row.ai_avg_quality_score == pytest.approx((4.0 + 3.0) / 2)


@pytest.mark.parametrize(
    ("first", "second", "falling"), [(5, 4, True), (4.5, 4, True), (4.4, 4, False)]
)
def test_rating_trend_and_falling_signal(
    engine: Engine, first: float, second: float, falling: bool
) -> None:
    d = Data()
    d.tutor("T")
    # first half: days 16-29 ago; second half: days 1-14 ago; 4.5 as 4 and 5
    firsts = [5, 4] * 2 if first == 4.5 else [round(first)] * 4
    if first == 4.4:
        firsts = [5, 5, 4, 4, 4]
    for i, value in enumerate(firsts):
        d.session("T", days_ago=16 + i, student_rating=value)
    for i in range(4):
        d.session("T", days_ago=1 + i, student_rating=int(second))
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.rating_trend == pytest.approx(second - sum(firsts) / len(firsts))
    assert any(r["flag"] == "rating_trend" for r in row.reasons) is falling
    assert ("falling_trend" in row.details["signals"]) is falling
    assert row.churn_risk_label == ("medium" if falling else "low")


def test_ai_score_trend(engine: Engine) -> None:
    d = Data()
    d.tutor("T")
    for i, (days, score) in enumerate([(20, 4.0), (22, 4.0), (3, 3.0), (4, 3.5)]):
        d.evaluation(d.session("T", days_ago=days, session_id=f"E{i}"), score)
    d.flush(engine)
    compute(engine)
    row = metrics_row(engine, "T")
    assert row.ai_score_trend == pytest.approx(-0.75)
    r = reason(row, "ai_score_trend")
    assert r["first_half"] == pytest.approx(4.0) and r["second_half"] == pytest.approx(3.25)


def test_churn_label_counts_signals(engine: Engine) -> None:
    d = Data()
    d.tutor("NONE")
    _mixed(d, "NONE", 10)
    d.tutor("ONE")
    _mixed(d, "ONE", 10, tutor_reschedules=2)
    d.tutor("TWO")
    _mixed(d, "TWO", 10, tutor_reschedules=2, tutor_no_shows=2)
    d.flush(engine)
    compute(engine)
    assert metrics_row(engine, "NONE").churn_risk_label == "low"
    one = metrics_row(engine, "ONE")
    assert one.churn_risk_label == "medium"
    assert reason(one, "churn_risk_label")["signals"] == ["high_rescheduler_flag"]
    two = metrics_row(engine, "TWO")
    assert two.churn_risk_label == "high"
    r = reason(two, "churn_risk_label")
    assert (r["label"], r["numerator"], r["threshold"]) == ("high", 2, 2)
    assert r["signals"] == ["high_rescheduler_flag", "no_show_high"]


def test_thresholds_come_from_config_and_evidence_is_capped(engine: Engine) -> None:
    d = Data()
    d.tutor("T")
    _mixed(d, "T", 20, tutor_reschedules=5)  # 25%
    d.flush(engine)
    rules = rules_with(thresholds__high_rescheduler_rate=0.3, analytics__evidence_session_ids=2)
    compute(engine, rules)
    assert metrics_row(engine, "T").high_rescheduler_flag is False
    rules = rules_with(thresholds__high_rescheduler_rate=0.2, analytics__evidence_session_ids=2)
    compute(engine, rules)
    row = metrics_row(engine, "T")
    assert row.high_rescheduler_flag is True
    assert row.config_hash == rules.fingerprint()
    r = reason(row, "high_rescheduler_flag")
    assert r["numerator"] == 5 and len(r["session_ids"]) == 2
