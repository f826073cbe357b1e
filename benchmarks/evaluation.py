"""LLM pipeline throughput in the issue-13 scenario, and the heuristic judge's speed.

Usage: python benchmarks/evaluation.py [--backend sqlite|postgres|both] [--workers 1|2]
       [--transcripts 600] [--minutes M] [--heuristic-n 3000] [--json]

The scenario, as a new user would run it:

    tutorscore seed --seed 3 --tutors 60 --students 600 --sessions 1500 --transcripts 600
    TUTORSCORE_LLM_RPM=300 TUTORSCORE_LLM_TPM=1000000 TUTORSCORE_LLM_MAX_CONCURRENCY=40 \\
        tutorscore evaluate --judge llm --all

against the bundled fake OpenAI-compatible server (`tutorscore.testing.fake_llm`,
a subprocess) at 300 RPM and 1,000,000 TPM, counting each request's tokens as
OpenAI's limiter does (characters of all message contents / 4, plus
max_completion_tokens), latency uniform 400-1,200 ms, 2% HTTP 500, 1% malformed
JSON, x-ratelimit-* headers on every answer. Both commands run as subprocesses
on a throwaway database (SQLite file or a fresh Postgres database).

`--workers 2` (Postgres): the benchmark queues the same jobs itself, then two
`tutorscore worker --once` processes drain the queue, each given half the
limits (150 RPM, 500,000 TPM, 20 in flight).

Shorter variants for iterating: `--transcripts 150` (a quarter of the calls, but
under a minute: it measures the first window's burst, not the rate), or
`--minutes 1.5` (the jobs are queued by the benchmark and drained by `tutorscore
worker --once`, stopped with SIGTERM after 1.5 minutes; it finishes the jobs in
hand, and lost/duplicates are counted over the jobs that ran).

Measures:
- achieved RPM = requests the provider admitted (answered 200 or 500) / time
  between the first and the last admitted one, and as % of the limit;
- max requests and max tokens the provider counted in any 60 s window, 429s;
- lost = transcripts without an LLM evaluation of their current text after the
  run; duplicates = successful calls beyond one per session (ledger) and
  LLM evaluations beyond one per session;
- call latency p50/p95 (ledger, as the client saw it);
- CPU seconds per call = user+system CPU of the evaluating process(es) / calls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from tutorscore.config import load_rules
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import Job, LLMCall, SessionEvaluation, SessionTranscript
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.ingest.transcripts import generate_transcript
from tutorscore.testing.databases import temporary_database
from tutorscore.testing.fake_llm import start_fake_server

CLI = [sys.executable, "-m", "tutorscore"]
# what the seed's transcripts put in (emails at example.com, 555-01xx phone numbers)
_PII = re.compile(r"@example\.com|555-01\d\d")


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(args: list[str], env: dict[str, str], *, minutes: float | None = None) -> float:
    """Run a CLI command to the end (SIGTERM after `minutes`); its wall seconds."""
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    timer = None
    if minutes:
        timer = threading.Timer(minutes * 60, lambda: proc.send_signal(signal.SIGTERM))
        timer.start()
    _, err = proc.communicate()
    if timer is not None:
        timer.cancel()
    if proc.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(
            f"{' '.join(args[2:])} failed ({proc.returncode}): {err.decode()[-2000:]}"
        )
    return time.monotonic() - started


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def scenario(args: argparse.Namespace, backend: str, workers: int) -> dict[str, Any]:
    server = start_fake_server(
        rpm=args.rpm,
        tpm=args.tpm,
        latency_ms=args.latency_ms,
        latency_max_ms=args.latency_max_ms,
        error_rate=args.error_rate,
        malformed_rate=args.malformed_rate,
        seed=args.seed,
    )
    try:
        with temporary_database(backend, label="bench_llm") as url:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("TUTORSCORE_")},
                "DATABASE_URL": url,
                "TUTORSCORE_LLM_BASE_URL": server.base_url,
                "TUTORSCORE_LLM_MODEL": args.model,
                "TUTORSCORE_LLM_RPM": str(args.rpm // workers),
                "TUTORSCORE_LLM_TPM": str(args.tpm // workers),
                "TUTORSCORE_LLM_MAX_CONCURRENCY": str(max(1, args.concurrency // workers)),
                "TUTORSCORE_LLM_BUDGET_USD": "1000",
                "TUTORSCORE_LOG_LEVEL": "warning",
            }
            _run(
                [*CLI, "seed", "--seed", str(args.seed), "--tutors", "60", "--students", "600",
                 "--sessions", str(args.sessions), "--transcripts", str(args.transcripts)],
                env,
            )  # fmt: skip
            engine = make_engine(url)
            cpu_before = _cpu_children()
            if workers == 1 and not args.minutes:
                wall = _run([*CLI, "evaluate", "--judge", "llm", "--all"], env)
            else:
                rules = load_rules(None, environ={})
                with transaction(engine) as s:
                    ids = list(s.scalars(select(SessionTranscript.session_id)))
                    enqueue_evaluations(s, judge="llm", session_ids=ids, rules=rules)
                started = time.monotonic()
                threads = [
                    threading.Thread(
                        target=_run,
                        args=([*CLI, "worker", "--once", "--worker-id", f"w{k}"], env),
                        kwargs={"minutes": args.minutes},
                    )
                    for k in range(workers)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.monotonic() - started
            cpu = _cpu_children() - cpu_before
            stats = server.stats()
            leaked = [p for p in server.recent_prompts() if _PII.search(p)]
            result = _measure(engine, stats, args, backend, workers, wall, cpu)
            result["prompts_with_pii"] = f"{len(leaked)} of the last {len(server.recent_prompts())}"
            engine.dispose()
    finally:
        server.stop()
    return result


def _measure(
    engine: Any,
    stats: dict[str, Any],
    args: argparse.Namespace,
    backend: str,
    workers: int,
    wall: float,
    cpu: float,
) -> dict[str, Any]:
    with engine.connect() as conn:
        transcripts = conn.execute(select(func.count()).select_from(SessionTranscript)).scalar_one()
        evaluated = conn.execute(
            select(func.count(func.distinct(SessionEvaluation.session_id)))
            .join(
                SessionTranscript,
                (SessionTranscript.session_id == SessionEvaluation.session_id)
                & (SessionTranscript.content_hash == SessionEvaluation.transcript_hash),
            )
            .where(SessionEvaluation.judge == "llm")
        ).scalar_one()
        eval_rows = conn.execute(
            select(func.count()).where(SessionEvaluation.judge == "llm")
        ).scalar_one()
        ok_per_session = (
            conn.execute(
                select(func.count()).where(LLMCall.status == "ok").group_by(LLMCall.session_id)
            )
            .scalars()
            .all()
        )
        by_status = dict(
            conn.execute(select(LLMCall.status, func.count()).group_by(LLMCall.status)).all()
        )
        latencies = [float(x) for x in conn.execute(select(LLMCall.latency_ms)).scalars()]
        total = select(func.coalesce(func.sum(LLMCall.cost_usd), 0.0))
        cost = float(conn.execute(total).scalar_one())
        jobs = dict(
            conn.execute(
                select(Job.status, func.count()).where(Job.kind == "evaluate").group_by(Job.status)
            ).all()
        )
    admitted = stats.get("ok", 0) + sum(v for k, v in stats.items() if k.startswith("http_5"))
    span = stats["accepted_span_s"]
    achieved = (admitted - 1) / span * 60 if span else 0.0
    # with --minutes, only the jobs that ran count: queued ones were never tried
    ran = transcripts - int(jobs.get("queued", 0)) if args.minutes else transcripts
    return {
        "backend": backend,
        "workers": workers,
        "transcripts": transcripts,
        "jobs": jobs,
        "evaluated": evaluated,
        "lost": ran - evaluated,
        "duplicate_calls": sum(n - 1 for n in ok_per_session if n > 1),
        "duplicate_evaluations": eval_rows - evaluated,
        "admitted": admitted,
        "achieved_rpm": achieved,
        "achieved_pct": achieved / args.rpm * 100,
        "max_requests_60s": stats["max_window_requests"],
        "max_tokens_60s": stats["max_window_tokens"],
        "http_429": stats.get("http_429", 0),
        "http_500": sum(v for k, v in stats.items() if k.startswith("http_5")),
        "malformed": stats.get("malformed", 0),
        "max_in_flight": stats.get("max_in_flight", 0),
        "ledger": by_status,
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p95_ms": _percentile(latencies, 0.95),
        "cost_usd": cost,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_s_per_call": cpu / max(1, admitted),
    }


def heuristic(n: int, seed: int) -> dict[str, float]:
    rules = load_rules(None, environ={})
    judge = HeuristicJudge(rules.evaluation.heuristic)
    rng = random.Random(seed)
    data = [
        generate_transcript(
            rng, subject="Algebra", tutor_name="Maya Chen", student_name="Liam Novak",
            quality=rng.random(), first_session=rng.random() < 0.2,
        ).turns
        for _ in range(n)
    ]  # fmt: skip
    started = time.process_time()
    for turns in data:
        judge.evaluate_sync(turns)
    elapsed = time.process_time() - started
    return {"transcripts": n, "cpu_seconds": elapsed, "per_cpu_second": n / elapsed}


def _table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def row(name: str, fmt: Any) -> str:
        return f"| {name} | " + " | ".join(fmt(r) for r in results) + " |"

    head = " | ".join(
        f"{r['backend']}" + (f", {r['workers']} workers" if r["workers"] > 1 else "")
        for r in results
    )
    lines = [
        f"| measure | {head} |",
        "|---" * (len(results) + 1) + "|",
        row("achieved requests/min",
            lambda r: f"{r['achieved_rpm']:.1f} ({r['achieved_pct']:.1f}% of {args.rpm})"),
        row("max requests / tokens in any 60 s at the provider",
            lambda r: f"{r['max_requests_60s']} / {r['max_tokens_60s']:,}"),
        row("429s", lambda r: str(r["http_429"])),
        row("sessions evaluated / transcripts", lambda r: f"{r['evaluated']} / {r['transcripts']}"),
        row("lost", lambda r: str(r["lost"])),
        row("duplicate calls / duplicate evaluations",
            lambda r: f"{r['duplicate_calls']} / {r['duplicate_evaluations']}"),
        row("500s / malformed (retried)", lambda r: f"{r['http_500']} / {r['malformed']}"),
        row("call latency p50 / p95",
            lambda r: f"{r['latency_p50_ms']:.0f} / {r['latency_p95_ms']:.0f} ms"),
        row("max in flight at the provider", lambda r: str(r["max_in_flight"])),
        row(f"cost ({args.model} prices)",
            lambda r: f"${r['cost_usd']:.2f} "
            f"(${r['cost_usd'] / max(1, r['evaluated']):.5f} a session)"),
        row("prompts at the provider with an email or phone", lambda r: r["prompts_with_pii"]),
        row("CPU seconds per call (evaluating processes)", lambda r: f"{r['cpu_s_per_call']:.4f}"),
        row("wall time", lambda r: f"{r['wall_s']:.1f} s"),
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workers", type=int, choices=[1, 2], default=1)
    parser.add_argument("--sessions", type=int, default=1500)
    parser.add_argument("--transcripts", type=int, default=600)
    parser.add_argument("--minutes", type=float, default=None, help="stop the worker after M")
    parser.add_argument("--rpm", type=int, default=300)
    parser.add_argument("--tpm", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--latency-ms", type=float, default=400)
    parser.add_argument("--latency-max-ms", type=float, default=1200)
    parser.add_argument("--error-rate", type=float, default=0.02)
    parser.add_argument("--malformed-rate", type=float, default=0.01)
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--heuristic-n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args()

    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if args.workers > 1 and "sqlite" in backends:
        parser.error("--workers 2 needs --backend postgres")
    results = [scenario(args, b, args.workers) for b in backends]
    heur = heuristic(args.heuristic_n, args.seed) if args.heuristic_n else None
    if args.json:
        print(json.dumps({"llm": results, "heuristic": heur}, indent=2))
        return
    load = os.getloadavg()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    print(
        f"provider (fake): {args.rpm} RPM, {args.tpm:,} TPM (characters / 4 + max tokens), "
        f"latency {args.latency_ms:.0f}-{args.latency_max_ms:.0f} ms, "
        f"{args.error_rate:.0%} 500s, {args.malformed_rate:.0%} malformed; "
        f"seed --seed {args.seed} --sessions {args.sessions} --transcripts {args.transcripts}"
        + (f"; stopped after {args.minutes} min" if args.minutes else "")
    )
    print()
    print(_table(results, args))
    if heur:
        print()
        print(
            f"heuristic judge: {heur['per_cpu_second']:.0f} transcripts per CPU-second "
            f"({heur['transcripts']} in {heur['cpu_seconds']:.2f} s)"
        )


if __name__ == "__main__":
    main()
