"""Evaluation throughput: the LLM pipeline against the fake provider, and the heuristic judge.

Usage: python benchmarks/evaluation.py [--sessions 330] [--rpm 300] [--latency-ms 800]
       [--error-rate 0.02] [--backend sqlite|postgres] [--heuristic-n 3000]

LLM part: a throwaway database gets `--sessions` sessions with generated
transcripts (names, emails and phone numbers included), all queued for the LLM
judge; the real worker (`run_worker(once=True)`) drains the queue through the
fake OpenAI-compatible server started as a subprocess with the given RPM limit,
latency and rate of injected 500s. The client-side limits are the same RPM and a
TPM high enough that requests per minute is the binding limit.

Achieved RPM = requests the provider admitted / time between the first and the
last admitted request. The run takes a little over sessions / rpm minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from tutorscore.config import Settings, load_rules
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import (
    Job,
    LLMCall,
    SessionEvaluation,
    SessionTranscript,
    Student,
    Tutor,
    TutoringSession,
)
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.evaluation.worker import run_worker
from tutorscore.ingest.transcript_format import Turn, content_hash, render_text
from tutorscore.ingest.transcripts import generate_transcript
from tutorscore.testing.databases import temporary_database
from tutorscore.testing.fake_llm import start_fake_server

FIRST = ["Maya", "Liam", "Sofia", "Noah", "Aisha", "Mateo", "Chloe", "Kenji", "Olivia", "Ravi"]
LAST = ["Garcia", "Chen", "Okafor", "Novak", "Haddad", "Silva", "Kim", "Mensah", "Ivanova"]


def transcripts(n: int, seed: int) -> list[tuple[str, str, list[Turn]]]:
    """(tutor name, student name, turns) from the synthetic transcript generator."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tutor = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        student = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        generated = generate_transcript(
            rng,
            subject=rng.choice(["Algebra", "Chemistry", "SAT Math"]),
            tutor_name=tutor,
            student_name=student,
            quality=rng.random(),
            first_session=rng.random() < 0.2,
        )
        out.append((tutor, student, generated.turns))
    return out


def load(engine: Any, data: list[tuple[str, str, list[Turn]]]) -> list[str]:
    now = datetime.now(UTC)
    tutors = {name: f"T{i:03d}" for i, name in enumerate(sorted({t for t, _, _ in data}))}
    ids = [f"S{i:05d}" for i in range(len(data))]
    with transaction(engine) as s:
        s.execute(
            insert(Tutor),
            [
                {"tutor_id": tid, "name": name, "subjects": ["Algebra"]}
                for name, tid in tutors.items()
            ],
        )
        s.execute(insert(Student), [{"student_id": f"ST{i:05d}"} for i in range(len(data))])
        s.execute(
            insert(TutoringSession),
            [
                {
                    "session_id": sid,
                    "tutor_id": tutors[tutor],
                    "student_id": f"ST{i:05d}",
                    "subject": "Algebra",
                    "scheduled_start_at": now - timedelta(hours=i + 1),
                    "actual_start_at": now - timedelta(hours=i + 1),
                    "duration_minutes": 50,
                    "status": "completed",
                }
                for i, (sid, (tutor, _, _)) in enumerate(zip(ids, data, strict=True))
            ],
        )
        s.execute(
            insert(SessionTranscript),
            [
                {
                    "session_id": sid,
                    "turns": [dict(t) for t in turns],
                    "raw_text": render_text(turns),
                    "turn_count": len(turns),
                    "content_hash": content_hash(turns),
                }
                for sid, (_, _, turns) in zip(ids, data, strict=True)
            ],
        )
    return ids


def llm_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    rules = load_rules(None, environ={})
    data = transcripts(args.sessions, args.seed)
    server = start_fake_server(
        rpm=args.rpm,
        tpm=20_000_000,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        seed=args.seed,
    )
    try:
        with temporary_database(args.backend, label="bench_llm") as url:
            engine = make_engine(url)
            ids = load(engine, data)
            settings = Settings(
                DATABASE_URL=url,
                TUTORSCORE_LLM_BASE_URL=server.base_url,
                TUTORSCORE_LLM_MODEL=args.model,
                TUTORSCORE_LLM_RPM=args.rpm,
                TUTORSCORE_LLM_TPM=10_000_000,
                TUTORSCORE_LLM_BUDGET_USD=100.0,
            )
            with transaction(engine) as s:
                queued = enqueue_evaluations(s, judge="llm", session_ids=ids, rules=rules)
            started = time.monotonic()
            run_worker(engine, settings, rules, once=True, use_llm=True)
            wall = time.monotonic() - started
            stats = server.stats()
            leaked = [p for p in server.recent_prompts() if "@example.com" in p or "555-01" in p]
            with engine.connect() as conn:
                evaluated = conn.execute(
                    select(func.count(func.distinct(SessionEvaluation.session_id))).where(
                        SessionEvaluation.judge == "llm"
                    )
                ).scalar_one()
                by_status = dict(
                    conn.execute(
                        select(LLMCall.status, func.count()).group_by(LLMCall.status)
                    ).all()
                )
                cost = conn.execute(select(func.sum(LLMCall.cost_usd))).scalar_one() or 0.0
                tokens = conn.execute(
                    select(func.avg(LLMCall.tokens_in), func.avg(LLMCall.tokens_out)).where(
                        LLMCall.status == "ok"
                    )
                ).one()
                dead = conn.execute(
                    select(func.count()).where(Job.kind == "evaluate", Job.status == "dead")
                ).scalar_one()
                dropped = (
                    conn.execute(
                        select(SessionEvaluation.features).where(SessionEvaluation.judge == "llm")
                    )
                    .scalars()
                    .all()
                )
            engine.dispose()
    finally:
        server.stop()
    admitted = stats.get("ok", 0) + sum(v for k, v in stats.items() if k.startswith("http_5"))
    span = stats["accepted_span_s"]
    return {
        "queued": queued,
        "evaluated": evaluated,
        "dead_jobs": dead,
        "wall_s": wall,
        "admitted": admitted,
        "achieved_rpm": (admitted - 1) / span * 60 if span else 0.0,
        "max_requests_in_60s_at_provider": stats["max_window_requests"],
        "http_429": stats.get("http_429", 0),
        "http_500": sum(v for k, v in stats.items() if k.startswith("http_5")),
        "ledger": by_status,
        "cost_usd": float(cost),
        "avg_tokens_in": float(tokens[0] or 0),
        "avg_tokens_out": float(tokens[1] or 0),
        "quotes_dropped": sum(int((f or {}).get("quotes_dropped", 0)) for f in dropped),
        "quotes_verified": sum(int((f or {}).get("quotes_verified", 0)) for f in dropped),
        "prompts_with_pii": len(leaked),
    }


def heuristic(n: int, seed: int) -> dict[str, float]:
    rules = load_rules(None, environ={})
    judge = HeuristicJudge(rules.evaluation.heuristic)
    data = [turns for _, _, turns in transcripts(n, seed + 1)]
    started = time.perf_counter()
    for turns in data:
        judge.evaluate_sync(turns)
    elapsed = time.perf_counter() - started
    return {"transcripts": n, "seconds": elapsed, "per_second": n / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=330)
    parser.add_argument("--rpm", type=int, default=300)
    parser.add_argument("--latency-ms", type=float, default=800)
    parser.add_argument("--error-rate", type=float, default=0.02)
    parser.add_argument("--model", default="gpt-4o")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--heuristic-n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args()

    llm = llm_pipeline(args)
    heur = heuristic(args.heuristic_n, args.seed)
    if args.json:
        print(json.dumps({"llm": llm, "heuristic": heur}, indent=2))
        return
    target = 0.9 * args.rpm
    rows = [
        (
            "provider (fake)",
            f"{args.rpm} RPM, {args.latency_ms:.0f} ms latency, "
            f"{args.error_rate:.0%} injected 500s, {args.backend}",
        ),
        (
            "achieved requests/min",
            f"{llm['achieved_rpm']:.1f} (target >= {target:.0f}: "
            f"{'met' if llm['achieved_rpm'] >= target else 'MISSED'})",
        ),
        ("max requests in any 60 s at the provider", f"{llm['max_requests_in_60s_at_provider']}"),
        (
            "sessions evaluated / queued",
            f"{llm['evaluated']} / {llm['queued']} "
            f"({llm['evaluated'] / max(1, llm['queued']):.0%}), "
            f"dead jobs {llm['dead_jobs']}",
        ),
        ("429s received", str(llm["http_429"])),
        ("500s received (retried)", str(llm["http_500"])),
        ("ledger rows by status", ", ".join(f"{k} {v}" for k, v in sorted(llm["ledger"].items()))),
        (
            "cost",
            f"${llm['cost_usd']:.4f} ({args.model} prices; "
            f"${llm['cost_usd'] / max(1, llm['evaluated']):.5f} per session)",
        ),
        (
            "avg tokens per call in / out",
            f"{llm['avg_tokens_in']:.0f} / {llm['avg_tokens_out']:.0f}",
        ),
        ("quotes verified / dropped", f"{llm['quotes_verified']} / {llm['quotes_dropped']}"),
        ("last 50 prompts containing an email or phone", str(llm["prompts_with_pii"])),
        ("LLM run wall time", f"{llm['wall_s']:.1f} s"),
        (
            "heuristic judge, one core",
            f"{heur['per_second']:.0f} transcripts/s "
            f"({heur['transcripts']} in {heur['seconds']:.2f} s)",
        ),
    ]
    print("| measure | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
