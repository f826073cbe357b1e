"""`tutorscore judge train|show`: the offline judge's tutor-move model."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from tutorscore.cli.common import console

judge_app = typer.Typer(help="The offline judge's tutor-move model.", no_args_is_help=True)


@judge_app.command("train")
def train(
    data: Path | None = typer.Option(
        None,
        "--data",
        help="MathDial moves JSONL (default: corpora/tutoring-dialogues/ of this checkout).",
    ),
    bridge_data: Path | None = typer.Option(
        None,
        "--bridge-data",
        help="Bridge JSONL whose train split is added (default: corpora/tutoring-dialogues/).",
    ),
    bridge: bool = typer.Option(
        True, "--bridge/--no-bridge", help="Add Bridge's train split (--no-bridge: MathDial only)."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Model file to write (default: the one shipped in the package)."
    ),
    cv: bool = typer.Option(True, "--cv/--no-cv", help="Report grouped cross-validation."),
) -> None:
    """Fit the tutor-move model (deterministic) and write it as plain JSON."""
    from tutorscore.evaluation import move_training as mt

    data_path = data or mt.default_data_path()
    bridge_path = (bridge_data or mt.default_bridge_path()) if bridge else None
    out = output or mt.default_model_path()
    payload = mt.train(data_path, bridge_data=bridge_path, cv=cv)
    mt.write_model(payload, out)
    _print(payload, out)


@judge_app.command("show")
def show(
    model: Path | None = typer.Option(None, "--model", help="Model file (default: bundled)."),
    output: str = typer.Option("table", "--format", help="table | json"),
) -> None:
    """The model's training data hash, size and cross-validated quality."""
    from tutorscore.evaluation import move_training as mt

    path = model or mt.default_model_path()
    payload = json.loads(path.read_text("utf-8"))
    if output == "json":
        meta = {"model_sha256": payload.get("model_sha256"), **payload.get("training", {})}
        console.print_json(json.dumps(meta))
        return
    _print(payload, path)


def _print(payload: dict[str, object], path: Path) -> None:
    training = payload.get("training")
    assert isinstance(training, dict)
    table = Table(title="tutor-move model", show_header=False)
    table.add_row("file", str(path))
    table.add_row("model sha256", str(payload.get("model_sha256")))
    table.add_row("data", f"{training['data_file']} (sha256 {str(training['data_sha256'])[:16]}…)")
    table.add_row("dialogues / turns", f"{training['dialogues']} / {training['turns']}")
    table.add_row("labels", ", ".join(f"{k} {v}" for k, v in training["label_counts"].items()))
    extra = training.get("bridge")
    if isinstance(extra, dict):
        table.add_row(
            "plus Bridge",
            f"{extra['responses']} responses of its {extra['split']} split, weight "
            f"{extra['weight']:g} (sha256 {str(extra['data_sha256'])[:16]}…)",
        )
    vocabulary = payload.get("vocabulary")
    table.add_row("word n-grams", str(len(vocabulary) if isinstance(vocabulary, dict) else 0))
    cv = training.get("cross_validation")
    if isinstance(cv, dict):
        table.add_row(
            f"{cv['folds']}-fold CV by {cv['grouped_by']}",
            f"accuracy {cv['accuracy']:.3f}, macro-F1 {cv['macro_f1']:.3f}, "
            f"session scaffolding Spearman {cv['session_scaffolding_spearman']:.3f}",
        )
        table.add_row("F1 per move", ", ".join(f"{k} {v:.3f}" for k, v in cv["f1"].items()))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(judge_app, name="judge")
