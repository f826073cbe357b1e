"""The batch path: non-urgent LLM evaluations through the provider's batch interface.

Batch requests cost half as much and come back within 24 hours. With
TUTORSCORE_LLM_BATCH_BACKLOG=true the worker sends the backlog (jobs whose
priority is the default or later) here and keeps the real-time path for first
sessions and high-risk tutors (`split_for_batch`); `send_backlog_to_batch` does
this straight from the queue. Meanwhile the heuristic result stands.

A submitted batch is remembered as a `jobs` row of kind `llm_batch` with status
`waiting` (the evaluation queue only claims `evaluate` jobs), its payload holding
the batch id and each session's transcript hash. `collect_batches` polls those
rows, stores the results through the same cache-keyed storage as the real-time
judge (so a result is never stored twice), writes one llm_calls row per request
at the batch price, and re-queues the sessions whose request failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, and_, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from tutorscore.config import RulesConfig, Settings
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Job, SessionEvaluation, SessionTranscript, Tutor, TutoringSession
from tutorscore.evaluation.costs import CallRecord, call_cost
from tutorscore.evaluation.llm_judge import (
    InvalidOutput,
    LLMJudge,
    interpret,
    session_name_lookup,
)
from tutorscore.ingest.transcript_format import Turn

if TYPE_CHECKING:
    from tutorscore.analytics.service import AfterWrite

log = logging.getLogger(__name__)

BATCH_KIND = "llm_batch"
WAITING = "waiting"
POLL_INTERVAL = timedelta(minutes=5)
_PENDING_STATES = ("validating", "in_progress", "finalizing", "cancelling")


def split_for_batch(
    priorities: Mapping[str, int], settings: Settings, rules: RulesConfig
) -> tuple[list[str], list[str]]:
    """(real-time, batch) session ids: the backlog goes to batch when the option is on."""
    if not settings.llm_batch_backlog:
        return list(priorities), []
    cutoff = rules.evaluation.priority_default
    realtime = [sid for sid, p in priorities.items() if p < cutoff]
    batch = [sid for sid, p in priorities.items() if p >= cutoff]
    return realtime, batch


def _waiting_sessions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        payloads = conn.execute(
            select(Job.payload).where(Job.kind == BATCH_KIND, Job.status == WAITING)
        ).scalars()
        return {sid for p in payloads for sid in (p or {}).get("sessions", {})}


def _load(engine: Engine, session_ids: list[str]) -> list[tuple[str, list[Turn], str, str]]:
    """(session id, turns, transcript hash, tutor name) for sessions with a transcript."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                SessionTranscript.session_id,
                SessionTranscript.turns,
                SessionTranscript.content_hash,
                Tutor.name,
            )
            .join(TutoringSession, TutoringSession.session_id == SessionTranscript.session_id)
            .join(Tutor, Tutor.tutor_id == TutoringSession.tutor_id)
            .where(SessionTranscript.session_id.in_(session_ids))
        ).all()
    return [(r[0], cast(list[Turn], list(r[1])), r[2], r[3] or "") for r in rows]


def _already_evaluated(engine: Engine, judge: LLMJudge, hashes: dict[str, str]) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(SessionEvaluation.session_id, SessionEvaluation.transcript_hash).where(
                SessionEvaluation.session_id.in_(list(hashes)),
                SessionEvaluation.judge == judge.name,
                SessionEvaluation.model == judge.model,
                SessionEvaluation.prompt_version == judge.prompt_version,
            )
        ).all()
    return {sid for sid, digest in rows if hashes.get(sid) == digest}


async def submit_batch_async(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    session_ids: list[str],
    *,
    judge: LLMJudge | None = None,
    now: datetime | None = None,
) -> str | None:
    """Send the sessions' transcripts as one batch; the batch id, or None if nothing to send.

    Sessions already evaluated by this judge for their current transcript, or
    already waiting in a batch, are left out. JudgeUnavailable when the batch's
    estimated cost would cross today's budget.
    """
    judge = judge or LLMJudge.from_settings(settings, engine)
    now = now or utcnow()
    rows = _load(engine, list(dict.fromkeys(session_ids)))
    hashes = {sid: digest for sid, _, digest, _ in rows}
    skip = _already_evaluated(engine, judge, hashes) | _waiting_sessions(engine)
    rows = [r for r in rows if r[0] not in skip]
    if not rows:
        return None
    lines = []
    estimate = 0.0
    for sid, turns, _, tutor_name in rows:
        prepared = judge.prepare(turns, [tutor_name] if tutor_name else [])
        estimate += judge.estimate_cost(prepared, batch=True)
        lines.append(
            json.dumps(
                {
                    "custom_id": sid,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": judge.request_body(prepared),
                },
                ensure_ascii=False,
            )
        )
    await judge.check_budget(estimate)
    client = judge.client()
    upload = await client.files.create(
        file=("tutorscore-batch.jsonl", "\n".join(lines).encode()), purpose="batch"
    )
    batch = await client.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"source": "tutorscore", "prompt_version": judge.prompt_version},
    )
    with transaction(engine) as session:
        session.add(
            Job(
                kind=BATCH_KIND,
                session_id=None,
                payload={
                    "batch_id": batch.id,
                    "input_file_id": upload.id,
                    "model": judge.model,
                    "prompt_version": judge.prompt_version,
                    "sessions": {sid: digest for sid, _, digest, _ in rows},
                    "estimated_cost_usd": round(estimate, 6),
                },
                priority=rules.evaluation.priority_default,
                status=WAITING,
                run_after=now,
                created_at=now,
                updated_at=now,
            )
        )
    log.info("submitted LLM batch %s with %d sessions (~$%.4f)", batch.id, len(rows), estimate)
    return batch.id


def submit_batch(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    session_ids: list[str],
    *,
    judge: LLMJudge | None = None,
) -> str | None:
    """Synchronous `submit_batch_async` (for a worker loop or the CLI)."""
    return asyncio.run(submit_batch_async(engine, settings, rules, session_ids, judge=judge))


async def send_backlog_to_batch_async(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    judge: LLMJudge | None = None,
    limit: int = 5000,
    now: datetime | None = None,
) -> str | None:
    """Hand queued backlog LLM jobs (priority >= default) to one provider batch.

    The jobs are taken off the queue (status done, `last_error` naming the batch)
    in one statement, so a worker cannot claim them meanwhile; if the submission
    fails they are put back, due again after POLL_INTERVAL. First sessions and
    high-risk tutors' jobs are left for the real-time path. Returns the batch id.
    """
    if not settings.llm_batch_backlog:
        return None
    now = now or utcnow()
    picked = (
        select(Job.id)
        .where(
            Job.kind == "evaluate",
            Job.status == "queued",
            Job.run_after <= now,
            Job.priority >= rules.evaluation.priority_default,
            Job.payload["judge"].as_string() == "llm",
        )
        .order_by(Job.priority, Job.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with transaction(engine) as session:
        taken = session.execute(
            update(Job)
            .where(Job.id.in_(picked.scalar_subquery()), Job.status == "queued")
            .values(status="done", finished_at=now, updated_at=now, last_error="sent to batch")
            .returning(Job.id, Job.session_id)
            .execution_options(synchronize_session=False)
        ).all()
    if not taken:
        return None
    job_ids = [r.id for r in taken]
    try:
        batch_id = await submit_batch_async(
            engine,
            settings,
            rules,
            [r.session_id for r in taken if r.session_id],
            judge=judge,
            now=now,
        )
    except BaseException as exc:
        with transaction(engine) as session:
            _put_back(session, job_ids, f"batch submission failed: {exc}"[:500], now=now)
        raise
    with transaction(engine) as session:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(last_error=f"sent to batch {batch_id}" if batch_id else "already evaluated")
        )
    return batch_id


def _put_back(session: Session, job_ids: list[int], reason: str, *, now: datetime) -> None:
    """Return jobs taken for a failed batch to the queue, due after POLL_INTERVAL.

    While the submission ran, the same (session, judge) may have been queued again
    (a new transcript, `evaluate --pending`): that job already stands for the
    session at `uq_jobs_queued_evaluation`, so ours stays done and says so, instead
    of the whole put-back failing on the index and leaving every job "sent to
    batch". On Postgres a sibling committed after this statement's snapshot still
    meets the index: the savepoint rolls back and the next round sees it.
    """
    sibling = aliased(Job)
    queued_sibling = exists().where(
        sibling.kind == "evaluate",
        sibling.status == "queued",
        sibling.session_id == Job.session_id,
        sibling.judge == Job.judge,
        sibling.id != Job.id,
    )
    mine = and_(Job.id.in_(job_ids), Job.status == "done")
    for attempt in range(3):
        try:
            with session.begin_nested():
                session.execute(
                    update(Job)
                    .where(mine, ~queued_sibling)
                    .values(
                        status="queued",
                        finished_at=None,
                        run_after=now + POLL_INTERVAL,
                        updated_at=now,
                        last_error=reason,
                    )
                    .execution_options(synchronize_session=False)
                )
            break
        except IntegrityError:
            if attempt == 2:
                raise
    session.execute(
        update(Job)
        .where(mine)
        .values(updated_at=now, last_error=f"{reason}; a queued job for the session stands")
        .execution_options(synchronize_session=False)
    )


def send_backlog_to_batch(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    judge: LLMJudge | None = None,
    limit: int = 5000,
) -> str | None:
    """Synchronous `send_backlog_to_batch_async`."""
    return asyncio.run(
        send_backlog_to_batch_async(engine, settings, rules, judge=judge, limit=limit)
    )


def _store_line(
    engine: Engine,
    judge: LLMJudge,
    rules: RulesConfig,
    sid: str,
    submitted_hash: str,
    response: dict[str, Any],
    after_write: AfterWrite | None = None,
) -> tuple[str, CallRecord]:
    """Store one batch answer; returns its outcome (stored|cached|stale|failed) and ledger row."""
    from tutorscore.evaluation.service import load_transcript, store_evaluation

    body = response.get("body") or {}
    code = int(response.get("status_code") or 0)
    usage = body.get("usage") or {}
    tokens_in = int(usage.get("prompt_tokens") or 0)
    tokens_out = int(usage.get("completion_tokens") or 0)
    record = CallRecord(
        model=judge.model,
        prompt_version=judge.prompt_version,
        status="ok",
        session_id=sid,
        mode="batch",
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=call_cost(judge.model, tokens_in, tokens_out, batch=True),
    )
    if code != 200:
        record.status = "http_500" if code >= 500 else f"http_{code}"
        record.error = json.dumps(body.get("error") or body)[:500]
        return "failed", record
    with transaction(engine) as session:
        info = load_transcript(session, sid)
        if info.transcript_hash != submitted_hash:
            record.error = "transcript changed after the batch was sent; result not stored"
            return "stale", record
        lookup = judge.name_lookup or session_name_lookup(engine)
        prepared = judge.prepare(info.turns, list(lookup(sid)))
        choices = body.get("choices") or [{}]
        content = (choices[0].get("message") or {}).get("content")
        try:
            result = interpret(prepared, content)
        except InvalidOutput as exc:
            record.status = "invalid"
            record.error = f"malformed evaluation: {exc}"[:300]
            return "failed", record
        result.features.update(
            llm_mode="batch",
            llm_tokens_in=tokens_in,
            llm_tokens_out=tokens_out,
            llm_cost_usd=round(record.cost_usd, 6),
        )
        _, cached = store_evaluation(
            session, info, judge, result, rules=rules, after_write=after_write
        )
    return ("cached" if cached else "stored"), record


async def collect_batches_async(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    judge: LLMJudge | None = None,
    now: datetime | None = None,
    after_write: AfterWrite | None = None,
) -> dict[str, Any]:
    """Poll waiting batches; store finished results; re-queue failed sessions. A summary.

    Each stored result updates its tutor's metrics, then runs `after_write`.
    """
    from tutorscore.evaluation.queue import enqueue_evaluation

    judge = judge or LLMJudge.from_settings(settings, engine)
    now = now or utcnow()
    summary: dict[str, Any] = {
        "batches_checked": 0,
        "batches_pending": 0,
        "batches_completed": 0,
        "batches_failed": 0,
        "stored": 0,
        "cached": 0,
        "stale": 0,
        "requeued": 0,
    }
    with engine.connect() as conn:
        waiting = conn.execute(
            select(Job.id, Job.payload).where(
                Job.kind == BATCH_KIND, Job.status == WAITING, Job.run_after <= now
            )
        ).all()
    client = judge.client()
    for job_id, payload in waiting:
        summary["batches_checked"] += 1
        batch = await client.batches.retrieve(payload["batch_id"])
        if batch.status in _PENDING_STATES:
            summary["batches_pending"] += 1
            with transaction(engine) as session:
                session.execute(
                    update(Job)
                    .where(Job.id == job_id)
                    .values(run_after=now + POLL_INTERVAL, updated_at=now)
                )
            continue
        sessions: dict[str, str] = payload.get("sessions", {})
        failed: list[str] = []
        records: list[CallRecord] = []
        answered: set[str] = set()
        if batch.status == "completed" and batch.output_file_id:
            content = await client.files.content(batch.output_file_id)
            for line in content.text.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                sid = str(item.get("custom_id"))
                if sid not in sessions:
                    continue
                answered.add(sid)
                outcome, record = await asyncio.to_thread(
                    _store_line,
                    engine,
                    judge,
                    rules,
                    sid,
                    sessions[sid],
                    item.get("response") or {},
                    after_write,
                )
                records.append(record)
                if outcome == "failed":
                    failed.append(sid)
                else:
                    summary[outcome] += 1
            summary["batches_completed"] += 1
            status, error = "done", None
        else:
            summary["batches_failed"] += 1
            status, error = "dead", f"batch {batch.id} ended as {batch.status}"
        failed += [sid for sid in sessions if sid not in answered and sid not in failed]
        for record in records:
            await judge.record(record)
        with transaction(engine) as session:
            for sid in failed:
                enqueue_evaluation(session, sid, judge="llm", rules=rules)
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(status=status, last_error=error, finished_at=now, updated_at=now)
            )
        summary["requeued"] += len(failed)
    return summary


def collect_batches(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    judge: LLMJudge | None = None,
    now: datetime | None = None,
    after_write: AfterWrite | None = None,
) -> dict[str, Any]:
    """Synchronous `collect_batches_async`."""
    return asyncio.run(
        collect_batches_async(
            engine, settings, rules, judge=judge, now=now, after_write=after_write
        )
    )
