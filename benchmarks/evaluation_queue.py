"""Heuristic evaluation throughput through the job queue and worker, SQLite and Postgres.

Usage: python benchmarks/evaluation_queue.py [--sessions 1000] [--tutors 20]
       [--backends sqlite,postgres] [--concurrency 4]
Seeds sessions with 10-80 turn transcripts in a throwaway database, queues them,
drains the queue with one in-process worker and prints jobs per second (wall clock)
and the worker process's CPU time per job (meaningful on a busy machine; the
database server's own CPU is not included).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tutorscore.config import Settings, load_rules
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import SessionTranscript, Student, Tutor, TutoringSession
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.evaluation.worker import run_worker
from tutorscore.ingest.transcript_format import content_hash, render_text
from tutorscore.testing.databases import temporary_database

sys.path.insert(0, str(Path(__file__).parent))
from heuristic_judge import make_transcripts  # noqa: E402


def seed(url: str, sessions: int, tutors: int) -> None:
    engine = make_engine(url)
    rng = random.Random(3)
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    transcripts = make_transcripts(sessions, 11)
    with transaction(engine) as s:
        s.add_all(
            Tutor(tutor_id=f"T{k}", name=f"Tutor {k}", subjects=["Math"]) for k in range(tutors)
        )
        s.add(Student(student_id="ST"))
        s.flush()
        for i in range(sessions):
            s.add(
                TutoringSession(
                    session_id=f"S{i}", tutor_id=f"T{rng.randrange(tutors)}", student_id="ST",
                    subject="Math", scheduled_start_at=t0 + timedelta(minutes=i),
                    status="completed", is_first_session=rng.random() < 0.25,
                )
            )  # fmt: skip
        s.flush()
        for i, turns in enumerate(transcripts):
            s.add(
                SessionTranscript(
                    session_id=f"S{i}", turns=[dict(t) for t in turns], raw_text=render_text(turns),
                    turn_count=len(turns), content_hash=content_hash(turns),
                )
            )  # fmt: skip
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--tutors", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    rules = load_rules(None, environ={})
    print("| backend | sessions | tutors | concurrency | seconds | jobs/s |")
    print("|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        with temporary_database(backend, label="bench") as url:
            seed(url, args.sessions, args.tutors)
            engine = make_engine(url)
            with transaction(engine) as s:
                enqueue_evaluations(s, rules=rules)
            import tutorscore.analytics.service  # noqa: F401  (imports outside the timing)

            start, cpu = time.perf_counter(), time.process_time()
            stats = run_worker(engine, Settings(), rules, once=True, concurrency=args.concurrency)
            took = time.perf_counter() - start
            cpu = time.process_time() - cpu
            assert stats.done == args.sessions, stats
            engine.dispose()
            print(
                f"| {backend} | {args.sessions} | {args.tutors} | {args.concurrency} "
                f"| {took:.1f} | {args.sessions / took:.0f} | {1000 * cpu / args.sessions:.1f} "
                f"| {args.sessions / cpu:.0f} |"
            )


if __name__ == "__main__":
    main()
