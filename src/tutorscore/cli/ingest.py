"""Commands that create and fill the database: init, seed, import, export, demo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from tutorscore.cli.common import console, err_console, get_engine
from tutorscore.db.migrate import current_revision, upgrade


def init() -> None:
    """Create or upgrade the schema at DATABASE_URL (runs the migrations)."""
    engine = get_engine()
    upgrade(engine)
    where = engine.url.render_as_string(hide_password=True)
    console.print(f"schema at revision [bold]{current_revision(engine)}[/bold] ({where})")


@contextmanager
def _progress_bar(show: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A Rich progress bar on stderr fed by the domain's progress(description, done, total)."""
    if not show:
        yield None
        return
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:

        def update(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=max(total, 1))
            bar.update(tasks[description], completed=done, total=max(total, 1))

        yield update


_PROGRESS_BYTES = 4 << 20


def import_(
    paths: list[Path] = typer.Argument(
        ..., help="bundle directories and/or files (tutors, students, sessions, transcripts)"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate only; write nothing"),
    follow_up: bool = typer.Option(
        True,
        "--follow-up/--no-follow-up",
        help="after a change: queue evaluations of new transcripts and recompute analytics",
    ),
) -> None:
    """Import a bundle (docs/data-format.md): all or nothing, errors with file:line: column."""
    from tutorscore.ingest.importer import ImportFailed, find_bundle_files, import_bundle

    files = find_bundle_files(paths)
    size = sum(f.path.stat().st_size for f in files)
    try:
        with _progress_bar(size >= _PROGRESS_BYTES and err_console.is_terminal) as progress:
            report = import_bundle(get_engine(), paths, dry_run=dry_run, progress=progress)
    except ImportFailed as exc:
        for warning in exc.warnings:
            err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, markup=True)
        for line in exc.details:
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    table = Table(title="validated (dry run, nothing written)" if dry_run else "imported")
    for column in ("file kind", "rows", "created", "updated", "unchanged"):
        table.add_column(column, justify="left" if column == "file kind" else "right")
    for kind, summary in report.summary.items():
        if dry_run:
            table.add_row(kind, str(summary.rows), "-", "-", "-")
        else:
            table.add_row(
                kind,
                str(summary.rows),
                str(summary.created),
                str(summary.updated),
                str(summary.unchanged),
            )
    console.print(table)
    changed = any(k.created or k.updated for k in report.summary.values())
    if follow_up and changed and not dry_run:
        _after_import()


def _after_import() -> None:
    """The after-import flow (`tutorscore.flows.imports`), once for the whole bundle."""
    from tutorscore.config import get_rules
    from tutorscore.flows.imports import after_import

    done = after_import(get_engine(), rules=get_rules())
    console.print(
        f"{done.queued} evaluations queued (run `tutorscore worker` or `tutorscore evaluate"
        f" --pending`); analytics: {done.analytics}"
    )


def export(
    directory: Path = typer.Argument(..., help="directory to write the bundle into"),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl (transcripts are always jsonl)"),
    raw: bool = typer.Option(
        False,
        "--raw",
        help="CSV: write text cells as they are (for re-import); by default cells starting "
        "with = + - @ tab or CR get a leading ' so spreadsheets do not run them",
    ),
) -> None:
    """Write the database as an import bundle (tutors, students, sessions, transcripts.jsonl)."""
    from tutorscore.ingest.exporter import export_bundle

    with _progress_bar(err_console.is_terminal) as progress:
        report = export_bundle(get_engine(), directory, fmt=fmt, progress=progress, raw=raw)
    for kind, rows in report.rows.items():
        console.print(f"{kind}: {rows} rows")
    console.print(f"wrote {', '.join(str(p) for p in report.files)}", highlight=False)


def seed(
    tutors: int = typer.Option(100, "--tutors", help="number of tutors"),
    students: int = typer.Option(2500, "--students", help="number of students"),
    sessions: int = typer.Option(3000, "--sessions", help="sessions, about 4% of them upcoming"),
    days: int = typer.Option(7, "--days", help="days of history ending at --as-of"),
    transcripts: int = typer.Option(120, "--transcripts", help="sessions with a transcript"),
    seed_value: int = typer.Option(42, "--seed", help="random seed: same seed + as-of, same data"),
    as_of: str | None = typer.Option(None, "--as-of", help="end of the history (default: now)"),
    analytics: bool = typer.Option(
        True,
        "--analytics/--no-analytics",
        help="recompute every tutor's metrics at --as-of afterwards (as `tutorscore analytics`)",
    ),
) -> None:
    """Replace the synthetic data with a fresh, deterministic data set (imported rows stay).

    Then recomputes metrics for every tutor, so no tutor is left without a current row.
    """
    from tutorscore.cli.common import parse_timestamp
    from tutorscore.config import get_rules
    from tutorscore.flows.demo import seed_synthetic

    when = parse_timestamp(as_of)
    with _progress_bar(err_console.is_terminal) as progress:
        summary, result = seed_synthetic(
            get_engine(),
            rules=get_rules(),
            as_of=when,
            seed=seed_value,
            sizes={
                "tutors": tutors,
                "students": students,
                "sessions": sessions,
                "days": days,
                "transcripts": transcripts,
            },
            analytics=analytics,
            progress=progress,
        )
    table = Table(title=f"seeded (seed {summary.seed}, as of {summary.as_of:%Y-%m-%d %H:%M} UTC)")
    table.add_column("sessions by status")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for status, n in summary.status_counts.items():
        table.add_row(status, f"{n:,}", f"{n / max(summary.sessions, 1):.1%}")
    console.print(table)
    console.print(str(summary), highlight=False)
    removed = sum(summary.deleted.values())
    if removed:
        console.print(f"replaced {removed:,} earlier synthetic rows", highlight=False)
    if result is not None:
        console.print(f"analytics recomputed: {result}", highlight=False)
    else:
        console.print(
            "metrics not recomputed (--no-analytics): run `tutorscore analytics` next",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("seed")(seed)
    app.command("import")(import_)
    app.command("export")(export)
