"""Synthetic coaching history and coach reviews for the demo (`tutorscore demo`).

Coaching. At weekly check-ins (the `as_of - 7k days` snapshots the demo computes),
a coach looks at the tutors the generated sessions flag, by the same rules as the
analytics (reschedule rate, first-session dropouts, low ratings over the window
before the check-in), and opens an intervention for some of them. Older
interventions are mostly done, recent ones open or in progress; those past their
due date and not done are overdue.

The effect lives in the sessions, never in stored outcome numbers: from the day
coaching starts, a coached tutor's later sessions improve, ramping up over
`RAMP_DAYS`, by a per-intervention amount drawn around `EFFECT_MEAN` with a wide
spread (some coaching barely helps). A high rescheduler keeps more of their
sessions, a tutor with poor first sessions loses fewer new students, a tutor with
low ratings is rated higher, and their transcripts after coaching are generated
with the improved skill. Flagged tutors nobody coached keep their latent traits,
so the outcomes page ("Did it work?") measures a real, noisy difference in
differences against them.

Reviews. A few dozen transcribed sessions get coach reviews: a score from the
tutor's latent skill in that session plus reviewer noise and a small per-reviewer
bias, rubric scores around it, and the risk tags a coach would note; a quarter of
the sessions have a second reviewer, so the agreement page shows inter-reviewer
numbers too.

Only synthetic rows are written (interventions and reviews of synthetic tutors
and sessions, deleted with them on the next seed); imported data is never read
or changed. Everything is drawn from `seed`: same seed and as_of, same history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Table, insert

from tutorscore.analytics.flags import HIGH_RESCHEDULER, LOW_RATING, POOR_FIRST_SESSION
from tutorscore.config import RulesConfig
from tutorscore.db.models import Intervention, Review
from tutorscore.ingest.synthetic import (
    _COMPLETED,
    _NOSHOW_STUDENT,
    _NOSHOW_TUTOR,
    _RESCHED_STUDENT,
    _RESCHED_TUTOR,
    FIRST_NAMES,
    LAST_NAMES,
    SyntheticDataset,
)
from tutorscore.ingest.transcripts import SUBJECTS, generate_transcript

DAY = 86_400
CHECKIN_WEEKS = range(10, 0, -1)  # check-ins 10 .. 1 weeks before as_of, oldest first
PER_CHECKIN = 2  # at most this many flagged tutors not yet coached get coaching per check-in
RAMP_DAYS = 14  # coaching reaches its full effect this long after it starts
EFFECT_MEAN = 0.55  # per-intervention effect strength in [0, 1], drawn noisily
EFFECT_SD = 0.3
RECENT_DAYS = 28
QUALITY_GAIN = 0.35  # a transcript's teaching quality rises by up to this after coaching
COACHES = ("Ana Ruiz", "Ben Osei", "Chen Li")
REVIEWED_SESSIONS = 40
SECOND_REVIEW_SHARE = 0.25
REVIEWER_BIAS = {"Ana Ruiz": 0.15, "Ben Osei": -0.2, "Chen Li": 0.0}

# flags coaching is planned for, in priority order: (playbook key, intervention type)
COACHED_FLAGS = (
    (HIGH_RESCHEDULER.playbook_key, "Availability review with the tutor"),
    (POOR_FIRST_SESSION.playbook_key, "First-session coaching module"),
    (LOW_RATING.playbook_key, "Review recent low-rated sessions with a coach"),
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass
class PlannedIntervention:
    tutor: int  # index into the data set's tutors
    flag: str
    type: str
    owner: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    due_date: Any
    effect: float  # drawn strength in [0, 1]; the sessions carry it, nothing stores it

    @property
    def status(self) -> str:
        if self.completed_at is not None:
            return "done"
        return "in_progress" if self.started_at is not None else "open"


@dataclass
class DemoHistory:
    """A `seed(extras=...)` step: coaching history and/or coach reviews (module docstring)."""

    rules: RulesConfig
    seed: int
    coaching: bool = True
    reviews: bool = True
    recent_transcripts: int = 0  # extra transcripts in the last weeks (see add_recent_transcripts)
    planned: list[PlannedIntervention] = field(default_factory=list)
    reviews_written: int = 0
    changed_sessions: int = 0
    _skill: dict[int, float] = field(default_factory=dict)  # transcript position -> skill used

    # ------------------------------------------------------------------ SeedExtra

    def adjust(self, data: SyntheticDataset) -> None:
        if self.recent_transcripts:
            add_recent_transcripts(data, np.random.default_rng([self.seed, 17]),
                                   self.recent_transcripts)  # fmt: skip
        if not self.coaching:
            return
        rng = np.random.default_rng([self.seed, 19])
        self.planned = plan_interventions(data, self.rules, rng)
        self.changed_sessions = apply_effects(data, self.planned, rng, self._skill)

    def write(self, conn: Connection, data: SyntheticDataset) -> None:
        if self.planned:
            write_interventions(conn, data, self.planned)
        if self.reviews:
            rng = np.random.default_rng([self.seed, 23])
            self.reviews_written = write_reviews(conn, data, rng, self._skill)

    # ------------------------------------------------------------------ summary

    def status_counts(self, today: Any) -> dict[str, int]:
        counts = {"open": 0, "in_progress": 0, "done": 0, "overdue": 0}
        for p in self.planned:
            counts[p.status] += 1
            if p.status != "done" and p.due_date < today:
                counts["overdue"] += 1
        return counts

    def summary(self, today: Any) -> str:
        if not self.coaching and not self.reviews:
            return "no coaching history, no reviews"
        parts = []
        if self.coaching:
            c = self.status_counts(today)
            parts.append(
                f"{len(self.planned)} interventions ({c['done']} done, {c['in_progress']} in "
                f"progress, {c['open']} open; {c['overdue']} overdue), "
                f"{self.changed_sessions} later sessions changed by coaching"
            )
        if self.reviews:
            parts.append(f"{self.reviews_written} coach reviews")
        return "; ".join(parts)


# --------------------------------------------------------------------------- flags


def window_flags(data: SyntheticDataset, rules: RulesConfig, end: int) -> dict[str, BoolArray]:
    """Per tutor, the flags the analytics would raise over (end - window, end]."""
    t = rules.thresholds
    n = len(data.tutor_ids)
    start = end - rules.analytics.window_days * DAY
    s = data.session_start
    inside = (s > start) & (s <= end)
    status = data.session_status
    tutor = data.session_tutor[inside]
    st = status[inside]
    counted = np.isin(st, (_COMPLETED, _RESCHED_TUTOR, _RESCHED_STUDENT, _NOSHOW_TUTOR,
                           _NOSHOW_STUDENT))  # fmt: skip
    total = np.bincount(tutor[counted], minlength=n)
    resched = np.bincount(tutor[st == _RESCHED_TUTOR], minlength=n)
    rating = data.session_rating[inside]
    rated = (st == _COMPLETED) & (rating > 0)
    n_rated = np.bincount(tutor[rated], minlength=n)
    rating_sum = np.bincount(tutor[rated], weights=rating[rated], minlength=n)
    first = (st == _COMPLETED) & data.session_first[inside]
    failed = first & (
        (data.session_churned[inside] == 1)
        | ((rating > 0) & (rating <= t.poor_first_session_max_rating))
    )
    firsts = np.bincount(tutor[first], minlength=n)
    dropouts = np.bincount(tutor[failed], minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            HIGH_RESCHEDULER.playbook_key: (total >= t.min_sessions)
            & (resched / np.maximum(total, 1) > t.high_rescheduler_rate),
            POOR_FIRST_SESSION.playbook_key: (firsts >= t.min_first_sessions)
            & (dropouts / np.maximum(firsts, 1) > t.poor_first_session_rate),
            LOW_RATING.playbook_key: (n_rated >= t.min_ratings)
            & (rating_sum / np.maximum(n_rated, 1) < t.low_rating),
        }


def plan_interventions(
    data: SyntheticDataset, rules: RulesConfig, rng: np.random.Generator
) -> list[PlannedIntervention]:
    """Interventions opened at the weekly check-ins for some of the tutors flagged then."""
    as_of = int(data.as_of.timestamp())
    earliest = int(data.session_start.min()) if data.session_count else as_of
    window = rules.analytics.window_days * DAY
    coached: set[int] = set()
    planned: list[PlannedIntervention] = []
    for weeks in CHECKIN_WEEKS:
        checkin = as_of - 7 * weeks * DAY
        if checkin - window < earliest - DAY:
            continue  # no full window of sessions behind this check-in
        flags = window_flags(data, rules, checkin)
        # one tutor per flag in turn (the flag order rotates by check-in), at most PER_CHECKIN
        turn = len(planned)
        order = [COACHED_FLAGS[(turn + i) % len(COACHED_FLAGS)] for i in range(len(COACHED_FLAGS))]
        picked = 0
        for flag, type_ in order:
            pool = [t for t in np.flatnonzero(flags[flag]).tolist() if t not in coached]
            if not pool or picked >= PER_CHECKIN:
                continue
            tutor = int(pool[int(rng.integers(0, len(pool)))])
            coached.add(tutor)
            picked += 1
            planned.append(_plan_one(rng, tutor, flag, type_, checkin, as_of))
    return planned


def _plan_one(
    rng: np.random.Generator, tutor: int, flag: str, type_: str, checkin: int, as_of: int
) -> PlannedIntervention:
    created = checkin + int(rng.uniform(2, 30) * 3600)
    age_days = (as_of - created) / DAY
    u = rng.random()
    if age_days >= 42:
        status = "done" if u < 0.85 else "in_progress"
    elif age_days >= 21:
        status = "done" if u < 0.3 else "in_progress" if u < 0.85 else "open"
    else:
        status = "in_progress" if u < 0.45 else "open"
    started = completed = None
    if status != "open":
        started = created + int(rng.uniform(1, 5) * DAY)
        if status == "done":
            completed = started + int(rng.uniform(14, 28) * DAY)
            if completed > as_of - DAY:
                completed = None  # not finished yet after all
    if started is not None and started > as_of - 3600:
        started = None
    due = datetime.fromtimestamp(created, UTC).date() + timedelta(days=int(rng.integers(21, 36)))
    return PlannedIntervention(
        tutor=tutor,
        flag=flag,
        type=type_,
        owner=COACHES[int(rng.integers(0, len(COACHES)))],
        created_at=datetime.fromtimestamp(created, UTC),
        started_at=None if started is None else datetime.fromtimestamp(started, UTC),
        completed_at=None if completed is None else datetime.fromtimestamp(completed, UTC),
        due_date=due,
        effect=float(np.clip(rng.normal(EFFECT_MEAN, EFFECT_SD), 0.0, 1.0)),
    )


# --------------------------------------------------------------------------- effect


def apply_effects(
    data: SyntheticDataset,
    planned: list[PlannedIntervention],
    rng: np.random.Generator,
    skill_used: dict[int, float],
) -> int:
    """Improve each coached tutor's sessions after coaching started; returns sessions changed."""
    changed = np.zeros(data.session_count, dtype=np.bool_)
    transcript_at = {pos: i for i, (pos, _turns) in enumerate(data.transcripts)}
    for p in planned:
        if p.started_at is None:
            continue
        begin = int(p.started_at.timestamp())
        positions = np.flatnonzero((data.session_tutor == p.tutor) & (data.session_start > begin))
        if positions.shape[0] == 0:
            continue
        ramp = np.clip((data.session_start[positions] - begin) / (RAMP_DAYS * DAY), 0.0, 1.0)
        strength = p.effect * ramp
        if p.flag == HIGH_RESCHEDULER.playbook_key:
            changed[_keep_sessions(data, rng, positions, strength)] = True
        elif p.flag == POOR_FIRST_SESSION.playbook_key:
            changed[_better_first_sessions(data, rng, positions, strength)] = True
            changed[_better_ratings(data, rng, positions, 0.4 * strength)] = True
        else:
            changed[_better_ratings(data, rng, positions, strength)] = True
        if p.flag != HIGH_RESCHEDULER.playbook_key:
            gain = dict(zip(positions.tolist(), strength.tolist(), strict=True))
            for pos in positions.tolist():
                if pos in transcript_at and data.session_status[pos] == _COMPLETED:
                    _regenerate_transcript(data, transcript_at[pos], pos, gain[pos], skill_used)
    return int(changed.sum())


def _keep_sessions(
    data: SyntheticDataset, rng: np.random.Generator, positions: IntArray, strength: FloatArray
) -> IntArray:
    """Tutor reschedules and no-shows that, coached, the tutor keeps (they take place)."""
    status = data.session_status[positions]
    lapse = np.isin(status, (_RESCHED_TUTOR, _NOSHOW_TUTOR))
    kept = positions[lapse & (rng.random(positions.shape[0]) < 0.8 * strength)]
    if kept.shape[0] == 0:
        return kept
    k = kept.shape[0]
    tutors = data.session_tutor[kept]
    quality = data.traits.quality[tutors]
    delay = rng.integers(0, 4, size=k)
    planned = rng.choice(np.array([30, 45, 60, 90]), size=k, p=[0.25, 0.2, 0.45, 0.1])
    rating = np.clip(np.rint(2.4 + 2.7 * quality + rng.normal(0.0, 0.75, k)), 1, 5)
    data.session_status[kept] = _COMPLETED
    data.session_delay_min[kept] = delay
    data.session_duration[kept] = np.maximum(planned - delay, 10)
    data.session_rating[kept] = np.where(rng.random(k) < 0.7, rating, 0).astype(np.int64)
    data.session_churned[kept] = 0
    # the session took place, so the pair's next session no longer replaces it
    data.session_rescheduled_from[np.isin(data.session_rescheduled_from, kept)] = -1
    return kept


def _better_first_sessions(
    data: SyntheticDataset, rng: np.random.Generator, positions: IntArray, strength: FloatArray
) -> IntArray:
    """First sessions after coaching: fewer new students leave, fewer poor first ratings."""
    first = data.session_first[positions] & (data.session_status[positions] == _COMPLETED)
    u = rng.random(positions.shape[0])
    stays = positions[first & (data.session_churned[positions] == 1) & (u < 0.9 * strength)]
    data.session_churned[stays] = 0
    low = positions[first & (data.session_rating[positions] > 0)
                    & (data.session_rating[positions] <= 2) & (u < 0.9 * strength)]  # fmt: skip
    data.session_rating[low] += rng.integers(1, 3, size=low.shape[0])
    data.session_rating[low] = np.minimum(data.session_rating[low], 5)
    return np.union1d(stays, low).astype(np.int64)


def _better_ratings(
    data: SyntheticDataset, rng: np.random.Generator, positions: IntArray, strength: FloatArray
) -> IntArray:
    """Ratings after coaching: up one point (sometimes two) with the coaching's strength."""
    rated = (data.session_status[positions] == _COMPLETED) & (data.session_rating[positions] > 0)
    u = rng.random(positions.shape[0])
    up = rated & (u < 0.7 * strength) & (data.session_rating[positions] < 5)
    chosen: IntArray = positions[up]
    bump = 1 + (rng.random(chosen.shape[0]) < 0.3 * strength[up])
    data.session_rating[chosen] = np.minimum(data.session_rating[chosen] + bump, 5)
    for pos in chosen.tolist():
        data.session_feedback[pos] = None  # the old comment was about the worse session
    return chosen


def _regenerate_transcript(
    data: SyntheticDataset, index: int, pos: int, gain: float, skill_used: dict[int, float]
) -> None:
    t = int(data.session_tutor[pos])
    first = bool(data.session_first[pos])
    base = data.traits.first_session_skill[t] if first else data.traits.quality[t]
    skill = float(min(1.0, base + QUALITY_GAIN * gain))
    data.transcripts[index] = (pos, _transcript(data, pos, skill, "coached"))
    skill_used[pos] = skill


def add_recent_transcripts(data: SyntheticDataset, rng: np.random.Generator, wanted: int) -> int:
    """Transcripts of completed sessions in the last RECENT_DAYS for a third of the tutors.

    Over a long history the generator's transcripts spread thin; recorded tutors with
    several evaluations in the current window are what the low-AI-quality flag needs.
    """
    have = {pos for pos, _turns in data.transcripts}
    since = int(data.as_of.timestamp()) - RECENT_DAYS * DAY
    n_tutors = len(data.tutor_ids)
    recorded = rng.choice(n_tutors, size=max(1, -(-wanted // 4)), replace=False)
    candidates = np.flatnonzero(
        (data.session_status == _COMPLETED)
        & (data.session_start > since)
        & np.isin(data.session_tutor, recorded)
    )
    candidates = np.array([p for p in candidates.tolist() if p not in have], dtype=np.int64)
    if candidates.shape[0] == 0:
        return 0
    chosen = np.sort(rng.choice(candidates, size=min(wanted, candidates.shape[0]), replace=False))
    for pos in chosen.tolist():
        t = int(data.session_tutor[pos])
        first = bool(data.session_first[pos])
        skill = data.traits.first_session_skill[t] if first else data.traits.quality[t]
        data.transcripts.append((pos, _transcript(data, pos, float(skill), "recent")))
    data.transcripts.sort(key=lambda item: item[0])
    return int(chosen.shape[0])


def _transcript(data: SyntheticDataset, pos: int, skill: float, salt: str) -> list[Any]:
    t = int(data.session_tutor[pos])
    rng = random.Random(f"{data.seed}:{salt}:{pos}")
    return generate_transcript(
        rng,
        subject=SUBJECTS[int(data.session_subject[pos])],
        tutor_name=data.tutor_names[t].split()[0],
        student_name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        quality=skill,
        first_session=bool(data.session_first[pos]),
        duration_minutes=int(data.session_duration[pos]),
    ).turns


def write_interventions(
    conn: Connection, data: SyntheticDataset, planned: list[PlannedIntervention]
) -> None:
    table: Table = Intervention.__table__  # type: ignore[assignment]
    rows = []
    for p in planned:
        checkin = p.created_at.date().isoformat()
        rows.append(
            {
                "tutor_id": data.tutor_ids[p.tutor],
                "type": p.type,
                "flag": p.flag,
                "status": p.status,
                "owner": p.owner,
                "due_date": p.due_date,
                "notes": f"Opened at the weekly check-in of {checkin} (synthetic demo history).",
                "created_by": "demo",
                "created_at": p.created_at,
                "updated_at": p.completed_at or p.started_at or p.created_at,
                "started_at": p.started_at,
                "completed_at": p.completed_at,
                "outcome": {},
            }
        )
    conn.execute(insert(table), rows)


# --------------------------------------------------------------------------- reviews

_LOW_SKILL_TAGS = (
    "answer_giveaway", "no_check_for_understanding", "low_student_talk_ratio", "rushed_pacing",
)  # fmt: skip
_HIGH_SKILL_TAGS = (("excellent_engagement", 0.5), ("strong_uptake", 0.3))
_NOTES = (
    "Good questions early on; the recap was rushed.",
    "Student did most of the reasoning.",
    "Gave the answer twice instead of hinting.",
    "Clear structure, checked understanding at the end.",
    None,
    None,
)


def write_reviews(
    conn: Connection,
    data: SyntheticDataset,
    rng: np.random.Generator,
    skill_used: dict[int, float],
) -> int:
    """Coach reviews of a sample of the transcribed sessions; returns how many."""
    if not data.transcripts:
        return 0
    positions = sorted(pos for pos, _turns in data.transcripts)
    k = min(REVIEWED_SESSIONS, len(positions))
    chosen = sorted(rng.choice(np.array(positions), size=k, replace=False).tolist())
    as_of = data.as_of
    rows = []
    for pos in chosen:
        t = int(data.session_tutor[pos])
        first = bool(data.session_first[pos])
        skill = skill_used.get(
            pos, float(data.traits.first_session_skill[t] if first else data.traits.quality[t])
        )
        reviewers = [str(r) for r in rng.choice(np.array(COACHES), size=2, replace=False)]
        if rng.random() >= SECOND_REVIEW_SHARE:
            reviewers = reviewers[:1]
        start = datetime.fromtimestamp(int(data.session_start[pos]), UTC)
        for reviewer in reviewers:
            score = 1.0 + 4.0 * skill + REVIEWER_BIAS[reviewer] + rng.normal(0.0, 0.45)
            score = float(np.clip(round(score * 2) / 2, 1.0, 5.0))
            rubric = {
                key: int(np.clip(round(score + rng.normal(0.0, 0.6)), 1, 5))
                for key in ("clarity", "pacing", "engagement", "goal_alignment")
            }
            tags = [tag for tag in _LOW_SKILL_TAGS if skill < 0.45 and rng.random() < 0.45]
            tags += [tag for tag, p in _HIGH_SKILL_TAGS if skill > 0.75 and rng.random() < p]
            reviewed = min(as_of, start + timedelta(hours=float(rng.uniform(2, 24 * 14))))
            rows.append(
                {
                    "session_id": data.session_id(pos),
                    "reviewer": reviewer,
                    "quality_score": score,
                    "rubric": rubric,
                    "tags": sorted(tags),
                    "note": _NOTES[int(rng.integers(0, len(_NOTES)))],
                    "saw_ai_score": False,
                    "source": "import",
                    "created_at": reviewed,
                    "updated_at": reviewed,
                }
            )
    table: Table = Review.__table__  # type: ignore[assignment]
    conn.execute(insert(table), rows)
    return len(rows)


__all__ = ["DemoHistory", "plan_interventions", "window_flags"]
