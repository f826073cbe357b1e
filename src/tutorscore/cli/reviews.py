"""Commands `reviews import`, `reviews export` and `agreement` (work in tutorscore.reviews)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

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


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _ci(pair: list[float | None]) -> str:
    low, high = pair
    return "—" if low is None or high is None else f"[{low:.4f}, {high:.4f}]"


def _judges_table(title: str, judges: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("judge version", "n", "spearman", "95% CI", "pearson", "kappa", "mae"):
        table.add_column(column, justify="left" if column == "judge version" else "right")
    for j in judges:
        table.add_row(
            j["label"], str(j["n"]), _fmt(j["spearman"]), _ci(j["spearman_ci"]),
            _fmt(j["pearson"]), _fmt(j["kappa"]), _fmt(j["mae"]),
        )  # fmt: skip
    return table


def _tags_table(judges: list[dict[str, Any]]) -> Table | None:
    rows = [(j["label"], tag, t) for j in judges for tag, t in j["tags"].items()]
    if not rows:
        return None
    table = Table(title="risk tags (reviewers' majority vs the judge)")
    for column in ("judge version", "tag", "support", "precision", "recall", "f1"):
        table.add_column(column, justify="left" if column in ("judge version", "tag") else "right")
    for label, tag, t in rows:
        table.add_row(
            label, tag, str(t["support"]), _fmt(t["precision"]), _fmt(t["recall"]), _fmt(t["f1"])
        )
    return table


def agreement(
    judge: str | None = typer.Option(None, "--judge", help="only this judge (heuristic, llm)"),
    fmt: Format = typer.Option(Format.table, "--format", help="table or json"),
    compare: tuple[str, str] | None = typer.Option(
        None,
        "--compare",
        help="compare two judge versions (judge/prompt_version, judge/model/prompt_version, "
        "or a prompt_version) on the sessions both evaluated",
    ),
) -> None:
    """How far each judge version agrees with the human reviews (docs/reviews.md)."""
    from tutorscore.config import get_rules
    from tutorscore.db.engine import transaction
    from tutorscore.reviews.agreement import agreement_report, compare_versions

    cfg = get_rules().reviews
    options = {"seed": cfg.bootstrap_seed, "resamples": cfg.bootstrap_resamples}
    with transaction(get_engine()) as db:
        if compare:
            report = compare_versions(db, compare[0], compare[1], **options)
        else:
            report = agreement_report(db, judge=judge, **options)
    if fmt == Format.json:
        typer.echo(json.dumps(report, indent=2))
        return
    if compare:
        c = report["compare"]
        console.print(
            f"{c['n']} sessions reviewed and evaluated by both {c['a']} (A) and {c['b']} (B)",
            highlight=False,
        )
        console.print(_judges_table("agreement on the same sessions", report["judges"]))
        console.print(
            f"spearman B − A: {_fmt(c['spearman_diff'])} (paired bootstrap 95% CI"
            f" {_ci(c['spearman_diff_ci'])}); mae B − A: {_fmt(c['mae_diff'])}",
            highlight=False,
        )
        return
    if not report["judges"]:
        console.print(
            f"no judge version has evaluated a reviewed session"
            f" ({report['reviewed_sessions']} sessions reviewed)",
            highlight=False,
        )
        return
    console.print(
        _judges_table(
            f"agreement with {report['reviews']} reviews of {report['reviewed_sessions']} sessions",
            report["judges"],
        )
    )
    tags = _tags_table(report["judges"])
    if tags is not None:
        console.print(tags)
    inter = report["inter_reviewer"]
    console.print(
        f"inter-reviewer: {inter['sessions']} sessions with 2+ reviewers, {inter['pairs']} pairs,"
        f" mean |difference| {_fmt(inter['mean_abs_diff'])}, Krippendorff alpha"
        f" {_fmt(inter['krippendorff_alpha'])}, pairwise kappa {_fmt(inter['pairwise_kappa'])}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(reviews_app, name="reviews")
    app.command("agreement")(agreement)
