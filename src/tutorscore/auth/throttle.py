"""Login throttling: too many failures for one username from one address -> wait.

In-process memory: each web process counts its own failures. That is enough to
stop password guessing against one process; behind a load balancer the limit is
per process (documented in docs/web.md).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        now = self._clock()
        stamps = self._failures.setdefault(key, deque())
        while stamps and now - stamps[0] >= self.window_seconds:
            stamps.popleft()
        return stamps

    def retry_after(self, username: str, address: str) -> int | None:
        """Seconds to wait when this username+address is locked out, else None."""
        key = (username.lower(), address)
        with self._lock:
            stamps = self._recent(key)
            if len(stamps) < self.max_failures:
                return None
            return max(1, int(self.window_seconds - (self._clock() - stamps[0])) + 1)

    def failure(self, username: str, address: str) -> None:
        key = (username.lower(), address)
        with self._lock:
            self._recent(key).append(self._clock())
            if len(self._failures) > 100_000:  # bound memory under a spray of usernames
                self._failures = {k: v for k, v in self._failures.items() if v}

    def success(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((username.lower(), address), None)
