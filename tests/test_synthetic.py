"""The synthetic generator: distributions, consistency, determinism, idempotent re-seeding."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, text
from typer.testing import CliRunner

from tutorscore.db.engine import transaction
from tutorscore.db.models import (
    Intervention,
    Job,
    SessionEvaluation,
    SessionTranscript,
    Student,
    Tutor,
    TutoringSession,
    TutorMetrics,
)
from tutorscore.errors import UserError
from tutorscore.ingest.synthetic import generate, seed
from tutorscore.ingest.transcript_format import content_hash, render_text, validate_turns

AS_OF = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
COUNTED = ("completed", "no_show", "rescheduled")


def _sessions(engine: Engine) -> list[TutoringSession]:
    with transaction(engine) as s:
        return list(s.scalars(select(TutoringSession).order_by(TutoringSession.session_id)))


def test_default_seed_has_the_required_distributions(engine: Engine) -> None:
    summary = seed(engine, seed=7, as_of=AS_OF)
    rows = _sessions(engine)
    assert summary.sessions == len(rows) == 3000
    assert summary.tutors == 100 and summary.students == 2500 and summary.transcripts == 120

    past = [r for r in rows if r.status != "scheduled"]
    upcoming = [r for r in rows if r.status == "scheduled"]
    def share(rs: list[Any], pred: Callable[[Any], bool]) -> float:
        return sum(1 for r in rs if pred(r)) / len(rs)

    assert 0.20 <= share(past, lambda r: r.is_first_session) <= 0.30
    assert 0.20 <= share(rows, lambda r: r.is_first_session) <= 0.30
    assert 0.05 <= share(past, lambda r: r.status == "rescheduled") <= 0.15
    rescheduled = [r for r in past if r.status == "rescheduled"]
    assert 0.80 <= share(rescheduled, lambda r: r.reschedule_initiator == "tutor") <= 0.98
    assert 0.02 <= share(past, lambda r: r.status == "no_show") <= 0.05
    assert 0 < sum(r.status == "cancelled" for r in past) < 0.03 * len(past)
    assert 0.02 <= len(upcoming) / len(rows) <= 0.08

    # window: past sessions in the `days` before as_of, upcoming ones after it
    assert all(AS_OF - timedelta(days=7) < r.scheduled_start_at <= AS_OF for r in past)
    assert all(r.scheduled_start_at > AS_OF for r in upcoming)

    # >= 80% of tutors have enough sessions for their metrics (total_sessions >= 10)
    per_tutor: dict[str, int] = {}
    for r in past:
        if r.status in COUNTED:
            per_tutor[r.tutor_id] = per_tutor.get(r.tutor_id, 0) + 1
    assert sum(1 for n in per_tutor.values() if n >= 10) >= 0.8 * summary.tutors

    with transaction(engine) as s:
        tutors = list(s.scalars(select(Tutor)))
        churned = [t for t in tutors if t.churned_on is not None]
        assert 0.05 * len(tutors) <= len(churned) <= 0.35 * len(tutors)
        assert all(t.hire_date is not None and t.hire_date <= AS_OF.date() for t in tutors)
        assert all(t.subjects and t.is_synthetic for t in tutors)
        assert s.scalar(select(func.count()).select_from(Student)) == 2500


def test_session_fields_are_consistent_with_status(engine: Engine) -> None:
    seed(engine, tutors=30, students=600, sessions=900, transcripts=20, seed=3, as_of=AS_OF)
    for r in _sessions(engine):
        took_place = r.status == "completed"
        assert (r.actual_start_at is not None) == took_place
        assert (r.duration_minutes is not None and r.duration_minutes > 0) == took_place
        assert (r.student_churned_after_session is not None) == took_place
        assert r.student_rating is None or (took_place and 1 <= r.student_rating <= 5)
        assert (r.no_show_by is not None) == (r.status == "no_show")
        assert (r.reschedule_initiator is not None) == (r.status == "rescheduled")
        if took_place:
            assert r.actual_start_at is not None
            assert timedelta(0) <= r.actual_start_at - r.scheduled_start_at <= timedelta(minutes=15)
        assert r.is_synthetic and r.session_id.startswith("syn-X")


def test_first_session_is_the_earliest_completed_session_of_a_new_pair(engine: Engine) -> None:
    seed(engine, tutors=40, students=900, sessions=1500, transcripts=0, seed=11, as_of=AS_OF)
    rows = _sessions(engine)
    by_pair: dict[tuple[str, str], list[TutoringSession]] = {}
    for r in rows:
        assert r.is_first_session == r.is_first_session_for_student
        by_pair.setdefault((r.tutor_id, r.student_id), []).append(r)
    firsts = 0
    for sessions in by_pair.values():
        marked = [r for r in sessions if r.is_first_session]
        assert len(marked) <= 1
        if marked:
            firsts += 1
            completed = [r for r in sessions if r.status == "completed"]
            earliest = min(completed, key=lambda r: r.scheduled_start_at)
            assert marked[0].session_id == earliest.session_id
            # nothing of the pair happened before its first session
            assert all(r.scheduled_start_at > earliest.scheduled_start_at
                       for r in sessions if r is not earliest)  # fmt: skip
    assert firsts > 0
    # a student who churned after a session has nothing booked afterwards
    last_seen: dict[str, datetime] = {}
    for r in rows:
        last_seen[r.student_id] = max(last_seen.get(r.student_id, r.scheduled_start_at),
                                      r.scheduled_start_at)  # fmt: skip
    churned = [r for r in rows if r.student_churned_after_session]
    assert churned
    assert all(last_seen[r.student_id] == r.scheduled_start_at for r in churned)


def test_rescheduled_sessions_are_linked_to_their_replacement(engine: Engine) -> None:
    seed(engine, tutors=30, students=400, sessions=1200, transcripts=0, seed=5, as_of=AS_OF)
    rows = {r.session_id: r for r in _sessions(engine)}
    linked = [r for r in rows.values() if r.rescheduled_from_session_id]
    assert linked
    for r in linked:
        original = rows[r.rescheduled_from_session_id or ""]
        assert original.status == "rescheduled"
        assert (original.tutor_id, original.student_id) == (r.tutor_id, r.student_id)
        assert original.scheduled_start_at < r.scheduled_start_at


def test_transcripts_are_stored_in_the_shared_format(engine: Engine) -> None:
    seed(engine, seed=9, as_of=AS_OF)
    with transaction(engine) as s:
        stored = list(s.scalars(select(SessionTranscript)))
        sessions = {r.session_id: r for r in s.scalars(select(TutoringSession))}
    assert len(stored) == 120
    for t in stored:
        turns = validate_turns(t.turns)
        assert 10 <= t.turn_count == len(turns) <= 80
        assert t.raw_text == render_text(turns)
        assert t.content_hash == content_hash(turns)
        assert all("start_s" in turn for turn in t.turns)
        assert sessions[t.session_id].status == "completed"
    first = sum(1 for t in stored if sessions[t.session_id].is_first_session)
    assert first >= 0.4 * len(stored)  # first sessions are favoured (they are 25% of sessions)
    # several evaluations per recorded tutor, so AI-quality signals have enough data
    per_tutor: dict[str, int] = {}
    for t in stored:
        tutor = sessions[t.session_id].tutor_id
        per_tutor[tutor] = per_tutor.get(tutor, 0) + 1
    assert sum(1 for n in per_tutor.values() if n >= 3) >= 10
    # something for PII redaction to find
    text_all = "\n".join(t.raw_text for t in stored)
    assert "@example.com" in text_all or "555-01" in text_all


def _snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "tutors": "SELECT tutor_id, name, subjects, years_experience, timezone, hire_date, "
        "churned_on FROM tutors ORDER BY tutor_id",
        "students": "SELECT student_id, grade_level, segment FROM students ORDER BY student_id",
        "sessions": "SELECT session_id, tutor_id, student_id, subject, scheduled_start_at, "
        "actual_start_at, duration_minutes, status, no_show_by, reschedule_initiator, "
        "rescheduled_from_session_id, is_first_session, student_rating, student_feedback, "
        "student_churned_after_session, created_at FROM sessions ORDER BY session_id",
        "transcripts": "SELECT session_id, raw_text, turn_count, content_hash "
        "FROM session_transcripts ORDER BY session_id",
    }
    with engine.connect() as conn:
        return {
            name: [tuple(json.dumps(v) if isinstance(v, list) else v for v in row)
                   for row in conn.execute(text(sql))]  # fmt: skip
            for name, sql in queries.items()
        }


def test_same_seed_and_as_of_give_identical_rows_and_reseeding_is_idempotent(
    engine: Engine,
) -> None:
    sizes: dict[str, Any] = {"tutors": 25, "students": 500, "sessions": 800, "transcripts": 15}
    first = seed(engine, seed=123, as_of=AS_OF, **sizes)
    before = _snapshot(engine)
    again = seed(engine, seed=123, as_of=AS_OF, **sizes)
    assert _snapshot(engine) == before
    assert again.deleted["sessions"] == first.sessions and again.deleted["tutors"] == 25
    assert again.status_counts == first.status_counts

    seed(engine, seed=124, as_of=AS_OF, **sizes)
    other = _snapshot(engine)
    assert other["sessions"] != before["sessions"]
    assert len(other["sessions"]) == len(before["sessions"])  # replaced, not added


def _imported_world(engine: Engine) -> None:
    with transaction(engine) as s:
        s.add(Tutor(tutor_id="T001", name="Real Tutor", subjects=["Chemistry"]))
        s.add(Student(student_id="S001"))
        s.flush()
        s.add(
            TutoringSession(
                session_id="R1",
                tutor_id="T001",
                student_id="S001",
                subject="Chemistry",
                scheduled_start_at=AS_OF - timedelta(days=1),
                status="completed",
                is_first_session=True,
            )
        )
        s.flush()
        s.add(
            SessionTranscript(
                session_id="R1",
                turns=[{"speaker": "tutor", "text": "Hi"}],
                raw_text="Tutor: Hi",
                turn_count=1,
                content_hash="h",
            )
        )
        s.add(Job(kind="evaluate", session_id="R1"))


def _attach_dependents(engine: Engine) -> tuple[str, str]:
    """An evaluation, a job, metrics and an intervention hanging off synthetic rows."""
    with transaction(engine) as s:
        transcript = s.scalars(select(SessionTranscript).where(
            SessionTranscript.session_id.like("syn-%")).limit(1)).one()  # fmt: skip
        session = s.get(TutoringSession, transcript.session_id)
        assert session is not None
        s.add(
            SessionEvaluation(
                session_id=session.session_id,
                judge="heuristic",
                model="",
                prompt_version="v1",
                transcript_hash=transcript.content_hash,
                quality_score=3.0,
                rubric={},
            )
        )
        s.add(Job(kind="evaluate", session_id=session.session_id))
        s.add(TutorMetrics(tutor_id=session.tutor_id, as_of=AS_OF, window_days=30,
                           config_hash="x"))  # fmt: skip
        s.add(Intervention(tutor_id=session.tutor_id, type="coaching", due_date=date(2026, 12, 1)))
        return session.session_id, session.tutor_id


def test_reseed_keeps_imported_rows_and_drops_synthetic_dependents(engine: Engine) -> None:
    _imported_world(engine)
    seed(engine, tutors=20, students=300, sessions=500, transcripts=10, seed=1, as_of=AS_OF)
    _attach_dependents(engine)
    summary = seed(engine, tutors=10, students=100, sessions=200, transcripts=5, seed=2,
                   as_of=AS_OF)  # fmt: skip
    assert summary.deleted["session_evaluations"] == 1 and summary.deleted["jobs"] == 1
    assert summary.deleted["tutor_metrics"] == 1 and summary.deleted["interventions"] == 1
    with transaction(engine) as s:
        def count(model: Any, *where: Any) -> int | None:
            return s.scalar(select(func.count()).select_from(model).where(*where))

        assert count(Tutor, Tutor.is_synthetic.is_(False)) == 1
        assert count(Tutor, Tutor.is_synthetic.is_(True)) == 10
        assert count(Student, Student.is_synthetic.is_(True)) == 100
        assert count(TutoringSession, TutoringSession.is_synthetic.is_(True)) == 200
        assert s.get(TutoringSession, "R1") is not None
        assert s.get(SessionTranscript, "R1") is not None
        assert count(Job) == 1 and s.scalars(select(Job)).one().session_id == "R1"
        assert count(SessionEvaluation) == 0
        assert count(TutorMetrics) == 0 and count(Intervention) == 0
        assert count(SessionTranscript) == 6


def test_large_seed_rebuilds_indexes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk paths (indexes dropped and rebuilt, wholesale delete) keep schema and data."""
    from sqlalchemy import inspect

    import tutorscore.ingest.synthetic as synthetic

    def schema() -> tuple[set[str], list[tuple[str | None, str]]]:
        insp = inspect(engine)
        fks = sorted((fk["name"], fk["referred_table"]) for fk in insp.get_foreign_keys("sessions"))
        return {ix["name"] or "" for ix in insp.get_indexes("sessions")}, fks

    before = schema()
    monkeypatch.setattr(synthetic, "INDEX_REBUILD_ROWS", 100)
    for sessions, imported in ((400, False), (300, False), (200, True)):
        if imported:
            _imported_world(engine)
        summary = seed(engine, tutors=10, students=100, sessions=sessions, transcripts=3,
                       seed=sessions, as_of=AS_OF)  # fmt: skip
        assert schema() == before
        with transaction(engine) as s:
            total = s.scalar(select(func.count()).select_from(TutoringSession))
            assert total == sessions + imported
            assert s.scalar(select(func.count()).select_from(SessionTranscript)) == 3 + imported
        if sessions == 300:
            assert summary.deleted["sessions"] == 400 and summary.deleted["tutors"] == 10
    # the foreign keys are back in force
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), transaction(engine) as s:
        s.add(TutoringSession(session_id="bad", tutor_id="nobody", student_id="S001",
                              subject="Algebra", scheduled_start_at=AS_OF, status="scheduled"))


def test_bad_sizes_are_user_errors(engine: Engine) -> None:
    for kwargs in ({"tutors": 0}, {"students": 0}, {"sessions": -1}, {"days": 0},
                   {"transcripts": -5}):  # fmt: skip
        with pytest.raises(UserError):
            seed(engine, as_of=AS_OF, **kwargs)  # type: ignore[arg-type]


def test_latent_traits_drive_outcomes() -> None:
    """Low reliability -> more reschedules and no-shows; low quality -> lower ratings and more
    first-session dropouts; churn labels go with both. Checked on the tutors' own numbers."""
    data = generate(tutors=200, students=4000, sessions=12000, transcripts=0, seed=21,
                    as_of=AS_OF)  # fmt: skip
    t = data.traits
    n = len(data.tutor_ids)
    status, tutor = data.session_status, data.session_tutor
    counted = np.bincount(tutor[np.isin(status, [0, 1, 2, 3, 4])], minlength=n)
    resched_rate = np.bincount(tutor[status == 1], minlength=n) / np.maximum(counted, 1)
    no_show_rate = np.bincount(tutor[status == 3], minlength=n) / np.maximum(counted, 1)
    assert np.corrcoef(t.reliability, resched_rate)[0, 1] < -0.5
    assert np.corrcoef(t.reliability, no_show_rate)[0, 1] < -0.2
    high = resched_rate > 0.15
    assert 0.05 * n <= high.sum() <= 0.2 * n  # about 10% clearly high reschedulers
    assert t.reliability[high].mean() < t.reliability[~high].mean() - 0.3

    rated = data.session_rating > 0
    sums = np.bincount(tutor[rated], weights=data.session_rating[rated], minlength=n)
    avg_rating = sums / np.maximum(np.bincount(tutor[rated], minlength=n), 1)
    assert np.corrcoef(t.quality, avg_rating)[0, 1] > 0.6
    assert avg_rating[t.quality < 0.4].mean() < avg_rating[t.quality > 0.6].mean() - 0.8

    first = data.session_first
    dropout = first & ((data.session_churned == 1) | (rated & (data.session_rating <= 2)))
    firsts = np.bincount(tutor[first], minlength=n)
    drop_rate = np.bincount(tutor[dropout], minlength=n) / np.maximum(firsts, 1)
    weak = t.first_session_skill < 0.4
    assert drop_rate[weak].mean() > drop_rate[~weak].mean() + 0.2

    churned = t.churned
    assert 0.05 * n <= churned.sum() <= 0.35 * n
    assert t.reliability[churned].mean() < t.reliability[~churned].mean()
    assert t.quality[churned].mean() < t.quality[~churned].mean()
    # ... but noisy: some good tutors churn and some weak ones stay
    assert (churned & (t.quality > 0.7)).any() and (~churned & (t.quality < 0.4)).any()
    # the churn date lies after as_of (an outcome label for models trained on the window)
    later = [d for d in data.tutor_churned_on if d is not None]
    assert all(AS_OF.date() < d <= AS_OF.date() + timedelta(days=35) for d in later)


def test_generation_is_deterministic_without_a_database() -> None:
    a = generate(tutors=15, students=200, sessions=400, transcripts=8, seed=99, as_of=AS_OF)
    b = generate(tutors=15, students=200, sessions=400, transcripts=8, seed=99, as_of=AS_OF)
    assert np.array_equal(a.session_start, b.session_start)
    assert np.array_equal(a.session_status, b.session_status)
    assert a.tutor_names == b.tutor_names and a.transcripts == b.transcripts
    c = generate(tutors=15, students=200, sessions=400, transcripts=8, seed=99,
                 as_of=AS_OF + timedelta(days=1))  # fmt: skip
    assert (c.session_start - a.session_start == 86400).all()  # same data, one day later


def test_cli_seed_prints_a_summary(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import tutorscore.cli.ingest as module
    from tutorscore.cli import app

    monkeypatch.setattr(module, "get_engine", lambda: engine)
    args = ["seed", "--tutors", "12", "--students", "150", "--sessions", "300",
            "--transcripts", "5", "--seed", "8", "--as-of", "2026-11-24T00:00:00Z"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 tutors, 150 students, 300 sessions" in result.stdout
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(TutoringSession)) == 300
    bad = CliRunner().invoke(app, ["seed", "--as-of", "yesterday"])
    assert bad.exit_code != 0


def test_cli_seed_recomputes_metrics_for_every_tutor_with_sessions(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reseed leaves a current metrics row for every seeded tutor, none stale or missing."""
    import tutorscore.cli.ingest as module
    from tutorscore.cli import app

    monkeypatch.setattr(module, "get_engine", lambda: engine)
    base = ["seed", "--tutors", "12", "--students", "150", "--sessions", "300",
            "--transcripts", "0", "--as-of", "2026-11-24T00:00:00Z"]  # fmt: skip
    first = CliRunner().invoke(app, [*base, "--seed", "8"])
    assert first.exit_code == 0, first.output
    # a reseed with another seed replaces the tutors: all of them get fresh metrics again
    result = CliRunner().invoke(app, [*base, "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "analytics recomputed: 12 tutors at 2026-11-24T00:00:00Z" in result.stdout
    with transaction(engine) as s:
        with_sessions = set(s.scalars(select(TutoringSession.tutor_id).distinct()))
        current = {
            m.tutor_id: m
            for m in s.scalars(select(TutorMetrics).where(TutorMetrics.is_current.is_(True)))
        }
    assert len(with_sessions) == 12
    assert with_sessions <= set(current)
    assert {m.as_of.replace(tzinfo=UTC) for m in current.values()} == {AS_OF}
    assert all(m.total_sessions > 0 for t, m in current.items() if t in with_sessions)


def test_cli_seed_no_analytics_says_what_to_run_next(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tutorscore.cli.ingest as module
    from tutorscore.cli import app

    monkeypatch.setattr(module, "get_engine", lambda: engine)
    args = ["seed", "--tutors", "12", "--students", "150", "--sessions", "300",
            "--transcripts", "0", "--no-analytics", "--as-of", "2026-11-24T00:00:00Z"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "run `tutorscore analytics` next" in result.stdout
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(TutorMetrics)) == 0
