"""Real MathDial dialogues as sessions, their teachers' move labels as reviews, and a check
that `tutorscore agreement` says what an independent computation says.

    .venv/bin/python scripts/load_dialogue_reviews.py [--limit 300] [--backend sqlite|postgres]

1. Writes an import bundle (tutors, students, sessions, transcripts) of the first
   `--limit` dialogues that have labelled scaffolding or telling turns, into a throwaway
   database, through `tutorscore import`; `tutorscore evaluate` scores them with the
   heuristic judge.
2. Each dialogue's human score: its labelled scaffolding share s = (focus + probing) /
   (focus + probing + telling) of the tutor turns, as 1 + 4 s (two decimals); the review
   lists `answer_giveaway` when at least half of those turns are telling. One reviewer,
   `mathdial-labels`; imported with `tutorscore reviews import`.
3. `tutorscore agreement --format json`, compared with scipy/scikit-learn/NumPy run here on
   the same pairs: the heuristic judge's score computed from the turns in this process
   (not read back from the database) against the label score. Exit 1 on any difference.

The data: MathDial train split (Macina et al., Findings of EMNLP 2023; CC BY-SA 4.0), as
processed by github.com/fareya/dialogue-kt. Read from the repository's copy when there is
one (`corpora/tutoring-dialogues/`, `src/tutorscore/evaluation/data/` or `data/`), else
from `--data`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

ROOT = Path(__file__).resolve().parents[1]
NAME = "mathdial_train_moves.jsonl"
CANDIDATES = (
    ROOT / "corpora/tutoring-dialogues" / NAME,
    ROOT / "src/tutorscore/evaluation/data" / NAME,
    ROOT / "data" / NAME,
    ROOT.parent / "shared/data/tutoring-dialogues" / NAME,
)
REVIEWER = "mathdial-labels"
TAG = "answer_giveaway"


def find_data(given: str | None) -> Path:
    for path in ([Path(given)] if given else []) + list(CANDIDATES):
        if path.is_file():
            return path
    raise SystemExit(f"no {NAME}: pass --data PATH (looked in {', '.join(map(str, CANDIDATES))})")


def label_score(turns: list[dict[str, Any]]) -> tuple[float, bool] | None:
    """(1 + 4 x scaffolding share, telling share >= 0.5), None without labelled turns."""
    moves = [t.get("move") for t in turns if t.get("speaker") == "tutor"]
    scaffold = sum(m in ("focus", "probing") for m in moves)
    telling = sum(m == "telling" for m in moves)
    if scaffold + telling == 0:
        return None
    share = scaffold / (scaffold + telling)
    return round(1 + 4 * share, 2), telling * 2 >= scaffold + telling


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tutorscore", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"tutorscore {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def write_bundle(dialogues: list[dict[str, Any]], directory: Path) -> None:
    start = datetime(2026, 11, 1, 15, tzinfo=UTC)
    tutors = sorted({f"md-tutor-{i % 20:02d}" for i in range(len(dialogues))})
    with (directory / "tutors.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["tutor_id", "name", "subjects"])
        for t in tutors:
            w.writerow([t, f"MathDial teacher {t[-2:]}", "Math"])
    with (directory / "students.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["student_id"])
        for d in dialogues:
            w.writerow([f"md-student-{d['dialogue_id']}"])
    with (
        (directory / "sessions.jsonl").open("w") as sessions,
        (directory / "transcripts.jsonl").open("w") as transcripts,
    ):
        for i, d in enumerate(dialogues):
            when = start + timedelta(hours=i)
            sessions.write(json.dumps({
                "session_id": f"md-{d['dialogue_id']}", "tutor_id": f"md-tutor-{i % 20:02d}",
                "student_id": f"md-student-{d['dialogue_id']}", "subject": "Math",
                "scheduled_start_at": when.isoformat(), "actual_start_at": when.isoformat(),
                "duration_minutes": 30, "status": "completed",
            }) + "\n")  # fmt: skip
            turns = [{"speaker": t["speaker"], "text": t["text"]} for t in d["turns"]]
            transcripts.write(
                json.dumps({"session_id": f"md-{d['dialogue_id']}", "turns": turns}) + "\n"
            )


def independent(
    pairs: list[tuple[str, float, float, set[str], bool]], seed: int, resamples: int
) -> dict[str, Any]:
    """The same statistics from scipy / scikit-learn / NumPy directly (sorted by session id)."""
    pairs = sorted(pairs)
    x = np.array([p[1] for p in pairs])
    y = np.array([p[2] for p in pairs])
    n = len(pairs)
    rows = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    boot = []
    for row in rows:
        if len(set(x[row])) > 1 and len(set(y[row])) > 1:
            boot.append(spearmanr(x[row], y[row]).statistic)
    low, high = np.percentile(boot, [2.5, 97.5])

    def half_up(v: float) -> int:
        return min(5, max(1, int(np.floor(v + 0.5))))

    kappa = cohen_kappa_score(
        [half_up(v) for v in x], [half_up(v) for v in y], weights="quadratic",
        labels=[1, 2, 3, 4, 5],
    )  # fmt: skip
    truth = [p[4] for p in pairs]
    said = [TAG in p[3] for p in pairs]
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, said, average="binary", zero_division=np.nan
    )
    return {
        "n": n,
        "spearman": round(float(spearmanr(x, y).statistic), 4),
        "spearman_ci": [round(float(low), 4), round(float(high), 4)],
        "pearson": round(float(pearsonr(x, y).statistic), 4),
        "kappa": round(float(kappa), 4),
        "mae": round(float(np.mean(np.abs(x - y))), 4),
        "tags": {
            TAG: {
                "support": int(sum(truth)),
                "precision": None if np.isnan(precision) else round(float(precision), 4),
                "recall": None if np.isnan(recall) else round(float(recall), 4),
                "f1": None if np.isnan(f1) else round(float(f1), 4),
            }
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help=f"path of {NAME}")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()

    from tutorscore.config import load_rules
    from tutorscore.evaluation.heuristic import HeuristicJudge
    from tutorscore.testing.databases import temporary_database

    path = find_data(args.data)
    dialogues = []
    for line in path.open(encoding="utf-8"):
        d = json.loads(line)
        if label_score(d["turns"]) is not None:
            dialogues.append(d)
        if len(dialogues) == args.limit:
            break
    rules = load_rules(None, environ={})
    judge = HeuristicJudge(rules.evaluation.heuristic)
    with (
        temporary_database(args.backend, label="mathdial") as url,
        tempfile.TemporaryDirectory(prefix="mathdial-") as tmp,
    ):
        env = {**os.environ, "DATABASE_URL": url, "TUTORSCORE_DATA_DIR": tmp, "COLUMNS": "150"}
        bundle = Path(tmp) / "bundle"
        bundle.mkdir()
        write_bundle(dialogues, bundle)
        cli(env, "import", str(bundle), "--no-follow-up")
        cli(env, "evaluate", "--all")
        reviews = Path(tmp) / "reviews.csv"
        pairs = []
        with reviews.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["session_id", "reviewer", "quality_score", "tags", "note"])
            for d in dialogues:
                score, giveaway = label_score(d["turns"])  # type: ignore[misc]
                sid = f"md-{d['dialogue_id']}"
                w.writerow([sid, REVIEWER, score, TAG if giveaway else "",
                            "scaffolding share of the teacher's labelled moves"])  # fmt: skip
                turns = [{"speaker": t["speaker"], "text": t["text"]} for t in d["turns"]]
                result = judge.evaluate_sync(turns)  # type: ignore[arg-type]
                pairs.append((sid, result.quality_score, score, set(result.risk_tags), giveaway))
        cli(env, "reviews", "import", str(reviews))
        report = json.loads(cli(env, "agreement", "--format", "json"))
        table = cli(env, "agreement")
    ours = next(j for j in report["judges"] if j["judge"] == "heuristic")
    theirs = independent(pairs, rules.reviews.bootstrap_seed, rules.reviews.bootstrap_resamples)
    print(f"{len(dialogues)} dialogues from {path.name}, backend {args.backend},"
          f" judge {ours['label']}")  # fmt: skip
    print(table)
    width = max(len(k) for k in theirs)
    same = True
    for key, expected in theirs.items():
        got = ours[key] if key != "tags" else {TAG: ours["tags"].get(TAG)}
        ok = got == expected
        same &= ok
        print(f"{key:<{width}}  tutorscore {json.dumps(got)}  independent {json.dumps(expected)}"
              f"  {'same' if ok else 'DIFFERENT'}")  # fmt: skip
    print("all equal" if same else "MISMATCH")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
