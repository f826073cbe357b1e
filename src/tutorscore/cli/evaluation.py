"""Commands `evaluate`, `evaluations` and `worker` (the work is in tutorscore.evaluation)."""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
from enum import StrEnum
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, select

from tutorscore.cli.common import console, err_console, get_engine
from tutorscore.config import RulesConfig, Settings, get_rules, get_settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import SessionTranscript, TutoringSession
from tutorscore.errors import UserError

if TYPE_CHECKING:
    from tutorscore.evaluation.worker import WorkerStats


class JudgeName(StrEnum):
    heuristic = "heuristic"
    llm = "llm"


class OutputFormat(StrEnum):
    json = "json"
    csv = "csv"


CSV_COLUMNS = (
    "session_id", "judge", "model", "prompt_version", "quality_score", "clarity", "pacing",
    "engagement", "goal_alignment", "risk_tags", "strengths", "areas_for_improvement",
    "evidence", "created_at",
)  # fmt: skip


def _check_sessions(session_ids: list[str]) -> None:
    """Unknown sessions or sessions without a transcript are the user's mistake."""
    with transaction(get_engine()) as s:
        rows = dict(
            s.execute(
                select(TutoringSession.session_id, SessionTranscript.session_id)
                .outerjoin(
                    SessionTranscript, SessionTranscript.session_id == TutoringSession.session_id
                )
                .where(TutoringSession.session_id.in_(session_ids))
            ).all()
        )
    missing = [sid for sid in session_ids if sid not in rows]
    if missing:
        raise UserError(f"--session: no such session: {', '.join(missing)}")
    untranscribed = [sid for sid in session_ids if rows[sid] is None]
    if untranscribed:
        raise UserError(f"--session: no transcript for: {', '.join(untranscribed)}")


def _print_jobs(items: list[dict[str, Any]], title: str) -> None:
    table = Table(title=title)
    for col in ("id", "session_id", "judge", "status", "attempts", "updated_at", "last_error"):
        table.add_column(col, overflow="fold")
    for j in items:
        table.add_row(
            str(j["id"]),
            str(j["session_id"]),
            str(j["judge"]),
            j["status"],
            f"{j['attempts']}/{j['max_attempts']}",
            j["updated_at"][:19],
            j["last_error"] or "",
        )
    console.print(table)


def _print_queue(
    engine: Engine, settings: Settings, *, dead: bool, stats: bool, limit: int | None
) -> None:
    """`evaluate --stats` / `--dead`: queue statistics and dead-lettered jobs."""
    from tutorscore.evaluation import queue
    from tutorscore.evaluation.backlog import llm_backlog
    from tutorscore.evaluation.queries import queue_backlog

    with transaction(engine) as s:
        if stats:
            out = queue_backlog(s)
            out["llm"] = llm_backlog(s, settings)
            console.print_json(json.dumps(out))
        if dead:
            items = queue.list_jobs(s, status="dead", limit=limit or 100)
            _print_jobs(items, f"dead-lettered evaluation jobs ({len(items)} shown)")


def _drain(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    total: int,
    concurrency: int | None,
    *,
    use_llm: bool,
) -> WorkerStats:
    """Run the worker in-process until the queue is drained, with a progress bar."""
    from tutorscore.evaluation.worker import run_worker
    from tutorscore.flows.metrics import after_metrics

    with Progress(
        TextColumn("[bold]evaluating[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task("evaluate", total=total or None, detail="")

        def progress(st: Any) -> None:
            bar.update(
                task,
                completed=st.finished,
                total=max(total, st.finished),
                detail=f"new {st.evaluated}, cached {st.cached}, retry {st.retried}",
            )

        return run_worker(
            engine,
            settings,
            rules,
            once=True,
            concurrency=concurrency,
            use_llm=use_llm,
            progress=progress,
            after_write=after_metrics,
        )


def evaluate(
    judge: JudgeName = typer.Option(JudgeName.heuristic, "--judge", help="heuristic | llm"),
    pending: bool = typer.Option(
        False, "--pending", help="Transcripts not yet evaluated by this judge (the default)."
    ),
    all_: bool = typer.Option(False, "--all", help="Every transcript (cached ones are cheap)."),
    session: list[str] = typer.Option([], "--session", help="Session id; repeat for more."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Queue at most N sessions."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Parallel jobs."),
    dead: bool = typer.Option(False, "--dead", help="List dead-lettered jobs and exit."),
    requeue_dead: bool = typer.Option(
        False, "--requeue-dead", help="Give dead jobs new attempts, then process."
    ),
    stats: bool = typer.Option(False, "--stats", help="Print queue statistics and exit."),
) -> None:
    """Queue evaluations and process them in-process until the queue is drained."""
    from tutorscore.evaluation import queue
    from tutorscore.evaluation.backlog import backlog_sentence, llm_backlog
    from tutorscore.evaluation.queries import queue_backlog

    settings, rules, engine = get_settings(), get_rules(), get_engine()
    if dead or stats:
        _print_queue(engine, settings, dead=dead, stats=stats, limit=limit)
        return
    if sum([pending, all_, bool(session)]) > 1:
        raise typer.BadParameter("choose one of --pending, --all, --session")
    if judge == JudgeName.llm and not settings.llm_enabled:
        raise UserError("--judge llm: no LLM configured; set TUTORSCORE_LLM_BASE_URL")
    if session:
        _check_sessions(session)
    with transaction(engine) as s:
        if requeue_dead:
            console.print(f"requeued {queue.requeue_dead(s)} dead jobs")
        queued = queue.enqueue_evaluations(
            s,
            judge=judge.value,
            session_ids=session or None,
            pending=not all_ and not session,
            limit=limit,
            rules=rules,
        )
        before = queue_backlog(s)
        backlog = llm_backlog(s, settings) if judge == JudgeName.llm else None
    total = before["queued_due"] + before["running"]
    console.print(f"queued {queued} sessions for the {judge.value} judge ({total} jobs to run)")
    if backlog is not None:
        console.print(backlog_sentence(backlog), highlight=False)
    result = _drain(engine, settings, rules, total, concurrency, use_llm=judge == JudgeName.llm)
    with transaction(engine) as s:
        after = queue_backlog(s)
        backlog = llm_backlog(s, settings) if judge == JudgeName.llm else None
    console.print(
        f"done {result.done} jobs: {result.evaluated} new evaluations, {result.cached} cached, "
        f"{result.retried} sent back for retry, {result.dead} dead"
    )
    if after["queued"]:
        console.print(
            f"[yellow]{after['queued']} jobs wait for a retry later[/yellow] "
            "(`tutorscore worker` picks them up)"
        )
        if backlog is not None:
            console.print(backlog_sentence(backlog), highlight=False)
    if after["dead"]:
        console.print(f"[red]{after['dead']} dead jobs[/red]: see `tutorscore evaluate --dead`")


def evaluations(
    format_: OutputFormat = typer.Option(OutputFormat.json, "--format", help="json | csv"),
    session: list[str] = typer.Option([], "--session", help="Session id; repeat for more."),
    all_judges: bool = typer.Option(
        False, "--all-judges", help="Every stored evaluation, not only the preferred one."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1),
) -> None:
    """Stored evaluations (the latest LLM one per session when present, else heuristic)."""
    from tutorscore.evaluation.service import list_evaluations

    with transaction(get_engine()) as s:
        items = list_evaluations(s, session or None, all_judges=all_judges, limit=limit)
    if format_ == OutputFormat.json:
        sys.stdout.write(json.dumps(items, ensure_ascii=False, indent=2) + "\n")
        return
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in items:
        rubric = e["rubric"]
        writer.writerow(
            [
                e["session_id"],
                e["judge"],
                e["model"] or "",
                e["prompt_version"],
                e["quality_score"],
                rubric.get("clarity"),
                rubric.get("pacing"),
                rubric.get("engagement"),
                rubric.get("goal_alignment"),
                ";".join(e["risk_tags"]),
                " | ".join(e["strengths"]),
                " | ".join(e["areas_for_improvement"]),
                json.dumps(e["evidence"], ensure_ascii=False),
                e["created_at"],
            ]
        )


def worker(
    once: bool = typer.Option(False, "--once", help="Drain the queue, then exit."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Parallel jobs."),
    worker_id: str | None = typer.Option(None, "--worker-id", help="Name in jobs.locked_by."),
) -> None:
    """Long-running evaluation worker; run as many copies as you like against Postgres."""
    from tutorscore.evaluation.worker import new_worker_id, run_worker
    from tutorscore.flows.metrics import after_metrics
    from tutorscore.web.middleware import configure_logging

    settings, rules, engine = get_settings(), get_rules(), get_engine()
    configure_logging(settings.log_level)  # JSON lines, as `serve` writes them
    stop = threading.Event()
    name = worker_id or new_worker_id()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():  # second signal: leave now; leases hand the jobs to others
            err_console.print("worker: stopping now")
            os._exit(1)
        err_console.print(f"worker {name}: {signal.Signals(signum).name}, finishing current jobs")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    err_console.print(f"worker {name} started ({engine.url.get_backend_name()})")
    result = run_worker(
        engine, settings, rules, once=once, concurrency=concurrency, stop_event=stop,
        worker_id=name, after_write=after_metrics,
    )  # fmt: skip
    err_console.print(
        f"worker {name} stopped: {result.done} jobs done, {result.evaluated} new evaluations, "
        f"{result.cached} cached, {result.retried} retried, {result.dead} dead, "
        f"{result.lost} leases lost"
    )


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("evaluations")(evaluations)
    app.command("worker")(worker)
