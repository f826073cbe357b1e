"""`tutorscore interventions ...`, `tutorscore recommendations`, `tutorscore alerts ...`."""

from __future__ import annotations

import getpass
import json
from datetime import date

import typer
from rich.table import Table

from tutorscore.cli.common import console, get_engine, parse_timestamp
from tutorscore.config import get_rules, get_settings
from tutorscore.db.engine import transaction
from tutorscore.errors import UserError

interventions_app = typer.Typer(help="Coaching interventions.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts and their webhook delivery.", no_args_is_help=True)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli"


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise UserError(f"{option}: expected YYYY-MM-DD, got {value!r}") from exc


@interventions_app.command("list")
def list_cmd(
    status: str | None = typer.Option(None, "--status", help="open | in_progress | done"),
    owner: str | None = typer.Option(None, "--owner"),
    type_: str | None = typer.Option(None, "--type"),
    tutor: str | None = typer.Option(None, "--tutor"),
    overdue: bool = typer.Option(False, "--overdue", help="Only past due and not done."),
    output: str = typer.Option("table", "--format", help="table | json"),
    limit: int = typer.Option(100, "--limit"),
) -> None:
    """Coaching tasks, not-done first and by due date."""
    from tutorscore.interventions.service import list_interventions, serialize

    with transaction(get_engine()) as session:
        items, total = list_interventions(
            session,
            status=status,
            owner=owner,
            type=type_,
            tutor_id=tutor,
            overdue=True if overdue else None,
            limit=limit,
        )
        rows = [serialize(iv) for iv in items]
    if output == "json":
        console.print_json(json.dumps({"items": rows, "total": total}))
        return
    table = Table(title=f"{total} interventions")
    for col in ("id", "tutor", "type", "status", "owner", "due", ""):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["tutor_id"],
            r["type"],
            r["status"],
            r["owner"] or "",
            r["due_date"] or "",
            "[red]overdue[/red]" if r["overdue"] else "",
        )
    console.print(table)


@interventions_app.command("create")
def create_cmd(
    tutor: str = typer.Option(..., "--tutor"),
    type_: str = typer.Option(..., "--type", help="The action, e.g. one from the playbook."),
    flag: str | None = typer.Option(None, "--flag", help="Playbook key it answers."),
    owner: str | None = typer.Option(None, "--owner"),
    due: str | None = typer.Option(None, "--due", help="YYYY-MM-DD"),
    notes: str | None = typer.Option(None, "--notes"),
) -> None:
    """Open a coaching task (audited as cli:<user>)."""
    from tutorscore.interventions.service import create_intervention

    with transaction(get_engine()) as session:
        iv = create_intervention(
            session,
            tutor_id=tutor,
            type=type_,
            flag=flag,
            owner=owner,
            due_date=_date(due, "--due"),
            notes=notes,
            actor=_actor(),
            rules=get_rules(),
        )
        console.print(f"intervention {iv.id} opened for {tutor}")


@interventions_app.command("update")
def update_cmd(
    intervention_id: int = typer.Argument(...),
    status: str | None = typer.Option(None, "--status", help="in_progress | done"),
    owner: str | None = typer.Option(None, "--owner"),
    due: str | None = typer.Option(None, "--due", help="YYYY-MM-DD"),
    notes: str | None = typer.Option(None, "--notes"),
) -> None:
    """Move a task along open -> in_progress -> done or edit it."""
    from tutorscore.interventions.service import update_intervention

    changes: dict[str, object] = {}
    if status is not None:
        changes["status"] = status
    if owner is not None:
        changes["owner"] = owner
    if due is not None:
        changes["due_date"] = _date(due, "--due")
    if notes is not None:
        changes["notes"] = notes
    with transaction(get_engine()) as session:
        iv = update_intervention(session, intervention_id, actor=_actor(), **changes)  # type: ignore[arg-type]
        console.print(f"intervention {iv.id}: {iv.status}")


@interventions_app.command("outcomes")
def outcomes_cmd(
    intervention_id: int | None = typer.Option(None, "--id", help="One intervention."),
    as_of: str | None = typer.Option(None, "--as-of"),
) -> None:
    """Before/after effects (JSON): one intervention, or the summary per type."""
    from tutorscore.interventions.outcomes import intervention_outcome, outcome_summary
    from tutorscore.interventions.service import get_intervention

    rules = get_rules()
    when = parse_timestamp(as_of)
    with transaction(get_engine()) as session:
        if intervention_id is not None:
            iv = get_intervention(session, intervention_id)
            data: object = intervention_outcome(session, iv, rules=rules, as_of=when)
        else:
            data = outcome_summary(session, rules=rules, as_of=when)
    console.print_json(json.dumps(data, default=str))


def recommendations(
    tutor_id: str = typer.Argument(...),
    as_of: str | None = typer.Option(None, "--as-of"),
) -> None:
    """Playbook actions for one tutor's flags and frequent risk tags."""
    from tutorscore.interventions.playbook import tutor_recommendations

    with transaction(get_engine()) as session:
        recs = tutor_recommendations(
            session, tutor_id, rules=get_rules(), as_of=parse_timestamp(as_of) if as_of else None
        )
    if not recs:
        console.print(f"{tutor_id}: nothing flagged, no recommendation")
    for rec in recs:
        console.print(f"[bold]{rec.title}[/bold] [dim]({rec.key})[/dim] {rec.evidence}")
        for action in rec.actions:
            assigned = " [green](assigned)[/green]" if action in rec.open_interventions else ""
            console.print(f"  - {action}{assigned}")


@alerts_app.command("list")
def alerts_list(
    tutor: str | None = typer.Option(None, "--tutor"),
    limit: int = typer.Option(50, "--limit"),
) -> None:
    """Recent alerts with their delivery state (JSON)."""
    from tutorscore.interventions.alerts import list_alerts

    with transaction(get_engine()) as session:
        console.print_json(json.dumps(list_alerts(session, tutor_id=tutor, limit=limit)))


@alerts_app.command("detect")
def alerts_detect(as_of: str | None = typer.Option(None, "--as-of")) -> None:
    """Record alerts for the tutor_metrics rows at --as-of (analytics does this itself)."""
    from tutorscore.interventions.alerts import detect_alerts

    with transaction(get_engine()) as session:
        found = detect_alerts(session, as_of=parse_timestamp(as_of), rules=get_rules())
        console.print(f"{len(found)} new alerts")


@alerts_app.command("deliver")
def alerts_deliver() -> None:
    """Send undelivered alerts to TUTORSCORE_ALERT_WEBHOOK_URL (retries with backoff)."""
    from tutorscore.interventions.alerts import deliver_pending

    report = deliver_pending(get_engine(), rules=get_rules(), settings=get_settings())
    if report.skipped:
        raise UserError(report.skipped)
    console.print(f"delivered {report.delivered}, failed {report.failed}")


def register(app: typer.Typer) -> None:
    app.add_typer(interventions_app, name="interventions")
    app.add_typer(alerts_app, name="alerts")
    app.command("recommendations")(recommendations)
