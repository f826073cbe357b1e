"""Commands `reviews import`, `reviews export` and `agreement` (work in tutorscore.reviews)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from tutorscore.cli.common import console, err_console, get_engine

reviews_app = typer.Typer(
    help="Human reviews of sessions (what the judges are measured against).",
    no_args_is_help=True,
)


class Format(StrEnum):
    table = "table"
    json = "json"


@reviews_app.command("import")
def import_(
    paths: list[Path] = typer.Argument(..., help="CSV or JSONL files of reviews"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate only; write nothing"),
) -> None:
    """Import reviews: all or nothing, errors as file:line: column: expected …, got …."""
    from tutorscore.ingest.importer import ImportFailed
    from tutorscore.reviews.files import import_reviews

    try:
        report = import_reviews(get_engine(), paths, dry_run=dry_run)
    except ImportFailed as exc:
        for warning in exc.warnings:
            err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
        for line in exc.details:
            err_console.print(line, highlight=False, markup=False, soft_wrap=True)
        err_console.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    verb = "validated (dry run, nothing written)" if dry_run else "imported"
    console.print(
        f"reviews {verb}: {report.rows} rows, {report.created} new,"
        f" {report.replaced} replacing a reviewer's earlier review",
        highlight=False,
    )


@reviews_app.command("export")
def export(
    directory: Path = typer.Argument(..., help="directory to write reviews.csv (or .jsonl) into"),
    fmt: str = typer.Option("csv", "--format", help="csv or jsonl"),
) -> None:
    """Write every review in the import format."""
    from tutorscore.reviews.files import export_reviews

    path, count = export_reviews(get_engine(), directory, fmt=fmt)
    console.print(f"wrote {count} reviews to {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(reviews_app, name="reviews")
