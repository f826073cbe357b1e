"""`tutorscore demo`: the seed-demo flow (`tutorscore.flows.demo`), what `make run` does."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer

from tutorscore.cli.common import console, get_engine, parse_timestamp
from tutorscore.config import get_rules, get_settings

# The demo's size: about 3,000 sessions a week for 100 tutors over 17 weeks, so the
# overview's 12 weekly points and the coaching history's before/after windows all
# have a full 30-day window of sessions behind them.
DEMO_TUTORS = 100
DEMO_STUDENTS = 6000
DEMO_SESSIONS = 50_000
DEMO_DAYS = 120
# spread over the history, plus flows.demo.RECENT_TRANSCRIPTS in the last weeks
DEMO_TRANSCRIPTS = 240


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
    from tutorscore.flows.demo import demo_steps, seed_demo

    when = parse_timestamp(as_of) if as_of else datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    total = demo_steps()
    steps = iter(range(1, total + 1))

    def say(text: str) -> None:
        console.print(f"[bold]{next(steps)}/{total}[/bold] {text}")

    def note(text: str) -> None:
        console.print(f"      {text}")

    result = seed_demo(
        get_engine(),
        settings=get_settings(),
        rules=get_rules(),
        as_of=when,
        seed=seed,
        sizes={
            "tutors": tutors,
            "students": students,
            "sessions": sessions,
            "days": days,
            "transcripts": transcripts,
        },
        coaching=not no_coaching,
        say=say,
        note=note,
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
