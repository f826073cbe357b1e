"""Full recompute and incremental update: idempotence, history, runs, incremental == full."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.orm import Session

from analytics_support import AS_OF, Data, compute, metrics_row
from tutorscore.analytics.service import compute_all, live_as_of, stored_config, update_tutor
from tutorscore.config import RulesConfig
from tutorscore.db.models.analytics import AnalyticsConfig, AnalyticsRun, TutorMetrics
from tutorscore.db.models.core import Student, Tutor, TutoringSession
from tutorscore.db.models.evaluation import SessionEvaluation
from tutorscore.errors import NotFound

pytestmark = pytest.mark.usefixtures("private_data_dir")

# is_current: whether a later row exists, not a metric of the row itself
VOLATILE = {"id", "run_id", "computed_at", "is_current"}


def snapshot(engine: Engine, as_of: datetime = AS_OF) -> dict[str, dict[str, Any]]:
    """Every tutor_metrics row at `as_of`, minus the columns that name the run."""
    with Session(engine) as session:
        rows = session.scalars(select(TutorMetrics).where(TutorMetrics.as_of == as_of)).all()
        return {
            r.tutor_id: {
                c.name: getattr(r, c.name)
                for c in TutorMetrics.__table__.columns
                if c.name not in VOLATILE
            }
            for r in rows
        }


def _small_world(d: Data) -> None:
    for t in ("A", "B", "C"):
        d.tutor(t)
    d.sessions_n("A", 12, student_rating=4)
    d.sessions_n("A", 3, status="rescheduled", reschedule_initiator="tutor")
    d.sessions_n("B", 4, is_first_session=True, student_rating=1)
    d.evaluation(d.session("B", days_ago=3), 2.5)


def test_full_recompute_is_idempotent_and_records_the_run(
    engine: Engine, rules: RulesConfig
) -> None:
    d = Data()
    _small_world(d)
    d.flush(engine)
    first = compute_all(engine, as_of=AS_OF, rules=rules)
    before = snapshot(engine)
    second = compute_all(engine, as_of=AS_OF, rules=rules)
    assert snapshot(engine) == before
    assert set(before) == {"A", "B", "C"}  # every tutor, the idle one too
    assert first.tutors == second.tutors == 3
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(TutorMetrics)) == 3
        runs = session.scalars(select(AnalyticsRun).order_by(AnalyticsRun.id)).all()
        assert [r.kind for r in runs] == ["full", "full"]
        assert runs[0].config_hash == runs[1].config_hash == rules.fingerprint()
        configs = session.scalars(select(AnalyticsConfig)).all()
        assert [c.config_hash for c in configs] == [rules.fingerprint()]  # stored once
        assert configs[0].config["thresholds"]["high_rescheduler_rate"] == 0.15
        assert runs[0].finished_at is not None and runs[0].as_of == AS_OF
        ids = set(session.scalars(select(TutorMetrics.run_id)))
        assert ids == {runs[1].id}
    assert first.risk["not_enough_data"] >= 1
    assert first.flags["high_rescheduler_flag"] == 1


def test_each_as_of_keeps_its_own_rows(engine: Engine, rules: RulesConfig) -> None:
    d = Data()
    _small_world(d)
    d.flush(engine)
    compute(engine)
    later = AS_OF + timedelta(days=20)
    compute(engine, as_of=later)
    assert metrics_row(engine, "A").total_sessions == 15
    assert metrics_row(engine, "A", later).total_sessions == 5  # sessions of the last 10 days
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(TutorMetrics)) == 6


def test_incremental_update_matches_full_recompute(engine: Engine, rules: RulesConfig) -> None:
    d = Data()
    _small_world(d)
    d.flush(engine)
    compute(engine)
    with engine.begin() as conn:
        conn.execute(
            update(TutoringSession)
            .where(TutoringSession.tutor_id == "A", TutoringSession.status == "completed")
            .values(student_rating=2)
        )
    summary = update_tutor(engine, "A", rules=rules, as_of=AS_OF)
    assert summary.kind == "incremental" and summary.tutors == 1
    incremental = snapshot(engine)
    assert incremental["A"]["low_rating_flag"] is True
    compute(engine)
    assert snapshot(engine) == incremental


def test_update_unknown_tutor_is_not_found(engine: Engine, rules: RulesConfig) -> None:
    with pytest.raises(NotFound):
        update_tutor(engine, "nobody", rules=rules, as_of=AS_OF)


def test_live_path_writes_at_now_and_becomes_current(engine: Engine, rules: RulesConfig) -> None:
    from tutorscore.analytics.report import tutor_reports

    d = Data()
    _small_world(d)
    d.flush(engine)
    compute(engine)
    before = live_as_of()
    with Session(engine) as session, session.begin():
        summary = update_tutor(session, "B", rules=rules)
    assert summary.as_of >= before and summary.as_of.microsecond == 0
    with Session(engine) as session:
        items, total = tutor_reports(session, sort="tutor_id", ensure=False)
    as_ofs = {i["tutor_id"]: i["as_of"] for i in items}
    assert total == 3
    assert as_ofs["A"] == "2026-11-24T00:00:00Z"
    assert as_ofs["B"] != as_ofs["A"]  # B's latest row is the live one


def test_after_write_step_gets_the_rows_just_written(engine: Engine, rules: RulesConfig) -> None:
    calls: list[tuple[datetime, list[str] | None]] = []

    def after_write(
        session: Session, *, as_of: datetime, rules: RulesConfig, tutor_ids: list[str] | None
    ) -> int:
        calls.append((as_of, tutor_ids))
        query = update(TutorMetrics).where(TutorMetrics.as_of == as_of)
        if tutor_ids is not None:
            query = query.where(TutorMetrics.tutor_id.in_(tutor_ids))
        # a model past its gate sets the labels: every scored tutor becomes high risk
        session.execute(query.values(churn_probability=0.42, churn_risk_label="high"))
        return 3 if tutor_ids is None else len(tutor_ids)

    d = Data()
    _small_world(d)
    d.flush(engine)
    rules_only = compute_all(engine, as_of=AS_OF, rules=rules)
    assert rules_only.risk["high"] < 3
    summary = compute_all(engine, as_of=AS_OF, rules=rules, after_write=after_write)
    assert summary.model_scored == 3
    assert metrics_row(engine, "C").churn_probability == pytest.approx(0.42)
    # the summary counts the labels as stored after scoring, not the rules' labels
    assert summary.risk == {"high": 3, "medium": 0, "low": 0, "not_enough_data": 0}
    assert set(summary.stages) == {"sql", "rules", "write", "churn"}
    assert all(v >= 0 for v in summary.stages.values())
    assert sum(summary.stages.values()) <= summary.seconds + 1e-9  # float rounding only
    later = AS_OF + timedelta(hours=1)
    update_tutor(engine, "A", rules=rules, as_of=later, after_write=after_write)
    assert calls == [(AS_OF, None), (later, ["A"])]


# -- property: random event sequences, incremental after each event == full at the end --

DAYS = st.sampled_from([0, 0.25, 1, 6.99, 7, 14, 15, 15.01, 20, 28, 29.99, 30, 31, -0.5])
STATUS = st.sampled_from(["completed", "completed", "no_show", "rescheduled", "cancelled",
                          "scheduled"])  # fmt: skip
SESSION_FIELDS = st.fixed_dictionaries(
    {
        "status": STATUS,
        "days": DAYS,
        "subject": st.sampled_from(["SAT Math", "Chemistry"]),
        "no_show_by": st.sampled_from([None, "tutor", "student"]),
        "reschedule_initiator": st.sampled_from(["tutor", "student"]),
        "is_first_session": st.booleans(),
        "student_rating": st.one_of(st.none(), st.integers(1, 5)),
        "student_churned_after_session": st.one_of(st.none(), st.booleans()),
    }
)
INITIAL = st.lists(
    st.tuples(st.integers(0, 2), SESSION_FIELDS, st.one_of(st.none(), st.floats(1, 5))),
    # many sessions per tutor and bucket, often evaluated: the sums must match too
    min_size=3,
    max_size=15,
)
EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 2), SESSION_FIELDS),
        st.tuples(st.just("change"), st.integers(0, 30), SESSION_FIELDS),
        st.tuples(st.just("move"), st.integers(0, 30), st.integers(0, 2)),
        st.tuples(st.just("delete"), st.integers(0, 30), st.none()),
        st.tuples(
            st.just("evaluate"),
            st.integers(0, 30),
            st.tuples(st.sampled_from(["heuristic", "llm"]), st.floats(1, 5).map(
                lambda x: round(x, 2)), st.integers(0, 3)),
        ),
    ),
    min_size=1,
    max_size=25,
)
TUTORS = ["T0", "T1", "T2"]


def _row(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": fields["status"],
        "scheduled_start_at": AS_OF - timedelta(days=fields["days"]),
        "subject": fields["subject"],
        "no_show_by": fields["no_show_by"],
        "reschedule_initiator": fields["reschedule_initiator"],
        "is_first_session": fields["is_first_session"],
        "student_rating": fields["student_rating"],
        "student_churned_after_session": fields["student_churned_after_session"],
    }


def _reset(engine: Engine) -> None:
    with engine.begin() as conn:
        for model in (TutorMetrics, AnalyticsRun, SessionEvaluation, TutoringSession, Tutor,
                      Student):  # fmt: skip
            conn.execute(delete(model))


def _initial_world(
    engine: Engine, initial: list[tuple[int, dict[str, Any], float | None]]
) -> list[tuple[str, str]]:
    """The initial sessions (and evaluations), computed once; (session_id, tutor_id) alive."""
    d = Data()
    for t in TUTORS:
        d.tutor(t, subjects=("SAT Math", "Chemistry"))
    d.student("ST1")
    ids: list[tuple[str, str]] = []
    for n, (target, fields, score) in enumerate(initial):
        row = _row(fields)
        sid = d.session(TUTORS[target], at=row.pop("scheduled_start_at"),
                        session_id=f"I{n}", **row)  # fmt: skip
        ids.append((sid, TUTORS[target]))
        if score is not None:
            d.evaluation(sid, round(score, 2))
    d.flush(engine)
    compute(engine)
    return ids


def _apply_event(
    session: Session,
    n: int,
    kind: str,
    target: int,
    payload: Any,
    ids: list[tuple[str, str]],
    evals: int,
) -> tuple[set[str], int]:
    """One random event (add, change, move, delete or evaluate a session); the tutors it
    touched and the evaluations added so far."""
    if kind == "add":
        sid = f"P{n}"
        session.add(TutoringSession(session_id=sid, tutor_id=TUTORS[target],
                                    student_id="ST1", **_row(payload)))  # fmt: skip
        ids.append((sid, TUTORS[target]))
        return {TUTORS[target]}, evals
    if not ids:
        return set(), evals
    sid, tutor = ids[target % len(ids)]
    touched = {tutor}
    found = session.get(TutoringSession, sid)
    assert found is not None
    if kind == "change":
        for key, value in _row(payload).items():
            setattr(found, key, value)
    elif kind == "move":
        found.tutor_id = TUTORS[payload]
        ids[target % len(ids)] = (sid, TUTORS[payload])
        touched.add(TUTORS[payload])
    elif kind == "delete":
        session.delete(found)
        ids.pop(target % len(ids))
    else:
        judge, score, hours = payload
        evals += 1
        session.add(SessionEvaluation(
            session_id=sid, judge=judge, model="m" if judge == "llm" else "",
            prompt_version="v1", transcript_hash=f"ev{evals}",
            quality_score=score, rubric={},
            created_at=AS_OF - timedelta(hours=hours)))  # fmt: skip
    return touched, evals


def test_incremental_equals_full_for_random_event_sequences(
    engine: Engine, rules: RulesConfig
) -> None:
    examples = 30 if engine.dialect.name == "sqlite" else 12

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(initial=INITIAL, events=EVENTS)
    def run(
        initial: list[tuple[int, dict[str, Any], float | None]],
        events: list[tuple[str, int, Any]],
    ) -> None:
        _reset(engine)
        ids = _initial_world(engine, initial)
        evals = 0
        for n, (kind, target, payload) in enumerate(events):
            with Session(engine) as session, session.begin():
                touched, evals = _apply_event(session, n, kind, target, payload, ids, evals)
            for tutor in sorted(touched):
                update_tutor(engine, tutor, rules=rules, as_of=AS_OF)
        incremental = snapshot(engine)  # touched tutors updated, the rest from the start
        for tutor in TUTORS:  # and every tutor recomputed incrementally on its own
            update_tutor(engine, tutor, rules=rules, as_of=AS_OF + timedelta(seconds=1))
        each = snapshot(engine, AS_OF + timedelta(seconds=1))
        compute(engine)
        assert snapshot(engine) == incremental
        compute(engine, as_of=AS_OF + timedelta(seconds=1))
        assert snapshot(engine, AS_OF + timedelta(seconds=1)) == each

    run()


def _current_vs_latest(engine: Engine) -> tuple[set[tuple[str, datetime]], set[tuple[str, Any]]]:
    """(tutor, as_of) of the is_current rows, and of each tutor's max(as_of)."""
    with Session(engine) as session:
        current = {
            (t, a)
            for t, a in session.execute(
                select(TutorMetrics.tutor_id, TutorMetrics.as_of).where(TutorMetrics.is_current)
            )
        }
        latest = {
            (t, a)
            for t, a in session.execute(
                select(TutorMetrics.tutor_id, func.max(TutorMetrics.as_of)).group_by(
                    TutorMetrics.tutor_id
                )
            )
        }
    return current, latest


def test_is_current_marks_each_tutors_latest_row(engine: Engine, rules: RulesConfig) -> None:
    d = Data()
    _small_world(d)
    d.flush(engine)
    compute(engine)
    compute(engine, as_of=AS_OF - timedelta(days=7))  # an older point: current stays
    current, latest = _current_vs_latest(engine)
    assert current == latest and {a for _, a in current} == {AS_OF}
    compute(engine)  # recomputing the same as_of keeps the marker
    later = AS_OF + timedelta(hours=1)
    update_tutor(engine, "A", rules=rules, as_of=later)
    update_tutor(engine, "B", rules=rules, as_of=AS_OF - timedelta(days=1))
    current, latest = _current_vs_latest(engine)
    assert current == latest
    assert dict(current) == {"A": later, "B": AS_OF, "C": AS_OF}


def test_live_updates_replace_the_previous_live_row(
    engine: Engine, rules: RulesConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutorscore.analytics import service

    d = Data()
    _small_world(d)
    d.flush(engine)
    compute(engine)
    explicit = AS_OF - timedelta(days=2)  # explicit as_of rows keep today's behaviour
    update_tutor(engine, "B", rules=rules, as_of=explicit)
    for hours in (1, 2):
        now = AS_OF + timedelta(hours=hours)
        monkeypatch.setattr(service, "live_as_of", lambda now=now: now)
        update_tutor(engine, "B", rules=rules)

    def as_ofs() -> list[datetime]:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(TutorMetrics.as_of)
                    .where(TutorMetrics.tutor_id == "B")
                    .order_by(TutorMetrics.as_of)
                )
            )

    assert as_ofs() == [explicit, AS_OF, AS_OF + timedelta(hours=2)]  # one live row
    current, latest = _current_vs_latest(engine)
    assert current == latest
    # a later full run keeps the live row as history; the next live row comes after it
    compute(engine, as_of=AS_OF + timedelta(hours=3))
    monkeypatch.setattr(service, "live_as_of", lambda: AS_OF + timedelta(hours=4))
    update_tutor(engine, "B", rules=rules)
    monkeypatch.setattr(service, "live_as_of", lambda: AS_OF + timedelta(hours=5))
    update_tutor(engine, "B", rules=rules)
    assert as_ofs() == [
        explicit,
        AS_OF,
        AS_OF + timedelta(hours=2),
        AS_OF + timedelta(hours=3),
        AS_OF + timedelta(hours=5),
    ]
    current, latest = _current_vs_latest(engine)
    assert current == latest


def test_each_config_is_stored_once_and_explains_its_runs(
    engine: Engine, rules: RulesConfig
) -> None:
    d = Data()
    _small_world(d)
    d.flush(engine)
    compute_all(engine, as_of=AS_OF, rules=rules)
    for tutor_id in ("A", "B", "A"):
        update_tutor(engine, tutor_id, rules=rules, as_of=AS_OF)
    stricter = rules.model_copy(deep=True)
    stricter.thresholds.high_rescheduler_rate = 0.05
    compute_all(engine, as_of=AS_OF, rules=stricter)
    with Session(engine) as session:
        runs = session.scalars(select(AnalyticsRun).order_by(AnalyticsRun.id)).all()
        hashes = [r.config_hash for r in runs]
        assert len(runs) == 5
        assert hashes == [rules.fingerprint()] * 4 + [stricter.fingerprint()]
        assert session.scalar(select(func.count()).select_from(AnalyticsConfig)) == 2
    # the rows written by each run stay explainable by their own thresholds
    assert stored_config(engine, rules.fingerprint())["config"]["thresholds"][
        "high_rescheduler_rate"
    ] == 0.15
    assert stored_config(engine, stricter.fingerprint())["config"]["thresholds"][
        "high_rescheduler_rate"
    ] == 0.05
    assert metrics_row(engine, "A").config_hash == stricter.fingerprint()
    with pytest.raises(NotFound):
        stored_config(engine, "no-such-hash")
