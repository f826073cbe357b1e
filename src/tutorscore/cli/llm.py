"""Command `llm-usage`: what the LLM judge has cost and would cost (tutorscore.evaluation.costs)."""

from __future__ import annotations

import json
from enum import StrEnum

import typer
from rich.table import Table

from tutorscore.cli.common import console, get_engine
from tutorscore.config import get_settings
from tutorscore.evaluation.costs import usage_report


class UsageFormat(StrEnum):
    table = "table"
    json = "json"


def llm_usage(
    days: int = typer.Option(7, "--days", min=1, max=366, help="days of history, today included"),
    output: UsageFormat = typer.Option(UsageFormat.table, "--format", help="table | json"),
) -> None:
    """LLM calls, tokens, cost and errors by day and model; daily cost of 3,000 sessions."""
    settings = get_settings()
    report = usage_report(
        get_engine(),
        days=days,
        budget_usd=settings.llm_budget_usd,
        current_model=settings.llm_model if settings.llm_enabled else None,
    )
    if output == UsageFormat.json:
        console.print_json(json.dumps(report))
        return
    usage = Table(title=f"LLM calls, last {days} day(s) (UTC)")
    for column in ("day", "model", "mode", "calls", "errors", "tokens in", "tokens out", "cost $"):
        usage.add_column(column, justify="left" if column in ("day", "model", "mode") else "right")
    for row in report["by_day"]:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(row["errors_by_status"].items()))
        usage.add_row(
            row["day"],
            row["model"],
            row["mode"],
            str(row["calls"]),
            f"{row['errors']}" + (f" ({errors})" if errors else ""),
            f"{row['tokens_in']:,}",
            f"{row['tokens_out']:,}",
            f"{row['cost_usd']:.4f}",
        )
    if not report["by_day"]:
        usage.caption = "no LLM calls recorded in this period"
    console.print(usage)
    console.print(
        f"spent today: ${report['spent_today_usd']:.4f} of the ${settings.llm_budget_usd:.2f} "
        "daily budget (TUTORSCORE_LLM_BUDGET_USD)"
    )
    projection = Table(title="Projected daily cost of 3,000 sessions")
    for column in (
        "model",
        "source",
        "tokens in/call",
        "tokens out/call",
        "real-time $",
        "batch $",
    ):
        projection.add_column(column, justify="left" if column in ("model", "source") else "right")
    for row in report["projection"]:
        projection.add_row(
            row["model"],
            row["source"] + ("" if row["priced"] else " (unpriced: gpt-4o rates)"),
            f"{row['avg_tokens_in']:,.0f}",
            f"{row['avg_tokens_out']:,.0f}",
            f"{row['daily_cost_usd']:,.2f}",
            f"{row['daily_cost_batch_usd']:,.2f}",
        )
    console.print(projection)


def register(app: typer.Typer) -> None:
    app.command("llm-usage")(llm_usage)
