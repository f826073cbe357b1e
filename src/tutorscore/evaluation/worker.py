"""The evaluation worker: claims jobs, runs the judges, stores results, finishes jobs.

One asyncio loop runs `concurrency` slots; database work runs in threads so a
slow LLM call never blocks the other slots. Per job: the heuristic judge runs
first and its result is committed at once (with the tutor's analytics), then
the LLM judge when one is configured. Every commit that stores a result also
renews or finishes the job's lease, guarded by `locked_by`; a worker that lost
its lease rolls back, so a job is finished exactly once and a session is never
evaluated twice for the same cache key. A job the LLM cannot take now
(JudgeUnavailable) goes back to the queue for later; the heuristic result stands.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import transaction
from tutorscore.errors import NotFound
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.judge import EvaluationResult, Judge, JudgeUnavailable
from tutorscore.evaluation.queue import (
    ClaimedJob,
    claim_jobs,
    complete_job,
    enqueue_evaluations,
    extend_lease,
    fail_job,
)
from tutorscore.evaluation.service import (
    TranscriptInfo,
    find_cached,
    insert_evaluation,
    load_transcript,
    refresh_tutor_metrics,
    store_evaluation,
)

log = logging.getLogger(__name__)
HEURISTIC_CLAIM_BATCH = 8
BATCH_PASS_SECONDS = 60


class LeaseLost(Exception):
    """Another worker took the job over (our lease expired): roll back and drop it."""


@dataclass
class WorkerStats:
    done: int = 0  # jobs finished
    evaluated: int = 0  # new evaluations stored
    cached: int = 0  # judge calls saved by the cache
    retried: int = 0  # jobs sent back to the queue (failure or judge unavailable)
    dead: int = 0  # jobs dead-lettered
    lost: int = 0  # leases lost to another worker

    @property
    def finished(self) -> int:
        """Jobs that will not come back (done or dead): what a progress bar counts."""
        return self.done + self.dead


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_llm_judge(engine: Engine, settings: Settings, rules: RulesConfig) -> Judge | None:
    """The LLM judge when configured (TUTORSCORE_LLM_BASE_URL), else None."""
    if not settings.llm_enabled:
        return None
    from tutorscore.evaluation.llm_judge import LLMJudge

    return LLMJudge.from_settings(settings, engine=engine)


def warm_up() -> None:
    """Import what the analytics update needs before the first job.

    The incremental update may load the churn model (scikit-learn takes seconds
    to import); doing that inside the first job's transaction would hold the
    SQLite write lock, and the other workers, for that long.
    """
    for module in ("tutorscore.analytics.service", "tutorscore.prediction.churn"):
        try:
            importlib.import_module(module)
        except ImportError:
            log.debug("%s not available", module)


class Worker:
    def __init__(
        self,
        engine: Engine,
        rules: RulesConfig,
        *,
        heuristic: Judge,
        llm: Judge | None,
        worker_id: str,
        stop_event: threading.Event,
        progress: Callable[[WorkerStats], None] | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.cfg = rules.evaluation
        self.heuristic = heuristic
        self.llm = llm
        self.worker_id = worker_id
        self.stop = stop_event
        self.progress = progress
        self.stats = WorkerStats()
        # Tutors whose metrics wait for a debounced refresh (see analytics_loop).
        self.debounce = self.cfg.analytics_debounce_seconds
        self.dirty_tutors: set[str] = set()
        self.slots_done = asyncio.Event()

    # -- database steps (run in threads) ------------------------------------------------

    @property
    def claim_batch(self) -> int:
        """Jobs claimed at once by a slot: a few for the millisecond heuristic judge
        (fewer claim transactions), one when a slow LLM call follows."""
        return 1 if self.llm is not None else HEURISTIC_CLAIM_BATCH

    def _claim(self, slot: str) -> list[ClaimedJob]:
        with transaction(self.engine) as s:
            return claim_jobs(s, slot, limit=self.claim_batch, lease_seconds=self.cfg.lease_seconds)

    def _fence(self, s: Any, job: ClaimedJob, last: bool) -> None:
        ok = (
            complete_job(s, job)
            if last
            else extend_lease(s, job, lease_seconds=self.cfg.lease_seconds)
        )
        if not ok:
            raise LeaseLost(f"job {job.id}: lease lost")

    def _sync_step(self, job: ClaimedJob, judge: Judge, last: bool) -> tuple[TranscriptInfo, bool]:
        """Load, evaluate (fast sync judge), store and renew/finish in one transaction."""
        with transaction(self.engine) as s:
            info = load_transcript(s, job.session_id)
            cached = find_cached(s, job.session_id, judge, info.transcript_hash) is not None
            if not cached:
                result: EvaluationResult = judge.evaluate_sync(info.turns)  # type: ignore[attr-defined]
                cached = self._store(s, info, judge, result)
            self._fence(s, job, last)
        return info, cached

    def _store(self, s: Any, info: TranscriptInfo, judge: Judge, result: EvaluationResult) -> bool:
        """Insert the result; True when it was already stored (cache hit)."""
        if self.debounce:
            return insert_evaluation(s, info, judge, result) is None
        _, cached = store_evaluation(s, info, judge, result, rules=self.rules)
        return cached

    def _load(self, job: ClaimedJob) -> TranscriptInfo:
        with transaction(self.engine) as s:
            return load_transcript(s, job.session_id)

    def _is_cached(self, info: TranscriptInfo, judge: Judge) -> bool:
        with transaction(self.engine) as s:
            return find_cached(s, info.session_id, judge, info.transcript_hash) is not None

    def _store_step(
        self,
        job: ClaimedJob,
        info: TranscriptInfo,
        judge: Judge,
        result: EvaluationResult | None,
        last: bool,
    ) -> bool:
        """Store an async judge's result (None: it was cached) and renew/finish the job."""
        cached = result is None
        with transaction(self.engine) as s:
            if result is not None:
                cached = self._store(s, info, judge, result)
            self._fence(s, job, last)
        return cached

    def _extend(self, job: ClaimedJob) -> bool:
        with transaction(self.engine) as s:
            return extend_lease(s, job, lease_seconds=self.cfg.lease_seconds)

    def _fail(self, job: ClaimedJob, reason: str, **kwargs: Any) -> str | None:
        with transaction(self.engine) as s:
            return fail_job(s, job, reason, rules=self.rules, **kwargs)

    # -- the job --------------------------------------------------------------------------

    @property
    def judges(self) -> list[Judge]:
        """Heuristic first (stored at once), then the LLM judge when configured."""
        return [self.heuristic] + ([self.llm] if self.llm is not None else [])

    async def _heartbeat(self, job: ClaimedJob) -> None:
        interval = max(0.5, self.cfg.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            if not await asyncio.to_thread(self._extend, job):
                return

    async def _call_judge(self, judge: Judge, info: TranscriptInfo, job: ClaimedJob) -> Any:
        beat = asyncio.create_task(self._heartbeat(job))
        try:
            return await judge.evaluate(info.turns, session_id=info.session_id)
        finally:
            beat.cancel()

    async def process(self, job: ClaimedJob) -> None:
        try:
            if job.judge == "llm" and self.llm is None:
                raise RuntimeError("the LLM judge is not configured on this worker")
            info: TranscriptInfo | None = None
            judges = self.judges
            for k, judge in enumerate(judges):
                last = k == len(judges) - 1
                if hasattr(judge, "evaluate_sync"):
                    info, cached = await asyncio.to_thread(self._sync_step, job, judge, last)
                else:
                    if info is None:
                        info = await asyncio.to_thread(self._load, job)
                    result = None
                    if not await asyncio.to_thread(self._is_cached, info, judge):
                        result = await self._call_judge(judge, info, job)
                    cached = await asyncio.to_thread(
                        self._store_step, job, info, judge, result, last
                    )
                if cached:
                    self.stats.cached += 1
                else:
                    self.stats.evaluated += 1
                    if self.debounce and info is not None:
                        self.dirty_tutors.add(info.tutor_id)
            self.stats.done += 1
        except LeaseLost:
            self.stats.lost += 1
            log.warning("job %s: lease lost to another worker; dropped", job.id)
        except JudgeUnavailable as exc:
            status = await asyncio.to_thread(
                self._fail,
                job,
                f"judge unavailable: {exc}",
                unavailable=True,
                retry_after_s=exc.retry_after_s,
            )
            self._count_failure(status)
        except NotFound as exc:  # no such session or no transcript: retrying cannot help
            status = await asyncio.to_thread(self._fail, job, str(exc), permanent=True)
            self._count_failure(status)
        except Exception as exc:
            log.exception("job %s (session %s) failed", job.id, job.session_id)
            status = await asyncio.to_thread(self._fail, job, f"{type(exc).__name__}: {exc}")
            self._count_failure(status)
        if self.progress is not None:
            self.progress(self.stats)

    def _count_failure(self, status: str | None) -> None:
        if status == "dead":
            self.stats.dead += 1
        elif status == "queued":
            self.stats.retried += 1
        else:
            self.stats.lost += 1

    def _refresh(self, tutor_id: str) -> None:
        try:
            with transaction(self.engine) as s:
                refresh_tutor_metrics(s, tutor_id, self.rules, savepoint=False)
        except Exception:
            log.exception(
                "analytics update for tutor %s failed; the nightly run fixes it", tutor_id
            )

    async def flush_analytics(self) -> None:
        tutors, self.dirty_tutors = self.dirty_tutors, set()
        for tutor_id in sorted(tutors):
            await asyncio.to_thread(self._refresh, tutor_id)

    async def analytics_loop(self, warming: asyncio.Task[None] | None = None) -> None:
        """Refresh each tutor with new evaluations at most once per debounce interval.

        Many sessions of one tutor evaluated together cost one analytics update,
        not one each; a crash before the refresh leaves the metrics to the next
        update or the nightly full recompute.
        """
        if warming is not None:
            await warming  # jobs run meanwhile; analytics waits for its imports
        while not self.slots_done.is_set():
            try:
                await asyncio.wait_for(self.slots_done.wait(), timeout=self.debounce)
            except TimeoutError:
                pass
            await self.flush_analytics()
        await self.flush_analytics()

    async def _idle(self) -> None:
        """Sleep one poll interval, waking early when asked to stop."""
        deadline = asyncio.get_running_loop().time() + self.cfg.poll_seconds
        while not self.stop.is_set():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.1))

    async def slot(self, k: int, *, once: bool) -> None:
        slot_id = f"{self.worker_id}/{k}"
        while not self.stop.is_set():
            try:
                claimed = await asyncio.to_thread(self._claim, slot_id)
            except Exception:
                if once:
                    raise
                log.exception("claiming a job failed; retrying")
                await self._idle()
                continue
            if not claimed:
                if once:
                    return
                await self._idle()
                continue
            for job in claimed:  # a claimed batch is finished even when asked to stop
                await self.process(job)


async def run_worker_async(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    once: bool = False,
    concurrency: int | None = None,
    stop_event: threading.Event | None = None,
    worker_id: str | None = None,
    judges: Sequence[Judge] | None = None,
    use_llm: bool | None = None,
    progress: Callable[[WorkerStats], None] | None = None,
) -> WorkerStats:
    """See `run_worker`; for callers already inside an event loop."""
    if judges:
        heuristic, llm = judges[0], (judges[1] if len(judges) > 1 else None)
    else:
        heuristic = HeuristicJudge(rules.evaluation.heuristic)
        want_llm = settings.llm_enabled if use_llm is None else use_llm
        llm = build_llm_judge(engine, settings, rules) if want_llm else None
    if concurrency is None:
        concurrency = rules.evaluation.worker_concurrency
        if llm is not None:
            concurrency = max(concurrency, settings.llm_max_concurrency)
    worker = Worker(
        engine,
        rules,
        heuristic=heuristic,
        llm=llm,
        worker_id=worker_id or new_worker_id(),
        stop_event=stop_event or threading.Event(),
        progress=progress,
    )
    log.info(
        "worker %s: %d slots, judges: %s",
        worker.worker_id,
        concurrency,
        ", ".join(j.name for j in worker.judges),
    )
    batcher = (
        asyncio.create_task(_batch_loop(engine, settings, rules, llm, worker.stop, once=once))
        if settings.llm_batch_backlog and llm is not None
        else None
    )
    if batcher is not None and once:
        await batcher  # hand the backlog to the batch first, then work the rest
        batcher = None
    warming = asyncio.create_task(asyncio.to_thread(warm_up))
    if not worker.debounce:
        await warming  # analytics runs inside each job: import first
    flusher = asyncio.create_task(worker.analytics_loop(warming)) if worker.debounce else None
    try:
        if llm is not None and hasattr(heuristic, "evaluate_sync"):
            # the LLM path as a pipeline (claim + heuristic, calls, batched writes)
            from tutorscore.evaluation.pipeline import LLMPipeline

            await LLMPipeline(worker, llm, callers=max(1, concurrency)).run(once=once)
        else:
            await asyncio.gather(*(worker.slot(k, once=once) for k in range(max(1, concurrency))))
    finally:
        worker.slots_done.set()
        if flusher is not None:
            await flusher
        if batcher is not None:
            batcher.cancel()
    return worker.stats


async def _batch_loop(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    llm: Judge,
    stop: threading.Event,
    *,
    once: bool,
) -> None:
    """With TUTORSCORE_LLM_BATCH_BACKLOG: hand the non-urgent LLM backlog to the
    provider's batch interface and collect finished batches, every BATCH_PASS_SECONDS."""
    from tutorscore.evaluation.batch import collect_batches_async, send_backlog_to_batch_async
    from tutorscore.evaluation.llm_judge import LLMJudge

    judge = llm if isinstance(llm, LLMJudge) else None
    while True:
        try:
            await collect_batches_async(engine, settings, rules, judge=judge)
            batch_id = await send_backlog_to_batch_async(engine, settings, rules, judge=judge)
            if batch_id:
                log.info("backlog sent to provider batch %s", batch_id)
        except Exception:  # the real-time path goes on; the next pass retries
            log.exception("batch pass failed")
        if once:
            return
        for _ in range(BATCH_PASS_SECONDS):
            if stop.is_set():
                return
            await asyncio.sleep(1)


def run_worker(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    once: bool = False,
    concurrency: int | None = None,
    stop_event: threading.Event | None = None,
    worker_id: str | None = None,
    judges: Sequence[Judge] | None = None,
    use_llm: bool | None = None,
    progress: Callable[[WorkerStats], None] | None = None,
) -> WorkerStats:
    """Process evaluation jobs until `stop_event` is set (or, with `once`, the queue is empty).

    `judges`: [primary, optional second] to use instead of the heuristic judge
    and the configured LLM judge. `use_llm=False` keeps the LLM judge off even
    when it is configured.
    """
    return asyncio.run(
        run_worker_async(
            engine,
            settings,
            rules,
            once=once,
            concurrency=concurrency,
            stop_event=stop_event,
            worker_id=worker_id,
            judges=judges,
            use_llm=use_llm,
            progress=progress,
        )
    )


async def evaluate_pending(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    judge: str = "heuristic",
    progress: Callable[[WorkerStats], None] | None = None,
) -> int:
    """Queue every transcript not yet evaluated by `judge` and process the queue; new count."""
    with transaction(engine) as s:
        enqueue_evaluations(s, judge=judge, pending=True, rules=rules)
    stats = await run_worker_async(
        engine, settings, rules, once=True, use_llm=(judge == "llm"), progress=progress
    )
    return stats.evaluated
