"""scripts/load_dialogue_reviews.py end to end on a small made-up file (SQLite).

The real run (300 MathDial dialogues) is in README and docs/reviews.md; this keeps the
script working: bundle import, heuristic evaluation, review import, and `tutorscore
agreement` equal to scipy/scikit-learn on the same pairs (it exits 1 otherwise).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTOR = [
    ("What do you think the first step is?", "probing"),
    ("Can you explain why you multiplied there?", "probing"),
    ("Let's focus on the second sentence of the problem.", "focus"),
    ("Which numbers do we know already?", "focus"),
    ("The answer is 12 because 3 times 4 is 12.", "telling"),
    ("You should divide by 2 first, then add 5.", "telling"),
    ("Hi, nice to meet you.", "generic"),
]
STUDENT = [
    "I think we need to add the two numbers together first.",
    "Because there are four groups of three apples in the story.",
    "I am not sure, maybe twelve?",
    "Okay, so I divide by two and get six, then add five and get eleven.",
]


def _dialogues(path: Path, n: int) -> None:
    rng = random.Random(7)
    with path.open("w") as fh:
        for i in range(n):
            turns = []
            for _ in range(rng.randint(3, 8)):
                text, move = rng.choice(TUTOR)
                turns.append({"speaker": "tutor", "text": text, "move": move})
                turns.append({"speaker": "student", "text": rng.choice(STUDENT)})
            fh.write(json.dumps({"dialogue_id": f"d{i}", "problem_id": str(i), "turns": turns}))
            fh.write("\n")


def test_script_agreement_equals_the_independent_computation(tmp_path: Path) -> None:
    data = tmp_path / "dialogues.jsonl"
    _dialogues(data, 30)
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "load_dialogue_reviews.py"),
         "--data", str(data), "--limit", "25", "--backend", "sqlite"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "25 dialogues from dialogues.jsonl, backend sqlite" in done.stdout
    assert done.stdout.rstrip().endswith("all equal")
    assert "spearman     tutorscore" in done.stdout
