"""`serve --workers N`: every scrape sums the latency histogram of all web processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tutorscore.db.engine import make_engine
from tutorscore.db.migrate import upgrade

HEALTHZ_COUNT = 'tutorscore_http_request_duration_seconds_count{method="GET",route="/healthz"'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "tutorscore.web.app:create_served_app",
            "--factory", "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        ],
        env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip


# Until a web process answers. Each one imports the whole app (scikit-learn included)
# after `serve` itself has: on a loaded 2-core machine (load ~12) that took 130 s, so
# the deadline is far beyond it; a server that fails to start exits and is caught at once.
STARTUP_DEADLINE_SECONDS = 300


def _wait_up(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(log.read_text())


def _healthz_count(port: int) -> float:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith(HEALTHZ_COUNT)
    )


def test_each_process_reports_the_requests_of_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/tutorscore.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TUTORSCORE_DATA_DIR": str(tmp_path),
        "TUTORSCORE_SECRET_KEY": "multiprocess-metrics-test-key",
        "TUTORSCORE_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    ports = [_free_port(), _free_port()]
    procs = [_serve(p, env, tmp_path / f"web{k}.log") for k, p in enumerate(ports)]
    try:
        for k, (port, proc) in enumerate(zip(ports, procs, strict=True)):
            _wait_up(port, proc, tmp_path / f"web{k}.log")
        for _ in range(5):
            assert httpx.get(f"http://127.0.0.1:{ports[0]}/healthz", timeout=60).status_code == 200
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{ports[1]}/healthz", timeout=60).status_code == 200
        # whichever process answers the scrape counts all 8
        assert _healthz_count(ports[0]) == 8
        assert _healthz_count(ports[1]) == 8
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=60)


def test_serve_with_several_web_processes_reports_the_worker_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/tutorscore.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TUTORSCORE_DATA_DIR": str(tmp_path),
        "TUTORSCORE_SECRET_KEY": "multiprocess-metrics-test-key",
        "TUTORSCORE_LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("TUTORSCORE_LLM_BASE_URL", None)
    port = _free_port()
    log = tmp_path / "serve.log"
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "tutorscore", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_up(port, proc, log)
        deadline = time.monotonic() + 120
        while True:  # the worker thread reaches "running" once its imports are done
            r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=60)
            if r.status_code == 200 and r.json()["worker"]["state"] == "running":
                break
            assert time.monotonic() < deadline, (r.text, log.read_text())
            time.sleep(0.2)
        assert r.json()["worker"]["alive"] is True
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=60).text
        assert "tutorscore_worker_up 1.0" in body
        assert HEALTHZ_COUNT in body  # the multiprocess histogram is exported
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=60)
