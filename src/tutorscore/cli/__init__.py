"""The `tutorscore` command. Thin: parses arguments and calls the domain packages.

Each domain registers its commands from its own module here, so commands for
ingest, analytics, evaluation, web and prediction live beside each other.
"""

from __future__ import annotations

import sys

import typer

from tutorscore.cli import analytics as analytics_commands
from tutorscore.cli import demo as demo_commands
from tutorscore.cli import evaluation as evaluation_commands
from tutorscore.cli import ingest as ingest_commands
from tutorscore.cli import interventions as interventions_commands
from tutorscore.cli import judge as judge_commands
from tutorscore.cli import llm as llm_commands
from tutorscore.cli import prediction as prediction_commands
from tutorscore.cli import reviews as reviews_commands
from tutorscore.cli import web as web_commands
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


# Each domain's commands, registered in this order (the order of `tutorscore --help`).
# The command modules import their domain code inside each command, so this stays cheap.
for _commands in (
    ingest_commands,
    analytics_commands,
    evaluation_commands,
    judge_commands,
    llm_commands,
    web_commands,
    prediction_commands,
    interventions_commands,
    reviews_commands,
    demo_commands,
):
    _commands.register(app)


def main() -> None:
    try:
        app(standalone_mode=True)
    except (UserError, ConfigError) as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
