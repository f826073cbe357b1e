"""A small per-process cache of tutor-report pages, invalidated by every analytics run.

Every write of tutor metrics (full recompute, incremental update after a recorded
session or evaluation) inserts an `analytics_runs` row, so `max(analytics_runs.id)`
(one primary-key lookup) is a version stamp: a cached page is served only while the
stamp is unchanged and for at most `ttl` seconds (a churn-model retrain rescoring rows
in place is picked up within that). Many people looking at the same default views
then cost one cheap query instead of the full report query.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutorscore.db.models import AnalyticsRun

T = TypeVar("T")


class ReportCache:
    def __init__(self, *, size: int = 256, ttl: float = 30.0) -> None:
        self.size = size
        self.ttl = ttl
        self._items: OrderedDict[Hashable, tuple[float, Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, db: Session, key: Hashable, compute: Callable[[], T]) -> T:
        if self.ttl <= 0:  # caching off (TUTORSCORE_REPORT_CACHE_TTL=0)
            self.misses += 1
            return compute()
        version = db.scalar(select(func.max(AnalyticsRun.id)))
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[1] == version and now - found[0] < self.ttl:
                self._items.move_to_end(key)
                self.hits += 1
                value: T = found[2]
                return value
        self.misses += 1
        value = compute()
        if version is None:  # nothing computed yet: the report may compute on first use
            return value
        with self._lock:
            self._items[key] = (now, version, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value
