"""The `tutorscore` command. Thin: parses arguments and calls the domain packages.

Each domain registers its commands from its own module here, so commands for
ingest, analytics, evaluation, web and prediction live beside each other.
"""

from __future__ import annotations

import sys

import typer

from tutorscore.cli.common import err_console
from tutorscore.config import ConfigError
from tutorscore.errors import UserError

app = typer.Typer(
    name="tutorscore",
    help="Scores tutoring quality: evaluations, risk flags, churn prediction, interventions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """tutorscore: set DATABASE_URL to choose the database (SQLite by default)."""


def _register() -> None:
    from importlib import import_module

    for name in (
        "ingest",
        "analytics",
        "evaluation",
        "judge",
        "llm",
        "web",
        "prediction",
        "interventions",
        "reviews",
        "demo",
    ):
        try:
            module = import_module(f"tutorscore.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tutorscore.cli.{name}":
                continue
            raise
        module.register(app)


_register()


def main() -> None:
    try:
        app(standalone_mode=True)
    except (UserError, ConfigError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
