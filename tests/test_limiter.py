"""The rate limiter on a virtual clock: it never exceeds its limits and always makes progress."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorscore.evaluation.limiter import RateLimiter, Reservation, parse_reset

WINDOW = 60.0


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def _assert_within_limits(grants: list[tuple[float, int]], rpm: int, tpm: int) -> None:
    """In every window (g - 60 s, g] ending at a grant, requests <= rpm and tokens <= tpm."""
    for g, _ in grants:
        inside = [tokens for t, tokens in grants if g - WINDOW < t <= g]
        assert len(inside) <= rpm, f"{len(inside)} requests in the minute before {g:.3f}"
        assert sum(inside) <= tpm, f"{sum(inside)} tokens in the minute before {g:.3f}"


events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=5.0),  # gap before the next request
        st.integers(min_value=1, max_value=400),  # its estimated tokens
        st.floats(min_value=0.3, max_value=1.0),  # actual / estimate when settled
        st.sampled_from(["none", "headers", "pause", "release"]),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=40),
    tpm=st.integers(min_value=400, max_value=3000),
    burst_s=st.floats(min_value=0.5, max_value=10.0),
    margin_s=st.floats(min_value=0.0, max_value=1.0),
    script=events,
)
def test_never_exceeds_limits_and_always_progresses(
    rpm: int, tpm: int, burst_s: float, margin_s: float, script: list[tuple[float, int, float, str]]
) -> None:
    clock = VirtualClock()
    limiter = RateLimiter(rpm, tpm, burst_s=burst_s, margin_s=margin_s, clock=clock)
    grants: list[tuple[float, int]] = []
    for gap, tokens, ratio, extra in script:
        clock.now += gap
        for _ in range(10_000):
            result = limiter.reserve(tokens)
            if isinstance(result, Reservation):
                break
            # every wait is finite and short: at most a window plus a pause
            assert 0 < result <= WINDOW + margin_s + 30.0
            clock.now += result
        else:
            raise AssertionError("the limiter never granted the request")
        if extra == "release":  # refused by the provider: its tokens come back at once
            limiter.release(result)
            grants.append((clock.now, 0))
            continue
        actual = max(1, int(tokens * ratio))
        limiter.settle(result, actual)
        grants.append((clock.now, actual))
        if extra == "headers":
            limiter.observe(
                result,
                {
                    "x-ratelimit-remaining-requests": str(max(0, rpm - len(grants) % rpm - 1)),
                    "x-ratelimit-reset-requests": "1.5s",
                    "x-ratelimit-remaining-tokens": str(tpm // 2),
                    "x-ratelimit-reset-tokens": "250ms",
                },
            )
        elif extra == "pause":
            limiter.pause(gap * 6)
    _assert_within_limits(grants, rpm, tpm)


@settings(max_examples=30, deadline=None)
@given(
    rpm=st.integers(min_value=2, max_value=30),
    n=st.integers(min_value=1, max_value=80),
    tokens=st.integers(min_value=1, max_value=200),
)
def test_concurrent_coroutines_share_the_limits(rpm: int, n: int, tokens: int) -> None:
    """Many coroutines acquiring at once through the async path stay within the limits."""
    clock = VirtualClock()
    limiter = RateLimiter(rpm, 2000, clock=clock, sleep=clock.sleep)
    grants: list[tuple[float, int]] = []

    async def one() -> None:
        reservation = await limiter.acquire(tokens)
        grants.append((reservation.granted_at, tokens))

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(n)))

    asyncio.run(main())
    assert len(grants) == n
    _assert_within_limits(grants, rpm, 2000)


def test_paces_requests_through_the_minute() -> None:
    """After the short burst, requests are spaced evenly rather than all sent at once."""
    clock = VirtualClock()
    limiter = RateLimiter(60, 100_000, burst_s=2.0, clock=clock)
    times = []
    for _ in range(10):
        while not isinstance(result := limiter.reserve(10), Reservation):
            clock.now += result
        times.append(clock.now)
    assert times[:2] == [0.0, 0.0]  # the burst allowance: 2 s worth at 1 request/s
    gaps = [b - a for a, b in zip(times[2:], times[3:], strict=False)]
    assert all(abs(g - 1.0) < 1e-6 for g in gaps)


def test_headers_cap_requests_until_reset() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(1000, 1_000_000, clock=clock)
    first = limiter.reserve(5)
    assert isinstance(first, Reservation)
    limiter.observe(
        first, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}
    )
    wait = limiter.reserve(5)
    assert wait == 3.0
    clock.now = 3.0
    assert isinstance(limiter.reserve(5), Reservation)


def test_stale_headers_are_ignored() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(1000, 1_000_000, clock=clock)
    first = limiter.reserve(5)
    second = limiter.reserve(5)
    assert isinstance(first, Reservation) and isinstance(second, Reservation)
    limiter.observe(
        second, {"x-ratelimit-remaining-requests": "50", "x-ratelimit-reset-requests": "10s"}
    )
    # the answer to the first request arrives later but describes an older state
    limiter.observe(
        first, {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "10s"}
    )
    assert isinstance(limiter.reserve(5), Reservation)


def test_pause_holds_every_request() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(1000, 1_000_000, clock=clock)
    limiter.pause(7.5)
    assert limiter.reserve(1) == 7.5


def test_request_larger_than_tpm_is_refused() -> None:
    limiter = RateLimiter(10, 100)
    try:
        limiter.reserve(101)
    except ValueError as exc:
        assert "never fit" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_parse_reset_formats() -> None:
    assert parse_reset("1s") == 1.0
    assert parse_reset("6m0s") == 360.0
    assert parse_reset("20ms") == 0.02
    assert parse_reset("1h2m3.5s") == 3723.5
    assert parse_reset("2.5") == 2.5
    assert parse_reset("soon") is None
    assert parse_reset(None) is None


@settings(max_examples=40, deadline=None)
@given(
    rpm=st.integers(min_value=2, max_value=30),
    tpm=st.integers(min_value=4000, max_value=20000),
    sizes=st.lists(st.integers(min_value=100, max_value=4000), min_size=1, max_size=60),
    refused=st.sets(st.integers(min_value=0, max_value=59)),
)
def test_async_waiters_are_served_in_order_within_the_limits(
    rpm: int, tpm: int, sizes: list[int], refused: set[int]
) -> None:
    """Coroutines of provider-sized requests (some refused and released) are granted in
    the order they asked, and the window never holds more than the limits."""
    clock = VirtualClock()
    limiter = RateLimiter(rpm, tpm, clock=clock, sleep=clock.sleep)
    order: list[int] = []
    grants: list[tuple[float, int]] = []

    async def one(k: int, tokens: int) -> None:
        reservation = await limiter.acquire(tokens)
        order.append(k)
        if k in refused:
            limiter.release(reservation)
            grants.append((reservation.granted_at, 0))
        else:
            grants.append((reservation.granted_at, tokens))

    async def main() -> None:
        tasks = []
        for k, tokens in enumerate(sizes):
            tasks.append(asyncio.create_task(one(k, tokens)))
            await asyncio.sleep(0)  # each starts waiting before the next is created
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert order == list(range(len(sizes)))
    _assert_within_limits(grants, rpm, tpm)


def test_released_tokens_are_available_at_once() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(100, 1000, burst_s=60.0, clock=clock)
    first = limiter.reserve(900)
    assert isinstance(first, Reservation)
    assert not isinstance(limiter.reserve(900), Reservation)  # the window is full
    limiter.release(first)  # refused by the provider
    assert isinstance(limiter.reserve(900), Reservation)  # no wait for the window to pass


provider_events = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=2.0),  # gap before the next request
        st.integers(min_value=1, max_value=900),  # its tokens (what the provider counts)
        st.floats(min_value=0.0, max_value=3.0),  # grant -> arrival at the provider
        st.floats(min_value=0.0, max_value=2.0),  # arrival -> answer back
        st.booleans(),  # refused with a 429 (the provider counts nothing)
    ),
    min_size=1,
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(
    rpm=st.integers(min_value=1, max_value=40),
    tpm=st.integers(min_value=900, max_value=6000),
    script=provider_events,
)
def test_the_providers_own_windows_stay_within_limits_whatever_the_delays(
    rpm: int, tpm: int, script: list[tuple[float, int, float, float, bool]]
) -> None:
    """The provider counts a request when it arrives, up to 3 s after the grant here (a busy
    client or server). Answered requests are counted from their answer (`answered`), so no
    60 s window of arrivals at the provider ever holds more than the limits."""
    import heapq

    clock = VirtualClock()
    limiter = RateLimiter(rpm, tpm, clock=clock)
    answers: list[tuple[float, int, Reservation, bool]] = []  # (answer time, seq, ...)
    arrivals: list[tuple[float, int]] = []

    def advance(to: float) -> None:
        while answers and answers[0][0] <= to:
            at, _, reservation, refused = heapq.heappop(answers)
            clock.now = max(clock.now, at)
            limiter.answered(reservation)
            if refused:
                limiter.release(reservation)
        clock.now = max(clock.now, to)

    for gap, tokens, send_delay, latency, refused in script:
        advance(clock.now + gap)
        while not isinstance(result := limiter.reserve(tokens), Reservation):
            advance(clock.now + result)
        if not refused:
            arrivals.append((clock.now + send_delay, tokens))
        answer_at = clock.now + send_delay + latency
        heapq.heappush(answers, (answer_at, result.seq, result, refused))
    arrivals.sort()
    _assert_within_limits(arrivals, rpm, tpm)


def test_a_request_counts_from_its_answer() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(1, 1000, burst_s=60.0, margin_s=0.0, clock=clock)
    first = limiter.reserve(10)
    assert isinstance(first, Reservation)
    clock.now = 2.0
    limiter.answered(first)  # the provider may have counted it as late as this
    clock.now = 60.5  # a minute after the grant, not yet after the answer
    assert limiter.reserve(10) == pytest.approx(1.5, abs=1e-5)
    clock.now = 62.0
    assert isinstance(limiter.reserve(10), Reservation)
