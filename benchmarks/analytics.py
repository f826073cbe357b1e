"""Analytics benchmark: full recompute vs a plain GROUP BY floor, and one-tutor updates.

For each backend and size: seed synthetic data (tutorscore.ingest.synthetic.seed),
mark ~10% of completed sessions as evaluated (one set-based INSERT ... SELECT),
ANALYZE, then time
  floor:        SELECT tutor_id, count(*) FROM sessions GROUP BY tutor_id (all rows fetched)
  buckets:      the in-window sessions counted per (tutor, window bucket): the least
                grouping the rules need, without any of their conditions
  full:         analytics.service.compute_all (SQL + rules + reasons + evidence + bulk upsert)
  incremental:  analytics.service.update_tutor for 25 random tutors (median and max)
Best of `--repeat` runs after one warm-up. The churn-model hook is skipped
(no after_write step): it belongs to the prediction benchmark.

    .venv/bin/python benchmarks/analytics.py                     # 3k, 100k, 1M on both
    .venv/bin/python benchmarks/analytics.py --sizes 3k,100k --backends sqlite
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import Engine, select, text

from tutorscore.analytics import metrics
from tutorscore.analytics.service import RunSummary, compute_all, update_tutor
from tutorscore.analytics.window import Window
from tutorscore.config import load_rules
from tutorscore.db.engine import make_engine
from tutorscore.db.models.core import Tutor
from tutorscore.ingest.synthetic import seed
from tutorscore.testing.databases import temporary_database

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
# sessions -> (tutors, students, days)
SIZES = {
    "3k": (3_000, 100, 2_500, 7),
    "100k": (100_000, 1_000, 30_000, 30),
    "1M": (1_000_000, 10_000, 250_000, 30),
}
T = TypeVar("T")
FLOOR_SQL = "SELECT tutor_id, count(*) FROM sessions GROUP BY tutor_id"
TARGETS = {"3k": 0.5, "1M": 10.0}


def best(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Fastest of `repeat` timed calls after one warm-up, with that call's result."""
    fn()  # warm-up: caches, statement compilation
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - started, result))
    return min(runs, key=lambda r: r[0])


def add_evaluations(engine: Engine) -> int:
    """Evaluate ~10% of completed sessions with a deterministic score (set-based)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                """INSERT INTO session_evaluations (session_id, judge, model, prompt_version,
  transcript_hash, quality_score, rubric, strengths, areas_for_improvement, risk_tags,
  evidence, features, created_at)
SELECT session_id, 'heuristic', '', 'bench', session_id,
  1.0 + (CAST(substr(session_id, 6) AS INTEGER) % 41) / 10.0,
  '{}', '[]', '[]', '[]', '[]', '{}', scheduled_start_at
FROM sessions
WHERE status = 'completed' AND CAST(substr(session_id, 6) AS INTEGER) % 10 = 0"""
            )
        )
        count = conn.execute(text("SELECT count(*) FROM session_evaluations")).scalar_one()
        conn.execute(text("ANALYZE"))
    return int(count)


def run(backend: str, size: str, repeat: int) -> dict[str, object]:
    sessions, tutors, students, days = SIZES[size]
    rules = load_rules(None, environ={})
    with temporary_database(backend, label="bench") as url:
        engine = make_engine(url)
        started = time.perf_counter()
        seed(engine, tutors=tutors, students=students, sessions=sessions, days=days,
             transcripts=0, seed=7, as_of=AS_OF)  # fmt: skip
        evaluations = add_evaluations(engine)
        seeded = time.perf_counter() - started

        def floor() -> None:
            with engine.connect() as conn:
                conn.execute(text(FLOOR_SQL)).all()

        def full() -> RunSummary:
            return compute_all(engine, as_of=AS_OF, rules=rules)

        def buckets() -> None:
            # The least the rules need: in-window sessions counted per (tutor, bucket).
            window = Window.build(AS_OF, rules.analytics.window_days)
            case, params = metrics._bucket_case(window, "s.scheduled_start_at")
            sql = (
                f"SELECT s.tutor_id, {case} AS bucket, count(*) FROM sessions s"
                f" WHERE {metrics.IN_WINDOW} GROUP BY s.tutor_id, bucket"
            )
            params |= metrics.window_params(window, rules)
            with engine.connect() as conn:
                conn.execute(metrics.statement(sql, params)).all()

        floor_s, _ = best(floor, repeat)
        buckets_s, _ = best(buckets, repeat)
        full_s, summary = best(full, repeat)
        with engine.connect() as conn:
            ids = list(conn.scalars(select(Tutor.tutor_id)))
        picks = random.Random(1).sample(ids, min(25, len(ids)))
        update_tutor(engine, picks[0], rules=rules, as_of=AS_OF)
        incremental = []
        for tutor_id in picks:
            t0 = time.perf_counter()
            update_tutor(engine, tutor_id, rules=rules, as_of=AS_OF)
            incremental.append((time.perf_counter() - t0) * 1000)
        engine.dispose()
    return {
        "backend": backend,
        "size": size,
        "sessions": sessions,
        "tutors": tutors,
        "evaluations": evaluations,
        "seed_s": seeded,
        "floor_s": floor_s,
        "buckets_s": buckets_s,
        "full_s": full_s,
        "ratio": full_s / floor_s if floor_s else float("nan"),
        "stages": summary.stages,
        "inc_median_ms": statistics.median(incremental),
        "inc_max_ms": max(incremental),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3k,100k,1M")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    header = (
        "| backend | sessions | tutors | evaluations | floor GROUP BY (s)"
        " | window GROUP BY tutor, bucket (s) | full recompute (s)"
        " | of which sql / rules / write (s) | ratio to floor (target 5x) | target"
        " | incremental median / max (ms) |"
    )
    rows = []
    for size in args.sizes.split(","):
        for backend in args.backends.split(","):
            r = run(backend, size, args.repeat)
            target = TARGETS.get(size)
            verdict = "" if target is None else (
                f"< {target} s {'ok' if r['full_s'] < target else 'MISSED'}"  # type: ignore[operator]
            )
            st = r["stages"]
            stages = f"{st['sql']:.2f} / {st['rules']:.2f} / {st['write']:.2f}"  # type: ignore[index]
            ratio = f"{r['ratio']:.1f}x {'ok' if r['ratio'] <= 5 else 'MISSED'}"  # type: ignore[operator]
            line = (
                f"| {backend} | {r['sessions']:,} | {r['tutors']:,} | {r['evaluations']:,}"
                f" | {r['floor_s']:.3f} | {r['buckets_s']:.3f} | {r['full_s']:.3f} | {stages}"
                f" | {ratio} | {verdict}"
                f" | {r['inc_median_ms']:.1f} / {r['inc_max_ms']:.1f} |"
            )
            rows.append(line)
            print(f"{line}   (seeded in {r['seed_s']:.1f} s)", flush=True)
    print()
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for line in rows:
        print(line)


if __name__ == "__main__":
    main()
