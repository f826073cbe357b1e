"""`tutorscore model train|evaluate|show` and `tutorscore no-shows`."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from tutorscore.cli.common import console, get_engine, parse_timestamp
from tutorscore.config import get_rules, get_settings
from tutorscore.errors import UserError

model_app = typer.Typer(help="The churn model: train, evaluate, show.", no_args_is_help=True)


def _auc(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@model_app.command("train")
def train(
    as_of: str | None = typer.Option(
        None, "--as-of", help="Last training snapshot (default: now)."
    ),
    labels_until: str | None = typer.Option(
        None,
        "--labels-until",
        help="Churn outcomes are known up to here (default: --as-of). Later than --as-of "
        "only for a history whose future is recorded (a backtest or the demo).",
    ),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Train on fortnightly snapshots, choose C by grouped CV, calibrate, gate on held-out AUC."""
    from tutorscore.prediction.churn import result_dict, train_churn_model

    result = train_churn_model(
        get_engine(),
        as_of=parse_timestamp(as_of),
        rules=get_rules(),
        settings=get_settings(),
        labels_until=parse_timestamp(labels_until) if labels_until else None,
    )
    if output == "json":
        console.print_json(json.dumps(result_dict(result), default=str))
        return
    table = Table(title=f"churn model {result.version}", show_header=False)
    table.add_row("chosen", str(result.chosen))
    for name, value in result.cv_auc.items():
        table.add_row(f"CV AUC {name}", _auc(value))
    table.add_row("held-out snapshot", str(result.heldout_snapshot))
    table.add_row("held-out rows", f"{result.heldout_rows} ({result.heldout_positives} churned)")
    table.add_row("held-out AUC model", _auc(result.heldout_model_auc))
    table.add_row("held-out AUC rules", _auc(result.heldout_rules_auc))
    table.add_row("training rows", f"{result.rows} ({result.positives} churned)")
    table.add_row(
        "snapshots", f"{len(result.snapshots)}: {result.snapshots[0]} .. {result.snapshots[-1]}"
    )
    table.add_row("outcomes known until", str(result.labels_until))
    verdict = "[green]model used[/green]" if result.gate_passed else "[yellow]rules decide[/yellow]"
    table.add_row("quality gate", f"{verdict}: {result.gate_reason}")
    console.print(table)
    _reliability(result.reliability)
    console.print("Run `tutorscore analytics` to score tutors with it.")


def _num(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _reliability(
    table_rows: list[dict[str, Any]], what: str = "churn", rows: str = "tutors"
) -> None:
    """Predicted decile vs observed rate on the held-out snapshot (or window)."""
    if not table_rows:
        console.print("[dim]no reliability table (no held-out snapshot)[/dim]")
        return
    table = Table(title=f"{what} reliability on the held-out rows (calibrated probabilities)")
    for col in ("decile", rows, "predicted range", "mean predicted", "observed rate"):
        table.add_column(col, justify="right")
    for b in table_rows:
        table.add_row(
            str(b["bin"]),
            str(b["rows"]),
            f"{b['predicted_low']:.1%}-{b['predicted_high']:.1%}",
            f"{b['mean_predicted']:.1%}",
            f"{b['observed_rate']:.1%} ({b['positives']})",
        )
    console.print(table)


@model_app.command("train-no-shows")
def train_no_shows(
    as_of: str | None = typer.Option(None, "--as-of", help="End of the held-out window."),
    days: float = typer.Option(7.0, "--days", help="Length of each backtest window."),
    windows: int = typer.Option(6, "--windows", help="Windows ending at --as-of."),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """Train the no-show model on time-ordered windows; gate it against the formula."""
    from dataclasses import asdict

    from tutorscore.prediction.no_show_model import train_no_show_model

    result = train_no_show_model(
        get_engine(),
        as_of=parse_timestamp(as_of),
        rules=get_rules(),
        settings=get_settings(),
        days=days,
        windows=windows,
    )
    if output == "json":
        console.print_json(json.dumps(asdict(result), default=str))
        return
    table = Table(title=f"no-show model {result.version}", show_header=False)
    table.add_row("chosen", f"C={result.chosen_c:g}")
    for name, value in result.cv_auc.items():
        table.add_row(f"CV AUC {name}", _auc(value))
    table.add_row("held-out window", result.heldout_window)
    table.add_row(
        "held-out sessions", f"{result.heldout_sessions} ({result.heldout_no_shows} no-shows)"
    )
    table.add_row("held-out AUC model", _auc(result.model_auc))
    table.add_row("held-out AUC formula", _auc(result.formula_auc))
    table.add_row(
        "held-out Brier",
        f"model {_num(result.model_brier, '.4f')}, formula {_num(result.formula_brier, '.4f')}",
    )
    verdict = "[green]model used[/green]" if result.gate_passed else "[yellow]formula[/yellow]"
    table.add_row("quality gate", f"{verdict}: {result.gate_reason}")
    console.print(table)
    _reliability(result.reliability, what="no-show", rows="sessions")


@model_app.command("evaluate")
def evaluate(
    as_of: list[str] = typer.Option(
        None, "--as-of", help="Labelled snapshot(s) to score (repeatable; default: held-out)."
    ),
    version: str | None = typer.Option(None, "--version", help="Model version (default: newest)."),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """AUC of a stored model next to the rules' AUC on labelled snapshots."""
    from tutorscore.prediction.churn import evaluate_model
    from tutorscore.prediction.model_store import load_model

    settings = get_settings()
    times = [parse_timestamp(t) for t in as_of or []]
    if not times:
        stored = load_model(settings.data_dir, version)
        if stored is None:
            raise UserError("no churn model stored; run `tutorscore model train` first")
        held = stored.meta.get("heldout_snapshot")
        if not held:
            raise UserError("the model has no held-out snapshot; pass --as-of")
        times = [parse_timestamp(held)]
    report = evaluate_model(
        get_engine(), as_ofs=times, rules=get_rules(), settings=settings, version=version
    )
    if output == "json":
        console.print_json(json.dumps(report, default=str))
        return
    table = Table(title=f"churn model {report['version']} ({report['kind']})")
    for col in ("as_of", "rows", "churned", "model AUC", "rules AUC"):
        table.add_column(col)
    for snap in report["snapshots"]:
        table.add_row(
            snap["as_of"],
            str(snap["rows"]),
            str(snap["positives"]),
            _auc(snap["model_auc"]),
            _auc(snap["rules_auc"]),
        )
    console.print(table)
    console.print(f"[dim]{report['note']}[/dim]")


@model_app.command("show")
def show(
    version: str | None = typer.Option(None, "--version", help="Model version (default: newest)."),
    output: str = typer.Option("table", "--format", help="table | json"),
    no_shows: bool = typer.Option(False, "--no-shows", help="The no-show model instead."),
) -> None:
    """The stored model's sidecar: metrics, gate, date range, features, reliability."""
    from tutorscore.prediction.model_store import list_models
    from tutorscore.prediction.no_show_model import PREFIX

    if no_shows:
        _show_no_show_model(version, output, list_models(get_settings().data_dir, PREFIX))
        return
    metas = list_models(get_settings().data_dir)
    if version is not None:
        metas = [m for m in metas if m.get("version") == version]
    if not metas:
        raise UserError("no churn model stored; run `tutorscore model train` first")
    meta = metas[0]
    if output == "json":
        console.print_json(json.dumps(meta, default=str))
        return
    metrics = meta.get("metrics", {})
    gate = meta.get("gate", {})
    table = Table(title=f"churn model {meta['version']}", show_header=False)
    table.add_row("kind", str(meta.get("kind")))
    table.add_row("trained at", str(meta.get("trained_at")))
    rng = meta.get("date_range", {})
    table.add_row("snapshots", f"{rng.get('from')} .. {rng.get('to')}")
    table.add_row("candidate", str(meta.get("candidate")))
    table.add_row("outcomes known until", str(meta.get("labels_until")))
    table.add_row("held-out AUC model", _auc(metrics.get("heldout_model_auc")))
    table.add_row("held-out AUC rules", _auc(metrics.get("heldout_rules_auc")))
    held = metrics.get("heldout", {}).get("model", {})
    table.add_row(
        "held-out Brier",
        f"{_num(held.get('brier'), '.3f')} calibrated, "
        f"{_num(held.get('brier_uncalibrated'), '.3f')} before calibration",
    )
    table.add_row(
        "gate", ("passed: " if gate.get("passed") else "failed: ") + str(gate.get("reason"))
    )
    table.add_row("features", ", ".join(meta.get("features", [])))
    table.add_row("file", str(meta.get("file")))
    console.print(table)
    _reliability(meta.get("reliability", []))
    if len(metas) > 1 or version is None:
        others = [m["version"] for m in list_models(get_settings().data_dir)[1:6]]
        if others:
            console.print(f"[dim]older versions: {', '.join(others)}[/dim]")


def _show_no_show_model(version: str | None, output: str, metas: list[dict[str, Any]]) -> None:
    if version is not None:
        metas = [m for m in metas if m.get("version") == version]
    if not metas:
        raise UserError("no no-show model stored; run `tutorscore model train-no-shows` first")
    meta = metas[0]
    if output == "json":
        console.print_json(json.dumps(meta, default=str))
        return
    metrics = meta.get("metrics", {})
    gate = meta.get("gate", {})
    table = Table(title=f"no-show model {meta['version']}", show_header=False)
    table.add_row("trained at", str(meta.get("trained_at")))
    table.add_row("held-out window", str(meta.get("heldout_window")))
    table.add_row("held-out AUC model", _auc(metrics.get("heldout_model_auc")))
    table.add_row("held-out AUC formula", _auc(metrics.get("heldout_formula_auc")))
    table.add_row(
        "gate", ("passed: " if gate.get("passed") else "failed: ") + str(gate.get("reason"))
    )
    table.add_row("features", ", ".join(meta.get("features", [])))
    console.print(table)
    _reliability(meta.get("reliability", []), what="no-show", rows="sessions")


def no_shows(
    as_of: str | None = typer.Option(None, "--as-of", help="Now, for the list (default: now)."),
    days: float = typer.Option(7.0, "--days", help="Look this many days ahead."),
    show_all: bool = typer.Option(False, "--all", help="Every upcoming session, not only risky."),
    output: str = typer.Option("table", "--format", help="table | json"),
    limit: int = typer.Option(200, "--limit"),
    backtest: bool = typer.Option(
        False,
        "--backtest",
        help="Score the sessions that already took place in (as-of, as-of + days] from "
        "earlier history and report AUC and calibration.",
    ),
) -> None:
    """Upcoming sessions likely to be no-shows, for ops to confirm with tutor and student."""
    from tutorscore.db.engine import transaction
    from tutorscore.prediction import no_show
    from tutorscore.prediction.no_show import no_show_risks

    rules = get_rules()
    when = parse_timestamp(as_of)
    if backtest:
        with transaction(get_engine()) as session:
            report = no_show.backtest(
                session, as_of=when, rules=rules, days=days, settings=get_settings()
            )
        console.print_json(json.dumps(report))
        return
    threshold = None if show_all else rules.prediction.no_show_alert_probability
    with transaction(get_engine()) as session:
        risks = no_show_risks(
            session,
            as_of=when,
            rules=rules,
            days=days,
            min_probability=threshold,
            limit=limit,
            settings=get_settings(),
        )
    if output == "json":
        console.print_json(json.dumps([r.as_dict() for r in risks]))
        return
    title = f"{len(risks)} upcoming sessions"
    if threshold is not None:
        title += f" with no-show probability >= {threshold:.0%}"
    table = Table(title=title)
    for col in ("when (UTC)", "session", "tutor", "student", "p(no-show)", "why"):
        table.add_column(col)
    for r in risks:
        why = "; ".join(
            [f["text"] for f in r.factors] + [c.text() for c in r.components if c.sessions]
        )
        table.add_row(
            r.scheduled_start_at.strftime("%Y-%m-%d %H:%M"),
            r.session_id,
            r.tutor_id,
            r.student_id,
            f"{r.probability:.0%}",
            why or "no history: overall rate",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
    app.command("no-shows")(no_shows)
