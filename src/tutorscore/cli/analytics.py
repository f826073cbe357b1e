"""Commands analytics, tutors, first-sessions, risk-history (work in tutorscore.analytics)."""

from __future__ import annotations

import csv
import io
import json
import sys
from enum import StrEnum
from typing import Any

import typer
from rich.table import Table

from tutorscore.analytics.flags import (
    CHURN_RISK,
    FLAG_NAMES,
    FLAGS,
    INSUFFICIENT_DATA,
    NO_SHOW_RISK,
)
from tutorscore.analytics.flags import label as flag_label
from tutorscore.cli.common import console, get_engine, parse_timestamp
from tutorscore.config import get_rules
from tutorscore.csvsafe import neutralise
from tutorscore.db.engine import transaction
from tutorscore.errors import UserError


class ReportFormat(StrEnum):
    json = "json"
    csv = "csv"
    table = "table"


CSV_COLUMNS = (
    "tutor_id", "name", "subjects", "window_days", "as_of", "total_sessions", "first_sessions",
    "tutor_reschedule_rate", "tutor_no_show_rate", "first_session_dropout_rate",
    "avg_student_rating", "ai_avg_quality_score", "rating_trend", "ai_score_trend",
    *FLAG_NAMES, NO_SHOW_RISK.name, CHURN_RISK.name, "churn_probability", INSUFFICIENT_DATA.name,
    "risk_level", "reasons",
)  # fmt: skip
RISK_STYLE = {"high": "red", "medium": "yellow", "low": "green", "not_enough_data": "dim"}


def analytics(
    as_of: str | None = typer.Option(None, "--as-of", help="End of the window (default: now)."),
    repair_current: bool = typer.Option(
        False,
        "--repair-current",
        help="Only re-mark each tutor's current row (the latest at or before now); no recompute.",
    ),
) -> None:
    """Full recompute of metrics, flags and reasons for every tutor (and churn scores).

    A run at a future --as-of is stored as history but never becomes current.
    """
    from tutorscore.analytics.service import repair_current as repair
    from tutorscore.flows.metrics import nightly_recompute

    if repair_current:
        if as_of is not None:
            raise UserError("--repair-current takes no --as-of (it marks the latest row <= now)")
        changed = repair(get_engine())
        console.print(f"analytics: is_current re-marked, {changed} rows changed")
        return
    when = parse_timestamp(as_of)
    summary = nightly_recompute(get_engine(), as_of=when, rules=get_rules())
    console.print(f"analytics: {summary}")
    flags = ", ".join(f"{n} {name}" for name, n in summary.flags.items())
    console.print(f"  flags: {flags}")
    console.print(f"  config {summary.config_hash}, run {summary.run_id}")
    stages = ", ".join(f"{name} {sec:.2f} s" for name, sec in summary.stages.items())
    console.print(f"  time: {stages}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _csv_value(item: dict[str, Any], column: str) -> Any:
    value = item.get(column)
    if column == "subjects":
        return ";".join(value or [])
    if column == "reasons":
        return " | ".join(r["text"] for r in value or [] if r.get("kind") != "not_enough_data")
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def tutors(
    fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", help="json, csv or table."),
    as_of: str | None = typer.Option(
        None, "--as-of", help="Read the computation at this time (computed if missing)."
    ),
    sort: str = typer.Option("risk", "--sort", help="risk, reschedule_rate, no_show_rate, ..."),
    risk: str | None = typer.Option(None, "--risk", help="high, medium, low or not_enough_data."),
    subject: str | None = typer.Option(None, "--subject", help="Only tutors of this subject."),
    min_sessions: int | None = typer.Option(
        None, "--min-sessions", min=0, help="Only tutors with at least N sessions."
    ),
    flag: list[str] = typer.Option([], "--flag", help="Only tutors with this flag (repeatable)."),
    limit: int | None = typer.Option(None, "--limit", min=0, help="At most N tutors."),
    raw: bool = typer.Option(
        False,
        "--raw",
        help="CSV: text cells as they are; by default cells starting with = + - @ tab or CR "
        "get a leading ' so spreadsheets do not run them",
    ),
) -> None:
    """The per-tutor report (docs/data-format.md): current metrics, or those at --as-of."""
    from tutorscore.analytics.report import tutor_reports
    from tutorscore.flows.metrics import after_metrics

    when = parse_timestamp(as_of) if as_of else None
    with transaction(get_engine()) as session:
        items, total = tutor_reports(
            session,
            as_of=when,
            sort=sort,
            risk=risk,
            subject=subject,
            min_sessions=min_sessions,
            flags=flag,
            limit=limit,
            rules=get_rules(),
            after_write=after_metrics,  # rows computed on demand get the churn model too
        )
    if fmt is ReportFormat.json:
        sys.stdout.write(json.dumps(items, indent=2) + "\n")
    elif fmt is ReportFormat.csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for item in items:
            cells = [_csv_value(item, c) for c in CSV_COLUMNS]
            if not raw:
                cells = [neutralise(c) if isinstance(c, str) else c for c in cells]
            writer.writerow(cells)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(title=f"{len(items)} of {total} tutors")
        table.add_column("tutor", no_wrap=True)
        for column in ("name", "sessions", "resched.", "no-show", "1st drop",
                       "rating", "AI", "no-show risk", "churn risk", "flags"):  # fmt: skip
            table.add_column(column)
        for item in items:
            level = item["risk_level"]
            flags = [f.short for f in FLAGS if item[f.name]]
            table.add_row(
                item["tutor_id"],
                item["name"],
                str(item["total_sessions"]),
                _pct(item["tutor_reschedule_rate"]),
                _pct(item["tutor_no_show_rate"]),
                _pct(item["first_session_dropout_rate"]),
                _score(item["avg_student_rating"]),
                _score(item["ai_avg_quality_score"]),
                item[NO_SHOW_RISK.name],
                f"[{RISK_STYLE.get(level, '')}]{level.replace('_', ' ')}[/]",
                ", ".join(flags),
            )
        console.print(table)


def first_sessions(
    as_of: str | None = typer.Option(None, "--as-of", help="End of the window (default: now)."),
    fmt: str = typer.Option("table", "--format", help="json or table."),
) -> None:
    """First-session patterns: by subject, worst tutors, risk tags over-represented in failures."""
    from tutorscore.analytics.first_sessions import first_session_patterns
    from tutorscore.errors import UserError

    if fmt not in ("json", "table"):
        raise UserError(f"--format: expected json or table, got {fmt!r}")
    with transaction(get_engine()) as session:
        result = first_session_patterns(session, as_of=parse_timestamp(as_of), rules=get_rules())
    if fmt == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table(title=f"First sessions, {result['window']['start']} .. {result['as_of']}")
    for column in ("subject", "first sessions", "dropout rate", "worst tutors (rate, n)"):
        table.add_column(column)
    for subject in result["subjects"]:
        worst = "; ".join(
            f"{w['tutor_id']} {_pct(w['dropout_rate'])} of {w['first_sessions']}"
            for w in subject["worst_tutors"][:3]
        )
        table.add_row(
            subject["subject"],
            str(subject["first_sessions"]),
            _pct(subject["dropout_rate"]),
            worst or "-",
        )
    console.print(table)
    tags = Table(title="Risk tags in failed vs successful first sessions")
    for column in ("tag", "failed", "successful", "lift", "over-represented"):
        tags.add_column(column)
    for tag in result["risk_tags"]:
        tags.add_row(
            tag["tag"],
            f"{tag['failed_with_tag']}/{tag['failed_evaluated']}",
            f"{tag['successful_with_tag']}/{tag['successful_evaluated']}",
            "-" if tag["lift"] is None else f"{tag['lift']:.2f}",
            "yes" if tag["over_represented"] else "",
        )
    console.print(tags)


def risk_history(
    weeks: int = typer.Option(12, "--weeks", min=1, max=520, help="Weeks to count (1..520)."),
    fmt: str = typer.Option("table", "--format", help="json or table."),
    as_of: str | None = typer.Option(None, "--as-of", help="End of the last week (default: now)."),
) -> None:
    """Per week: tutors at each churn-risk level and with each flag, from stored metrics."""
    from tutorscore.analytics.history import HISTORY_FLAGS, RISK_LEVELS
    from tutorscore.analytics.history import risk_history as history

    if fmt not in ("json", "table"):
        raise UserError(f"--format: expected json or table, got {fmt!r}")
    with transaction(get_engine()) as session:
        result = history(session, as_of=parse_timestamp(as_of), weeks=weeks)
    if fmt == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    table = Table(title=f"Risk over {weeks} weeks to {result['as_of']}")
    table.add_column("week ending", no_wrap=True)
    table.add_column("tutors", justify="right")
    for level in RISK_LEVELS:
        table.add_column(level.replace("_", " "), justify="right")
    for flag in HISTORY_FLAGS:
        table.add_column(flag_label(flag), justify="right")
    for week in result["weeks"]:
        table.add_row(
            week["week_end"],
            str(week["tutors"]),
            *(str(week["risk"][level]) for level in RISK_LEVELS),
            *(str(week["flags"][flag]) for flag in HISTORY_FLAGS),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("analytics")(analytics)
    app.command("tutors")(tutors)
    app.command("first-sessions")(first_sessions)
    app.command("risk-history")(risk_history)
