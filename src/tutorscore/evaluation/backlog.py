"""How long the LLM backlog takes at the configured limits.

When the LLM judge is on, every queued or running evaluation job costs one LLM
call (plus retries) unless its result is cached. The provider admits
`min(RPM, TPM / tokens per call)` calls a minute, where a call's tokens are
what the provider's limiter counts: the prompt (measured: the average
`tokens_in` of today's successful calls, else the documented estimate) plus the
700-token output allowance. Retries add calls: `calls_per_job` is all calls /
successful calls over the last day (1 without history).

`TUTORSCORE_LLM_RPM`/`TPM` are per worker process; `TUTORSCORE_LLM_WORKERS`
says how many worker processes share the account (the limits are multiplied
by it). The answer is an estimate: it assumes the limits are what binds, which
the pipeline makes true (its own work keeps up with 300 calls a minute).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutorscore.config import Settings
from tutorscore.db.base import utcnow
from tutorscore.db.models import LLMCall
from tutorscore.evaluation.costs import ESTIMATED_TOKENS_IN
from tutorscore.evaluation.prompts import MAX_OUTPUT_TOKENS
from tutorscore.evaluation.queries import queue_backlog

PEAK_SESSIONS_PER_HOUR = 3000  # REQUIREMENTS.md: the marketplace's peak


def llm_backlog(
    session: Session, settings: Settings, *, now: datetime | None = None
) -> dict[str, Any] | None:
    """The backlog's size and how long it takes at the limits; None when the LLM is off."""
    if not settings.llm_enabled:
        return None
    now = now or utcnow()
    queue = queue_backlog(session, now=now)
    jobs = queue["queued"] + queue["running"]
    ok_calls, avg_in, all_calls = session.execute(
        select(
            func.count().filter(LLMCall.status == "ok"),
            func.avg(LLMCall.tokens_in).filter(LLMCall.status == "ok"),
            func.count(),
        ).where(LLMCall.created_at >= now - timedelta(days=1), LLMCall.mode == "realtime")
    ).one()
    measured = bool(ok_calls) and avg_in is not None
    prompt_tokens = float(avg_in) if measured else float(ESTIMATED_TOKENS_IN)
    tokens_per_call = prompt_tokens + MAX_OUTPUT_TOKENS
    calls_per_job = (all_calls / ok_calls) if ok_calls else 1.0
    workers = max(1, settings.llm_workers)
    rpm, tpm = settings.llm_rpm * workers, settings.llm_tpm * workers
    by_tokens = tpm / tokens_per_call
    calls_per_minute = min(float(rpm), by_tokens)
    jobs_per_minute = calls_per_minute / calls_per_job
    eta_s = jobs / jobs_per_minute * 60 if jobs else 0.0
    return {
        "jobs": jobs,
        "rpm": rpm,
        "tpm": tpm,
        "workers": workers,
        "binding": "tokens" if by_tokens < rpm else "requests",
        "tokens_per_call": round(tokens_per_call),
        "tokens_source": "measured" if measured else "estimate",
        "calls_per_job": round(calls_per_job, 3),
        "calls_per_minute": round(calls_per_minute, 1),
        "sessions_per_hour": round(jobs_per_minute * 60),
        "keeps_up_with_peak": jobs_per_minute * 60 >= PEAK_SESSIONS_PER_HOUR,
        "eta_s": round(eta_s, 1),
        "eta": describe_duration(eta_s),
    }


def describe_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 20 min`, `2 days 4 h`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h" if hours else f"{days} days"


def backlog_sentence(info: dict[str, Any]) -> str:
    """One line for the CLI and the overview."""
    if not info["jobs"]:
        return "LLM backlog: empty"
    limit = (
        f"{info['tpm']:,} tokens a minute at ~{info['tokens_per_call']:,} a call"
        if info["binding"] == "tokens"
        else f"{info['rpm']:,} requests a minute"
    )
    return (
        f"LLM backlog: {info['jobs']:,} sessions, about {info['eta']} at the limits "
        f"({limit} bind: {info['sessions_per_hour']:,} sessions an hour"
        + ("" if info["keeps_up_with_peak"] else ", below the 3,000-an-hour peak")
        + ")"
    )
