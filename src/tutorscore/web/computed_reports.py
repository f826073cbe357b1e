"""Tutor reports at an `as_of` nothing was stored for: computed in memory, bounded.

A GET never writes (docs/web.md "Reads never write"). When `GET /api/tutors?as_of=T`
asks for a point no stored run covers, every tutor's row is computed in memory
(`analytics.report.computed_reports`: the full recompute's SQL and rules, no churn
model) and paged in Python. That costs a full recompute (seconds at 1M sessions), so:

- one such computation runs at a time per process; a request for another `as_of`
  meanwhile is refused with 429 and `Retry-After` (it holds no handler thread while
  refused), a request for the same `as_of` waits for the running one;
- results are kept for a few `as_of`s (LRU) while the data is unchanged (the same
  `max(analytics_runs.id)` stamp as the report cache) and for at most `ttl` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutorscore.config import RulesConfig
from tutorscore.db.models import AnalyticsRun
from tutorscore.web.errors import TooManyRequests

Items = list[dict[str, Any]]


class ComputedReports:
    def __init__(self, *, size: int = 4, ttl: float = 300.0, retry_after: int = 10) -> None:
        self.size = size
        self.ttl = ttl
        self.retry_after = retry_after
        self._items: OrderedDict[tuple[datetime, str], tuple[float, Any, Items]] = OrderedDict()
        self._lock = threading.Lock()
        self._running: dict[tuple[datetime, str], threading.Event] = {}
        self.computed = 0  # computations run (tests and /metrics-style introspection)

    def get(self, db: Session, as_of: datetime, rules: RulesConfig) -> Items:
        from tutorscore.analytics.report import computed_reports

        key = (as_of, rules.fingerprint())
        version = db.scalar(select(func.max(AnalyticsRun.id)))
        while True:
            with self._lock:
                found = self._items.get(key)
                if (
                    found is not None
                    and found[1] == version
                    and time.monotonic() - found[0] < (self.ttl)
                ):
                    self._items.move_to_end(key)
                    return found[2]
                running = self._running.get(key)
                if running is None and self._running:
                    raise TooManyRequests(
                        "as_of: another report for a point in time without stored metrics is "
                        f"being computed; try again in {self.retry_after} s (or store one with "
                        "`tutorscore analytics --as-of`)",
                        retry_after=self.retry_after,
                    )
                if running is None:
                    done = threading.Event()
                    self._running[key] = done
                    break
            running.wait()  # the same as_of is being computed: use its result
        try:
            items = computed_reports(db, as_of=as_of, rules=rules)
            self.computed += 1
            with self._lock:
                self._items[key] = (time.monotonic(), version, items)
                self._items.move_to_end(key)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return items
        finally:
            with self._lock:
                del self._running[key]
            done.set()


def report_page(
    db: Session,
    state: Any,
    *,
    as_of: datetime | None,
    sort: str,
    risk: str | None,
    subject: str | None,
    min_sessions: int | None,
    flags: tuple[str, ...],
    limit: int,
    offset: int,
    kind: str,
) -> tuple[Items, int]:
    """A page of the tutor report for the web, read-only.

    Current (`as_of=None`) and stored `as_of`s go through the report cache and SQL;
    an `as_of` no stored run covers through `state.computed_reports` and `page_of`.
    """
    from tutorscore.analytics import report

    filters: dict[str, Any] = {
        "sort": sort,
        "risk": risk,
        "subject": subject,
        "min_sessions": min_sessions,
        "flags": flags,
        "limit": limit,
        "offset": offset,
    }
    if as_of is not None and not report.stored_complete(db, as_of):
        items = state.computed_reports.get(db, as_of, state.rules)
        return report.page_of(items, **filters)
    key = (kind, as_of, sort, risk, subject, min_sessions, flags, limit, offset)
    result: tuple[Items, int] = state.report_cache.get(
        db,
        key,
        lambda: report.tutor_reports(db, as_of=as_of, rules=state.rules, ensure=False, **filters),
    )
    return result


__all__ = ["ComputedReports", "report_page"]
