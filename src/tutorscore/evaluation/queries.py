"""The evaluation facts every reader shares: which evaluation counts, the queue backlog,
today's LLM spend.

Each is defined here once; analytics, the dashboard, the API, the CLI and `/metrics`
read them from here rather than writing their own query.

- `chosen_evaluations(filter)`: the SQL CTE `chosen` (one row per session: the
  evaluation that counts). The Python readers (`evaluation.service.get_evaluation`,
  `list_evaluations`) ask the same CTE through `chosen_evaluation_ids`, so the two
  cannot drift.
- `queue_backlog(session)`: the `evaluate` jobs by status and priority, the oldest queued.
- `llm_spend_today(bind)`: calls, cost and failed calls since midnight UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, String, TextualSelect, bindparam, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from tutorscore.db.base import utcnow
from tutorscore.db.models import Job, LLMCall

EVALUATE = "evaluate"  # the job kind of a session evaluation


def chosen_evaluations(session_filter: str) -> str:
    """CTE `chosen(session_id, tutor_id, subject, scheduled_start_at, evaluation_id, judge,
    quality_score, risk_tags)`: the evaluation that counts, one per session.

    Which one (`[evaluation.counted]`, `reviews.counted`): the latest by the preferred
    judge version (bound as :counted_judge, :counted_model, :counted_prompt_version; an
    empty judge matches none), else the latest `llm` one, else the latest of any other
    judge (the heuristic). "Latest" is `created_at`, ties broken by the higher id.
    `session_filter` is SQL over `s` (sessions) and `e` (session_evaluations).
    """
    return f"""chosen AS (
  SELECT session_id, tutor_id, subject, scheduled_start_at, evaluation_id, judge,
         quality_score, risk_tags FROM (
    SELECT e.session_id, s.tutor_id, s.subject, s.scheduled_start_at, e.id AS evaluation_id,
           e.judge, e.quality_score, e.risk_tags,
           ROW_NUMBER() OVER (
             PARTITION BY e.session_id
             ORDER BY CASE WHEN e.judge = :counted_judge AND e.model = :counted_model
                             AND e.prompt_version = :counted_prompt_version THEN 0 ELSE 1 END,
                      CASE WHEN e.judge = 'llm' THEN 0 ELSE 1 END, e.created_at DESC, e.id DESC
           ) AS rn
    FROM session_evaluations e JOIN sessions s ON s.session_id = e.session_id
    WHERE {session_filter}
  ) ranked WHERE rn = 1
)"""


def chosen_evaluation_ids(
    counted: Mapping[str, str], session_ids: Sequence[str] | None = None
) -> TextualSelect:
    """SELECT (session_id, evaluation_id) of the evaluation that counts per session, through
    `chosen_evaluations`, binds included: for the Python readers, as a subquery of their
    own statement (one snapshot). `counted` are `reviews.counted.counted_params`;
    `session_ids=None` means every evaluated session."""
    where = "1 = 1" if session_ids is None else "e.session_id IN :session_ids"
    sql = text(f"WITH {chosen_evaluations(where)} SELECT session_id, evaluation_id FROM chosen")
    binds: list[BindParameter[Any]] = [bindparam(n, v) for n, v in counted.items()]
    if session_ids is not None:
        binds.append(bindparam("session_ids", list(session_ids), expanding=True))
    return sql.bindparams(*binds).columns(session_id=String(), evaluation_id=Integer())


def queue_backlog(session: Session | Connection, *, now: datetime | None = None) -> dict[str, Any]:
    """The evaluation queue's backlog (the dashboard, `/metrics`, `tutorscore evaluate --stats`,
    `GET /api/evaluations/queue`): `evaluate` jobs by status, the queued ones by priority,
    how many are due and retrying, and the oldest queued job's age in seconds."""
    now = now or utcnow()
    by_status = {
        str(status): int(n)
        for status, n in session.execute(
            select(Job.status, func.count()).where(Job.kind == EVALUATE).group_by(Job.status)
        ).all()
    }
    by_priority = {
        int(p): int(n)
        for p, n in session.execute(
            select(Job.priority, func.count())
            .where(Job.kind == EVALUATE, Job.status == "queued")
            .group_by(Job.priority)
            .order_by(Job.priority)
        ).all()
    }
    oldest, due, retrying = session.execute(
        select(
            func.min(Job.created_at),
            func.count().filter(Job.run_after <= now),
            func.count().filter(Job.attempts > 0),
        ).where(Job.kind == EVALUATE, Job.status == "queued")
    ).one()
    return {
        "queued": by_status.get("queued", 0),
        "queued_by_priority": by_priority,
        "queued_due": int(due or 0),
        "retrying": int(retrying or 0),
        "running": by_status.get("running", 0),
        "done": by_status.get("done", 0),
        "dead": by_status.get("dead", 0),
        "oldest_queued_age_s": (now - oldest).total_seconds() if oldest is not None else None,
    }


@dataclass(frozen=True)
class LLMSpend:
    """The LLM calls of one UTC day: how many, what they cost, how many did not succeed."""

    calls: int
    cost_usd: float
    errors: int


def day_start(now: datetime) -> datetime:
    """Midnight UTC of `now`'s day (the LLM budget's day)."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def llm_spend_today(bind: Session | Connection, now: datetime | None = None) -> LLMSpend:
    """The calls made since midnight UTC of `now`'s day (default: today), in one pass:
    what the budget cap, the overview, `/metrics` and `tutorscore llm usage` report."""
    start = day_start(now or utcnow())
    calls, cost, errors = bind.execute(
        select(
            func.count(),
            func.coalesce(func.sum(LLMCall.cost_usd), 0.0),
            func.count().filter(LLMCall.status != "ok"),
        ).where(LLMCall.created_at >= start, LLMCall.created_at < start + timedelta(days=1))
    ).one()
    return LLMSpend(int(calls or 0), float(cost or 0.0), int(errors or 0))
