"""A long tutoring history in which leaving tutors fade out over a few fortnights.

Shaped like the imported histories the churn model meets in practice (and unlike
the one-week `tutorscore seed` data): months of sessions, tutors who left during
the history and tutors who leave after it, and a decline of two to six weeks
before a tutor leaves: fewer sessions, more tutor reschedules, lower ratings.
Not every leaver declines (some leave abruptly), and some tutors who stay take a
break of a few weeks, so the signal is real but imperfect.

Used by the churn tests (the gate must pick a model that beats a plain windowed
baseline here) and by `benchmarks/prediction.py`. Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, insert

from tutorscore.db.models import Student, Tutor, TutoringSession


@dataclass
class HistorySummary:
    tutors: int
    sessions: int
    churned_before_end: int
    churned_after_end: int  # within 30 days after `end`


@dataclass
class _Tutor:
    """One generated tutor's traits: what its sessions are drawn from."""

    tid: str
    churn_at: datetime | None
    declines: bool  # sessions thin out and go worse before churning
    decline_days: float
    per_day: float
    resched_base: float
    rating_base: float
    no_show_base: float
    brk: tuple[datetime, datetime] | None  # a break (active tutors only)
    roster: list[str]

    def fade(self, day: datetime) -> float:
        """0 normally, rising to 1 over the decline before churning."""
        if not (self.declines and self.churn_at is not None):
            return 0.0
        left = (self.churn_at - day).total_seconds() / 86400
        return max(0.0, min(1.0, 1 - left / self.decline_days))


def _lifetime(rng: random.Random, end: datetime, days: int) -> tuple[datetime, datetime]:
    """(hired, would churn at): exponential, shorter for a risky latent trait, with
    extra risk in the first 90 days."""
    hired = end - timedelta(days=rng.uniform(0, days + 500))
    latent = rng.gauss(0, 1)
    life = rng.expovariate(1.0) * 260 * 2.718281828 ** (-0.6 * latent)
    if rng.random() < 0.25:
        life = min(life, rng.uniform(25, 90))  # new hires who do not stay
    life = max(life, 21.0)
    return hired, hired + timedelta(days=life)


def _traits(
    rng: random.Random,
    tid: str,
    churn_at: datetime | None,
    start: datetime,
    days: int,
    students: list[str],
) -> _Tutor:
    declines = churn_at is not None and rng.random() < 0.8
    decline_days = rng.uniform(14, 49)
    per_day = rng.gammavariate(4.0, 0.22)  # ~0.9 sessions a day, varies by tutor
    resched_base = min(0.3, rng.betavariate(2, 30))
    rating_base = min(4.9, max(3.0, rng.gauss(4.3, 0.3)))
    no_show_base = min(0.2, rng.betavariate(1.5, 60))
    brk: tuple[datetime, datetime] | None = None
    if churn_at is None and rng.random() < 0.12:
        b0 = start + timedelta(days=rng.uniform(0, days))
        brk = (b0, b0 + timedelta(days=rng.uniform(10, 25)))
    roster = rng.sample(students, k=min(len(students), rng.randint(4, 12)))
    return _Tutor(
        tid, churn_at, declines, decline_days, per_day, resched_base, rating_base,
        no_show_base, brk, roster,
    )  # fmt: skip


def _outcome(
    rng: random.Random, t: _Tutor, fade: float
) -> tuple[str, str | None, str | None, int | None]:
    """(status, reschedule initiator, no-show by, rating) of one session."""
    r = rng.random()
    resched = t.resched_base + 0.25 * fade
    no_show = t.no_show_base + 0.03 * fade
    student_ns = 0.025
    if r < resched:
        return "rescheduled", "tutor", None, None
    if r < resched + 0.01:
        return "rescheduled", "student", None, None
    if r < resched + 0.01 + no_show:
        return "no_show", None, "tutor", None
    if r < resched + 0.01 + no_show + student_ns:
        return "no_show", None, "student", None
    rating: int | None = None
    if rng.random() < 0.65:
        mu = t.rating_base - 1.1 * fade
        rating = max(1, min(5, round(rng.gauss(mu, 0.7))))
    return "completed", None, None, rating


def _sessions(
    rng: random.Random, t: _Tutor, day0: datetime, start: datetime, end: datetime
) -> list[dict[str, object]]:
    """The tutor's sessions from `day0` until churn or `end`."""
    rows: list[dict[str, object]] = []
    d = 0
    while True:
        day = day0 + timedelta(days=d)
        d += 1
        if day >= end or (t.churn_at is not None and day >= t.churn_at):
            return rows
        if t.brk is not None and t.brk[0] <= day < t.brk[1]:
            continue
        fade = t.fade(day)
        n = _poisson(rng, t.per_day * (1 - 0.8 * fade))
        for k in range(n):
            at = day.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
                hours=rng.choice((9, 11, 14, 16, 17, 18, 19, 20)), minutes=30 * k % 60
            )
            if at >= end or at < start:
                continue
            status, initiator, no_show_by, rating = _outcome(rng, t, fade)
            rows.append(
                {
                    "session_id": f"{t.tid}-{d:04d}-{k}",
                    "tutor_id": t.tid,
                    "student_id": rng.choice(t.roster),
                    "subject": "Math",
                    "scheduled_start_at": at,
                    "status": status,
                    "reschedule_initiator": initiator,
                    "no_show_by": no_show_by,
                    "is_first_session": False,
                    "student_rating": rating,
                    "duration_minutes": 60 if status == "completed" else None,
                    "created_at": at - timedelta(days=rng.uniform(0.2, 12)),
                }
            )


def generate_history(
    *,
    end: datetime,
    tutors: int = 240,
    days: int = 180,
    seed: int = 0,
    id_prefix: str = "F",
) -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
    """Rows for tutors, students and sessions; the history ends at `end`."""
    rng = random.Random(seed)
    start = end - timedelta(days=days)
    students = [f"{id_prefix}S{j:05d}" for j in range(max(50, tutors * 8))]
    tutor_rows: list[dict[str, object]] = []
    session_rows: list[dict[str, object]] = []
    # Tutors are hired over the history (and before it) and each has a lifetime.
    # Tutors who left before the history starts are not in it; tutors are
    # drawn until `tutors` of them are still active at `end`.
    i = active = 0
    while active < tutors:
        tid = f"{id_prefix}T{i:04d}"
        i += 1
        hired, would_churn = _lifetime(rng, end, days)
        if would_churn <= start + timedelta(days=1):
            continue
        churn_at = None if would_churn > end + timedelta(days=120) else would_churn
        if churn_at is None or churn_at > end:
            active += 1
        t = _traits(rng, tid, churn_at, start, days, students)
        tutor_rows.append(
            {
                "tutor_id": tid,
                "name": f"Tutor {i:04d}",
                "subjects": ["Math"],
                "hire_date": hired.date(),
                "churned_on": churn_at.date() if churn_at is not None else None,
            }
        )
        session_rows.extend(_sessions(rng, t, max(start, hired), start, end))
    student_rows: list[dict[str, object]] = [{"student_id": s} for s in students]
    return tutor_rows, student_rows, session_rows


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method (lam is about 1 here)."""
    limit, k, p = 2.718281828**-lam, 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def load_history(
    engine: Engine, *, end: datetime, tutors: int = 240, days: int = 180, seed: int = 0
) -> HistorySummary:
    """Insert the generated history into an empty database."""
    tutor_rows, student_rows, session_rows = generate_history(
        end=end, tutors=tutors, days=days, seed=seed
    )
    with engine.begin() as conn:
        conn.execute(insert(Tutor), tutor_rows)
        conn.execute(insert(Student), student_rows)
        for i in range(0, len(session_rows), 5000):
            conn.execute(insert(TutoringSession), session_rows[i : i + 5000])
    end_day = end.date()

    def churned(row: dict[str, object]) -> date | None:
        value = row["churned_on"]
        return value if isinstance(value, date) else None

    before = sum(1 for t in tutor_rows if (c := churned(t)) is not None and c <= end_day)
    after = sum(
        1
        for t in tutor_rows
        if (c := churned(t)) is not None and end_day < c <= end_day + timedelta(days=30)
    )
    return HistorySummary(len(tutor_rows), len(session_rows), before, after)
