"""Fault benchmark on Postgres: a worker killed with SIGKILL and a 10 s database outage.

Usage: python benchmarks/faults.py [--jobs 1000] [--outage 10] [--lease 10]

In a throwaway Postgres database: queue `--jobs` heuristic evaluations, start two
`tutorscore worker` processes, SIGKILL one of them (by PID) while it holds
claimed jobs, then take the database offline for `--outage` seconds (ALTER
DATABASE ... ALLOW_CONNECTIONS false and pg_terminate_backend of its backends;
the shared server keeps running) and bring it back. The surviving worker must
pick up the killed one's jobs when their lease (`--lease` s) runs out, ride out
the outage and drain the queue by itself.

Prints jobs lost (not done at the end), duplicated (sessions evaluated more than
once), dead, seconds from the database's return to the first job finished after
it (resume) and to the queue drained, and how many outage lines each worker logged.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tutorscore.config import load_rules
from tutorscore.db.engine import make_engine, transaction
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.testing.databases import (
    allow_connections,
    refuse_connections,
    temporary_database,
)

sys.path.insert(0, str(Path(__file__).parent))
from evaluation_queue import seed  # noqa: E402


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Monitor:
    """Counts done jobs through its own connection, reconnecting after the outage."""

    def __init__(self, url: str) -> None:
        self.conninfo = _conninfo(url)
        self.conn: psycopg.Connection[tuple[int, ...]] | None = None

    def scalar(self, sql: str) -> int | None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
            row = self.conn.execute(sql).fetchone()
            return int(row[0]) if row else None
        except psycopg.Error:
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return None

    def done(self) -> int | None:
        return self.scalar("SELECT count(*) FROM jobs WHERE status = 'done'")

    def held_by(self, worker: str) -> int:
        return (
            self.scalar(
                "SELECT count(*) FROM jobs WHERE status = 'running' "
                f"AND locked_by LIKE '{worker}/%'"
            )
            or 0
        )


def start_worker(url: str, name: str, log_dir: Path, lease: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TUTORSCORE_EVALUATION__LEASE_SECONDS": str(lease),
        "TUTORSCORE_LOG_LEVEL": "INFO",
    }
    env.pop("TUTORSCORE_LLM_BASE_URL", None)
    out = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "tutorscore", "worker", "--worker-id", name],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def outage_lines(log: Path) -> dict[str, int]:
    counts = {"database_unavailable": 0, "database_recovered": 0, "tracebacks": 0}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("Traceback"):
            counts["tracebacks"] += 1
        if not line.startswith("{"):
            continue
        event = json.loads(line).get("event")
        if event in counts:
            counts[event] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--tutors", type=int, default=20)
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--lease", type=int, default=10)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    args = parser.parse_args()
    rules = load_rules(None, environ={})
    with (
        temporary_database("postgres", label="faults") as url,
        tempfile.TemporaryDirectory(prefix="tutorscore-faults-") as tmp,
    ):
        logs = Path(tmp)
        seed(url, args.jobs, args.tutors)
        engine = make_engine(url)
        with transaction(engine) as s:
            queued = enqueue_evaluations(s, rules=rules)
        engine.dispose()
        assert queued == args.jobs, queued
        monitor = Monitor(url)
        started = time.monotonic()
        procs = {name: start_worker(url, name, logs, args.lease) for name in ("victim", "steady")}
        try:
            wait_for(lambda: (monitor.done() or 0) >= args.jobs // 10, 300, "the first jobs")
            wait_for(lambda: monitor.held_by("victim") > 0, 60, "the victim to hold jobs")
            orphaned = monitor.held_by("victim")
            procs["victim"].send_signal(signal.SIGKILL)
            procs["victim"].wait(timeout=10)
            killed_at = time.monotonic()
            done_at_kill = monitor.done() or 0
            wait_for(
                lambda: (monitor.done() or 0) >= done_at_kill + args.jobs // 5,
                300,
                "progress after the kill",
            )
            done_before = monitor.done() or 0
            terminated = refuse_connections(url)
            down_at = time.monotonic()
            time.sleep(args.outage)
            allow_connections(url)
            back_at = time.monotonic()
            resumed_at: float | None = None
            drained_at: float | None = None
            baseline = None
            while time.monotonic() - back_at < args.drain_timeout:
                done = monitor.done()
                if done is not None:
                    if baseline is None:
                        baseline = done
                    if resumed_at is None and done > baseline:
                        resumed_at = time.monotonic()
                    if done >= args.jobs:
                        drained_at = time.monotonic()
                        break
                time.sleep(0.05)
            steady_alive = procs["steady"].poll() is None
            if steady_alive:
                procs["steady"].send_signal(signal.SIGTERM)
                procs["steady"].wait(timeout=60)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)
            monitor.scalar("SELECT 1")
        stats = {
            k: monitor.scalar(sql)
            for k, sql in {
                "not_done": "SELECT count(*) FROM jobs WHERE status <> 'done'",
                "dead": "SELECT count(*) FROM jobs WHERE status = 'dead'",
                "jobs": "SELECT count(*) FROM jobs",
                "evaluated_sessions": "SELECT count(DISTINCT session_id) FROM session_evaluations",
                "duplicated": "SELECT count(*) FROM (SELECT session_id FROM session_evaluations"
                " GROUP BY session_id, judge HAVING count(*) > 1) d",
                "max_attempts": "SELECT max(attempts) FROM jobs",
            }.items()
        }
        if monitor.conn is not None:
            monitor.conn.close()
        lines = outage_lines(logs / "steady.log")
    lost = args.jobs - (stats["evaluated_sessions"] or 0)
    resume = None if resumed_at is None else resumed_at - back_at
    drain = None if drained_at is None else drained_at - back_at
    print(
        f"{args.jobs} jobs, 2 workers (4 slots each), lease {args.lease} s; victim SIGKILLed "
        f"holding {orphaned} jobs at {killed_at - started:.1f} s; database refused connections "
        f"for {back_at - down_at:.1f} s ({terminated} backends terminated) with {done_before} done"
    )
    print()
    print(
        "| jobs | lost | duplicated | dead | not done | resume s after the database returned "
        "| drained s after it | worker alive | outage lines (down/up) | tracebacks |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.jobs} | {lost} | {stats['duplicated']} | {stats['dead']} | {stats['not_done']} "
        f"| {'-' if resume is None else f'{resume:.1f}'} "
        f"| {'-' if drain is None else f'{drain:.1f}'} | {'yes' if steady_alive else 'NO'} "
        f"| {lines['database_unavailable']}/{lines['database_recovered']} "
        f"| {lines['tracebacks']} |"
    )
    print(f"\nmax attempts of any job: {stats['max_attempts']}; rows in jobs: {stats['jobs']}")


if __name__ == "__main__":
    main()
