"""API writes during a long `tutorscore import` on SQLite: 503 + Retry-After, not 500.

Usage: python benchmarks/import_contention.py [--sessions 900000] [--interval 0.25]

Writes a CSV bundle (100 tutors, 5,000 students, `--sessions` sessions) and a
fresh SQLite database, starts `tutorscore serve --no-worker` on it, then runs
`tutorscore import` of the bundle in another process while one client POSTs a
session to /api/sessions every `--interval` seconds (each waits for its answer).
SQLite has one writer: while the import writes (one transaction, all-or-nothing),
API writes wait up to the 30 s busy timeout and then answer 503 with Retry-After;
before this change they answered 500 "database is locked". Prints the answers by
status and their latency.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tutorscore.auth.users import create_token, create_user
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.migrate import upgrade


def write_bundle(directory: Path, sessions: int) -> None:
    directory.mkdir(parents=True)
    with open(directory / "tutors.csv", "w") as fh:
        fh.write("tutor_id,name,subjects\n")
        fh.writelines(f"T{k},Tutor {k},Math\n" for k in range(100))
    with open(directory / "students.csv", "w") as fh:
        fh.write("student_id\n")
        fh.writelines(f"S{k}\n" for k in range(5000))
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    with open(directory / "sessions.csv", "w") as fh:
        fh.write(
            "session_id,tutor_id,student_id,subject,scheduled_start_at,actual_start_at,"
            "duration_minutes,status,student_rating\n"
        )
        for i in range(sessions):
            when = t0 + timedelta(minutes=i)
            fh.write(
                f"B{i},T{i % 100},S{(i * 7) % 5000},Math,{when.isoformat()},"
                f"{(when + timedelta(minutes=1)).isoformat()},50,completed,{1 + i % 5}\n"
            )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=900_000)
    parser.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tutorscore-contention-") as tmp:
        root = Path(tmp)
        url = f"sqlite:///{root}/tutorscore.db"
        engine = make_engine(url)
        upgrade(engine)
        with transaction(engine) as s:
            create_user(s, username="bench", password="bench-password-1", role="admin", actor="b")
            token = create_token(s, username="bench", actor="bench")
            from tutorscore.db.models import Student, Tutor

            s.add(Tutor(tutor_id="API", name="Api", subjects=["Math"]))
            s.add(Student(student_id="APIS"))
        engine.dispose()
        write_bundle(root / "bundle", args.sessions)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "TUTORSCORE_DATA_DIR": str(root),
            "TUTORSCORE_SECRET_KEY": "contention-benchmark-secret-key",
            "TUTORSCORE_LOG_LEVEL": "WARNING",
        }
        env.pop("TUTORSCORE_LLM_BASE_URL", None)
        port = free_port()
        server_log = open(root / "serve.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [sys.executable, "-m", "tutorscore", "serve", "--no-worker", "--port", str(port)],
            env=env, stdout=server_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        results: list[tuple[float, int, str | None, float]] = []  # (t, status, retry, ms)
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                k = 0
                while not stop.is_set():
                    k += 1
                    body = {
                        "session_id": f"API{k}", "tutor_id": "API", "student_id": "APIS",
                        "subject": "Math", "status": "scheduled",
                        "scheduled_start_at": "2026-12-01T10:00:00Z",
                    }  # fmt: skip
                    started = time.perf_counter()
                    try:
                        r = http.post("/api/sessions", json=body)
                        status, retry = r.status_code, r.headers.get("Retry-After")
                    except httpx.HTTPError:
                        status, retry = 0, None
                    results.append(
                        (time.monotonic(), status, retry, 1000 * (time.perf_counter() - started))
                    )
                    time.sleep(args.interval)

        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    httpx.get(base + "/healthz", timeout=2)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit((root / "serve.log").read_text()) from None
                    time.sleep(0.2)
            writer = threading.Thread(target=client)
            writer.start()
            started = time.monotonic()
            imported = subprocess.run(
                [sys.executable, "-m", "tutorscore", "import", str(root / "bundle")],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            import_seconds = time.monotonic() - started
            time.sleep(2)  # a few writes after the import, to see them succeed again
            stop.set()
            writer.join(timeout=90)
        finally:
            server.terminate()
            server.wait(timeout=30)
            server_log.close()
    during = [r for r in results if r[0] <= started + import_seconds]
    statuses = Counter(status for _, status, _, _ in during)
    retry_ok = all(retry == "5" for _, status, retry, _ in during if status == 503)
    latencies = sorted(ms for *_, ms in during)
    p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
    after = [status for t, status, _, _ in results if t > started + import_seconds]
    print(
        f"import of {args.sessions:,} sessions: exit {imported.returncode}, "
        f"{import_seconds:.1f} s; one client POSTing /api/sessions every {args.interval} s"
    )
    print()
    print(
        "| import s | API writes during it | 201 | 503 (Retry-After: 5) | 500 | other "
        "| p50 ms | p95 ms | max ms | after the import |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    other = sum(n for s, n in statuses.items() if s not in (201, 503, 500))
    print(
        f"| {import_seconds:.1f} | {len(during)} | {statuses[201]} | {statuses[503]}"
        f"{'' if retry_ok else ' (Retry-After missing)'} | {statuses[500]} | {other} "
        f"| {statistics.median(latencies) if latencies else 0:.0f} | {p95:.0f} "
        f"| {max(latencies, default=0):.0f} | {dict(Counter(after))} |"
    )
    if imported.returncode != 0:
        print(imported.stdout[-2000:], imported.stderr[-2000:])


if __name__ == "__main__":
    main()
