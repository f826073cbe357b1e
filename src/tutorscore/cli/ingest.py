"""Commands that create and fill the database: init, seed, import, export, demo."""

from __future__ import annotations

import typer

from tutorscore.cli.common import console, get_engine
from tutorscore.db.migrate import current_revision, upgrade


def init() -> None:
    """Create or upgrade the schema at DATABASE_URL (runs the migrations)."""
    engine = get_engine()
    upgrade(engine)
    where = engine.url.render_as_string(hide_password=True)
    console.print(f"schema at revision [bold]{current_revision(engine)}[/bold] ({where})")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
