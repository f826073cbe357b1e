"""Run `tutorscore serve` as a subprocess on a free local port (browser tests, screenshots,
benchmarks). The process is stopped by its PID, never by name."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tutorscore_command() -> list[str]:
    exe = Path(sys.executable).with_name("tutorscore")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("tutorscore")
    return [found] if found else [sys.executable, "-m", "tutorscore"]


def wait_ready(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"server at {base_url} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the server (uvicorn shuts down gracefully), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextmanager
def running_server(
    env: Mapping[str, str],
    *,
    worker: bool = True,
    port: int | None = None,
    log_path: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[str]:
    """Yield the base URL of a `tutorscore serve` started with `env` added to os.environ."""
    port = port or free_port()
    args = [*tutorscore_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if not worker:
        args.append("--no-worker")
    args.extend(extra_args)
    full_env = {**os.environ, **env}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(args, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, proc)
        yield base_url
    finally:
        stop(proc)
        if log_path and not isinstance(log, int):
            log.close()


def prepare_demo(
    database_url: str,
    *,
    tutors: int = 40,
    students: int = 600,
    sessions: int = 1500,
    days: int = 30,
    transcripts: int = 80,
    seed: int = 7,
    as_of: object | None = None,
) -> None:
    """A small seeded, evaluated and analysed database for screenshots and browser tests
    (the seed-demo flow without the churn model, alert delivery or demo login)."""
    from datetime import UTC, datetime

    from tutorscore.config import Settings, load_rules
    from tutorscore.db.engine import make_engine
    from tutorscore.flows.demo import seed_demo

    when = as_of if isinstance(as_of, datetime) else datetime.now(UTC).replace(microsecond=0)
    engine = make_engine(database_url)
    try:
        seed_demo(
            engine,
            settings=Settings(DATABASE_URL=database_url),
            rules=load_rules(None, environ={}),
            as_of=when,
            seed=seed,
            sizes={
                "tutors": tutors,
                "students": students,
                "sessions": sessions,
                "days": days,
                "transcripts": transcripts,
            },
            demo_extras=False,
            history_weeks=0,
            train_churn_model=False,
            deliver_alerts=False,
            demo_login=False,
        )
    finally:
        engine.dispose()
