"""Dashboard and API latency at 10k tutors / 1M sessions, and POST-to-visible time.

Usage:
  python benchmarks/web.py [--backend sqlite|postgres] [--tutors 10000] [--sessions 1000000]
                           [--requests 400] [--concurrency 8] [--posts 20]
                           [--workers 1] [--threads N] [--report-cache-ttl S]

Steps: seed (synthetic, 30 days), full analytics (on Postgres then VACUUM ANALYZE, which
autovacuum would do on a production server), `tutorscore serve` (uvicorn, `--workers`
processes, evaluation worker on) in a subprocess, then a *separate* load process (httpx
async client) requests /api/tutors (varied sorts, filters and pages), /tutors and
/tutors/{id} (random tutors) with N in flight, and reports p50/p95/p99 per endpoint
and how many of the requests were distinct (repeats may be served by the per-process
report cache; `--report-cache-ttl 0` switches it off).
Finally it records sessions with transcripts through POST /api/sessions, one at a time,
and measures the time until GET /api/tutors/{id} shows the heuristic evaluation counted
in the tutor's metrics (evaluated_sessions + 1). Targets: p95 < 150 ms; < 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

SORTS = ["risk", "tutor_reschedule_rate", "-avg_student_rating", "ai_avg_quality_score", "name"]
RISKS = [None, None, "high", "medium", "low"]
FLAGS = [None, None, None, "high_rescheduler_flag", "poor_first_session_flag"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


# ---------------------------------------------------------------- load process


def _request_plan(
    kind: str, tutor_ids: list[str], rng: random.Random
) -> tuple[str, dict[str, Any]]:
    if kind == "/api/tutors":
        params: dict[str, Any] = {"sort": rng.choice(SORTS), "limit": 50}
        params["offset"] = rng.choice([0, 0, 50, 500, 5000])
        if risk := rng.choice(RISKS):
            params["risk"] = risk
        if flag := rng.choice(FLAGS):
            params["flags"] = flag
        return "/api/tutors", params
    if kind == "/tutors":
        params = {"sort": rng.choice(SORTS), "page": rng.choice([1, 1, 2, 10, 100])}
        if risk := rng.choice(RISKS):
            params["risk"] = risk
        return "/tutors", params
    return f"/tutors/{rng.choice(tutor_ids)}", {}


async def _run_kind(
    c: httpx.AsyncClient,
    kind: str,
    requests: int,
    concurrency: int,
    tutor_ids: list[str],
    rng: random.Random,
) -> dict[str, Any]:
    for _ in range(5):  # warm-up
        path, params = _request_plan(kind, tutor_ids, rng)
        await c.get(path, params=params)
    latencies: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    seen: set[tuple[str, tuple[tuple[str, Any], ...]]] = set()

    async def one() -> None:
        nonlocal errors
        path, params = _request_plan(kind, tutor_ids, rng)
        seen.add((path, tuple(sorted(params.items()))))
        async with sem:
            t0 = time.perf_counter()
            r = await c.get(path, params=params)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(requests)))
    wall = time.perf_counter() - started
    return {
        "n": len(latencies),
        "distinct": len(seen),  # the rest can be report-cache hits (web/report_cache.py)
        "errors": errors,
        "p50_ms": round(pct(latencies, 0.50), 1),
        "p95_ms": round(pct(latencies, 0.95), 1),
        "p99_ms": round(pct(latencies, 0.99), 1),
        "rps": round(len(latencies) / wall, 1),
    }


async def _load(
    base: str, token: str, kinds: list[str], requests: int, concurrency: int, tutor_ids: list[str]
) -> dict[str, Any]:
    rng = random.Random(1)
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as c:
        return {
            kind: await _run_kind(c, kind, requests, concurrency, tutor_ids, rng) for kind in kinds
        }


def load_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base")
    p.add_argument("--token")
    p.add_argument("--requests", type=int)
    p.add_argument("--concurrency", type=int)
    p.add_argument("--tutor-ids")
    a = p.parse_args(argv)
    ids = json.loads(Path(a.tutor_ids).read_text())
    kinds = ["/api/tutors", "/tutors", "/tutors/{id}"]
    print(json.dumps(asyncio.run(_load(a.base, a.token, kinds, a.requests, a.concurrency, ids))))


# ---------------------------------------------------------------- driver


def _post_to_visible(base: str, token: str, tutor_ids: list[str], posts: int) -> list[float]:
    """Seconds from POST /api/sessions to the evaluation counted in GET /api/tutors/{id}."""
    rng = random.Random(2)
    headers = {"Authorization": f"Bearer {token}"}
    out = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
        for i in range(posts):
            tutor_id = rng.choice(tutor_ids)
            detail = c.get(f"/api/tutors/{tutor_id}").json()
            before = detail["evaluated_sessions"]
            student = (detail.get("recent_sessions") or [{}])[0].get("student_id")
            if student is None:
                continue
            now = datetime.now(UTC).replace(microsecond=0)
            body = {
                "session_id": f"bench-{int(time.time())}-{i}",
                "tutor_id": tutor_id,
                "student_id": student,
                "subject": (detail["subjects"] or ["SAT Math"])[0],
                "scheduled_start_at": (now - timedelta(minutes=56)).isoformat(),
                "actual_start_at": (now - timedelta(minutes=55)).isoformat(),
                "duration_minutes": 50,
                "status": "completed",
                "student_rating": rng.randint(2, 5),
                "text": "Tutor: What would you like to focus on today?\n"
                "Student: Fractions, I get confused when adding them.\n"
                "Tutor: Can you show me how you would add one half and one third?\n"
                "Student: Two fifths?\n"
                "Tutor: Good try. What do we need the denominators to be?\n"
                "Student: The same, so sixths. Three sixths plus two sixths is five sixths.\n"
                "Tutor: Exactly. Does that make sense? Try one quarter plus one sixth.\n"
                "Student: Twelfths: three twelfths plus two twelfths, five twelfths.",
            }
            t0 = time.perf_counter()
            r = c.post("/api/sessions", json=body)
            r.raise_for_status()
            while True:
                d = c.get(f"/api/tutors/{tutor_id}").json()
                if d["evaluated_sessions"] > before:
                    break
                if time.perf_counter() - t0 > 60:
                    raise TimeoutError("session not reflected within 60 s")
                time.sleep(0.05)
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--tutors", type=int, default=10_000)
    p.add_argument("--students", type=int, default=200_000)
    p.add_argument("--sessions", type=int, default=1_000_000)
    p.add_argument("--transcripts", type=int, default=2_000)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--posts", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="uvicorn web processes")
    p.add_argument(
        "--threads", type=int, default=None, help="TUTORSCORE_WEB_THREADS (default: the app's)"
    )
    p.add_argument(
        "--report-cache-ttl",
        type=float,
        default=None,
        help="TUTORSCORE_REPORT_CACHE_TTL; 0 computes every tutor-report page afresh",
    )
    a = p.parse_args()

    from sqlalchemy import select

    from tutorscore.auth.users import create_token, create_user
    from tutorscore.config import load_rules
    from tutorscore.db.engine import make_engine, transaction
    from tutorscore.db.models import Tutor
    from tutorscore.flows.metrics import nightly_recompute
    from tutorscore.ingest.synthetic import seed
    from tutorscore.testing.databases import temporary_database
    from tutorscore.web.devserver import running_server

    rules = load_rules(None, environ={})
    as_of = datetime.now(UTC).replace(microsecond=0)
    rows: list[tuple[str, str]] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tutorscore-bench-") as tmp:
        url = stack.enter_context(temporary_database(a.backend, label="benchweb"))
        engine = make_engine(url)
        t0 = time.perf_counter()
        summary = seed(
            engine,
            tutors=a.tutors,
            students=a.students,
            sessions=a.sessions,
            days=30,
            transcripts=a.transcripts,
            seed=5,
            as_of=as_of,
        )
        rows.append(("seed", f"{summary} ({time.perf_counter() - t0:.1f} s)"))
        t0 = time.perf_counter()
        run = nightly_recompute(engine, as_of=as_of, rules=rules)
        rows.append(("analytics (full)", f"{time.perf_counter() - t0:.1f} s: {run}"))
        if a.backend == "postgres":
            # This machine's Postgres runs with autovacuum off (a test server): without
            # it nothing has statistics or a visibility map after the bulk seed, and the
            # planner picks sequential scans a maintained server would not. One VACUUM
            # ANALYZE stands in for what autovacuum does on a production server.
            t0 = time.perf_counter()
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
            rows.append(("vacuum analyze", f"{time.perf_counter() - t0:.1f} s"))
        with transaction(engine) as db:
            create_user(db, username="bench", password="bench-password", role="admin")
            token = create_token(db, username="bench")
            tutor_ids = list(db.scalars(select(Tutor.tutor_id)))
        engine.dispose()
        ids_path = Path(tmp) / "ids.json"
        ids_path.write_text(json.dumps(tutor_ids))
        env = {
            "DATABASE_URL": url,
            "TUTORSCORE_DATA_DIR": tmp,
            "TUTORSCORE_SECRET_KEY": "bench-secret-" + os.urandom(8).hex(),
            "TUTORSCORE_LOG_LEVEL": "WARNING",
        }
        if a.threads is not None:
            env["TUTORSCORE_WEB_THREADS"] = str(a.threads)
        if a.report_cache_ttl is not None:
            env["TUTORSCORE_REPORT_CACHE_TTL"] = str(a.report_cache_ttl)
        log = Path(tmp) / "server.log"
        extra = ("--workers", str(a.workers), "--no-access-log")
        with running_server(env, worker=True, log_path=log, extra_args=extra) as base:
            load_before = os.getloadavg()  # another job on the machine skews the numbers
            done = subprocess.run(
                [sys.executable, __file__, "--load", "--base", base, "--token", token,
                 "--requests", str(a.requests), "--concurrency", str(a.concurrency),
                 "--tutor-ids", str(ids_path)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            load = json.loads(done.stdout.strip().splitlines()[-1])
            visible = _post_to_visible(base, token, tutor_ids, a.posts)

    print(f"\nweb benchmark: backend={a.backend}, {a.tutors:,} tutors, {a.sessions:,} sessions, "
          f"{a.concurrency} requests in flight, {a.workers} uvicorn process(es), "
          f"{a.threads or 'default'} handler threads each, report cache ttl "
          f"{'default' if a.report_cache_ttl is None else a.report_cache_ttl} s, "
          "evaluation worker thread, "
          f"{os.cpu_count()} CPUs, load average before the load "
          f"{' '.join(f'{x:.2f}' for x in load_before)}\n")  # fmt: skip
    for name, text in rows:
        print(f"  {name}: {text}")
    print(
        f"\n  {'endpoint':<16}{'n':>6}{'distinct':>9}{'err':>5}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'req/s':>8}"
    )
    for kind, r in load.items():
        print(f"  {kind:<16}{r['n']:>6}{r['distinct']:>9}{r['errors']:>5}{r['p50_ms']:>9}"
              f"{r['p95_ms']:>9}{r['p99_ms']:>9}{r['rps']:>8}")  # fmt: skip
    if visible:
        print(f"\n  POST /api/sessions -> visible in GET /api/tutors/{{id}} (heuristic judge, "
              f"n={len(visible)}): p50 {statistics.median(visible):.2f} s, "
              f"p95 {pct(visible, 0.95):.2f} s, max {max(visible):.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
