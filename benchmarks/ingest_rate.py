"""Sustained ingest through POST /api/sessions with the heuristic judge.

Usage:
  python benchmarks/ingest_rate.py [--backend sqlite|postgres] [--seconds 30]
                                   [--rates 3000,30000,60000,120000]

Seeds the demo-size data set, runs analytics, starts `tutorscore serve` (one uvicorn
process plus its evaluation worker thread) and, from a separate load process, records
completed sessions with transcripts at each target rate (sessions per hour) for
`--seconds`, paced open-loop (a request is sent on schedule whether or not the earlier
ones finished, up to 32 in flight). After each level it reads the evaluation backlog
(GET /api/evaluation-queue) and waits for it to drain. A level "keeps up" when the
backlog at its end is under 5 s of arrivals and drains within 10 s. Finally it checks in
the database that every posted session has an evaluation and that its tutor's latest
metrics row was computed after the session was posted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

TRANSCRIPT = (
    "Tutor: What would you like to focus on today?\n"
    "Student: Fractions, I get confused when adding them.\n"
    "Tutor: Can you show me how you would add one half and one third?\n"
    "Student: Two fifths?\n"
    "Tutor: Good try. What do we need the denominators to be?\n"
    "Student: The same, so sixths. Three sixths plus two sixths is five sixths.\n"
    "Tutor: Exactly. Does that make sense? Try one quarter plus one sixth.\n"
    "Student: Twelfths: three twelfths plus two twelfths, five twelfths.\n"
    "Tutor: Great effort. Let's recap: find a common denominator, then add the numerators."
)


# ---------------------------------------------------------------- load process


async def _post_level(
    base: str, token: str, pairs: list[list[str]], rate_per_hour: int, seconds: float, tag: str
) -> dict[str, Any]:
    interval = 3600.0 / rate_per_hour
    rng = random.Random(rate_per_hour)
    sem = asyncio.Semaphore(32)
    latencies: list[float] = []
    errors = 0
    error_kinds: dict[str, int] = {}
    ids: list[str] = []

    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:

        async def one(i: int) -> None:
            nonlocal errors
            tutor_id, student_id, subject = rng.choice(pairs)
            now = datetime.now(UTC).replace(microsecond=0)
            body = {
                "session_id": f"ingest-{tag}-{i}",
                "tutor_id": tutor_id,
                "student_id": student_id,
                "subject": subject,
                "scheduled_start_at": (now - timedelta(minutes=56)).isoformat(),
                "actual_start_at": (now - timedelta(minutes=55)).isoformat(),
                "duration_minutes": 50,
                "status": "completed",
                "student_rating": rng.randint(2, 5),
                "text": TRANSCRIPT,
            }
            async with sem:
                t0 = time.perf_counter()
                try:
                    r = await client.post("/api/sessions", json=body)
                    ok = r.status_code in (200, 201)
                    kind = f"HTTP {r.status_code}: {r.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, kind = False, type(exc).__name__
                latencies.append(time.perf_counter() - t0)
            if ok:
                ids.append(body["session_id"])
            else:
                errors += 1
                error_kinds[kind] = error_kinds.get(kind, 0) + 1

        start = time.perf_counter()
        tasks = []
        i = 0
        while (due := start + i * interval) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
            i += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "sent": i,
        "ok": len(ids),
        "errors": errors,
        "achieved_per_hour": round(len(ids) / elapsed * 3600),
        "post_p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 1)
        if latencies
        else None,
        "ids": ids,
        "error_kinds": error_kinds,
    }


def load_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base")
    p.add_argument("--token")
    p.add_argument("--pairs")
    p.add_argument("--rate", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--tag")
    a = p.parse_args(argv)
    pairs = json.loads(Path(a.pairs).read_text())
    result = asyncio.run(_post_level(a.base, a.token, pairs, a.rate, a.seconds, a.tag))
    print(json.dumps(result))


# ---------------------------------------------------------------- driver


def _backlog(client: httpx.Client) -> int:
    stats = client.get("/api/evaluation-queue").json()
    return int(stats["queued"]) + int(stats["running"])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        load_main(sys.argv[2:])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rates", default="3000,30000,60000,120000")
    a = p.parse_args()
    rates = [int(r) for r in a.rates.split(",")]

    from sqlalchemy import func, select

    from tutorscore.auth.users import create_token, create_user
    from tutorscore.config import load_rules
    from tutorscore.db.engine import make_engine, transaction
    from tutorscore.db.models import SessionEvaluation, TutoringSession, TutorMetrics
    from tutorscore.flows.metrics import nightly_recompute
    from tutorscore.ingest.synthetic import seed
    from tutorscore.testing.databases import temporary_database
    from tutorscore.web.devserver import running_server

    rules = load_rules(None, environ={})
    as_of = datetime.now(UTC).replace(microsecond=0)
    results: list[dict[str, Any]] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tutorscore-ingest-") as tmp:
        url = stack.enter_context(temporary_database(a.backend, label="benchingest"))
        engine = make_engine(url)
        seed(engine, as_of=as_of)
        nightly_recompute(engine, as_of=as_of, rules=rules)
        with transaction(engine) as db:
            create_user(db, username="bench", password="bench-password", role="admin")
            token = create_token(db, username="bench")
            pairs = [
                list(row)
                for row in db.execute(
                    select(
                        TutoringSession.tutor_id,
                        TutoringSession.student_id,
                        TutoringSession.subject,
                    ).distinct()
                )
            ]
        pairs_path = Path(tmp) / "pairs.json"
        pairs_path.write_text(json.dumps(pairs))
        env = {
            "DATABASE_URL": url,
            "TUTORSCORE_DATA_DIR": tmp,
            "TUTORSCORE_SECRET_KEY": "bench-secret-" + os.urandom(8).hex(),
            "TUTORSCORE_LOG_LEVEL": "WARNING",
        }
        posted: list[tuple[str, float]] = []
        log = Path(tmp) / "server.log"
        with (
            running_server(env, worker=True, log_path=log, extra_args=("--no-access-log",)) as base,
            httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as client,
        ):
            for rate in rates:
                level_start = time.time()
                done = subprocess.run(
                    [sys.executable, __file__, "--load", "--base", base, "--token", token,
                     "--pairs", str(pairs_path), "--rate", str(rate),
                     "--seconds", str(a.seconds), "--tag", str(rate)],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                level = json.loads(done.stdout.strip().splitlines()[-1])
                backlog_end = _backlog(client)
                t0 = time.perf_counter()
                while _backlog(client) > 0 and time.perf_counter() - t0 < 120:
                    time.sleep(0.2)
                drain = time.perf_counter() - t0
                per_second = rate / 3600
                level.update(
                    rate=rate,
                    backlog_at_end=backlog_end,
                    drain_s=round(drain, 1),
                    keeps_up=backlog_end <= max(5, 5 * per_second) and drain <= 10,
                )
                posted.extend((sid, level_start) for sid in level.pop("ids"))
                results.append(level)
        # every posted session evaluated and counted in its tutor's latest metrics
        ids = [sid for sid, _ in posted]
        with transaction(engine) as db:
            evaluated = db.scalar(
                select(func.count(func.distinct(SessionEvaluation.session_id))).where(
                    SessionEvaluation.session_id.in_(ids)
                )
            )
            latest = dict(
                db.execute(
                    select(TutorMetrics.tutor_id, func.max(TutorMetrics.computed_at)).group_by(
                        TutorMetrics.tutor_id
                    )
                ).all()
            )
            session_tutor = dict(
                db.execute(
                    select(TutoringSession.session_id, TutoringSession.tutor_id).where(
                        TutoringSession.session_id.in_(ids)
                    )
                ).all()
            )
        stale = sum(
            1
            for sid, started in posted
            if latest.get(session_tutor[sid]) is None
            or latest[session_tutor[sid]].timestamp() < started
        )
        engine.dispose()

    print(f"\ningest benchmark: backend={a.backend}, {a.seconds:.0f} s per level, one uvicorn "
          "process with its evaluation worker thread, heuristic judge\n")  # fmt: skip
    head = (
        f"  {'target/h':>9}{'achieved/h':>11}{'sent':>6}{'errors':>7}{'POST p95 ms':>12}"
        f"{'backlog':>8}{'drain s':>8}  keeps up"
    )
    print(head)
    for r in results:
        print(f"  {r['rate']:>9,}{r['achieved_per_hour']:>11,}{r['sent']:>6}{r['errors']:>7}"
              f"{r['post_p95_ms']:>12}{r['backlog_at_end']:>8}{r['drain_s']:>8}  "
              f"{'yes' if r['keeps_up'] else 'no'}")  # fmt: skip
    for r in results:
        for kind, n in r["error_kinds"].items():
            print(f"  errors at {r['rate']:,}/h: {n} x {kind}")
    best = max((r["achieved_per_hour"] for r in results if r["keeps_up"]), default=0)
    print(f"\n  highest sustained rate that kept up: {best:,} sessions/hour "
          f"({best / 3000:.1f}x the 3,000/hour peak)")  # fmt: skip
    print(f"  posted sessions evaluated: {evaluated}/{len(ids)}; "
          f"tutors whose latest metrics predate a posted session: {stale}")  # fmt: skip


if __name__ == "__main__":
    main()
