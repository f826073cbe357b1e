"""The evaluation worker: claims jobs, runs the judges, stores results, finishes jobs.

One asyncio loop runs `concurrency` slots; database work runs in threads so a
slow LLM call never blocks the other slots. Per job: the heuristic judge runs
first and its result is committed at once (with the tutor's analytics), then
the LLM judge when one is configured. Every commit that stores a result also
renews or finishes the job's lease, guarded by `locked_by`; a worker that lost
its lease rolls back, so a job is finished exactly once and a session is never
evaluated twice for the same cache key. A job the LLM cannot take now
(JudgeUnavailable) goes back to the queue for later; the heuristic result stands.

Database outages: every database step of a continuous worker that fails with a
database error (refused connection, terminated backend, "database is locked")
waits and retries with capped exponential backoff and jitter (one slot probes,
the others wait for it), logging one line per outage, not per try. A job whose
step failed while the database was unreachable goes back to the queue without
using an attempt once the database is back (see `evaluation.health`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine, text

from tutorscore.analytics.service import AfterWrite
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import transaction
from tutorscore.errors import NotFound
from tutorscore.evaluation.health import (
    DEAD,
    HEARTBEAT_SECONDS,
    RUNNING,
    STOPPED,
    DatabaseOutage,
    WorkerStatus,
    WorkerStopping,
    is_database_error,
    short_error,
)
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.judge import EvaluationResult, Judge, JudgeUnavailable
from tutorscore.evaluation.notify import JobListener
from tutorscore.evaluation.queue import (
    ClaimedJob,
    claim_jobs,
    complete_job,
    enqueue_evaluations,
    extend_lease,
    fail_job,
    prune_done_jobs,
    release_job,
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
PRUNE_EVERY_SECONDS = 3600.0
T = TypeVar("T")


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
        once: bool = False,
        status: WorkerStatus | None = None,
        after_write: AfterWrite | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules
        # what follows each tutor's metrics update (tutorscore.flows.metrics.after_metrics)
        self.after_write = after_write
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
        self.once = once
        self.status = status
        self.outage = DatabaseOutage(
            base_seconds=self.cfg.db_retry_base_seconds,
            max_seconds=self.cfg.db_retry_max_seconds,
            worker_id=worker_id,
            status=status,
        )
        self._probing = asyncio.Lock()
        self.wake = asyncio.Event()  # set by the job listener (Postgres NOTIFY)
        self.listener: JobListener | None = None
        self.listener_stop = threading.Event()

    # -- database availability -----------------------------------------------------------

    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def _database_answers(self) -> bool:
        try:
            await asyncio.to_thread(self._ping)
        except Exception as exc:
            if not is_database_error(exc):
                raise
            return False
        return True

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.1))

    async def _wait_for_database(self, exc: BaseException) -> None:
        """Back off until the database answers again. One slot probes (capped
        exponential backoff with jitter); the others wait for its verdict."""
        if self._probing.locked():
            async with self._probing:
                pass
        else:
            async with self._probing:
                delay = self.outage.failed(exc)
                while True:
                    await self._sleep(delay)
                    if self.stop.is_set():
                        break
                    try:
                        await asyncio.to_thread(self._ping)
                        break
                    except Exception as ping_exc:
                        if not is_database_error(ping_exc):
                            raise
                        delay = self.outage.failed(ping_exc)
        if self.stop.is_set():
            raise WorkerStopping from exc

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a database step in a thread; a continuous worker retries it through
        database errors (backoff above) until it succeeds or the worker stops."""
        while True:
            try:
                result = await asyncio.to_thread(fn, *args, **kwargs)
            except Exception as exc:
                if self.once or not is_database_error(exc):
                    raise
                await self._wait_for_database(exc)
                continue
            self.outage.succeeded()
            return result

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
        _, cached = store_evaluation(
            s, info, judge, result, rules=self.rules, after_write=self.after_write
        )
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

    def _release(self, job: ClaimedJob, reason: str) -> str | None:
        with transaction(self.engine) as s:
            return "queued" if release_job(s, job, reason) else None

    def _prune(self) -> int:
        with transaction(self.engine) as s:
            return prune_done_jobs(s, older_than_days=self.cfg.done_job_retention_days)

    # -- the job --------------------------------------------------------------------------

    @property
    def judges(self) -> list[Judge]:
        """Heuristic first (stored at once), then the LLM judge when configured."""
        return [self.heuristic] + ([self.llm] if self.llm is not None else [])

    async def _heartbeat(self, job: ClaimedJob) -> None:
        interval = max(0.5, self.cfg.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                if not await asyncio.to_thread(self._extend, job):
                    return
            except Exception as exc:  # the next beat tries again; the job step sees it too
                if not is_database_error(exc):
                    raise

    async def _call_judge(self, judge: Judge, info: TranscriptInfo, job: ClaimedJob) -> Any:
        beat = asyncio.create_task(self._heartbeat(job))
        try:
            return await judge.evaluate(info.turns, session_id=info.session_id)
        finally:
            beat.cancel()

    async def _judge_step(
        self, job: ClaimedJob, judge: Judge, last: bool, info: TranscriptInfo | None
    ) -> tuple[TranscriptInfo | None, bool]:
        """One judge's evaluation of the job, stored: (the transcript, whether cached)."""
        if hasattr(judge, "evaluate_sync"):
            return await asyncio.to_thread(self._sync_step, job, judge, last)
        if info is None:
            info = await asyncio.to_thread(self._load, job)
        result = None
        if not await asyncio.to_thread(self._is_cached, info, judge):
            result = await self._call_judge(judge, info, job)
        cached = await asyncio.to_thread(self._store_step, job, info, judge, result, last)
        return info, cached

    async def _run_judges(self, job: ClaimedJob) -> None:
        """Every judge of the worker on the job, in order (the last one finishes the job)."""
        if job.judge == "llm" and self.llm is None:
            raise RuntimeError("the LLM judge is not configured on this worker")
        info: TranscriptInfo | None = None
        judges = self.judges
        for k, judge in enumerate(judges):
            info, cached = await self._judge_step(job, judge, k == len(judges) - 1, info)
            if cached:
                self.stats.cached += 1
            else:
                self.stats.evaluated += 1
                if self.debounce and info is not None:
                    self.dirty_tutors.add(info.tutor_id)
        self.stats.done += 1

    async def process(self, job: ClaimedJob) -> None:
        try:
            await self._run_judges(job)
        except LeaseLost:
            self.stats.lost += 1
            log.warning("job %s: lease lost to another worker; dropped", job.id)
        except JudgeUnavailable as exc:
            status = await self._db(
                self._fail,
                job,
                f"judge unavailable: {exc}",
                unavailable=True,
                retry_after_s=exc.retry_after_s,
            )
            self._count_failure(status)
        except NotFound as exc:  # no such session or no transcript: retrying cannot help
            status = await self._db(self._fail, job, str(exc), permanent=True)
            self._count_failure(status)
        except Exception as exc:
            if not self.once and is_database_error(exc):
                status = await self._after_database_error(job, exc)
            else:
                log.exception("job %s (session %s) failed", job.id, job.session_id)
                status = await self._db(self._fail, job, f"{type(exc).__name__}: {exc}")
            self._count_failure(status)
        if self.progress is not None:
            self.progress(self.stats)

    async def _after_database_error(self, job: ClaimedJob, exc: BaseException) -> str | None:
        """A job step failed with a database error. When the database is unreachable
        (or dropped the connection) it is not the job's fault: once the database is
        back the job is released without using an attempt. When the database answers,
        the error was this job's (a lock, a timeout): an ordinary failure."""
        invalidated = bool(getattr(exc, "connection_invalidated", False))
        if invalidated or not await self._database_answers():
            self.outage.failed(exc)
            return await self._db(self._release, job, f"database unavailable: {short_error(exc)}")
        log.warning("job %s (session %s) failed: %s", job.id, job.session_id, short_error(exc))
        return await self._db(self._fail, job, short_error(exc, 4000))

    def _count_failure(self, status: str | None) -> None:
        if status == "dead":
            self.stats.dead += 1
        elif status == "queued":
            self.stats.retried += 1
        else:
            self.stats.lost += 1

    def _refresh(self, tutor_id: str) -> bool:
        """Update one tutor's metrics; False on a database error (try again later)."""
        try:
            with transaction(self.engine) as s:
                refresh_tutor_metrics(
                    s, tutor_id, self.rules, savepoint=False, after_write=self.after_write
                )
        except Exception as exc:
            if is_database_error(exc) and not self.once:
                return False
            log.exception(
                "analytics update for tutor %s failed; the nightly run fixes it", tutor_id
            )
        return True

    async def flush_analytics(self) -> None:
        if self.outage.active:  # the slots are waiting for the database; so do we
            return
        tutors, self.dirty_tutors = self.dirty_tutors, set()
        for k, tutor_id in enumerate(sorted(tutors)):
            if not await asyncio.to_thread(self._refresh, tutor_id):
                self.dirty_tutors.update(sorted(tutors)[k:])
                return

    async def analytics_loop(self) -> None:
        """Refresh each tutor with new evaluations at most once per debounce interval.

        Many sessions of one tutor evaluated together cost one analytics update,
        not one each; a crash before the refresh leaves the metrics to the next
        update or the nightly full recompute.
        """
        while not self.slots_done.is_set():
            try:
                await asyncio.wait_for(self.slots_done.wait(), timeout=self.debounce)
            except TimeoutError:
                pass
            await self.flush_analytics()
        await self.flush_analytics()

    async def _idle(self) -> None:
        """Sleep one poll interval, waking early when asked to stop or when a job
        notification arrives (Postgres LISTEN, see evaluation.notify). While the
        listener is connected the interval is `listen_poll_seconds`, else `poll_seconds`."""
        listening = self.listener is not None and self.listener.connected.is_set()
        interval = self.cfg.listen_poll_seconds if listening else self.cfg.poll_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + interval
        while not self.stop.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=min(left, 0.1))
            except TimeoutError:
                continue
            self.wake.clear()
            return

    def start_listener(self) -> None:
        """On Postgres, LISTEN for job notifications in a thread (continuous workers)."""
        if self.engine.dialect.name != "postgresql":
            return
        loop = asyncio.get_running_loop()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(self.wake.set)
            except RuntimeError:  # the loop has closed: the worker is gone
                pass

        self.listener = JobListener(
            self.engine,
            wake,
            stop=self.listener_stop,
            retry_max_seconds=self.cfg.db_retry_max_seconds,
        )
        self.listener.start()

    async def slot(self, k: int, *, once: bool) -> None:
        slot_id = f"{self.worker_id}/{k}"
        try:
            while not self.stop.is_set():
                try:
                    claimed = await self._db(self._claim, slot_id)
                except WorkerStopping:
                    raise
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
        except WorkerStopping:
            log.info("slot %s: stopped while waiting for the database", slot_id)

    async def heartbeat_loop(self) -> None:
        """Tell the status the event loop is alive (/healthz reads its age)."""
        if self.status is None:
            return
        while not self.slots_done.is_set():
            self.status.beat()
            try:
                await asyncio.wait_for(self.slots_done.wait(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                pass

    async def prune_loop(self) -> None:
        """Delete done jobs older than `done_job_retention_days`, at start and hourly."""
        if self.cfg.done_job_retention_days <= 0:
            return
        while not self.stop.is_set():
            try:
                deleted = await self._db(self._prune)
            except WorkerStopping:
                return
            except Exception:
                log.exception("pruning done jobs failed; trying again in an hour")
            else:
                if deleted:
                    log.info("pruned %d done jobs", deleted)
            await self._sleep(PRUNE_EVERY_SECONDS)


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
    status: WorkerStatus | None = None,
    after_write: AfterWrite | None = None,
) -> WorkerStats:
    """See `run_worker`; for callers already inside an event loop."""
    try:
        stats = await _run(
            engine, settings, rules, once=once, concurrency=concurrency,
            stop_event=stop_event, worker_id=worker_id, judges=judges, use_llm=use_llm,
            progress=progress, status=status, after_write=after_write,
        )  # fmt: skip
    except BaseException as exc:
        if status is not None:
            status.set(DEAD, short_error(exc))
        raise
    if status is not None:
        status.set(STOPPED)
    return stats


def _judges(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    judges: Sequence[Judge] | None,
    use_llm: bool | None,
) -> tuple[Judge, Judge | None]:
    """(heuristic, LLM judge or None): the given ones, else from the configuration."""
    if judges:
        return judges[0], (judges[1] if len(judges) > 1 else None)
    heuristic = HeuristicJudge(rules.evaluation.heuristic)
    want_llm = settings.llm_enabled if use_llm is None else use_llm
    llm = build_llm_judge(engine, settings, rules) if want_llm else None
    return heuristic, llm


def _slots(
    settings: Settings, rules: RulesConfig, llm: Judge | None, concurrency: int | None
) -> int:
    """Concurrent job slots: as asked, else the configured ones (more with an LLM)."""
    if concurrency is not None:
        return concurrency
    if llm is None:
        return rules.evaluation.worker_concurrency
    return max(rules.evaluation.worker_concurrency, settings.llm_max_concurrency)


async def _run(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    once: bool,
    concurrency: int | None,
    stop_event: threading.Event | None,
    worker_id: str | None,
    judges: Sequence[Judge] | None,
    use_llm: bool | None,
    progress: Callable[[WorkerStats], None] | None,
    status: WorkerStatus | None,
    after_write: AfterWrite | None,
) -> WorkerStats:
    heuristic, llm = _judges(engine, settings, rules, judges, use_llm)
    concurrency = _slots(settings, rules, llm, concurrency)
    worker = Worker(
        engine,
        rules,
        heuristic=heuristic,
        llm=llm,
        worker_id=worker_id or new_worker_id(),
        stop_event=stop_event or threading.Event(),
        progress=progress,
        once=once,
        status=status,
        after_write=after_write,
    )
    if status is not None:
        status.worker_id = worker.worker_id
        status.set(RUNNING)
    log.info(
        "worker %s: %d slots, judges: %s",
        worker.worker_id,
        concurrency,
        ", ".join(j.name for j in worker.judges),
    )
    batcher = None
    if settings.llm_batch_backlog and llm is not None:
        batcher = asyncio.create_task(
            _batch_loop(
                engine, settings, rules, llm, worker.stop, once=once, after_write=after_write
            )
        )
    if batcher is not None and once:
        await batcher  # hand the backlog to the batch first, then work the rest
        batcher = None
    flusher = asyncio.create_task(worker.analytics_loop()) if worker.debounce else None
    chores: list[asyncio.Task[None]] = [asyncio.create_task(worker.heartbeat_loop())]
    if not once:
        chores.append(asyncio.create_task(worker.prune_loop()))
        worker.start_listener()
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
        for chore in chores:
            chore.cancel()
        worker.listener_stop.set()
    return worker.stats


async def _batch_loop(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    llm: Judge,
    stop: threading.Event,
    *,
    once: bool,
    after_write: AfterWrite | None,
) -> None:
    """With TUTORSCORE_LLM_BATCH_BACKLOG: hand the non-urgent LLM backlog to the
    provider's batch interface and collect finished batches, every BATCH_PASS_SECONDS."""
    from tutorscore.evaluation.batch import collect_batches_async, send_backlog_to_batch_async
    from tutorscore.evaluation.llm_judge import LLMJudge

    judge = llm if isinstance(llm, LLMJudge) else None
    while True:
        try:
            await collect_batches_async(
                engine, settings, rules, judge=judge, after_write=after_write
            )
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
    status: WorkerStatus | None = None,
    after_write: AfterWrite | None = None,
) -> WorkerStats:
    """Process evaluation jobs until `stop_event` is set (or, with `once`, the queue is empty).

    `judges`: [primary, optional second] to use instead of the heuristic judge
    and the configured LLM judge. `use_llm=False` keeps the LLM judge off even
    when it is configured. `status` (a `WorkerStatus`) is kept up to date for
    health checks: running, database_unavailable, stopped, or dead with the error.
    `after_write` follows every tutor metrics update (`tutorscore.flows.metrics`
    passes churn scoring, alerts and webhooks; without it the rules' labels stand).
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
            status=status,
            after_write=after_write,
        )
    )


async def evaluate_pending(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    *,
    judge: str = "heuristic",
    progress: Callable[[WorkerStats], None] | None = None,
    after_write: AfterWrite | None = None,
) -> int:
    """Queue every transcript not yet evaluated by `judge` and process the queue; new count."""
    with transaction(engine) as s:
        enqueue_evaluations(s, judge=judge, pending=True, rules=rules)
    stats = await run_worker_async(
        engine,
        settings,
        rules,
        once=True,
        use_llm=(judge == "llm"),
        progress=progress,
        after_write=after_write,
    )
    return stats.evaluated
