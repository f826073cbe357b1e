"""The worker's LLM path as a pipeline, so calls never wait on local work.

With a slow judge (the LLM) after the heuristic one, a job has four stages that
run concurrently on different jobs instead of one after another in a slot:

1. **feeder** (one task, database thread): claims a few jobs at a time, loads
   their transcripts and tutor names, runs the heuristic judge and stores its
   results in one transaction per claim, checks the LLM cache and prepares the
   redacted LLM request. It keeps only as many jobs in hand as the LLM limits
   can send in a few seconds (`held_cap`), so two workers share a backlog evenly
   and a stopped worker hands back little.
2. **callers** (`concurrency` coroutines): take a prepared job and call the
   LLM judge; the rate limiter paces them. A caller never touches the database:
   the judge's ledger is held in memory (`BufferedLedger`) until the writer
   stores it.
3. **writer** (one task, database thread): stores finished jobs in small
   batches, one transaction each: the LLM result, the job's completion (guarded
   by the lease, see below), failures back to the queue, and the ledger rows of
   the calls made since the last batch. A batch that fails is retried with
   backoff; when the database keeps failing the jobs' leases run out and
   another worker (or this one, later) takes them over.
4. **heartbeat** (one task): renews the leases of every job in hand in one
   transaction every lease/3 seconds.

Analytics stays the worker's debounced refresh (`Worker.analytics_loop`).

Exactly once: each job's completion and its result are one transaction, and
`complete_job` only matches a job still leased to this worker; a job whose lease
was taken over is dropped without storing anything (the writer skips its insert).
The result insert is ON CONFLICT DO NOTHING on the cache key, so a session is
never stored twice even when two workers raced.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models.core import Tutor
from tutorscore.errors import NotFound
from tutorscore.evaluation.costs import BufferedLedger, insert_calls, spent_on_day_in
from tutorscore.evaluation.health import WorkerStopping, is_database_error
from tutorscore.evaluation.judge import EvaluationResult, Judge, JudgeUnavailable
from tutorscore.evaluation.queue import ClaimedJob, claim_jobs, complete_job, extend_lease, fail_job
from tutorscore.evaluation.service import (
    TranscriptInfo,
    find_cached,
    insert_evaluation,
    load_transcript,
)

if TYPE_CHECKING:
    from tutorscore.evaluation.llm_judge import Prepared
    from tutorscore.evaluation.worker import Worker

log = logging.getLogger(__name__)
T = TypeVar("T")

CLAIM_BATCH = 16  # jobs claimed (and heuristically scored) in one transaction, at most
WRITE_BATCH = 64  # finished jobs stored in one transaction, at most
WRITE_GATHER_S = 0.05  # after the first finished job, wait this long for more to batch
LOOKAHEAD_S = 6.0  # jobs in hand: what the LLM limits can send in this many seconds
WRITE_RETRY_MAX_S = 10.0
SPENT_REFRESH_S = 10.0  # re-read today's spend (other processes' calls) at most this often


@dataclass
class Item:
    """One claimed job on its way through the pipeline."""

    job: ClaimedJob
    info: TranscriptInfo | None = None
    names: list[str] = field(default_factory=list)
    prepared: Prepared | None = None
    llm_cached: bool = False  # the LLM result for this transcript is already stored
    result: EvaluationResult | None = None
    error: BaseException | None = None
    lost: bool = False  # the lease went to another worker (heartbeat or fence)
    write_failures: int = 0


@dataclass
class _Fed:
    """What the feeder's transaction did for one item, for the worker's counters."""

    heuristic_cached: bool = False
    heuristic_new: bool = False


class LLMPipeline:
    """Runs a worker's jobs through feeder, callers, writer and heartbeat (module docstring)."""

    def __init__(
        self,
        worker: Worker,
        llm: Judge,
        *,
        callers: int,
        claim: Callable[[str, int], list[ClaimedJob]] | None = None,
    ) -> None:
        self.worker = worker
        self.engine = worker.engine
        self.cfg = worker.cfg
        self.heuristic = worker.heuristic
        self.llm = llm
        self.callers = max(1, callers)
        self._claim_fn = claim or self._claim
        limiter = getattr(llm, "limiter", None)
        rpm = getattr(limiter, "rpm", None)
        if isinstance(rpm, int) and rpm > 0:
            self.held_cap = max(
                4, min(self.callers + CLAIM_BATCH, math.ceil(rpm / 60 * LOOKAHEAD_S))
            )
        else:
            self.held_cap = self.callers + CLAIM_BATCH
        self.held: dict[int, Item] = {}  # claimed, not yet written
        self._ready: asyncio.Queue[Item | None] = asyncio.Queue()
        self._written: asyncio.Queue[Item | None] = asyncio.Queue()
        self._changed = asyncio.Event()  # an item left the feeder's hands or was written
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="llm-pipeline-db")
        self._ledger: BufferedLedger | None = None
        self._spent_read_at = time.monotonic()
        self._restore_ledger: Any = None

    # -- helpers --------------------------------------------------------------------

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run database work on the pipeline's own threads (not the default pool, which
        analytics and others share), so a stage never queues behind another's work."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def _claim(self, slot: str, limit: int) -> list[ClaimedJob]:
        with transaction(self.engine) as s:
            return claim_jobs(s, slot, limit=limit, lease_seconds=self.cfg.lease_seconds)

    def _buffer_ledger(self) -> None:
        """Hold the LLM judge's ledger rows in memory; the writer stores them in its batches."""
        from tutorscore.evaluation.costs import DbLedger

        ledger = getattr(self.llm, "ledger", None)
        if isinstance(ledger, DbLedger):
            self._restore_ledger = ledger
            self._ledger = BufferedLedger()
            with self.engine.connect() as conn:
                self._ledger.committed(spent_on_day_in(conn, utcnow()))
            self.llm.ledger = self._ledger  # type: ignore[attr-defined]

    # -- stage 1: feeder --------------------------------------------------------------

    def _feed_batch(self, items: list[Item]) -> list[_Fed]:
        """Load, heuristic judge + store, LLM cache check and lease fence: one transaction."""
        fed = [_Fed() for _ in items]
        with transaction(self.engine) as s:
            for item, out in zip(items, fed, strict=True):
                self._feed_one(s, item, out)
            tutor_ids = {i.info.tutor_id for i in items if i.info is not None}
            names = (
                dict(
                    s.execute(
                        select(Tutor.tutor_id, Tutor.name).where(Tutor.tutor_id.in_(tutor_ids))
                    ).all()
                )
                if tutor_ids
                else {}
            )
        for item in items:
            if item.info is not None and item.error is None and not item.lost:
                name = names.get(item.info.tutor_id)
                item.names = [name] if name else []
                item.prepared = self._prepare(item)
        return fed

    def _feed_one(self, s: Any, item: Item, out: _Fed) -> None:
        job = item.job
        if job.judge == "llm" and self.llm is None:  # pragma: no cover - pipeline implies an LLM
            item.error = RuntimeError("the LLM judge is not configured on this worker")
            return
        # No savepoints: on SQLite one would start a read transaction that cannot take the
        # write lock later. An error of ours (no transcript, a judge bug) happens before this
        # job writes anything, so it fails this job only; a database error fails the
        # transaction and the feeder retries the claim's jobs one by one.
        try:
            info = load_transcript(s, job.session_id)
            item.info = info
            result: EvaluationResult | None = None
            if find_cached(s, job.session_id, self.heuristic, info.transcript_hash) is None:
                result = self.heuristic.evaluate_sync(info.turns)  # type: ignore[attr-defined]
            item.llm_cached = (
                find_cached(s, job.session_id, self.llm, info.transcript_hash) is not None
            )
        except DBAPIError:
            raise
        except Exception as exc:
            item.error = exc
            return
        if not extend_lease(s, job, lease_seconds=self.cfg.lease_seconds):
            item.lost = True  # another worker has it: store nothing for it
            return
        if result is None:
            out.heuristic_cached = True
        elif insert_evaluation(s, info, self.heuristic, result) is None:
            out.heuristic_cached = True
        else:
            out.heuristic_new = True

    def _prepare(self, item: Item) -> Prepared | None:
        prepare = getattr(self.llm, "prepare", None)
        if prepare is None or item.info is None or item.llm_cached:
            return None
        try:
            prepared: Prepared = prepare(item.info.turns, item.names)
        except Exception as exc:
            item.error = exc
            return None
        return prepared

    async def _claim_some(
        self, slot: str, room: int, *, once: bool
    ) -> tuple[Literal["jobs", "retry", "stop"], list[Any]]:
        """Claim up to `room` jobs: ("jobs", the jobs, maybe none due), ("retry", []) after
        a failure already waited out, or ("stop", []) when stopped while the database
        was away."""
        try:
            jobs = await self._db(self._claim_fn, slot, min(CLAIM_BATCH, room))
        except Exception as exc:
            if once:
                raise
            if is_database_error(exc):  # back off; one log line per outage
                try:
                    await self.worker._wait_for_database(exc)
                except WorkerStopping:
                    return "stop", []
                return "retry", []
            log.exception("claiming jobs failed; retrying")
            await self.worker._idle()
            return "retry", []
        self.worker.outage.succeeded()
        return "jobs", list(jobs)

    async def _nothing_due(self, *, once: bool) -> bool:
        """Wait after a claim found no job; True when drained (`once`, nothing in hand)."""
        if not once:
            await self.worker._idle()
            return False
        if not self.held:
            return True  # nothing due and nothing in hand: drained
        self._changed.clear()
        await self._wait_changed()  # a job in hand may come back due
        return False

    async def _dispatch(self, jobs: list[Any]) -> None:
        """Hold the claimed jobs, load them, and pass each to the callers or the writer."""
        items = [Item(job) for job in jobs]
        for item in items:
            self.held[item.job.id] = item
        fed = await self._feed(items)
        for item, out in zip(items, fed, strict=True):
            self._count_heuristic(item, out)
            if item.error is not None or item.lost or item.llm_cached:
                await self._written.put(item)  # nothing to call: straight to the writer
            else:
                await self._ready.put(item)

    async def feeder(self, *, once: bool) -> None:
        slot = f"{self.worker.worker_id}/llm"
        stop = self.worker.stop
        try:
            while not stop.is_set():
                room = self.held_cap - len(self.held)
                if room <= 0:
                    self._changed.clear()
                    await self._wait_changed()
                    continue
                outcome, jobs = await self._claim_some(slot, room, once=once)
                if outcome == "stop":
                    return
                if outcome == "retry":
                    continue
                if jobs:
                    await self._dispatch(jobs)
                elif await self._nothing_due(once=once):
                    return
        finally:
            for _ in range(self.callers):
                await self._ready.put(None)

    async def _feed(self, items: list[Item]) -> list[_Fed]:
        """The claim's jobs in one transaction; when it fails, one transaction each, and a
        job that fails on its own fails (back to the queue with backoff)."""
        while True:
            try:
                return await self._db(self._feed_batch, items)
            except Exception as exc:
                if self.worker.once or not is_database_error(exc):
                    break
                # the database went away: wait for it, then try the same jobs again (a
                # job whose lease ran out meanwhile is fenced off as lost)
                try:
                    await self.worker._wait_for_database(exc)
                except WorkerStopping:
                    break
                for item in items:
                    item.__dict__.update(Item(item.job).__dict__)
        try:
            return await self._db(self._feed_batch, items)
        except Exception:
            if len(items) == 1:
                log.exception("loading job %s failed", items[0].job.id)
            else:
                log.exception("loading %d claimed jobs failed; one at a time", len(items))
        fed = []
        for item in items:
            fresh = Item(item.job)
            try:
                fed += await self._db(self._feed_batch, [fresh])
                item.__dict__.update(fresh.__dict__)
            except Exception as exc:
                item.error = exc
                fed.append(_Fed())
        return fed

    async def _wait_changed(self) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=1.0)
        except TimeoutError:
            pass

    def _count_heuristic(self, item: Item, out: _Fed) -> None:
        stats = self.worker.stats
        if out.heuristic_cached:
            stats.cached += 1
        elif out.heuristic_new:
            stats.evaluated += 1
            if self.worker.debounce and item.info is not None:
                self.worker.dirty_tutors.add(item.info.tutor_id)

    # -- stage 2: callers -------------------------------------------------------------

    async def caller(self) -> None:
        while True:
            item = await self._ready.get()
            if item is None:
                return
            if not item.lost:
                try:
                    item.result = await self._call(item)
                except Exception as exc:  # JudgeUnavailable and the rest: the writer decides
                    item.error = exc
                    if not isinstance(exc, JudgeUnavailable):
                        log.exception(
                            "job %s (session %s): LLM judge failed",
                            item.job.id,
                            item.job.session_id,
                        )
            await self._written.put(item)

    async def _call(self, item: Item) -> EvaluationResult:
        assert item.info is not None
        evaluate_prepared = getattr(self.llm, "evaluate_prepared", None)
        if item.prepared is not None and evaluate_prepared is not None:
            result: EvaluationResult = await evaluate_prepared(
                item.prepared, session_id=item.info.session_id
            )
            return result
        return await self.llm.evaluate(item.info.turns, session_id=item.info.session_id)

    # -- stage 3: writer ----------------------------------------------------------------

    def _write_batch(self, items: list[Item]) -> list[str]:
        """Store results and finish or fail jobs in one transaction; each item's outcome."""
        calls = self._ledger.take() if self._ledger is not None else []
        try:
            outcomes: list[str] = []
            spent: float | None = None
            with transaction(self.engine) as s:
                for item in items:
                    outcomes.append(self._write_one(s, item))
                insert_calls(s, calls)
                now = time.monotonic()
                if self._ledger is not None and now - self._spent_read_at >= SPENT_REFRESH_S:
                    spent = spent_on_day_in(s, utcnow())
                    self._spent_read_at = now
        except BaseException:
            if self._ledger is not None:
                self._ledger.put_back(calls)
            raise
        if self._ledger is not None:
            self._ledger.committed(spent)
        return outcomes

    def _write_one(self, s: Any, item: Item) -> str:
        job = item.job
        if item.lost:
            return "lost"
        if item.error is None:
            if not complete_job(s, job):
                return "lost"
            if item.result is None:
                return "cached"
            assert item.info is not None
            new_id = insert_evaluation(s, item.info, self.llm, item.result)
            return "cached" if new_id is None else "evaluated"
        exc = item.error
        if isinstance(exc, JudgeUnavailable):
            status = fail_job(
                s,
                job,
                f"judge unavailable: {exc}",
                rules=self.worker.rules,
                unavailable=True,
                retry_after_s=exc.retry_after_s,
            )
        elif isinstance(exc, NotFound):  # no such session or no transcript: retrying cannot help
            status = fail_job(s, job, str(exc), rules=self.worker.rules, permanent=True)
        else:
            status = fail_job(s, job, f"{type(exc).__name__}: {exc}", rules=self.worker.rules)
        return {"dead": "dead", "queued": "retried"}.get(status or "", "lost")

    async def _gather(self, pending: list[Item]) -> bool:
        """Add finished jobs to `pending` (waiting for one when it is empty, then a moment
        for a few more: one commit); True once the end marker came."""
        finished = False
        if not pending:
            first = await self._written.get()
            if first is None:
                finished = True
            else:
                pending.append(first)
                await asyncio.sleep(WRITE_GATHER_S)
        while len(pending) < WRITE_BATCH and not self._written.empty():
            nxt = self._written.get_nowait()
            if nxt is None:
                finished = True
            else:
                pending.append(nxt)
        return finished

    async def writer(self) -> None:
        finished = False
        pending: list[Item] = []
        while not finished or pending:
            if await self._gather(pending):
                finished = True
            batch, pending = pending[:WRITE_BATCH], pending[WRITE_BATCH:]
            if not batch:
                continue
            try:
                outcomes = await self._db(self._write_batch, batch)
            except Exception as exc:
                if is_database_error(exc):  # one JSON line per outage, from the outage
                    self.worker.outage.failed(exc)
                else:
                    log.exception("storing %d finished jobs failed; one at a time", len(batch))
                for item in batch:
                    await self._write_alone(item)
                continue
            for item, outcome in zip(batch, outcomes, strict=True):
                self._account(item, outcome)
        if self._ledger is not None and self._ledger.held():
            await self._db(self._write_batch, [])  # the ledger rows of the last calls

    async def _write_alone(self, item: Item) -> None:
        """After a failed batch: store one job in its own transaction, retrying with backoff
        (a result that cannot be stored becomes a failure; a database that is down is
        waited for, and the lease hands the job to another worker meanwhile).

        A database error is the outage's to report: one JSON line when the streak
        starts and one when it ends (`health.DatabaseOutage`), each try only at DEBUG,
        with the outage's capped, jittered backoff. Any other error is a bug or bad
        data and keeps its traceback."""
        delay = 0.5
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.cfg.lease_seconds
        while True:
            try:
                (outcome,) = await self._db(self._write_batch, [item])
            except Exception as exc:
                database = is_database_error(exc)
                if database:
                    delay = min(WRITE_RETRY_MAX_S, self.worker.outage.failed(exc))
                if loop.time() > give_up:  # the lease is gone by now: another worker redoes it
                    log.error("job %s: not stored within its lease; left to the queue", item.job.id)
                    self._account(item, "lost")
                    return
                item.write_failures += 1
                if database:
                    log.debug(
                        "storing job %s failed (database, try %d); retrying in %.2fs",
                        item.job.id, item.write_failures, delay,
                    )  # fmt: skip
                else:
                    # a result that cannot be stored (twice) becomes the job's failure
                    if item.write_failures >= 2 and item.error is None:
                        item.error, item.result = exc, None
                    log.exception("storing job %s failed; retrying in %.1fs", item.job.id, delay)
                await asyncio.sleep(delay)
                if not database:
                    delay = min(WRITE_RETRY_MAX_S, delay * 2)
                continue
            self.worker.outage.succeeded()
            self._account(item, outcome)
            return

    def _account(self, item: Item, outcome: str) -> None:
        stats = self.worker.stats
        self.held.pop(item.job.id, None)
        self._changed.set()
        if outcome in ("evaluated", "cached"):
            stats.done += 1
            if outcome == "cached":
                stats.cached += 1
            else:
                stats.evaluated += 1
                if self.worker.debounce and item.info is not None:
                    self.worker.dirty_tutors.add(item.info.tutor_id)
        elif outcome == "dead":
            stats.dead += 1
        elif outcome == "retried":
            stats.retried += 1
        else:
            stats.lost += 1
            log.warning("job %s: lease lost to another worker; dropped", item.job.id)
        if self.worker.progress is not None:
            self.worker.progress(stats)

    # -- stage 4: heartbeat -----------------------------------------------------------

    def _renew(self, jobs: Sequence[Item]) -> list[int]:
        lost = []
        with transaction(self.engine) as s:
            for item in jobs:
                if not extend_lease(s, item.job, lease_seconds=self.cfg.lease_seconds):
                    lost.append(item.job.id)
        return lost

    async def heartbeat(self) -> None:
        interval = max(0.5, self.cfg.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            items = [i for i in self.held.values() if not i.lost]
            if not items:
                continue
            try:
                lost = await self._db(self._renew, items)
            except Exception as exc:
                if not is_database_error(exc):
                    log.exception("renewing %d leases failed", len(items))
                continue  # the outage is logged by whoever waits for the database
            for job_id in lost:
                item = self.held.get(job_id)
                if item is not None:
                    item.lost = True  # the writer drops it; its call, if running, is wasted

    # -- all together -----------------------------------------------------------------

    async def run(self, *, once: bool) -> None:
        await self._db(self._buffer_ledger)
        beat = asyncio.create_task(self.heartbeat())
        callers = [asyncio.create_task(self.caller()) for _ in range(self.callers)]
        writer = asyncio.create_task(self.writer())
        try:
            try:
                await self.feeder(once=once)
            finally:
                await asyncio.gather(*callers, return_exceptions=True)
                await self._written.put(None)
                await writer
        finally:
            beat.cancel()
            if self._restore_ledger is not None:
                self.llm.ledger = self._restore_ledger  # type: ignore[attr-defined]
            self._pool.shutdown(wait=True)
