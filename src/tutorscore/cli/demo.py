"""`tutorscore demo`: init + seed + analytics + evaluate + demo login (what `make run` does)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import typer
from sqlalchemy import Engine

from tutorscore.cli.common import console, get_engine, parse_timestamp
from tutorscore.config import RulesConfig, Settings, get_rules, get_settings
from tutorscore.db.migrate import upgrade

# The demo's size: about 3,000 sessions a week for 100 tutors over 17 weeks, so the
# overview's 12 weekly points and the coaching history's before/after windows all
# have a full 30-day window of sessions behind them.
DEMO_TUTORS = 100
DEMO_STUDENTS = 6000
DEMO_SESSIONS = 50_000
DEMO_DAYS = 120
DEMO_TRANSCRIPTS = 240  # spread over the history, plus RECENT_TRANSCRIPTS in the last weeks
RECENT_TRANSCRIPTS = 160
HISTORY_WEEKS = 12
LLM_DEMO_EVALUATIONS = 8


def demo(
    as_of: str | None = typer.Option(None, "--as-of", help="End of the history (default: now)."),
    seed: int = typer.Option(42, "--seed", help="Random seed of the synthetic data."),
    tutors: int = typer.Option(DEMO_TUTORS, "--tutors", help="Synthetic tutors."),
    students: int = typer.Option(DEMO_STUDENTS, "--students", help="Synthetic students."),
    sessions: int = typer.Option(DEMO_SESSIONS, "--sessions", help="Synthetic sessions."),
    days: int = typer.Option(DEMO_DAYS, "--days", help="Days of session history."),
    transcripts: int = typer.Option(DEMO_TRANSCRIPTS, "--transcripts", help="Transcripts."),
    no_coaching: bool = typer.Option(
        False, "--no-coaching", help="No synthetic coaching history or coach reviews."
    ),
) -> None:
    """Create the schema, seed demo data, compute analytics and evaluations, print a login."""
    from tutorscore.analytics.history import compute_weekly_history
    from tutorscore.analytics.service import compute_all
    from tutorscore.auth.users import ensure_demo_admin
    from tutorscore.evaluation.worker import evaluate_pending
    from tutorscore.ingest.synthetic import seed as seed_data
    from tutorscore.ingest.synthetic_coaching import DemoHistory

    settings, rules, engine = get_settings(), get_rules(), get_engine()
    when = parse_timestamp(as_of) if as_of else datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()

    upgrade(engine)
    console.print("[bold]1/7[/bold] schema ready")
    history = DemoHistory(
        rules=rules,
        seed=seed,
        coaching=not no_coaching,
        reviews=not no_coaching,
        recent_transcripts=min(RECENT_TRANSCRIPTS, transcripts),
    )
    summary = seed_data(
        engine,
        tutors=tutors,
        students=students,
        sessions=sessions,
        days=days,
        transcripts=transcripts,
        seed=seed,
        as_of=when,
        extras=[history],
    )
    console.print(f"[bold]2/7[/bold] seeded {summary}; {history.summary(when.date())}")
    done = asyncio.run(evaluate_pending(engine, settings, rules))
    console.print(f"[bold]3/7[/bold] evaluated {done} sessions with the heuristic judge")
    if not no_coaching:
        console.print(f"      {demo_llm_evaluations(engine, settings, rules)}")
    mark = time.perf_counter()
    past = compute_weekly_history(engine, as_of=when, rules=rules, weeks=HISTORY_WEEKS)
    console.print(
        f"[bold]4/7[/bold] metrics history: {len(past)} weekly snapshots before the current one "
        f"in {time.perf_counter() - mark:.1f} s"
    )
    result = compute_all(engine, as_of=when, rules=rules)
    console.print(f"[bold]5/7[/bold] analytics computed: {result}")
    try:
        from tutorscore.prediction.churn import train_and_apply

        # The generator draws each leaver's churned_on after `when`: those outcomes are
        # known, so the demo trains on them (a real history uses --labels-until = as_of).
        known = when + timedelta(days=rules.prediction.horizon_days)
        trained = train_and_apply(engine, as_of=when, rules=rules, labels_until=known)
        console.print(f"[bold]6/7[/bold] churn model: {trained}")
    except ImportError:
        console.print("[bold]6/7[/bold] churn model: not available, rules decide churn risk")
    try:
        from tutorscore.prediction.no_show_model import train_no_show_model

        shows = train_no_show_model(engine, as_of=when, rules=rules, settings=settings)
        verdict = "model used" if shows.gate_passed else "the formula stays"
        console.print(
            f"[bold]7/7[/bold] no-show model {shows.version}: held-out AUC "
            f"{_auc(shows.model_auc)} vs formula {_auc(shows.formula_auc)}, {verdict}"
        )
    except ImportError:
        console.print("[bold]7/7[/bold] no-show model: not available, the formula decides")
    from tutorscore.interventions.alerts import deliver_pending

    sent = deliver_pending(engine, rules=rules, settings=settings)
    if sent.skipped is None:
        console.print(f"alerts: {sent.delivered} delivered, {sent.failed} failed")
    username, password = ensure_demo_admin(engine)
    console.print(
        f"\n[green]demo ready[/green] in {time.perf_counter() - started:.1f} s\n"
        f"  dashboard: http://{settings_host()}/\n"
        f"  login:     [bold]{username}[/bold] / [bold]{password}[/bold]\n"
    )


def demo_llm_evaluations(engine: Engine, settings: Settings, rules: RulesConfig) -> str:
    """A handful of LLM-judge evaluations of reviewed sessions, only when an LLM is set up."""
    from sqlalchemy import func, select

    from tutorscore.db.engine import transaction
    from tutorscore.db.models import Review, SessionEvaluation
    from tutorscore.evaluation import queue
    from tutorscore.evaluation.worker import run_worker

    if not settings.llm_enabled:
        return "LLM judge: not configured (set TUTORSCORE_LLM_BASE_URL), no LLM evaluations"
    with transaction(engine) as s:
        ids = list(
            s.scalars(
                select(Review.session_id)
                .distinct()
                .order_by(Review.session_id)
                .limit(LLM_DEMO_EVALUATIONS)
            )
        )
        queued = queue.enqueue_evaluations(
            s, judge="llm", session_ids=ids, pending=False, limit=None, rules=rules
        )
    result = run_worker(engine, settings, rules, once=True, use_llm=True)
    with transaction(engine) as s:
        evaluated = s.scalar(
            select(func.count(func.distinct(SessionEvaluation.session_id))).where(
                SessionEvaluation.judge == "llm", SessionEvaluation.session_id.in_(ids)
            )
        )
    return (
        f"LLM judge: {evaluated} of {queued} reviewed sessions evaluated"
        f"{f', {result.dead} jobs failed' if result.dead else ''}"
    )


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def settings_host() -> str:
    import os

    return f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
