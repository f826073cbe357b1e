"""Client-side rate limiter for requests and tokens per minute.

One instance is shared by every coroutine of a worker (see `shared_limiter`), so
the worker as a whole stays under the provider's limits instead of discovering
them through 429s. Three mechanisms, all checked before a request is sent:

- a sliding-window log: in any window of `window_s` seconds the granted
  requests and tokens never exceed the limits (the hard guarantee);
- a token bucket per limit with a short burst allowance, so requests are paced
  evenly through the minute instead of all leaving in the first seconds;
- caps learnt from the provider's `x-ratelimit-remaining-*` / `x-ratelimit-reset-*`
  headers and pauses after a 429's Retry-After, because the provider's view
  (other clients on the same key) is the one that counts.

Token accounting: a reservation is what the provider will count for the request
(for OpenAI, characters of the messages / 4 plus max_tokens, see
`prompts.rate_limit_tokens`). `settle` replaces it by what the provider counted
once the answer is in (from `usage`, when the provider counts usage), and
`release` gives the whole reservation back at once when the request was not
counted (a 429, a connection that never reached the provider), so the window is
neither exceeded nor held by tokens nobody spends.

The logic is synchronous (`reserve` answers "granted" or "wait this long") so it
can be tested on a virtual clock; `acquire` is the async loop around it, first
come first served: only the oldest waiter polls the limiter, so waiting
coroutines neither starve nor wake in a herd.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_reset(value: str | None) -> float | None:
    """OpenAI reset durations (`1s`, `6m0s`, `20ms`, `0.5s`) or plain seconds to seconds."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


@dataclass
class Reservation:
    """A granted request: kept so its token count can be corrected once usage is known."""

    seq: int
    granted_at: float
    tokens: int
    cum_tokens: int  # tokens granted so far, this reservation included
    _entry: list[float] = field(repr=False, default_factory=list)


@dataclass
class _Bucket:
    rate: float  # units per second
    capacity: float
    level: float
    updated: float

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` may be taken (the bucket may go into debt past its capacity)."""
        need = min(amount, self.capacity)
        if self.level >= need - 1e-9:  # float round-off must not leave a sliver to wait for
            return 0.0
        return (need - self.level) / self.rate + 1e-6


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limiter (see the module docstring)."""

    def __init__(
        self,
        rpm: int,
        tpm: int,
        *,
        window_s: float = 60.0,
        margin_s: float = 0.5,
        burst_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if rpm < 1 or tpm < 1:
            raise ValueError("rpm and tpm must be at least 1")
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        # entries stay in the log a little longer than the window: the provider
        # counts a request when it arrives, a moment after we grant it
        self._horizon = window_s + margin_s
        self._clock = clock
        self._sleep = sleep
        now = clock()
        req_cap = max(1.0, rpm / window_s * burst_s)
        self._req_bucket = _Bucket(rpm / window_s, req_cap, req_cap, now)
        tok_cap = max(1.0, tpm / window_s * burst_s)
        self._tok_bucket = _Bucket(tpm / window_s, tok_cap, tok_cap, now)
        # [granted or answered at, tokens, still counted], in time order
        self._log: deque[list[float]] = deque()
        self._log_requests = 0
        self._log_tokens = 0.0
        self._seq = 0
        self._cum_tokens = 0
        self._blocked_until = -math.inf
        self._server_obs_seq = -1
        self._server_req_cap: tuple[int, float] | None = None  # (max seq, until)
        self._server_tok_cap: tuple[int, float] | None = None  # (max cum tokens, until)
        self.waits = 0
        self.granted = 0
        self._turn: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    # -- synchronous core -------------------------------------------------

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self._horizon:
            entry = self._log.popleft()
            entry[2] = 0.0  # no longer counted in the window sums
            self._log_requests -= 1
            self._log_tokens -= entry[1]

    def _window_wait(self, tokens: int, now: float) -> float:
        """Seconds until the sliding window has room for one request of `tokens`."""
        if self._log_requests + 1 <= self.rpm and self._log_tokens + tokens <= self.tpm:
            return 0.0
        requests, used = self._log_requests, self._log_tokens
        for granted_at, entry_tokens, _ in self._log:
            requests -= 1
            used -= entry_tokens
            if requests + 1 <= self.rpm and used + tokens <= self.tpm:
                return granted_at + self._horizon - now + 1e-6
        return self._horizon  # unreachable: an empty log always has room for tokens <= tpm

    def reserve(self, tokens: int, now: float | None = None) -> Reservation | float:
        """Grant a request of `tokens` now (a Reservation) or say how many seconds to wait."""
        if tokens > self.tpm:
            raise ValueError(f"a request of {tokens} tokens can never fit in {self.tpm} TPM")
        now = self._clock() if now is None else now
        self._expire(now)
        self._req_bucket.refill(now)
        self._tok_bucket.refill(now)
        waits = [
            self._blocked_until - now,
            self._window_wait(tokens, now),
            self._req_bucket.wait_for(1),
            self._tok_bucket.wait_for(tokens),
        ]
        if self._server_req_cap is not None:
            cap_seq, until = self._server_req_cap
            if now >= until:
                self._server_req_cap = None
            elif self._seq + 1 > cap_seq:
                waits.append(until - now)
        if self._server_tok_cap is not None:
            cap_tokens, until = self._server_tok_cap
            if now >= until:
                self._server_tok_cap = None
            elif self._cum_tokens + tokens > cap_tokens:
                waits.append(until - now)
        wait = max(waits)
        if wait > 0:
            return wait
        self._req_bucket.level -= 1
        self._tok_bucket.level -= tokens
        entry = [now, float(tokens), 1.0]
        self._log.append(entry)
        self._log_requests += 1
        self._log_tokens += tokens
        self._seq += 1
        self._cum_tokens += tokens
        self.granted += 1
        return Reservation(self._seq, now, tokens, self._cum_tokens, entry)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the reservation by the tokens the provider counted for it.

        Less than reserved gives the difference back to the window and the
        bucket at once; more takes it (the provider counted more than we thought).
        """
        entry = reservation._entry
        if not entry or actual_tokens < 0:
            return
        delta = actual_tokens - entry[1]
        if entry[2]:
            self._log_tokens += delta
        entry[1] = float(actual_tokens)
        self._cum_tokens += int(delta)
        self._tok_bucket.level = min(self._tok_bucket.capacity, self._tok_bucket.level - delta)

    def answered(self, reservation: Reservation, now: float | None = None) -> None:
        """The provider's answer is in, so it counted the request no later than now.

        The entry moves to now in the window log: the provider counts a request when
        it arrives, which may be well after we granted it (a busy event loop before
        the send, a busy server before it stamps the request). Counted from the answer,
        a request stays in our window at least as long as in the provider's, whatever
        those delays were; counted from the grant it might leave ours first and let a
        request through that the provider refuses. Appending at now keeps the log in
        time order (grants are appended at now too).
        """
        entry = reservation._entry
        if not entry or not entry[2]:
            return  # already out of the window
        now = self._clock() if now is None else now
        if now <= entry[0]:
            return
        for i, other in enumerate(self._log):
            if other is entry:
                del self._log[i]
                break
        else:  # pragma: no cover - a counted entry is always in the log
            return
        entry[0] = now
        self._log.append(entry)

    def release(self, reservation: Reservation) -> None:
        """The request was not counted by the provider (refused, never arrived): give its
        tokens back now. The request itself stays in the window: a provider that
        refused it with a 429 may still have counted the attempt."""
        self.settle(reservation, 0)

    def observe(
        self, reservation: Reservation | None, headers: Mapping[str, str], now: float | None = None
    ) -> None:
        """Learn the provider's remaining budget from x-ratelimit-* headers of a response."""
        now = self._clock() if now is None else now
        seq = reservation.seq if reservation is not None else self._seq
        cum = reservation.cum_tokens if reservation is not None else self._cum_tokens
        if seq < self._server_obs_seq:
            return  # an older response than one already seen
        self._server_obs_seq = seq
        remaining_req = _header_int(headers, "x-ratelimit-remaining-requests")
        reset_req = parse_reset(headers.get("x-ratelimit-reset-requests"))
        if remaining_req is not None and reset_req is not None:
            self._server_req_cap = (seq + remaining_req, now + reset_req)
        remaining_tok = _header_int(headers, "x-ratelimit-remaining-tokens")
        reset_tok = parse_reset(headers.get("x-ratelimit-reset-tokens"))
        if remaining_tok is not None and reset_tok is not None:
            self._server_tok_cap = (cum + remaining_tok, now + reset_tok)

    def pause(self, seconds: float, now: float | None = None) -> None:
        """Hold every request for `seconds` (after a 429 with Retry-After)."""
        now = self._clock() if now is None else now
        self._blocked_until = max(self._blocked_until, now + seconds)

    # -- async wrapper ----------------------------------------------------

    def _queue_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._turn is None or self._turn[0] is not loop:  # a lock belongs to one loop
            self._turn = (loop, asyncio.Lock())
        return self._turn[1]

    async def acquire(self, tokens: int) -> Reservation:
        """Wait until a request of `tokens` may be sent and reserve it (in arrival order)."""
        async with self._queue_lock():
            while True:
                result = self.reserve(tokens)
                if isinstance(result, Reservation):
                    return result
                self.waits += 1
                await self._sleep(result)


_SHARED: dict[tuple[str, str, int, int], RateLimiter] = {}


def shared_limiter(base_url: str, model: str, rpm: int, tpm: int) -> RateLimiter:
    """One limiter per endpoint, model and limits in this process."""
    key = (base_url, model, rpm, tpm)
    limiter = _SHARED.get(key)
    if limiter is None:
        limiter = _SHARED[key] = RateLimiter(rpm, tpm)
    return limiter
