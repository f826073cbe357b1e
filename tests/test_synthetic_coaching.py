"""The demo's coaching history and reviews (`ingest.synthetic_coaching`): deterministic,
consistent with the flags of the generated sessions, an effect carried by the coached
tutors' later sessions only, and imported rows never touched (SQLite and Postgres)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from tutorscore.analytics.history import compute_weekly_history
from tutorscore.analytics.service import compute_all
from tutorscore.config import RulesConfig
from tutorscore.db.engine import transaction
from tutorscore.db.models import Intervention, Review, Tutor
from tutorscore.ingest.synthetic import (
    _COMPLETED,
    _NOSHOW_TUTOR,
    _RESCHED_TUTOR,
    SyntheticDataset,
    generate,
    seed,
)
from tutorscore.ingest.synthetic_coaching import DAY, DemoHistory, window_flags
from tutorscore.interventions.outcomes import flagged_tutors, intervention_outcome
from web_support import add_people

AS_OF = datetime(2026, 11, 24, 12, tzinfo=UTC)
SIZE: dict[str, Any] = {
    "tutors": 60,
    "students": 3000,
    "sessions": 24_000,
    "days": 120,
    "transcripts": 120,
}


def _generated(seed_value: int) -> SyntheticDataset:
    return generate(seed=seed_value, as_of=AS_OF, **SIZE)


def _adjusted(rules: RulesConfig, seed_value: int) -> tuple[SyntheticDataset, DemoHistory]:
    data = _generated(seed_value)
    history = DemoHistory(rules=rules, seed=seed_value, recent_transcripts=40)
    history.adjust(data)
    return data, history


def _checkin(created: datetime) -> int:
    """The weekly check-in (as_of - k weeks) an intervention was opened after."""
    checkins = [int((AS_OF - timedelta(weeks=w)).timestamp()) for w in range(1, 11)]
    return max(c for c in checkins if c <= int(created.timestamp()))


def _plan(history: DemoHistory) -> list[tuple[object, ...]]:
    return [(p.tutor, p.flag, p.status, p.created_at, p.completed_at) for p in history.planned]


def test_same_seed_same_history_and_other_seeds_differ(rules: RulesConfig) -> None:
    a, ha = _adjusted(rules, 5)
    b, hb = _adjusted(rules, 5)
    assert _plan(ha) == _plan(hb)
    assert np.array_equal(a.session_status, b.session_status)
    assert np.array_equal(a.session_rating, b.session_rating)
    assert a.transcripts == b.transcripts
    _, hc = _adjusted(rules, 6)
    assert _plan(hc) != _plan(ha)


def test_interventions_follow_the_flags_and_have_every_status(rules: RulesConfig) -> None:
    data, history = _adjusted(rules, 5)
    baseline = _generated(5)
    assert 10 <= len(history.planned) <= 20
    counts = history.status_counts(AS_OF.date())
    assert counts["done"] and counts["in_progress"] and counts["open"] and counts["overdue"]
    assert len({p.tutor for p in history.planned}) == len(history.planned)  # one per tutor
    for p in history.planned:
        # the tutor carried the flag at the check-in just before the intervention was opened
        # (computed on the sessions before any coaching changed them)
        assert window_flags(baseline, rules, _checkin(p.created_at))[p.flag][p.tutor], p
        assert p.created_at < AS_OF
        if p.started_at is not None:
            assert p.created_at < p.started_at < AS_OF
        if p.completed_at is not None:
            assert p.started_at is not None and p.started_at < p.completed_at < AS_OF
    assert data.session_count == baseline.session_count


def test_the_effect_is_in_the_coached_tutors_later_sessions_only(rules: RulesConfig) -> None:
    data, history = _adjusted(rules, 5)
    baseline = _generated(5)
    changed = (data.session_status != baseline.session_status) | (
        data.session_rating != baseline.session_rating
    )
    assert changed.any()
    allowed = np.zeros(data.session_count, dtype=np.bool_)
    for p in history.planned:
        if p.started_at is not None:
            allowed |= (data.session_tutor == p.tutor) & (
                data.session_start > int(p.started_at.timestamp())
            )
    assert not (changed & ~allowed).any(), "a session outside coaching changed"
    # every change is an improvement: lapses kept, ratings up, never the other way
    lapses = np.isin(baseline.session_status, (_RESCHED_TUTOR, _NOSHOW_TUTOR))
    status_changed = data.session_status != baseline.session_status
    assert (lapses[status_changed]).all()
    assert (data.session_status[status_changed] == _COMPLETED).all()
    both_rated = (baseline.session_rating > 0) & (data.session_rating > 0)
    assert (data.session_rating[both_rated] >= baseline.session_rating[both_rated]).all()
    # a kept session is no longer "replaced" by the pair's next one
    kept = np.flatnonzero(status_changed)
    assert not np.isin(data.session_rescheduled_from, kept).any()


def test_coached_reschedulers_improve_more_than_flagged_uncoached_ones(
    rules: RulesConfig,
) -> None:
    """Before/after tutor reschedule rates from the sessions, coached vs uncoached, pooled
    over three seeds: the comparison group sees regression to the mean too."""
    coached_changes: list[float] = []
    control_changes: list[float] = []

    def rate(d: SyntheticDataset, tutor: int, lo: int, hi: int) -> float | None:
        mask = (d.session_tutor == tutor) & (d.session_start > lo) & (d.session_start <= hi)
        took = mask & np.isin(d.session_status, (_COMPLETED, _RESCHED_TUTOR, _NOSHOW_TUTOR))
        n = int(took.sum())
        return float((mask & (d.session_status == _RESCHED_TUTOR)).sum() / n) if n >= 5 else None

    for seed_value in (5, 6, 7):
        data, history = _adjusted(rules, seed_value)
        busy = {p.tutor for p in history.planned}
        for p in history.planned:
            if p.flag != "high_rescheduler_flag" or p.started_at is None:
                continue
            created, begin = int(p.created_at.timestamp()), int(p.started_at.timestamp())
            flagged = window_flags(_generated(seed_value), rules, _checkin(p.created_at))[p.flag]
            lo, hi = created - 30 * DAY, min(begin + 45 * DAY, int(AS_OF.timestamp()))
            for tutor in np.flatnonzero(flagged).tolist():
                before, after = rate(data, tutor, lo, created), rate(data, tutor, begin, hi)
                if before is None or after is None:
                    continue
                if tutor == p.tutor:
                    coached_changes.append(after - before)
                elif tutor not in busy:
                    control_changes.append(after - before)
    assert len(coached_changes) >= 3 and len(control_changes) >= 3
    assert np.mean(coached_changes) < np.mean(control_changes)


def test_seeded_history_in_the_database_leaves_imported_rows_alone(
    engine: Engine, rules: RulesConfig
) -> None:
    add_people(engine, [{"tutor_id": "REAL-1", "name": "Real Tutor"}], [])
    with transaction(engine) as db:
        db.add(
            Intervention(
                tutor_id="REAL-1",
                type="Real coaching",
                status="open",
                outcome={},
                created_by="coach",
                due_date=date(2026, 12, 1),
            )  # fmt: skip
        )
    history = DemoHistory(rules=rules, seed=5, recent_transcripts=40)
    seed(engine, seed=5, as_of=AS_OF, extras=[history], **SIZE)
    with transaction(engine) as db:
        ivs = list(db.scalars(select(Intervention).order_by(Intervention.id)))
        real = [iv for iv in ivs if iv.tutor_id == "REAL-1"]
        assert [(iv.type, iv.status) for iv in real] == [("Real coaching", "open")]
        synthetic = [iv for iv in ivs if iv.tutor_id != "REAL-1"]
        assert len(synthetic) == len(history.planned)
        assert {iv.status for iv in synthetic} == {"open", "in_progress", "done"}
        assert all(db.get(Tutor, iv.tutor_id).is_synthetic for iv in synthetic)  # type: ignore[union-attr]
        reviews = db.scalar(select(func.count()).select_from(Review))
        assert reviews == history.reviews_written and reviews >= 40
        assert db.scalar(select(func.count(func.distinct(Review.reviewer)))) == 3

    # the outcomes page's numbers come from the stored sessions and metrics history
    compute_weekly_history(engine, as_of=AS_OF, rules=rules, weeks=12)
    compute_all(engine, as_of=AS_OF, rules=rules)
    with transaction(engine) as db:
        done = list(db.scalars(select(Intervention).where(Intervention.status == "done")))
        assert done
        outcomes = [intervention_outcome(db, iv, rules=rules, as_of=AS_OF) for iv in done]
        assert all(o["status"] == "ok" for o in outcomes)
        for iv in db.scalars(select(Intervention).where(Intervention.tutor_id != "REAL-1")):
            # the metrics history flagged the tutor at the check-in before the intervention
            peers = flagged_tutors(db, flag=iv.flag, at=iv.created_at, rules=rules)
            assert iv.tutor_id in peers, (iv.tutor_id, iv.flag, iv.created_at)
        assert any(o["sample"]["control_candidates"] > 0 for o in outcomes)

    # a reseed without coaching removes the synthetic history, the real one stays
    seed(engine, seed=5, as_of=AS_OF, extras=[DemoHistory(rules=rules, seed=5, coaching=False,
                                                            reviews=False)], **SIZE)  # fmt: skip
    with transaction(engine) as db:
        left = list(db.scalars(select(Intervention.tutor_id)))
        assert left == ["REAL-1"]
        assert db.scalar(select(func.count()).select_from(Review)) == 0
