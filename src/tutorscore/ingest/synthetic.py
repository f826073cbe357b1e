"""Synthetic tutors, students, sessions and transcripts (`tutorscore seed`).

Every tutor has latent traits (reliability, teaching quality, first-session skill,
tenure). Reschedules, no-shows, lateness, ratings, student churn, the tutor's
`churned_on` label and the transcripts' behaviours are all drawn from them with
noise, so the analytics, the judge and the churn model find real but imperfect
signal. Generation is vectorised with numpy and inserted with executemany
(SQLite) or COPY (Postgres) so a million sessions take well under a minute.
See docs/synthetic.md for the distributions and the reasoning behind them.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.exc import DBAPIError

from tutorscore.db.base import Base, sqlite_timestamp, utcnow
from tutorscore.db.models import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.errors import UserError
from tutorscore.ingest._upsert import bulk_cache, indexes_dropped
from tutorscore.ingest.transcript_format import Turn, content_hash, render_text
from tutorscore.ingest.transcripts import SUBJECT_WEIGHTS, SUBJECTS, generate_transcript

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): called as each stage advances (for progress bars)."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

TUTOR_PREFIX = "syn-T"
STUDENT_PREFIX = "syn-S"
SESSION_PREFIX = "syn-X"

# Shares of the generated sessions (targets; the draws add noise around them).
UPCOMING_SHARE = 0.04  # status `scheduled`, after as_of (for the no-show model)
FIRST_SESSION_SHARE = 0.25  # of the past sessions: a new student-tutor pair's first session
HIGH_RESCHEDULER_SHARE = 0.10  # tutors with low reliability
POOR_TEACHER_SHARE = 0.12  # tutors with low teaching quality
WEAK_FIRST_SESSION_SHARE = 0.08  # otherwise fine tutors who start new students badly
SECOND_TUTOR_SHARE = 0.25  # ongoing students who also see a second tutor
STUDENT_RESCHEDULE_P = 0.01
STUDENT_NO_SHOW_P = 0.008
CANCEL_P = 0.012
CHURN_RAMP = 0.8  # a tutor about to leave reschedules / no-shows up to 80% more by as_of
UPCOMING_DAYS = 3
SLOT_MINUTES = 30
BATCH_ROWS = 20_000
# Above this many new sessions, the sessions table's secondary indexes are dropped
# for the load and rebuilt afterwards (one sort each instead of a million random inserts).
INDEX_REBUILD_ROWS = 100_000

STATUS_NAMES = ("completed", "rescheduled", "rescheduled", "no_show", "no_show", "cancelled")
_COMPLETED, _RESCHED_TUTOR, _RESCHED_STUDENT, _NOSHOW_TUTOR, _NOSHOW_STUDENT, _CANCELLED = range(6)
_SCHEDULED = 6

# Share of sessions per UTC hour of day: most tutoring happens in North American
# afternoons and evenings (UTC 19-03), little at night.
_HOUR_WEIGHTS = np.array(
    [6, 6, 5, 3, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 8, 8, 7],
    dtype=np.float64,
)

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Wei", "Sofia", "Daniel", "Priya", "Lucas", "Fatima", "Ethan",
    "Olivia", "Mateo", "Hannah", "Kenji", "Amara", "Noah", "Chloe", "Diego", "Leila", "Samuel",
    "Grace", "Omar", "Isabella", "Ravi", "Emma", "Jonah", "Zara", "Tomas", "Mei", "Caleb",
    "Nadia", "Elijah", "Ava", "Andre", "Yuki", "Gabriel", "Lena", "Marcus", "Ines", "Kofi",
)  # fmt: skip
LAST_NAMES = (
    "Garcia", "Smith", "Khan", "Chen", "Rossi", "Johnson", "Patel", "Silva", "Haddad", "Brown",
    "Nguyen", "Lopez", "Cohen", "Tanaka", "Okafor", "Miller", "Dubois", "Hernandez", "Rahman",
    "Wilson", "Kim", "Ali", "Martin", "Singh", "Taylor", "Novak", "Mendes", "Park", "Evans",
    "Moreau", "Ivanova", "Adeyemi", "Schmidt", "Reyes", "Murphy", "Sato", "Costa", "Lee",
)  # fmt: skip
TIMEZONES = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
    "America/Phoenix", "America/Toronto", "Europe/London", "Asia/Kolkata", "Asia/Manila",
)  # fmt: skip
_TIMEZONE_WEIGHTS = (0.3, 0.18, 0.08, 0.18, 0.04, 0.06, 0.05, 0.06, 0.05)

_FEEDBACK = {
    "low": (
        "Tutor was late and seemed distracted.",
        "I didn't really understand the explanations.",
        "They just told me the answers.",
        "Felt rushed, we didn't finish anything.",
        "Not helpful, I'm more confused now.",
    ),
    "mid": (
        "It was okay, a bit fast.",
        "Helpful but I still have questions.",
        "Fine session.",
        "Good, but we ran out of time.",
    ),
    "high": (
        "Great session, everything finally clicked!",
        "Very patient and clear.",
        "Loved how they let me work through it myself.",
        "Super helpful, booking again.",
        "Explained things in a way that made sense.",
    ),
}


@dataclass(frozen=True)
class SeedSummary:
    """What a seed run wrote (and deleted); returned to the CLI and POST /api/seed-data."""

    seed: int
    as_of: datetime
    days: int
    tutors: int
    students: int
    sessions: int
    transcripts: int
    first_sessions: int
    status_counts: dict[str, int]
    tutor_initiated_reschedules: int
    churned_tutors: int
    deleted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat().replace("+00:00", "Z")
        return data

    def __str__(self) -> str:
        past = self.sessions - self.status_counts.get("scheduled", 0)
        share = f" ({self.first_sessions / past:.0%} first sessions)" if past else ""
        return (
            f"{self.tutors:,} tutors, {self.students:,} students, {self.sessions:,} sessions"
            f"{share}, {self.transcripts:,} transcripts in {self.seconds:.1f} s"
        )


@dataclass
class TutorTraits:
    """Latent traits per tutor (index i is tutor i); never stored, they drive the outcomes."""

    reliability: FloatArray
    quality: FloatArray
    first_session_skill: FloatArray
    tenure_days: IntArray
    reschedule_p: FloatArray
    no_show_p: FloatArray
    churn_p: FloatArray
    churned: BoolArray
    weight: FloatArray


@dataclass
class SyntheticDataset:
    """Everything one seed run generates, as column arrays (rows are built at insert time)."""

    seed: int
    as_of: datetime
    days: int
    traits: TutorTraits
    tutor_ids: list[str]
    tutor_names: list[str]
    tutor_subjects: list[list[str]]
    tutor_years: list[int]
    tutor_timezones: list[str]
    tutor_hire_dates: list[date]
    tutor_churned_on: list[date | None]
    student_ids: list[str]
    student_grades: list[int]
    student_segments: list[str]
    # sessions, sorted by scheduled_start_at; ids are SESSION_PREFIX + position
    session_tutor: IntArray
    session_student: IntArray
    session_subject: IntArray  # index into SUBJECTS
    session_start: IntArray  # epoch seconds
    session_status: IntArray  # _COMPLETED ... _SCHEDULED
    session_delay_min: IntArray
    session_duration: IntArray  # minutes, 0 when it did not take place
    session_first: BoolArray
    session_rating: IntArray  # 0 = not rated
    session_feedback: list[str | None]
    session_churned: IntArray  # -1 unknown (did not take place), 0, 1
    session_rescheduled_from: IntArray  # -1 or the position of the rescheduled session
    transcripts: list[tuple[int, list[Turn]]]  # (session position, turns)

    @property
    def session_count(self) -> int:
        return int(self.session_status.shape[0])

    def session_id(self, position: int) -> str:
        return f"{SESSION_PREFIX}{position:07d}"

    def status_name(self, code: int) -> str:
        return "scheduled" if code == _SCHEDULED else STATUS_NAMES[code]


def seed(
    engine: Engine,
    *,
    tutors: int = 100,
    students: int = 2500,
    sessions: int = 3000,
    days: int = 7,
    transcripts: int = 120,
    seed: int = 42,
    as_of: datetime | None = None,
    progress: ProgressCallback | None = None,
    extras: Sequence[SeedExtra] = (),
) -> SeedSummary:
    """Replace all synthetic rows with a freshly generated data set, in one transaction.

    Imported (non-synthetic) rows are left alone; the synthetic rows' evaluations,
    jobs, metrics, interventions and alerts go with them. Each of `extras` may change
    the generated data before it is written and add rows of its own after it, in the
    same transaction (the demo's coaching history and reviews).
    """
    started = time.perf_counter()
    when = (as_of or utcnow()).astimezone(UTC)
    report = progress or _no_progress
    data = generate(
        tutors=tutors,
        students=students,
        sessions=sessions,
        days=days,
        transcripts=transcripts,
        seed=seed,
        as_of=when,
        progress=report,
    )
    for extra in extras:
        extra.adjust(data)
    big = data.session_count >= INDEX_REBUILD_ROWS
    # the one bulk loader of seed and import (ingest._upsert: why these settings)
    with engine.begin() as conn, bulk_cache(conn):
        only_synthetic = _only_synthetic(conn)
        # With nothing imported, the old rows can go wholesale (TRUNCATE on Postgres) and
        # the session indexes can be dropped before the delete as well as the load.
        # Otherwise they stay during the delete: removing a student or tutor looks up
        # its remaining sessions through them.
        many_old = only_synthetic and _count(conn, "sessions") >= INDEX_REBUILD_ROWS
        early = only_synthetic and (big or many_old)
        with indexes_dropped(conn, "sessions", enabled=early, report=report):
            deleted = delete_synthetic(conn, progress=report, everything=only_synthetic)
            with indexes_dropped(conn, "sessions", enabled=big and not early, report=report):
                _insert(conn, data, report)
        for extra in extras:
            extra.write(conn, data)
    codes = np.bincount(data.session_status, minlength=_SCHEDULED + 1)
    counts: dict[str, int] = {}
    for code, n in enumerate(codes.tolist()):
        name = data.status_name(code)
        counts[name] = counts.get(name, 0) + int(n)
    return SeedSummary(
        seed=seed,
        as_of=when,
        days=days,
        tutors=len(data.tutor_ids),
        students=len(data.student_ids),
        sessions=data.session_count,
        transcripts=len(data.transcripts),
        first_sessions=int(data.session_first.sum()),
        status_counts=counts,
        tutor_initiated_reschedules=int(codes[_RESCHED_TUTOR]),
        churned_tutors=int(data.traits.churned.sum()),
        deleted=deleted,
        seconds=round(time.perf_counter() - started, 3),
    )


class SeedExtra(Protocol):
    """More synthetic data derived from a generated data set (see `seed(extras=...)`)."""

    def adjust(self, data: SyntheticDataset) -> None:
        """Change the generated arrays in place before they are written."""

    def write(self, conn: Connection, data: SyntheticDataset) -> None:
        """Insert rows that refer to the written data (same transaction)."""


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def _only_synthetic(conn: Connection) -> bool:
    """True when no imported (non-synthetic) tutor, student or session exists."""
    return not any(
        conn.execute(
            text(f"SELECT 1 FROM {table} WHERE is_synthetic = :no LIMIT 1"), {"no": False}
        ).first()
        for table in ("tutors", "students", "sessions")
    )


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# Tables emptied by a wholesale re-seed on Postgres: the synthetic tables and every
# table whose rows hang off them (jobs have no foreign key and are deleted by session).
_TRUNCATED = (
    "reviews", "session_evaluations", "session_transcripts", "tutor_metrics", "alerts",
    "interventions", "sessions", "students", "tutors",
)  # fmt: skip


def delete_synthetic(
    conn: Connection, *, progress: ProgressCallback | None = None, everything: bool = False
) -> dict[str, int]:
    """Delete synthetic rows and what hangs off them, children first (FK order).

    `everything=True` promises that every tutor, student and session is synthetic;
    Postgres then truncates instead of deleting row by row (falling back to deletes
    if another table references these ones).
    """
    if everything and conn.dialect.name == "postgresql":
        counts = {table: _count(conn, table) for table in _TRUNCATED}
        counts["jobs"] = conn.execute(
            text("DELETE FROM jobs WHERE session_id IN (SELECT session_id FROM sessions)")
        ).rowcount
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"TRUNCATE {', '.join(_TRUNCATED)}")
        except DBAPIError:
            pass  # another table references them: delete row by row below
        else:
            if progress:
                progress("delete", 1, 1)
            return counts
    synthetic_sessions = "SELECT session_id FROM sessions WHERE is_synthetic = :yes"
    synthetic_tutors = "SELECT tutor_id FROM tutors WHERE is_synthetic = :yes"
    statements = (
        ("jobs", f"DELETE FROM jobs WHERE session_id IN ({synthetic_sessions})"),
        ("reviews", f"DELETE FROM reviews WHERE session_id IN ({synthetic_sessions})"),
        (
            "session_evaluations",
            f"DELETE FROM session_evaluations WHERE session_id IN ({synthetic_sessions})",
        ),
        (
            "session_transcripts",
            f"DELETE FROM session_transcripts WHERE session_id IN ({synthetic_sessions})",
        ),
        ("sessions", "DELETE FROM sessions WHERE is_synthetic = :yes"),
        ("tutor_metrics", f"DELETE FROM tutor_metrics WHERE tutor_id IN ({synthetic_tutors})"),
        ("alerts", f"DELETE FROM alerts WHERE tutor_id IN ({synthetic_tutors})"),
        ("interventions", f"DELETE FROM interventions WHERE tutor_id IN ({synthetic_tutors})"),
        ("students", "DELETE FROM students WHERE is_synthetic = :yes"),
        ("tutors", "DELETE FROM tutors WHERE is_synthetic = :yes"),
    )
    deleted: dict[str, int] = {}
    for i, (table, sql) in enumerate(statements):
        result = conn.execute(text(sql), {"yes": True})
        deleted[table] = max(result.rowcount or 0, 0)
        if progress:
            progress("delete", i + 1, len(statements))
    return deleted


# --------------------------------------------------------------------------- generation


def generate(
    *,
    tutors: int = 100,
    students: int = 2500,
    sessions: int = 3000,
    days: int = 7,
    transcripts: int = 120,
    seed: int = 42,
    as_of: datetime,
    progress: ProgressCallback | None = None,
) -> SyntheticDataset:
    """Generate the data set in memory (no database): same arguments, same data."""
    _check_sizes(tutors=tutors, students=students, sessions=sessions, days=days)
    if transcripts < 0:
        raise UserError(f"--transcripts: expected a number >= 0, got {transcripts}")
    if as_of.tzinfo is None:
        raise UserError("as_of needs a timezone (UTC)")
    as_of = as_of.astimezone(UTC)
    rng = np.random.default_rng(seed)
    py = random.Random(seed)
    report = progress or _no_progress

    traits = _tutor_traits(rng, tutors)
    tutor_subjects = _tutor_subjects(rng, tutors)
    names = [f"{py.choice(FIRST_NAMES)} {py.choice(LAST_NAMES)}" for _ in range(tutors)]
    timezones = py.choices(TIMEZONES, weights=_TIMEZONE_WEIGHTS, k=tutors)
    today = as_of.date()
    hire_dates = [today - timedelta(days=int(d)) for d in traits.tenure_days.tolist()]
    years = [
        int(d // 365 + py.randint(0, 6)) for d in traits.tenure_days.tolist()
    ]  # experience elsewhere before joining
    churn_offsets = rng.integers(1, 36, size=tutors)
    churned_on: list[date | None] = [
        today + timedelta(days=int(off)) if out else None
        for out, off in zip(traits.churned.tolist(), churn_offsets.tolist(), strict=True)
    ]
    report("generate", 1, 4)

    sess = _sessions(rng, traits, tutor_subjects, students, sessions, days, as_of)
    report("generate", 2, 4)

    student_subject = np.full(students, -1, dtype=np.int64)
    # a student's segment and grade follow the subject of their (first) tutor pair
    student_subject[sess["pair_student"][::-1]] = sess["pair_subject"][::-1]
    never = student_subject < 0
    student_subject[never] = rng.choice(len(SUBJECTS), size=int(never.sum()), p=SUBJECT_WEIGHTS)
    grades = _grades(rng, student_subject)
    segments = [
        _segment(SUBJECTS[s], g)
        for s, g in zip(student_subject.tolist(), grades.tolist(), strict=True)
    ]
    report("generate", 3, 4)

    width_t = max(4, len(str(tutors)))
    width_s = max(6, len(str(students)))
    data = SyntheticDataset(
        seed=seed,
        as_of=as_of,
        days=days,
        traits=traits,
        tutor_ids=[f"{TUTOR_PREFIX}{i + 1:0{width_t}d}" for i in range(tutors)],
        tutor_names=names,
        tutor_subjects=[[SUBJECTS[s] for s in row] for row in tutor_subjects],
        tutor_years=years,
        tutor_timezones=timezones,
        tutor_hire_dates=hire_dates,
        tutor_churned_on=churned_on,
        student_ids=[f"{STUDENT_PREFIX}{i + 1:0{width_s}d}" for i in range(students)],
        student_grades=grades.tolist(),
        student_segments=segments,
        session_tutor=sess["tutor"],
        session_student=sess["student"],
        session_subject=sess["subject"],
        session_start=sess["start"],
        session_status=sess["status"],
        session_delay_min=sess["delay"],
        session_duration=sess["duration"],
        session_first=sess["first"].astype(np.bool_),
        session_rating=sess["rating"],
        session_feedback=_feedback(rng, sess["rating"]),
        session_churned=sess["churned"],
        session_rescheduled_from=sess["rescheduled_from"],
        transcripts=[],
    )
    data.transcripts = _transcripts(py, data, transcripts)
    report("generate", 4, 4)
    return data


def _check_sizes(*, tutors: int, students: int, sessions: int, days: int) -> None:
    for option, value, low in (
        ("--tutors", tutors, 1),
        ("--students", students, 1),
        ("--sessions", sessions, 0),
        ("--days", days, 1),
    ):
        if value < low:
            raise UserError(f"{option}: expected a number >= {low}, got {value}")
    if days > 3650:
        raise UserError(f"--days: expected at most 3650, got {days}")


def _tutor_traits(rng: np.random.Generator, n: int) -> TutorTraits:
    """Reliability, quality, first-session skill and tenure; outcomes probabilities from them."""
    order = rng.permutation(n)
    n_unreliable = round(HIGH_RESCHEDULER_SHARE * n)
    n_poor = round(POOR_TEACHER_SHARE * n)
    n_weak_first = round(WEAK_FIRST_SESSION_SHARE * n)
    unreliable = np.zeros(n, dtype=np.bool_)
    unreliable[order[:n_unreliable]] = True
    # poor teaching is drawn independently of reliability: some tutors have both problems
    order2 = rng.permutation(n)
    poor = np.zeros(n, dtype=np.bool_)
    poor[order2[:n_poor]] = True
    weak_first = np.zeros(n, dtype=np.bool_)
    weak_first[order2[n_poor : n_poor + n_weak_first]] = True

    reliability = np.where(unreliable, rng.uniform(0.05, 0.35, n), rng.uniform(0.55, 1.0, n))
    quality = np.where(poor, rng.uniform(0.05, 0.35, n), rng.uniform(0.45, 1.0, n))
    first_skill = np.clip(quality + rng.normal(0.0, 0.08, n) - 0.4 * weak_first, 0.0, 1.0)
    tenure = np.clip(np.exp(rng.normal(np.log(420.0), 0.9, n)), 14, 3650).astype(np.int64)
    unrel = (1.0 - reliability) ** 2
    reschedule_p = 0.025 + 0.45 * unrel
    no_show_p = 0.012 + 0.12 * unrel
    logit = (
        -3.8
        + 3.0 * (1.0 - reliability)
        + 2.6 * (1.0 - quality)
        + 0.9 * (tenure < 180)
        + rng.normal(0.0, 0.6, n)
    )
    churn_p = 1.0 / (1.0 + np.exp(-logit))
    churned = rng.random(n) < churn_p
    weight = rng.uniform(0.6, 1.4, n)
    return TutorTraits(
        reliability=reliability,
        quality=quality,
        first_session_skill=first_skill,
        tenure_days=tenure,
        reschedule_p=reschedule_p,
        no_show_p=no_show_p,
        churn_p=churn_p,
        churned=churned,
        weight=weight,
    )


def _tutor_subjects(rng: np.random.Generator, n: int) -> list[list[int]]:
    """1-3 distinct subjects per tutor, by popularity (weighted sampling without replacement)."""
    counts = rng.choice([1, 2, 3], size=n, p=[0.45, 0.4, 0.15])
    # Gumbel top-k: the k largest log(w) + Gumbel noise are a weighted sample without replacement
    keys = np.log(np.asarray(SUBJECT_WEIGHTS)) + rng.gumbel(size=(n, len(SUBJECTS)))
    ranked = np.argsort(-keys, axis=1)[:, :3]
    return [sorted(row[:k]) for row, k in zip(ranked.tolist(), counts.tolist(), strict=True)]


def _slot_choice(rng: np.random.Generator, t0: int, first: int, count: int, size: int) -> IntArray:
    """`size` half-hour slot numbers in [first, first + count), weighted by hour of day.

    Slot g starts at epoch second t0 + g * 30 min; working in slot numbers keeps
    every sort a single int64 key.
    """
    g = first + np.arange(count, dtype=np.int64)
    hours = ((t0 + g * SLOT_MINUTES * 60) // 3600) % 24
    p = _HOUR_WEIGHTS[hours]
    return np.asarray(rng.choice(g, size=size, p=p / p.sum()), dtype=np.int64)


@dataclass(frozen=True)
class _Pairs:
    """(student, tutor, subject) pairs: new students have one new pair; others 1-2
    ongoing pairs (begun earlier)."""

    student: IntArray
    tutor: IntArray
    subject: IntArray
    new: BoolArray
    dropped: BoolArray  # a new pair whose student leaves after the first session
    intensity: FloatArray  # how often the pair meets

    @classmethod
    def draw(
        cls,
        rng: np.random.Generator,
        traits: TutorTraits,
        tutor_subjects: list[list[int]],
        n_students: int,
        k_new: int,
    ) -> _Pairs:
        n_tutors = traits.weight.shape[0]
        perm = rng.permutation(n_students)
        new_students = perm[:k_new]
        ongoing = perm[k_new:]
        second = ongoing[rng.random(ongoing.shape[0]) < SECOND_TUTOR_SHARE]
        pair_student = np.concatenate([new_students, ongoing, second]).astype(np.int64)
        n_pairs = pair_student.shape[0]
        pair_new = np.zeros(n_pairs, dtype=np.bool_)
        pair_new[:k_new] = True
        pair_tutor: IntArray = np.asarray(
            rng.choice(n_tutors, size=n_pairs, p=traits.weight / traits.weight.sum()),
            dtype=np.int64,
        )
        subject_count = np.array([len(s) for s in tutor_subjects], dtype=np.int64)
        subject_matrix = np.array(
            [s + [s[0]] * (3 - len(s)) for s in tutor_subjects], dtype=np.int64
        )
        pick = (rng.random(n_pairs) * subject_count[pair_tutor]).astype(np.int64)
        pair_subject = subject_matrix[pair_tutor, pick]
        # a new pair whose student leaves after the first session has exactly that one
        fs = traits.first_session_skill[pair_tutor]
        dropped = pair_new & (rng.random(n_pairs) < np.clip(0.04 + 0.5 * (1.0 - fs) ** 2, 0, 0.9))
        intensity: FloatArray = np.asarray(rng.gamma(2.0, 1.0, size=n_pairs), dtype=np.float64)
        return cls(pair_student, pair_tutor, pair_subject, pair_new, dropped, intensity)


@dataclass(frozen=True)
class _Grid:
    """Half-hour slots: slot 0 at epoch second t0; past slots [0, n_slots), upcoming
    slots [up_first, up_first + up_slots) after as_of."""

    t0: int
    step: int
    n_slots: int
    up_first: int
    up_slots: int

    @classmethod
    def of(cls, as_of: datetime, days: int) -> _Grid:
        step = SLOT_MINUTES * 60
        base = (int(as_of.timestamp()) // step) * step
        n_slots = max(days * 24 * 60 // SLOT_MINUTES - 2, 1)  # none starts in the last hour
        t0 = base - (n_slots + 1) * step
        return cls(t0, step, n_slots, n_slots + 2, UPCOMING_DAYS * 24 * 60 // SLOT_MINUTES)

    @property
    def n_g(self) -> int:
        return self.up_first + self.up_slots

    def past(self, rng: np.random.Generator, pair: IntArray, n: int) -> IntArray:
        start = _slot_choice(rng, self.t0, 0, self.n_slots, n)
        return _distinct_per_pair(
            pair, start, self.n_g, lambda k: _slot_choice(rng, self.t0, 0, self.n_slots, k)
        )

    def upcoming(self, rng: np.random.Generator, pair: IntArray, n: int) -> IntArray:
        start = _slot_choice(rng, self.t0, self.up_first, self.up_slots, n)
        return _distinct_per_pair(
            pair,
            start,
            self.n_g,
            lambda k: _slot_choice(rng, self.t0, self.up_first, self.up_slots, k),
        )


def _past_pairs(rng: np.random.Generator, pairs: _Pairs, n_past: int, k_new: int) -> IntArray:
    """The pair of each past session: one per new pair, the rest spread over the pairs
    still going."""
    eligible = np.flatnonzero(~pairs.dropped)
    rest = n_past - k_new
    intensity = pairs.intensity
    extra = (
        rng.choice(eligible, size=rest, p=intensity[eligible] / intensity[eligible].sum())
        if rest > 0 and eligible.shape[0]
        else np.zeros(0, dtype=np.int64)
    )
    return np.concatenate([np.arange(k_new, dtype=np.int64), extra.astype(np.int64)])


def _first_sessions(pair: IntArray, start: IntArray, pairs: _Pairs, n_g: int) -> BoolArray:
    """The earliest session of each new pair is its (completed) first session."""
    n_past = pair.shape[0]
    by_pair = np.argsort(pair * n_g + start)
    sorted_pair = pair[by_pair]
    earliest = np.ones(n_past, dtype=np.bool_)
    earliest[1:] = sorted_pair[1:] != sorted_pair[:-1]
    first = np.zeros(n_past, dtype=np.bool_)
    first[by_pair] = earliest & pairs.new[sorted_pair]
    return first


def _statuses(
    rng: np.random.Generator,
    traits: TutorTraits,
    tutor: IntArray,
    t_frac: FloatArray,
    first: BoolArray,
) -> IntArray:
    """Status codes: churning tutors reschedule and miss more as the history goes on."""
    ramp = 1.0 + CHURN_RAMP * traits.churned[tutor] * t_frac
    c1 = traits.reschedule_p[tutor] * ramp
    c2 = c1 + STUDENT_RESCHEDULE_P
    c3 = c2 + traits.no_show_p[tutor] * ramp
    c4 = c3 + STUDENT_NO_SHOW_P
    c5 = c4 + CANCEL_P
    u = rng.random(tutor.shape[0])
    status = np.select(
        [u < c1, u < c2, u < c3, u < c4, u < c5],
        [_RESCHED_TUTOR, _RESCHED_STUDENT, _NOSHOW_TUTOR, _NOSHOW_STUDENT, _CANCELLED],
        default=_COMPLETED,
    ).astype(np.int64)
    status[first] = _COMPLETED
    return status


def _student_churn(
    rng: np.random.Generator,
    quality: FloatArray,
    student: IntArray,
    start: IntArray,
    first: BoolArray,
    first_dropped: BoolArray,
    completed: BoolArray,
    n_g: int,
) -> IntArray:
    """1 after a dropped pair's first session, or (rarely, more with weak teaching) after
    an ongoing student's last session of the week, if it took place; 0 after another
    completed session, -1 when the session did not take place."""
    n_past = student.shape[0]
    churned = np.where(completed, 0, -1).astype(np.int64)
    churned[first_dropped] = 1
    by_student = np.argsort(student * n_g + start)
    s_sorted = student[by_student]
    last = np.ones(n_past, dtype=np.bool_)
    last[:-1] = s_sorted[:-1] != s_sorted[1:]
    is_last = np.zeros(n_past, dtype=np.bool_)
    is_last[by_student] = last
    q = quality
    late_churn = is_last & completed & ~first & (rng.random(n_past) < 0.01 + 0.12 * (1 - q) ** 2)
    churned[late_churn] = 1
    return churned


def _outcomes(
    rng: np.random.Generator,
    traits: TutorTraits,
    tutor: IntArray,
    t_frac: FloatArray,
    first: BoolArray,
    completed: BoolArray,
    churned: IntArray,
) -> tuple[IntArray, IntArray, IntArray]:
    """(lateness, length, rating) of each past session (0 when it did not take place)."""
    n_past = tutor.shape[0]
    q = traits.quality[tutor]
    unrel = 1.0 - traits.reliability[tutor]
    delay = np.minimum(np.floor(rng.exponential(0.3 + 8.0 * unrel**2)), 15).astype(np.int64)
    planned = rng.choice(np.array([30, 45, 60, 90]), size=n_past, p=[0.25, 0.2, 0.45, 0.1])
    rushed = (q < 0.4) & (rng.random(n_past) < 0.3)
    duration = planned - delay - rushed * rng.integers(5, 16, n_past)
    duration = np.where(completed, np.maximum(duration, 10), 0).astype(np.int64)
    delay = np.where(completed, delay, 0)
    skill = np.where(first, traits.first_session_skill[tutor], q)
    mu = 2.4 + 2.7 * skill - 0.6 * traits.churned[tutor] * t_frac - 0.5 * (churned == 1)
    rating = np.clip(np.rint(mu + rng.normal(0.0, 0.75, n_past)), 1, 5).astype(np.int64)
    rated = completed & (rng.random(n_past) < np.where(first, 0.85, 0.7))
    return delay, duration, np.where(rated, rating, 0)


def _upcoming(
    rng: np.random.Generator, pairs: _Pairs, gone_students: IntArray, n_up: int, grid: _Grid
) -> tuple[IntArray, IntArray]:
    """(pair, slot) of the upcoming sessions (status scheduled) for pairs still going."""
    live = ~pairs.dropped & ~np.isin(pairs.student, gone_students)
    live_pairs = np.flatnonzero(live)
    if not (n_up and live_pairs.shape[0]):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    intensity = pairs.intensity
    up_pair = rng.choice(
        live_pairs, size=n_up, p=intensity[live_pairs] / intensity[live_pairs].sum()
    )
    return up_pair, grid.upcoming(rng, up_pair, n_up)


def _rescheduled_from(
    all_pair: IntArray, all_start: IntArray, status: IntArray, n_g: int
) -> IntArray:
    """Per session (in `status` order), the session it replaces: a rescheduled session is
    replaced by the pair's next session; -1 for none."""
    by_pair_all = np.argsort(all_pair * n_g + all_start)
    rescheduled_from = np.full(all_pair.shape[0], -1, dtype=np.int64)
    prev, nxt = by_pair_all[:-1], by_pair_all[1:]
    same = all_pair[prev] == all_pair[nxt]
    was_rescheduled = np.isin(status[prev], (_RESCHED_TUTOR, _RESCHED_STUDENT))
    link = same & was_rescheduled
    rescheduled_from[nxt[link]] = prev[link]
    return rescheduled_from


def _sessions(
    rng: np.random.Generator,
    traits: TutorTraits,
    tutor_subjects: list[list[int]],
    n_students: int,
    n_sessions: int,
    days: int,
    as_of: datetime,
) -> dict[str, Any]:
    """Pairs (student, tutor, subject), then sessions per pair, statuses and outcomes."""
    n_up = round(UPCOMING_SHARE * n_sessions) if n_sessions >= 25 else 0
    n_past = n_sessions - n_up
    k_new = min(round(FIRST_SESSION_SHARE * n_past), int(0.8 * n_students), n_past)
    pairs = _Pairs.draw(rng, traits, tutor_subjects, n_students, k_new)

    pair = _past_pairs(rng, pairs, n_past, k_new)
    grid = _Grid.of(as_of, days)
    n_g = grid.n_g
    start = grid.past(rng, pair, n_past)
    first = _first_sessions(pair, start, pairs, n_g)
    tutor = pairs.tutor[pair]
    t_frac = start / grid.n_slots
    status = _statuses(rng, traits, tutor, t_frac, first)
    completed = status == _COMPLETED
    student = pairs.student[pair]
    churned = _student_churn(
        rng, traits.quality[tutor], student, start, first, first & pairs.dropped[pair],
        completed, n_g,
    )  # fmt: skip
    gone_students = np.unique(student[churned == 1])
    delay, duration, rating = _outcomes(rng, traits, tutor, t_frac, first, completed, churned)
    up_pair, up_start = _upcoming(rng, pairs, gone_students, n_up, grid)
    n_up = up_pair.shape[0]

    n_pairs = pairs.student.shape[0]
    all_pair = np.concatenate([pair, up_pair])
    all_start = np.concatenate([start, up_start])
    order = np.argsort(all_start * n_pairs + all_pair)

    def cat(past: npt.NDArray[Any], fill: int) -> npt.NDArray[Any]:
        return np.concatenate([past, np.full(n_up, fill, dtype=past.dtype)])[order]

    result: dict[str, Any] = {
        "pair_student": pairs.student,
        "pair_subject": pairs.subject,
        "tutor": pairs.tutor[all_pair][order],
        "student": pairs.student[all_pair][order],
        "subject": pairs.subject[all_pair][order],
        "start": grid.t0 + grid.step * all_start[order],
        "status": cat(status, _SCHEDULED),
        "delay": cat(delay, 0),
        "duration": cat(duration, 0),
        "first": cat(first, 0),
        "rating": cat(rating, 0),
        "churned": cat(churned, -1),
    }
    result["rescheduled_from"] = _rescheduled_from(
        all_pair[order], all_start[order], result["status"], n_g
    )
    return result


def _distinct_per_pair(
    pair: IntArray, slot: IntArray, n_g: int, redraw: Callable[[int], IntArray]
) -> IntArray:
    """Redraw slots a pair already uses, so "the pair's earliest session" is unambiguous."""
    slot = slot.copy()
    for _ in range(50):
        order = np.argsort(pair * n_g + slot)
        key = (pair * n_g + slot)[order]
        dups = order[1:][key[1:] == key[:-1]]
        if dups.shape[0] == 0:
            break
        slot[dups] = redraw(int(dups.shape[0]))
    return slot


def _grades(rng: np.random.Generator, subject: IntArray) -> IntArray:
    names = np.array(SUBJECTS)
    sat = np.isin(names[subject], ["SAT Math"])
    ap = np.char.startswith(names[subject], "AP ") | np.isin(names[subject], ["Calculus"])
    grades: IntArray = np.asarray(rng.integers(6, 13, size=subject.shape[0]), dtype=np.int64)
    grades = np.where(sat, rng.integers(10, 13, size=subject.shape[0]), grades)
    grades = np.where(ap, rng.integers(11, 13, size=subject.shape[0]), grades)
    college = rng.random(subject.shape[0]) < 0.08
    return np.where(college & ~sat, rng.integers(13, 17, size=subject.shape[0]), grades).astype(
        np.int64
    )


def _segment(subject: str, grade: int) -> str:
    if subject == "SAT Math":
        return "SAT"
    if subject.startswith("AP ") or subject == "Calculus" and grade <= 12:
        return "AP"
    if grade >= 13:
        return "College"
    return "Homework Help"


def _feedback(rng: np.random.Generator, rating: IntArray) -> list[str | None]:
    writes = (rating > 0) & (rng.random(rating.shape[0]) < np.where(rating <= 2, 0.5, 0.15))
    pick: IntArray = np.asarray(rng.integers(0, 1_000_000, size=rating.shape[0]), dtype=np.int64)
    out: list[str | None] = [None] * rating.shape[0]
    for i in np.flatnonzero(writes).tolist():
        r = int(rating[i])
        bucket = _FEEDBACK["low" if r <= 2 else "mid" if r == 3 else "high"]
        out[i] = bucket[int(pick[i]) % len(bucket)]
    return out


def _transcripts(
    py: random.Random, data: SyntheticDataset, wanted: int
) -> list[tuple[int, list[Turn]]]:
    """Transcripts on completed sessions of a subset of tutors ("recording enabled").

    Concentrating them on about a third of the tutors gives those tutors several
    evaluations each (the low-AI-quality signal needs three); first sessions are
    three times as likely to be picked, as the evaluation queue cares most about them.
    """
    if wanted <= 0:
        return []
    completed = np.flatnonzero(data.session_status == _COMPLETED)
    if completed.shape[0] == 0:
        return []
    n_tutors = len(data.tutor_ids)
    recorded = set(py.sample(range(n_tutors), k=min(n_tutors, max(1, -(-wanted // 3)))))
    recorded_mask = np.isin(data.session_tutor[completed], np.fromiter(recorded, dtype=np.int64))
    candidates = completed[recorded_mask]
    if candidates.shape[0] < wanted:
        candidates = completed
    weights = np.where(data.session_first[candidates], 3.0, 1.0)
    chooser = np.random.default_rng(py.getrandbits(63))
    k = min(wanted, int(candidates.shape[0]))
    chosen = np.sort(chooser.choice(candidates, size=k, replace=False, p=weights / weights.sum()))

    out: list[tuple[int, list[Turn]]] = []
    for pos in chosen.tolist():
        t = int(data.session_tutor[pos])
        first = bool(data.session_first[pos])
        skill = data.traits.first_session_skill[t] if first else data.traits.quality[t]
        rng = random.Random(f"{data.seed}:{pos}")
        transcript = generate_transcript(
            rng,
            subject=SUBJECTS[int(data.session_subject[pos])],
            tutor_name=data.tutor_names[t].split()[0],
            student_name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
            quality=float(skill),
            first_session=first,
            duration_minutes=int(data.session_duration[pos]),
        )
        out.append((pos, transcript.turns))
    return out


# --------------------------------------------------------------------------- insertion


@dataclass(frozen=True)
class _Layout:
    """How a compact row fills a table: the row holds each value once, named by `fields`;
    every column of the model's table takes a field of the same name, the field named in
    `same` (one value for two columns), or, for `is_synthetic`, true. Fewer bound
    parameters per row make SQLite's executemany about a third faster."""

    fields: tuple[str, ...]  # the compact row's
    columns: tuple[str, ...]  # the table's, in table order
    sqlite_values: str  # `?1, ?2, ?2, 1, ...`: numbered parameters into the compact row
    copy_row: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # compact row -> COPY row


_TRUE = (True,)


def _layout(model: type[Base], fields: Sequence[str], same: dict[str, str]) -> _Layout:
    table = cast(Table, model.__table__)
    columns = tuple(c.name for c in table.columns)
    marks: list[str] = []
    picks: list[int] = []
    for column in columns:
        if column == "is_synthetic":
            marks.append("1")
            picks.append(len(fields))  # the _TRUE appended to each compact row
            continue
        name = same.get(column, column)
        if name not in fields:
            raise ValueError(f"{table.name}: the seed writes no value for column {column}")
        marks.append(f"?{fields.index(name) + 1}")
        picks.append(fields.index(name))
    pick = itemgetter(*picks)
    return _Layout(tuple(fields), columns, ", ".join(marks), lambda row: pick(row + _TRUE))


_STAMPS = {"created_at": "stamp", "updated_at": "stamp"}
_TUTORS = _layout(
    Tutor,
    ("tutor_id", "name", "subjects", "years_experience", "timezone", "hire_date", "churned_on",
     "stamp"),
    _STAMPS,
)  # fmt: skip
_STUDENTS = _layout(Student, ("student_id", "grade_level", "segment", "stamp"), _STAMPS)
# is_first_session doubles as is_first_session_for_student (every seeded session says)
_SESSIONS = _layout(
    TutoringSession,
    ("session_id", "tutor_id", "student_id", "subject", "scheduled_start_at", "actual_start_at",
     "duration_minutes", "status", "no_show_by", "reschedule_initiator",
     "rescheduled_from_session_id", "is_first_session", "student_rating", "student_feedback",
     "student_churned_after_session", "stamp"),
    {**_STAMPS, "is_first_session_for_student": "is_first_session"},
)  # fmt: skip
_TRANSCRIPTS = _layout(
    SessionTranscript,
    ("session_id", "turns", "raw_text", "turn_count", "content_hash", "stamp"),
    _STAMPS,
)


class _Writer:
    """Bulk rows into a table: executemany on SQLite, COPY on Postgres."""

    def __init__(self, conn: Connection) -> None:
        self.sqlite = conn.dialect.name == "sqlite"
        self.dbapi: Any = conn.connection.dbapi_connection

    def timestamp(self, value: datetime) -> str:
        return sqlite_timestamp(value) if self.sqlite else value.astimezone(UTC).isoformat()

    def day(self, value: date | None) -> str | None:
        return None if value is None else value.isoformat()

    def write(self, table: str, layout: _Layout, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert compact `rows` (see _Layout) into `table`."""
        cur = self.dbapi.cursor()
        columns = ", ".join(layout.columns)
        try:
            if self.sqlite:
                cur.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({layout.sqlite_values})", rows
                )
            else:
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(_copy_text(map(layout.copy_row, rows)))
        finally:
            cur.close()


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(rows: Iterable[tuple[Any, ...]]) -> str:
    """Rows in COPY's text format, built in one pass: psycopg's write_row costs several
    times more per row, and the values here are only str, int, bool and None."""
    esc = _COPY_ESCAPES
    lines = [
        "\t".join(
            [
                "\\N"
                if v is None
                else ("t" if v else "f")
                if v is True or v is False
                else v.translate(esc)
                if type(v) is str
                else str(v)
                for v in row
            ]
        )
        for row in rows
    ]
    lines.append("")
    return "\n".join(lines)


def _chunks(rows: list[tuple[Any, ...]], size: int) -> Iterable[list[tuple[Any, ...]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def _insert(conn: Connection, data: SyntheticDataset, report: ProgressCallback) -> None:
    w = _Writer(conn)
    stamp = w.timestamp(data.as_of)
    tutor_rows = [
        (
            data.tutor_ids[i],
            data.tutor_names[i],
            json.dumps(data.tutor_subjects[i]),
            data.tutor_years[i],
            data.tutor_timezones[i],
            w.day(data.tutor_hire_dates[i]),
            w.day(data.tutor_churned_on[i]),
            stamp,
        )
        for i in range(len(data.tutor_ids))
    ]
    w.write("tutors", _TUTORS, tutor_rows)
    report("tutors", len(tutor_rows), len(tutor_rows))

    student_rows = list(
        zip(
            data.student_ids,
            data.student_grades,
            data.student_segments,
            [stamp] * len(data.student_ids),
            strict=True,
        )
    )
    for done, chunk in enumerate(_chunks(student_rows, BATCH_ROWS * 5), start=1):
        w.write("students", _STUDENTS, chunk)
        report("students", min(done * BATCH_ROWS * 5, len(student_rows)), len(student_rows))

    rows = _session_rows(w, data, stamp)
    total = len(rows)
    report("sessions", 0, total)
    for done, chunk in enumerate(_chunks(rows, BATCH_ROWS), start=1):
        w.write("sessions", _SESSIONS, chunk)
        report("sessions", min(done * BATCH_ROWS, total), total)
    del rows

    transcript_rows = []
    for pos, turns in data.transcripts:
        transcript_rows.append(
            (
                data.session_id(pos),
                json.dumps(turns),
                render_text(turns),
                len(turns),
                content_hash(turns),
                stamp,
            )
        )
    w.write("session_transcripts", _TRANSCRIPTS, transcript_rows)
    report("transcripts", len(transcript_rows), len(transcript_rows))


def _session_rows(w: _Writer, data: SyntheticDataset, stamp: Any) -> list[tuple[Any, ...]]:
    """Compact rows (`_SESSIONS.fields` order) for every session; times repeat a lot, so
    each is formatted once."""
    n = data.session_count
    ids = [data.session_id(i) for i in range(n)]
    tutor_col = [data.tutor_ids[t] for t in data.session_tutor.tolist()]
    student_col = [data.student_ids[s] for s in data.session_student.tolist()]
    subject_col = [SUBJECTS[s] for s in data.session_subject.tolist()]
    status = data.session_status
    took_place = status == _COMPLETED
    actual = np.where(took_place, data.session_start + 60 * data.session_delay_min, -1)
    starts = _format_times(w, data.session_start)
    actual_col = _format_times(w, actual)
    status_col = [data.status_name(c) for c in status.tolist()]
    no_show_by = np.array([None, None, None, "tutor", "student", None, None], dtype=object)
    initiator = np.array([None, "tutor", "student", None, None, None, None], dtype=object)
    no_show_col = no_show_by[status].tolist()
    initiator_col = initiator[status].tolist()
    links = data.session_rescheduled_from.tolist()
    link_col = [ids[j] if j >= 0 else None for j in links]
    first_col = data.session_first.tolist()
    duration_col = np.where(took_place, data.session_duration, 0).tolist()
    duration_col = [
        d if ok else None for d, ok in zip(duration_col, took_place.tolist(), strict=True)
    ]
    ratings = [r if r > 0 else None for r in data.session_rating.tolist()]
    churn_map: dict[int, bool | None] = {-1: None, 0: False, 1: True}
    churned_col = [churn_map[c] for c in data.session_churned.tolist()]
    stamps = [stamp] * n
    return list(
        zip(
            ids, tutor_col, student_col, subject_col, starts, actual_col, duration_col,
            status_col, no_show_col, initiator_col, link_col, first_col,
            ratings, data.session_feedback, churned_col, stamps,
            strict=True,
        )
    )  # fmt: skip


def _format_times(w: _Writer, epochs: IntArray) -> list[Any]:
    """Epoch seconds to driver values (negative = null), formatting each distinct value once."""
    unique, inverse = np.unique(epochs, return_inverse=True)
    values: list[Any] = [
        None if e < 0 else w.timestamp(datetime.fromtimestamp(e, UTC)) for e in unique.tolist()
    ]
    return [values[i] for i in inverse.ravel().tolist()]
