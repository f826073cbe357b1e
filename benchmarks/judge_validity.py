"""How far the offline judge agrees with human experts, on real tutoring dialogue.

Usage: python benchmarks/judge_validity.py [--folds 5] [--speed-n 1000]

Data: corpora/tutoring-dialogues/ (MathDial train moves, Bridge, NCTE uptake; see NOTICE).
Prints one table:

- MathDial, grouped cross-validation (folds by problem_id; every number comes from a model
  that never saw the dialogue's problem): turn accuracy and macro-F1 per move, and per
  dialogue the Spearman between the labelled scaffolding share (focus + probing over
  focus + probing + telling, from the teachers' labels) and (a) the model's expected
  ratio, (b) its 1 - mean P(telling), (c) the judge's 1 - mean P(telling) after give-away
  turns count as telling, (d) the judge's quality_score; plus how often answer_giveaway
  fires.
- Bridge (real chat tutoring): is the expert's revised response told apart as asking
  (ask_question, simplify_question) vs telling (explain_concept, provide_correction,
  provide_strategy)? Scored on Bridge's validation and test splits, which the bundled model
  never saw (it is trained on MathDial plus Bridge's train split; every MathDial fold above
  trains on that split too); also the zero-shot accuracy of a model trained on MathDial
  alone. The model sees the conversation before the response and the student's reply after
  it (from `c_revision`); the baseline, trained on the same data, sees the response text.
- NCTE: Spearman of the judge's uptake measure against the experts' uptake_majority.
- A plain n-gram baseline in the same rows (tf-idf word 1-2 + char 2-4 grams of the turn text
  alone, logistic regression; and for uptake, the v1 "shares a content word" measure), and
  the judge's speed in transcripts per CPU-second on synthetic 10-80 turn transcripts.
"""

from __future__ import annotations

import argparse
import csv
import random
import time

import numpy as np
from scipy import sparse
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from tutorscore.config import HeuristicConfig
from tutorscore.evaluation import heuristic_patterns as P
from tutorscore.evaluation import move_training as mt
from tutorscore.evaluation.heuristic import evaluate_turns
from tutorscore.evaluation.moves import MOVES, MoveModel, bundled_model
from tutorscore.evaluation.uptake import uptake_score
from tutorscore.ingest.transcripts import generate_transcript

CORPUS = mt.repo_corpus_dir()


def baseline_proba(texts: list[str], labels: np.ndarray, train: np.ndarray, test: np.ndarray):
    word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=3, sublinear_tf=True)
    tr = [texts[i] for i in train]
    te = [texts[i] for i in test]
    x_tr = sparse.hstack([word.fit_transform(tr), char.fit_transform(tr)]).tocsr()
    x_te = sparse.hstack([word.transform(te), char.transform(te)]).tocsr()
    clf = LogisticRegression(max_iter=3000).fit(x_tr, labels[train])
    return clf.predict_proba(x_te), (word, char, clf)


def spearman(a: list[float], b: list[float]) -> float:
    return float(spearmanr(a, b).statistic)


def mathdial(folds: int) -> list[tuple[str, str, str, str]]:
    dialogues = mt.load_mathdial(CORPUS / "mathdial_train_moves.jsonl")
    table = mt.turn_table(dialogues)
    labels = table.labels
    model_p = np.zeros((len(labels), len(MOVES)))
    base_p = np.zeros_like(model_p)
    judge_share: dict[int, float] = {}
    judge_quality: dict[int, float] = {}
    giveaway: dict[int, bool] = {}
    split = GroupKFold(n_splits=folds).split(table.texts, labels, table.groups)
    bridge_train = mt.bridge_training_items(CORPUS / "bridge.jsonl")
    cfg = HeuristicConfig()
    for train, test in split:
        fold_model = MoveModel(mt.fit_with_bridge(table, train, bridge_train, mt.DEFAULT_C))
        model_p[test] = fold_model.probabilities([table.grams[i] for i in test], table.dense[test])
        base_p[test], _ = baseline_proba(table.texts, labels, train, test)
        for d in np.unique(table.dialogue[test]):
            result = evaluate_turns(dialogues[d].turns, cfg, model=fold_model)
            judge_share[int(d)] = float(result.features.get("non_telling") or 0.0)
            judge_quality[int(d)] = result.quality_score
            giveaway[int(d)] = "answer_giveaway" in result.risk_tags
    m = mt.move_metrics(table, model_p)
    b = mt.move_metrics(table, base_p)
    labelled, _, _ = mt.session_scaffolding(labels, table.dialogue, model_p)
    kept = [
        int(d)
        for d in np.unique(table.dialogue)
        if np.isin(labels[table.dialogue == d], [0, 1, 2]).any()
    ]
    js = spearman([judge_share[d] for d in kept], labelled)
    jq = spearman([judge_quality[d] for d in kept], labelled)
    rate = sum(giveaway.values()) / len(giveaway)
    f1 = " / ".join(f"{m['f1'][k]:.2f}" for k in MOVES)
    bf1 = " / ".join(f"{b['f1'][k]:.2f}" for k in MOVES)
    n = f"{m['turns']} turns, {m['sessions']} dialogues"
    return [
        ("MathDial CV", "turn accuracy", f"{m['accuracy']:.3f}", f"{b['accuracy']:.3f}"),
        ("MathDial CV", "turn macro-F1", f"{m['macro_f1']:.3f}", f"{b['macro_f1']:.3f}"),
        ("MathDial CV", "F1 focus / probing / telling / generic", f1, bf1),
        (
            "MathDial CV",
            "session share, Spearman: expected (F+P)/(F+P+T)",
            f"{m['session_ratio_spearman']:.3f}",
            f"{b['session_ratio_spearman']:.3f}",
        ),
        (
            "MathDial CV",
            "session share, Spearman: 1 - mean P(telling) (model)",
            f"{m['session_scaffolding_spearman']:.3f}",
            f"{b['session_scaffolding_spearman']:.3f}",
        ),
        ("MathDial CV", "session share, Spearman: 1 - mean P(telling) (judge)", f"{js:.3f}", "-"),
        ("MathDial CV", "session quality_score vs labelled share, Spearman", f"{jq:.3f}", "-"),
        ("MathDial CV", "answer_giveaway fires on (share of dialogues)", f"{rate:.3f}", "-"),
        ("MathDial CV", "size", n, ""),
    ]


def bridge() -> list[tuple[str, str, str, str]]:
    """Bridge's validation and test splits: never trained on (the train split is)."""
    items = mt.load_bridge(CORPUS / "bridge.jsonl")
    held_out = [i for i in items if i.split != mt.BRIDGE_TRAIN_SPLIT and i.asks is not None]
    train_items = mt.bridge_training_items(CORPUS / "bridge.jsonl")
    model = bundled_model()
    dialogues = mt.load_mathdial(CORPUS / "mathdial_train_moves.jsonl")
    table = mt.turn_table(dialogues)
    mathdial_only = MoveModel(mt.fit_payload(table.grams, table.dense, table.labels))
    extra = mt.bridge_table(train_items, mathdial_only)
    # The baseline learns from the same data: MathDial turns plus Bridge's train split.
    texts = table.texts + extra.texts
    labels = np.r_[table.labels, extra.labels]
    weight = np.r_[np.ones(len(table.labels)), np.full(len(extra.labels), mt.BRIDGE_WEIGHT)]
    word = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=3, sublinear_tf=True)
    x = sparse.hstack([word.fit_transform(texts), char.fit_transform(texts)]).tocsr()
    clf = LogisticRegression(max_iter=3000).fit(x, labels, sample_weight=weight)
    f, p, t = (MOVES.index(x) for x in ("focus", "probing", "telling"))
    right: dict[str, list[bool]] = {"validation": [], "test": []}
    zero_shot: list[bool] = []
    base: list[bool] = []
    for item in held_out:
        pred = next(m for m in model.predict(item.turns) if m.turn == item.at).probabilities
        right[item.split].append((pred["focus"] + pred["probing"] > pred["telling"]) == item.asks)
        zs = next(m for m in mathdial_only.predict(item.turns) if m.turn == item.at)
        zp = zs.probabilities
        zero_shot.append((zp["focus"] + zp["probing"] > zp["telling"]) == item.asks)
        text = item.turns[item.at]["text"]
        bp = clf.predict_proba(sparse.hstack([word.transform([text]), char.transform([text])]))[0]
        base.append((bp[f] + bp[p] > bp[t]) == item.asks)
    both = right["validation"] + right["test"]
    n_val, n_test = len(right["validation"]), len(right["test"])
    return [
        ("Bridge held out", f"asking vs telling accuracy, validation + test ({len(both)})",
         f"{np.mean(both):.3f}", f"{np.mean(base):.3f}"),
        ("Bridge held out", f"  test split only ({n_test})", f"{np.mean(right['test']):.3f}", ""),
        ("Bridge held out", f"  validation split only ({n_val})",
         f"{np.mean(right['validation']):.3f}", ""),
        ("Bridge held out", "  same, model trained on MathDial alone (zero-shot)",
         f"{np.mean(zero_shot):.3f}", ""),
        ("Bridge", "size", f"{len(held_out)} held-out responses, {len(extra.labels)} trained on",
         ""),
    ]  # fmt: skip


def ncte() -> list[tuple[str, str, str, str]]:
    with (CORPUS / "ncte_uptake.csv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["uptake_majority"] != ""]
    human = [float(r["uptake_majority"]) for r in rows]
    ours = [uptake_score(r["student_text"], r["teacher_text"]) for r in rows]
    v1 = []
    for r in rows:
        student = {
            w
            for w in P.WORD.findall(r["student_text"].lower())
            if w not in P.STOPWORDS and (len(w) >= 4 or not w.isalpha())
        }
        v1.append(float(not student.isdisjoint(P.WORD.findall(r["teacher_text"].lower()))))
    return [
        ("NCTE", "uptake measure vs uptake_majority, Spearman",
         f"{spearman(ours, human):.3f}", f"{spearman(v1, human):.3f}"),
        ("NCTE", "size", f"{len(rows)} exchanges (raters agreed)", ""),
    ]  # fmt: skip


def speed(n: int) -> list[tuple[str, str, str, str]]:
    rng = random.Random(11)
    transcripts = [
        generate_transcript(
            rng,
            subject=rng.choice(["Algebra", "SAT Math", "Geometry"]),
            tutor_name="Alex Kim",
            student_name="Sam Lee",
            quality=rng.random(),
            first_session=rng.random() < 0.3,
        ).turns
        for _ in range(n)
    ]
    cfg = HeuristicConfig()
    evaluate_turns(transcripts[0], cfg)
    start = time.process_time()
    for turns in transcripts:
        evaluate_turns(turns, cfg)
    rate = n / (time.process_time() - start)
    mean = sum(len(t) for t in transcripts) / n
    return [("speed", f"transcripts per CPU-second ({n} synthetic, {mean:.0f} turns avg)",
             f"{rate:.0f}", "")]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=mt.FOLDS)
    parser.add_argument("--speed-n", type=int, default=1000)
    args = parser.parse_args()
    started = time.time()
    rows = mathdial(args.folds) + bridge() + ncte() + speed(args.speed_n)
    widths = [max(len(r[i]) for r in rows + [("data", "measure", "judge", "baseline")])
              for i in range(4)]  # fmt: skip
    header = ("data", "measure", "judge", "baseline")
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"\n({time.time() - started:.0f} s; model {bundled_model().sha256[:12]})")


if __name__ == "__main__":
    main()
