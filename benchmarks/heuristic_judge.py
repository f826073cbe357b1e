"""Heuristic judge throughput on one core: transcripts of 10-80 turns.

Usage: python benchmarks/heuristic_judge.py [--n 3000] [--seed 7]
Prints transcripts per second (scoring only, then scoring plus JSON dump as stored).
"""

from __future__ import annotations

import argparse
import random
import time

from tutorscore.config import HeuristicConfig
from tutorscore.evaluation.heuristic import evaluate_turns
from tutorscore.ingest.transcript_format import Turn

TUTOR_LINES = [
    "Today we'll work on factoring quadratics, and by the end you should factor them alone.",
    "What do you think the first step is when you see x squared plus 5x plus 6?",
    "Great reasoning! Why did you look for two numbers that multiply to 6?",
    "Does that make sense so far?",
    "The answer is 3, so we write x plus 2 times x plus 3.",
    "Let's move on, we don't have time for that.",
    "Can you explain back in your own words why the signs matter here?",
    "Okay so when the constant is negative one of the factors is negative and the other is "
    "positive and you check which one is bigger by looking at the middle term, and then you "
    "write both brackets and multiply them back out to check that you get the original "
    "expression, which is always a good habit, and then we can move to the next type.",
    "Is that clear? Next we do the same with 2x squared plus 7x plus 3 and you split the middle.",
    "To recap, today we learned to factor by finding pairs; for next time try problems 1 to 8.",
    "You said the product is 12, so which pairs of numbers give 12?",
    "Nice work sticking with it.",
]
STUDENT_LINES = [
    "ok",
    "I think we need two numbers that multiply to 6 and add to 5, so 2 and 3.",
    "why does the sign change when the constant is negative?",
    "Because if both were negative they would add to a negative number, not 5.",
    "yes",
    "I'm not sure, is it 4 and 3?",
    "So the pairs are 1 and 12, 2 and 6, 3 and 4, and only 2 and 6 add up to 8.",
    "Can we do one more like this?",
]


def make_transcripts(n: int, seed: int) -> list[list[Turn]]:
    rng = random.Random(seed)
    out: list[list[Turn]] = []
    for _ in range(n):
        turns: list[Turn] = []
        t = 0.0
        for k in range(rng.randint(10, 80)):
            speaker = "tutor" if k % 2 == 0 else "student"
            lines = TUTOR_LINES if speaker == "tutor" else STUDENT_LINES
            text = " ".join(rng.sample(lines, rng.randint(1, 2)))
            turn: Turn = {"speaker": speaker, "text": text}
            if rng.random() < 0.5:
                turn["start_s"] = t
            t += len(text.split()) * 0.4 + rng.random() * 3
            turns.append(turn)
        out.append(turns)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    transcripts = make_transcripts(args.n, args.seed)
    turns_total = sum(len(t) for t in transcripts)
    cfg = HeuristicConfig()
    evaluate_turns(transcripts[0], cfg)  # warm up
    # CPU time of this process: transcripts per second per core, whatever else runs.
    start = time.process_time()
    for turns in transcripts:
        evaluate_turns(turns, cfg)
    scoring = time.process_time() - start
    start = time.process_time()
    for turns in transcripts:
        evaluate_turns(turns, cfg).model_dump_json()
    with_dump = time.process_time() - start
    print(f"transcripts: {args.n}, mean turns {turns_total / args.n:.1f}")
    print(f"scoring only:      {args.n / scoring:8.0f} transcripts per CPU-second")
    print(f"scoring + to JSON: {args.n / with_dump:8.0f} transcripts per CPU-second")

if __name__ == "__main__":
    main()
