"""The LLM judge: any OpenAI-compatible endpoint through the `openai` SDK.

What happens to one transcript:
1. names, emails and phone numbers are redacted (the text that leaves has no PII);
2. the daily budget is checked: today's llm_calls cost + calls in flight + this
   call's estimate must stay within the cap, else JudgeUnavailable without a call;
3. a concurrency slot and a rate-limiter reservation are taken (both shared by
   every coroutine using this judge), then one HTTP call with a timeout; the
   reservation is what the provider's limiter counts (characters / 4 plus the
   output allowance), settled from `usage` when the provider counts usage, and
   given back at once when the request was refused or never arrived;
4. every call, failed or not, goes to the ledger (llm_calls);
5. 429s, 5xx, timeouts, connection errors and malformed output are retried here
   with exponential backoff and jitter, never earlier than a Retry-After (the
   SDK's own retries are off so each attempt is visible and logged); after the
   last attempt JudgeUnavailable says why, and the queue retries the job later;
6. the answer is validated (schema, score ranges), risk tags are kept only from
   the vocabulary, and every evidence quote must appear verbatim in the turn it
   cites: quotes that do not are dropped and counted. Kept quotes are mapped back
   from the redacted text to the original turn text.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import openai
from openai import AsyncOpenAI
from pydantic import ValidationError
from sqlalchemy import Engine, select

from tutorscore.config import Settings
from tutorscore.db.base import utcnow
from tutorscore.evaluation.costs import CallRecord, DbLedger, MemoryLedger, call_cost
from tutorscore.evaluation.judge import RISK_TAGS, EvaluationResult, Evidence, JudgeUnavailable
from tutorscore.evaluation.limiter import RateLimiter, Reservation, shared_limiter
from tutorscore.evaluation.prompts import (
    MAX_OUTPUT_TOKENS,
    PROMPT_VERSION,
    RESPONSE_FORMAT,
    LLMEvaluation,
    build_messages,
    estimate_tokens,
    rate_limit_tokens,
)
from tutorscore.evaluation.redact import Redacted, Redactor
from tutorscore.ingest.transcript_format import Turn

log = logging.getLogger(__name__)

_QUOTE_STRIP = " \t\n\"'“”‘’"


class Ledger(Protocol):
    def record(self, call: CallRecord) -> None: ...

    def spent_today(self, now: datetime | None = None) -> float: ...


TOKEN_COUNTING = ("estimate", "usage")


@dataclass
class RetryPolicy:
    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    # a Retry-After longer than this is not waited out in-process: the job is
    # handed back to the queue with that delay instead of holding a coroutine
    max_wait_s: float = 60.0


class InvalidOutput(ValueError):
    """The model answered, but not with a valid evaluation object."""


@dataclass
class Prepared:
    """A transcript ready to send: redacted turns, the messages and a token estimate."""

    turns: list[Turn]
    redacted: list[Redacted]
    messages: list[dict[str, str]]
    estimated_tokens: int  # high prompt estimate (3 characters a token) + the output allowance
    limit_tokens: int = 0  # what the provider's rate limiter counts (characters / 4 + allowance)

    @property
    def redactions(self) -> int:
        return sum(len(r.spans) for r in self.redacted)


@dataclass
class _Attempt:
    status: str
    result: EvaluationResult | None = None
    error: str | None = None
    retryable: bool = True
    retry_after_s: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0


@dataclass
class _LoopResources:
    """The HTTP client and semaphore belong to one event loop."""

    loop: asyncio.AbstractEventLoop
    client: AsyncOpenAI
    semaphore: asyncio.Semaphore


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def interpret(prepared: Prepared, content: str | None) -> EvaluationResult:
    """Validate the model's answer and keep only quotes found verbatim in the cited turn."""
    if not content:
        raise InvalidOutput("empty answer")
    try:
        parsed = LLMEvaluation.model_validate_json(content)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
        raise InvalidOutput(f"{where}: {first.get('msg', 'invalid')}") from exc
    kept: list[Evidence] = []
    dropped = 0
    for item in parsed.evidence:
        quote = item.quote.strip(_QUOTE_STRIP)
        if not quote or not 0 <= item.turn < len(prepared.turns):
            dropped += 1
            continue
        redacted = prepared.redacted[item.turn]
        start = redacted.text.find(quote)
        if start < 0:
            dropped += 1
            continue
        a, b = redacted.to_original(start, start + len(quote))
        kept.append(
            Evidence(turn=item.turn, quote=prepared.turns[item.turn]["text"][a:b], note=item.note)
        )
    tags = list(dict.fromkeys(t for t in parsed.risk_tags if t in RISK_TAGS))
    return EvaluationResult(
        quality_score=round(parsed.quality_score, 2),
        rubric=parsed.rubric,
        strengths=parsed.strengths,
        areas_for_improvement=parsed.areas_for_improvement,
        risk_tags=tags,
        evidence=kept,
        features={
            "quotes_verified": len(kept),
            "quotes_dropped": dropped,
            "unknown_risk_tags": len(parsed.risk_tags) - len(tags),
            "redactions": prepared.redactions,
        },
    )


def session_name_lookup(engine: Engine) -> Callable[[str], list[str]]:
    """Names known for a session (its tutor's), to redact even when no pattern finds them."""
    from tutorscore.db.models.core import Tutor, TutoringSession

    def lookup(session_id: str) -> list[str]:
        with engine.connect() as conn:
            name = conn.execute(
                select(Tutor.name)
                .join(TutoringSession, TutoringSession.tutor_id == Tutor.tutor_id)
                .where(TutoringSession.session_id == session_id)
            ).scalar_one_or_none()
        return [name] if name else []

    return lookup


class LLMJudge:
    """Judge protocol implementation for OpenAI-compatible chat completion endpoints."""

    name = "llm"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        limiter: RateLimiter,
        ledger: Ledger,
        prompt_version: str = PROMPT_VERSION,
        max_concurrency: int = 20,
        timeout_s: float = 60.0,
        budget_usd: float = 10.0,
        retry: RetryPolicy | None = None,
        names: Sequence[str] = (),
        name_lookup: Callable[[str], Sequence[str]] | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
        token_counting: str = "estimate",
    ) -> None:
        if token_counting not in TOKEN_COUNTING:
            raise ValueError(
                f"token_counting: expected one of {TOKEN_COUNTING}, got {token_counting!r}"
            )
        self.base_url = base_url
        self.model = model
        self.prompt_version = prompt_version
        self.api_key = api_key or "not-needed"
        self.limiter = limiter
        self.ledger = ledger
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.budget_usd = budget_usd
        self.retry = retry or RetryPolicy()
        self.redactor = Redactor(names)
        self.name_lookup = name_lookup
        self._sleep = sleep
        self._rng = rng or random.Random()
        # "estimate": the provider's limiter counts the request's estimate (OpenAI), so the
        # reservation stands; "usage": it counts the tokens used, so settle from `usage`
        self.token_counting = token_counting
        self._reserved_usd = 0.0  # estimates of calls in flight, not yet in the ledger
        self._resources: _LoopResources | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Engine | None = None, *, ledger: Ledger | None = None
    ) -> LLMJudge:
        """The judge a worker uses: DB ledger, tutor names from the DB, a shared limiter."""
        if not settings.llm_base_url:
            raise JudgeUnavailable("the LLM judge is off: set TUTORSCORE_LLM_BASE_URL")
        if ledger is None:
            ledger = DbLedger(engine) if engine is not None else MemoryLedger()
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            limiter=shared_limiter(
                settings.llm_base_url, settings.llm_model, settings.llm_rpm, settings.llm_tpm
            ),
            ledger=ledger,
            max_concurrency=settings.llm_max_concurrency,
            timeout_s=settings.llm_timeout_s,
            budget_usd=settings.llm_budget_usd,
            name_lookup=session_name_lookup(engine) if engine is not None else None,
            token_counting=settings.llm_token_counting,
        )

    # -- pieces shared with the batch path --------------------------------

    def client(self) -> AsyncOpenAI:
        return self._loop_resources().client

    def _loop_resources(self) -> _LoopResources:
        loop = asyncio.get_running_loop()
        if self._resources is None or self._resources.loop is not loop:
            self._resources = _LoopResources(
                loop=loop,
                client=AsyncOpenAI(
                    base_url=self.base_url,
                    api_key=self.api_key,
                    max_retries=0,  # retries are ours, so each one is logged and paced
                    timeout=self.timeout_s,
                ),
                semaphore=asyncio.Semaphore(self.max_concurrency),
            )
        return self._resources

    def prepare(self, turns: list[Turn], names: Sequence[str] = ()) -> Prepared:
        redacted = [self.redactor.redact(t["text"], names) for t in turns]
        safe: list[Turn] = [
            {"speaker": t["speaker"], "text": r.text} for t, r in zip(turns, redacted, strict=True)
        ]
        messages = build_messages(safe)
        return Prepared(
            turns,
            redacted,
            messages,
            estimate_tokens(messages) + MAX_OUTPUT_TOKENS,
            rate_limit_tokens(messages, MAX_OUTPUT_TOKENS),
        )

    def request_body(self, prepared: Prepared) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": prepared.messages,
            "response_format": RESPONSE_FORMAT,
            "max_completion_tokens": MAX_OUTPUT_TOKENS,
            "temperature": 0,
        }

    def estimate_cost(self, prepared: Prepared, *, batch: bool = False) -> float:
        return call_cost(
            self.model,
            prepared.estimated_tokens - MAX_OUTPUT_TOKENS,
            MAX_OUTPUT_TOKENS,
            batch=batch,
        )

    @property
    def _ledger_in_memory(self) -> bool:
        """A ledger that does no I/O in record/spent_today is called inline, so a call
        never queues behind database work for a thread."""
        return bool(getattr(self.ledger, "in_memory", False))

    async def record(self, call: CallRecord) -> None:
        if self._ledger_in_memory:
            self.ledger.record(call)
        else:
            await asyncio.to_thread(self.ledger.record, call)

    async def check_budget(self, estimate_usd: float) -> None:
        """JudgeUnavailable (retry after midnight UTC) when this call would cross the cap."""
        now = utcnow()
        if self._ledger_in_memory:
            spent = self.ledger.spent_today(now)
        else:
            spent = await asyncio.to_thread(self.ledger.spent_today, now)
        if spent + self._reserved_usd + estimate_usd > self.budget_usd:
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
            raise JudgeUnavailable(
                f"daily LLM budget reached: ${spent:.4f} spent, ${self._reserved_usd:.4f} in "
                f"flight, this call ~${estimate_usd:.4f}, cap ${self.budget_usd:.2f}",
                retry_after_s=(midnight - now).total_seconds(),
            )

    # -- the Judge protocol ----------------------------------------------------

    async def evaluate(
        self, turns: list[Turn], *, session_id: str | None = None, names: Sequence[str] = ()
    ) -> EvaluationResult:
        known = list(names)
        if session_id is not None and self.name_lookup is not None:
            known += await asyncio.to_thread(self.name_lookup, session_id)
        return await self.evaluate_prepared(self.prepare(turns, known), session_id=session_id)

    async def evaluate_prepared(
        self, prepared: Prepared, *, session_id: str | None = None
    ) -> EvaluationResult:
        """Call the provider for a transcript already redacted and built (`prepare`), with
        the budget check, limiter, retries and ledger of `evaluate`. The pipeline worker
        prepares transcripts off the event loop and calls this."""
        if prepared.limit_tokens > self.limiter.tpm:
            raise JudgeUnavailable(
                f"transcript needs ~{prepared.limit_tokens} tokens, more than the "
                f"{self.limiter.tpm} tokens-per-minute limit"
            )
        estimate = self.estimate_cost(prepared)
        errors: list[str] = []
        tokens_in = tokens_out = 0
        cost = 0.0
        for attempt in range(1, self.retry.max_attempts + 1):
            await self.check_budget(estimate)
            self._reserved_usd += estimate
            try:
                resources = self._loop_resources()
                async with resources.semaphore:
                    reservation = await self.limiter.acquire(prepared.limit_tokens)
                    outcome = await self._call_once(resources.client, prepared, reservation)
            finally:
                self._reserved_usd -= estimate
            await self.record(
                CallRecord(
                    model=self.model,
                    prompt_version=self.prompt_version,
                    status=outcome.status,
                    session_id=session_id,
                    tokens_in=outcome.tokens_in,
                    tokens_out=outcome.tokens_out,
                    latency_ms=outcome.latency_ms,
                    cost_usd=outcome.cost_usd,
                    error=outcome.error,
                )
            )
            tokens_in += outcome.tokens_in
            tokens_out += outcome.tokens_out
            cost += outcome.cost_usd
            if outcome.result is not None:
                outcome.result.features.update(
                    llm_attempts=attempt,
                    llm_tokens_in=tokens_in,
                    llm_tokens_out=tokens_out,
                    llm_cost_usd=round(cost, 6),
                    llm_latency_ms=round(outcome.latency_ms, 1),
                )
                return outcome.result
            errors.append(f"{outcome.status}: {outcome.error}")
            if not outcome.retryable:
                break
            delay = self._delay(attempt, outcome.retry_after_s)
            if outcome.retry_after_s is not None and outcome.retry_after_s > self.retry.max_wait_s:
                raise JudgeUnavailable(
                    f"LLM provider asked to wait {outcome.retry_after_s:.0f}s ({errors[-1]})",
                    retry_after_s=outcome.retry_after_s,
                )
            if attempt < self.retry.max_attempts:
                log.warning(
                    "LLM call for session %s failed (%s); attempt %d of %d, retrying in %.2fs",
                    session_id,
                    errors[-1],
                    attempt,
                    self.retry.max_attempts,
                    delay,
                )
                await self._sleep(delay)
        raise JudgeUnavailable(
            f"LLM judge gave up after {len(errors)} attempt(s): " + "; ".join(errors)
        )

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff with jitter; never shorter than the provider's Retry-After."""
        backoff = min(self.retry.max_delay_s, self.retry.base_delay_s * 2.0 ** (attempt - 1))
        jittered = backoff * (0.5 + self._rng.random() / 2)
        if retry_after_s is not None:
            return retry_after_s + self._rng.random() * min(1.0, 0.1 * retry_after_s + 0.05)
        return jittered

    async def _call_once(
        self, client: AsyncOpenAI, prepared: Prepared, reservation: Reservation
    ) -> _Attempt:
        started = time.monotonic()

        def elapsed() -> float:
            return (time.monotonic() - started) * 1000

        try:
            raw = await client.chat.completions.with_raw_response.create(
                **self.request_body(prepared), timeout=self.timeout_s
            )
        except openai.APITimeoutError:  # the provider counted it: the estimate stands
            self.limiter.answered(reservation)
            return _Attempt(
                "timeout", error=f"no answer within {self.timeout_s:g}s", latency_ms=elapsed()
            )
        except openai.APIStatusError as exc:
            self.limiter.answered(reservation)
            headers = exc.response.headers
            self.limiter.observe(reservation, headers)
            code = exc.status_code
            if code == 429:  # refused, so its tokens were not counted: give them back
                self.limiter.release(reservation)
            retry_after = retry_after_seconds(headers)
            if code == 429 and retry_after is not None:
                self.limiter.pause(retry_after)
            message = str(getattr(exc, "message", exc))[:300]
            return _Attempt(
                "http_429" if code == 429 else ("http_500" if code >= 500 else f"http_{code}"),
                error=f"HTTP {code}: {message}",
                retryable=code in (408, 409, 429) or code >= 500,
                retry_after_s=retry_after,
                latency_ms=elapsed(),
            )
        except openai.APIConnectionError as exc:
            self.limiter.answered(reservation)  # it may have arrived before the connection broke
            self.limiter.release(reservation)
            return _Attempt("error", error=f"connection failed: {exc}", latency_ms=elapsed())
        latency = elapsed()
        self.limiter.answered(reservation)
        self.limiter.observe(reservation, raw.headers)
        try:
            completion = raw.parse()
        except Exception as exc:  # a body that is not a chat completion at all
            return _Attempt(
                "invalid", error=f"unreadable response: {exc}"[:300], latency_ms=latency
            )
        usage = completion.usage
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        if self.token_counting == "usage" and usage is not None:
            # this provider counts what was used: hand back the unused allowance now
            self.limiter.settle(reservation, tokens_in + tokens_out)
        cost = call_cost(self.model, tokens_in, tokens_out)
        content = completion.choices[0].message.content if completion.choices else None
        try:
            result = interpret(prepared, content)
        except InvalidOutput as exc:
            return _Attempt(
                "invalid",
                error=f"malformed evaluation: {exc}"[:300],
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost,
                latency_ms=latency,
            )
        return _Attempt(
            "ok",
            result=result,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
            latency_ms=latency,
        )
