"""Web commands: `serve` (dashboard + API + background worker), `users create`, `tokens create`."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from sqlalchemy import Engine

from tutorscore.cli.common import console, err_console, get_engine
from tutorscore.config import RulesConfig, Settings
from tutorscore.errors import UserError

if TYPE_CHECKING:
    from tutorscore.evaluation.health import WorkerStatus

users_app = typer.Typer(help="User accounts (roles: admin, coach, viewer).", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for machines (Bearer).", no_args_is_help=True)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    worker: bool = typer.Option(
        True,
        "--worker/--no-worker",
        help="Run the evaluation worker in a background thread (default on).",
    ),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log"),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Web processes (the evaluation worker runs once)."
    ),
) -> None:
    """Serve the dashboard and JSON API; by default also evaluate queued sessions."""
    import logging

    import uvicorn

    from tutorscore.config import get_rules, get_settings
    from tutorscore.web.app import create_app, tune_gc_for_serving, tune_sqlite
    from tutorscore.web.middleware import configure_logging

    settings, rules, engine = get_settings(), get_rules(), get_engine()
    tune_sqlite(engine)  # before the worker thread opens connections
    configure_logging(settings.log_level)
    if not access_log:
        logging.getLogger("tutorscore.web.access").setLevel(logging.WARNING)
    stop = threading.Event()
    thread: threading.Thread | None = None
    scratch, status = _shared_state(workers, worker)
    if worker and status is not None:
        thread = _start_worker(engine, settings, rules, stop, status)
        if thread is None:
            status.set("dead", "the evaluation worker could not be imported")
    console.print(
        f"serving on http://{host}:{port}/ ({workers} web process(es), "
        f"evaluation worker: {'on' if thread else 'off'})"
    )
    try:
        if workers > 1:
            # Each process builds its own app (and engine) from the environment.
            uvicorn.run(
                "tutorscore.web.app:create_served_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                # a child imports the whole app (scikit-learn included) before it can
                # answer the supervisor's ping; give it time on a busy machine
                timeout_worker_healthcheck=120,
                log_config=None,
                access_log=False,
            )
        else:
            app = create_app(
                settings, rules, engine, worker_status=status.snapshot if status else None
            )
            server = uvicorn.Server(
                uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
            )
            tune_gc_for_serving()
            server.run()
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        if scratch is not None:
            scratch.cleanup()


def _shared_state(
    workers: int, worker: bool
) -> tuple[tempfile.TemporaryDirectory[str] | None, WorkerStatus | None]:
    """(scratch directory, worker status) for `serve`. Several web processes are
    children: they sum their Prometheus samples through a shared directory and read
    the worker thread's status from a file there."""
    from tutorscore.evaluation.health import WorkerStatus
    from tutorscore.web.app import WORKER_STATUS_FILE_ENV
    from tutorscore.web.metrics import MULTIPROC_ENV

    if workers <= 1:
        return None, WorkerStatus() if worker else None
    scratch = tempfile.TemporaryDirectory(prefix="tutorscore-serve-")
    if not os.environ.get(MULTIPROC_ENV):
        metrics_dir = Path(scratch.name) / "prometheus"
        metrics_dir.mkdir()
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
    status = None
    if worker:
        status_file = Path(scratch.name) / "worker-status.json"
        os.environ[WORKER_STATUS_FILE_ENV] = str(status_file)
        status = WorkerStatus(status_file)
    return scratch, status


def _start_worker(
    engine: Engine,
    settings: Settings,
    rules: RulesConfig,
    stop: threading.Event,
    status: WorkerStatus | None = None,
) -> threading.Thread | None:
    """The evaluation worker in a daemon thread; `status` says when it died (/healthz)."""

    def target() -> None:
        import logging

        try:
            # imported here: the churn model's imports (scikit-learn) load in this
            # thread, while the server starts
            from tutorscore.evaluation.worker import run_worker
            from tutorscore.flows.metrics import after_metrics

            run_worker(
                engine, settings, rules, stop_event=stop, status=status, after_write=after_metrics
            )
        except Exception:  # run_worker marked the status dead; /healthz now answers 503
            logging.getLogger("tutorscore.web").exception("evaluation worker stopped")

    thread = threading.Thread(target=target, name="evaluation-worker", daemon=True)
    thread.start()
    return thread


def users_create(
    username: str = typer.Option(..., "--username", help="Login name."),
    role: str = typer.Option(..., "--role", help="admin | coach | viewer"),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Create a user. The password is read from stdin (never from the command line)."""
    from tutorscore.auth.users import create_user
    from tutorscore.db.engine import transaction

    if not password_stdin:
        raise UserError("pass --password-stdin and the password on standard input")
    password = sys.stdin.readline().rstrip("\r\n")
    with transaction(get_engine()) as session:
        create_user(session, username=username, password=password, role=role, actor="cli")
    console.print(f"user [bold]{username}[/bold] created with role [bold]{role}[/bold]")


def tokens_create(
    username: str = typer.Option(..., "--username", help="The user the token acts as."),
    name: str | None = typer.Option(None, "--name", help="A label, e.g. the machine's name."),
) -> None:
    """Print a new API token for the user. It is shown once; only its hash is stored."""
    from tutorscore.auth.users import create_token
    from tutorscore.db.engine import transaction

    with transaction(get_engine()) as session:
        token = create_token(session, username=username, name=name, actor="cli")
    err_console.print("API token (shown once; send it as 'Authorization: Bearer <token>'):")
    print(token)


def users_deactivate(
    username: str = typer.Option(..., "--username", help="Login name."),
) -> None:
    """Deactivate a user: no login; their cookie sessions and API tokens stop working (audited)."""
    from tutorscore.auth.users import deactivate_user
    from tutorscore.db.engine import transaction

    with transaction(get_engine()) as session:
        user = deactivate_user(session, username=username, actor="cli")
        name = user.username
    console.print(f"user [bold]{name}[/bold] deactivated")


def users_set_password(
    username: str = typer.Option(..., "--username", help="Login name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the new password from standard input."
    ),
) -> None:
    """Set a user's password (read from stdin); ends their cookie sessions (audited)."""
    from tutorscore.auth.users import set_password
    from tutorscore.db.engine import transaction

    if not password_stdin:
        raise UserError("pass --password-stdin and the password on standard input")
    password = sys.stdin.readline().rstrip("\r\n")
    with transaction(get_engine()) as session:
        set_password(session, username=username, new_password=password, actor="cli")
    console.print(f"password of [bold]{username}[/bold] changed; their sessions ended")


def tokens_list(
    username: str | None = typer.Option(None, "--username", help="Only this user's tokens."),
) -> None:
    """List API tokens (id, user, name, created, last used, revoked); never their values."""
    from tutorscore.auth.users import list_tokens
    from tutorscore.db.engine import transaction

    with transaction(get_engine()) as session:
        rows = list_tokens(session, username=username)
    for t in rows:
        state = "revoked" if t["revoked"] else "active"
        print(
            f"{t['id']}\t{t['username']}\t{t['name'] or '-'}\t{t['created_at']}\t"
            f"{t['last_used_at'] or '-'}\t{state}"
        )


def tokens_revoke(
    token_ids: list[int] = typer.Argument(None, help="Token ids (see `tokens list`)."),
    username: str | None = typer.Option(
        None, "--username", help="Revoke every token of this user."
    ),
) -> None:
    """Revoke API tokens by id, or all of one user's (audited); they stop working at once."""
    from tutorscore.auth.users import list_tokens, revoke_token
    from tutorscore.db.engine import transaction

    ids = list(token_ids or [])
    if not ids and username is None:
        raise UserError("give token ids or --username")
    with transaction(get_engine()) as session:
        if username is not None:
            ids += [int(str(t["id"])) for t in list_tokens(session, username=username)
                    if not t["revoked"]]  # fmt: skip
        for token_id in ids:
            revoke_token(session, token_id=token_id, actor="cli")
    console.print(f"revoked {len(ids)} token(s)")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    users_app.command("create")(users_create)
    users_app.command("deactivate")(users_deactivate)
    users_app.command("set-password")(users_set_password)
    tokens_app.command("create")(tokens_create)
    tokens_app.command("list")(tokens_list)
    tokens_app.command("revoke")(tokens_revoke)
    app.add_typer(users_app, name="users")
    app.add_typer(tokens_app, name="tokens")
