"""`tutorscore demo`: the seed-demo flow (`tutorscore.flows.demo`), what `make run` does."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer

from tutorscore.cli.common import console, get_engine, parse_timestamp
from tutorscore.config import get_rules, get_settings


def demo(
    as_of: str | None = typer.Option(None, "--as-of", help="End of the demo week (default: now)."),
    seed: int = typer.Option(42, "--seed", help="Random seed of the synthetic data."),
) -> None:
    """Create the schema, seed demo data, compute analytics and evaluations, print a login."""
    from tutorscore.flows.demo import seed_demo

    when = parse_timestamp(as_of) if as_of else datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    steps = iter(range(1, 6))

    def say(text: str) -> None:
        console.print(f"[bold]{next(steps)}/5[/bold] {text}")

    result = seed_demo(
        get_engine(), settings=get_settings(), rules=get_rules(), as_of=when, seed=seed, say=say
    )
    sent = result.alerts
    if sent is not None and sent.skipped is None:
        console.print(f"alerts: {sent.delivered} delivered, {sent.failed} failed")
    assert result.login is not None  # seed_demo makes the demo login by default
    username, password = result.login
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
