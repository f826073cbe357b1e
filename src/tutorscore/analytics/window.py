"""The analytics window `(as_of - window_days, as_of]`, its halves and its weeks.

Sessions are grouped into fine buckets whose edges are the week edges plus the
middle of the window, so one GROUP BY pass gives whole-window totals, the two
halves (for trends) and the weekly series (for charts) at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a `Z`, the form every report uses."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Bucket:
    """A slice `(lower, upper]` of the window, inside one week and one half."""

    index: int
    lower: datetime
    upper: datetime
    week: int  # 0 = the most recent week
    half: int  # 1 = first (older) half, 2 = second (recent) half


@dataclass(frozen=True)
class Window:
    as_of: datetime
    days: int
    start: datetime  # exclusive
    mid: datetime  # first half (start, mid], second half (mid, as_of]
    buckets: tuple[Bucket, ...]  # most recent first

    @classmethod
    def build(cls, as_of: datetime, days: int) -> Window:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (UTC)")
        if days <= 0:
            raise ValueError("window_days must be positive")
        as_of = as_of.astimezone(UTC)
        start = as_of - timedelta(days=days)
        mid = as_of - timedelta(days=days / 2)
        edges = {start, mid, as_of}
        week_edges = [as_of - timedelta(days=7 * k) for k in range(0, days // 7 + 2)]
        edges.update(e for e in week_edges if e > start)
        ordered = sorted(edges, reverse=True)
        buckets = []
        for i, (upper, lower) in enumerate(zip(ordered, ordered[1:], strict=False)):
            week = int((as_of - upper) / timedelta(days=7))
            buckets.append(Bucket(i, lower, upper, week, 2 if lower >= mid else 1))
        return cls(as_of, days, start, mid, tuple(buckets))

    @cached_property
    def weeks(self) -> int:
        """Cached: the rules ask once per tutor."""
        return max(b.week for b in self.buckets) + 1

    def week_bounds(self, week: int) -> tuple[datetime, datetime]:
        """`(lower, upper]` of one week, clipped to the window."""
        upper = self.as_of - timedelta(days=7 * week)
        return max(upper - timedelta(days=7), self.start), upper

    def describe(self) -> dict[str, str | int]:
        return {"start": iso(self.start), "end": iso(self.as_of), "days": self.days}
