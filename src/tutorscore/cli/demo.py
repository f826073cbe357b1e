"""`tutorscore demo`: init + seed + analytics + evaluate + demo login (what `make run` does)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import typer

from tutorscore.cli.common import console, get_engine, parse_timestamp
from tutorscore.config import get_rules, get_settings
from tutorscore.db.migrate import upgrade


def demo(
    as_of: str | None = typer.Option(None, "--as-of", help="End of the demo week (default: now)."),
    seed: int = typer.Option(42, "--seed", help="Random seed of the synthetic data."),
) -> None:
    """Create the schema, seed demo data, compute analytics and evaluations, print a login."""
    from tutorscore.analytics.service import compute_all
    from tutorscore.auth.users import ensure_demo_admin
    from tutorscore.evaluation.worker import evaluate_pending
    from tutorscore.ingest.synthetic import seed as seed_data

    settings, rules, engine = get_settings(), get_rules(), get_engine()
    when = parse_timestamp(as_of) if as_of else datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()

    upgrade(engine)
    console.print("[bold]1/5[/bold] schema ready")
    summary = seed_data(engine, seed=seed, as_of=when)
    console.print(f"[bold]2/5[/bold] seeded {summary}")
    done = asyncio.run(evaluate_pending(engine, settings, rules))
    console.print(f"[bold]3/5[/bold] evaluated {done} sessions with the heuristic judge")
    result = compute_all(engine, as_of=when, rules=rules)
    console.print(f"[bold]4/5[/bold] analytics computed: {result}")
    try:
        from tutorscore.prediction.churn import train_and_apply

        # The generator draws each leaver's churned_on after `when`: those outcomes are
        # known, so the demo trains on them (a real history uses --labels-until = as_of).
        known = when + timedelta(days=rules.prediction.horizon_days)
        trained = train_and_apply(engine, as_of=when, rules=rules, labels_until=known)
        console.print(f"[bold]5/5[/bold] churn model: {trained}")
    except ImportError:
        console.print("[bold]5/5[/bold] churn model: not available, rules decide churn risk")
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


def settings_host() -> str:
    import os

    return f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
