"""Training and cross-validating the tutor-move model (`tutorscore judge train`).

Data: MathDial train dialogues with the teacher's own move label on every tutor turn
(`corpora/tutoring-dialogues/mathdial_train_moves.jsonl`, CC BY-SA 4.0, see NOTICE).
Training is deterministic: the same file gives the same arrays and the same
`model_sha256` (lbfgs on a fixed matrix, no random state involved, folds grouped by
`problem_id` in file order).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from numpy.typing import NDArray
from scipy import sparse
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupKFold

from tutorscore.errors import UserError
from tutorscore.evaluation.moves import (
    DENSE_FEATURES,
    MODEL_FORMAT,
    MOVES,
    MoveModel,
    model_sha256,
    tutor_turn_features,
    word_vectorizer,
)
from tutorscore.ingest.transcript_format import Turn

# Regularisation chosen by grouped 5-fold cross-validation on macro-F1 over
# C in {0.25, 0.5, 1, 2, 4} (docs/evaluation.md); fixed here so training is one fit.
DEFAULT_C = 1.0
FOLDS = 5
_DECIMALS = 6


def repo_corpus_dir() -> Path:
    """`corpora/tutoring-dialogues/` of a source checkout (src layout)."""
    return Path(__file__).resolve().parents[3] / "corpora" / "tutoring-dialogues"


def default_data_path() -> Path:
    return repo_corpus_dir() / "mathdial_train_moves.jsonl"


def default_model_path() -> Path:
    return Path(__file__).resolve().parent / "tutor_moves.json"


@dataclass
class Dialogue:
    dialogue_id: str
    problem_id: str
    turns: list[Turn]
    moves: dict[int, str]  # turn index -> labelled move (tutor turns with a label)


@dataclass
class TurnTable:
    """Every labelled tutor turn as model inputs."""

    texts: list[str] = field(default_factory=list)
    grams: list[list[str]] = field(default_factory=list)
    dense: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, len(DENSE_FEATURES))))
    labels: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    groups: list[str] = field(default_factory=list)
    dialogue: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def load_mathdial(path: Path) -> list[Dialogue]:
    """Read the JSONL file; a malformed line is a UserError naming file and line."""
    if not path.exists():
        raise UserError(f"{path}: no such file (the MathDial training dialogues)")
    out: list[Dialogue] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                turns: list[Turn] = []
                moves: dict[int, str] = {}
                for i, t in enumerate(row["turns"]):
                    speaker = "tutor" if t["speaker"] == "tutor" else "student"
                    turns.append({"speaker": speaker, "text": str(t["text"])})
                    if speaker == "tutor" and t.get("move") in MOVES:
                        moves[i] = t["move"]
                out.append(Dialogue(str(row["dialogue_id"]), str(row["problem_id"]), turns, moves))
            except (KeyError, TypeError, ValueError) as exc:
                msg = f"{path}:{lineno}: expected a MathDial dialogue object ({exc})"
                raise UserError(msg) from None
    if not out:
        raise UserError(f"{path}: no dialogues")
    return out


def turn_table(dialogues: list[Dialogue]) -> TurnTable:
    texts: list[str] = []
    grams: list[list[str]] = []
    dense_rows: list[NDArray[np.float64]] = []
    labels: list[int] = []
    groups: list[str] = []
    dialogue: list[int] = []
    for d, dlg in enumerate(dialogues):
        inputs = tutor_turn_features(dlg.turns)
        for k, i in enumerate(inputs.index):
            move = dlg.moves.get(i)
            if move is None:
                continue
            texts.append(inputs.texts[k])
            grams.append(inputs.grams[k])
            dense_rows.append(inputs.dense[k])
            labels.append(MOVES.index(move))
            groups.append(dlg.problem_id)
            dialogue.append(d)
    return TurnTable(
        texts=texts,
        grams=grams,
        dense=np.vstack(dense_rows) if dense_rows else np.zeros((0, len(DENSE_FEATURES))),
        labels=np.asarray(labels, dtype=np.int64),
        groups=groups,
        dialogue=np.asarray(dialogue, dtype=np.int64),
    )


def _round(values: NDArray[np.float64]) -> list[Any]:
    out: list[Any] = np.round(values, _DECIMALS).tolist()
    return out


def fit_payload(
    grams: list[list[str]],
    dense: NDArray[np.float64],
    labels: NDArray[np.int64],
    c: float = DEFAULT_C,
) -> dict[str, Any]:
    """Fit vectorizer, scaler and classifier; return the JSON payload (arrays rounded)."""
    vec = word_vectorizer()
    words = vec.fit_transform(grams)
    mean = dense.mean(axis=0)
    scale = dense.std(axis=0)
    scale[scale == 0] = 1.0
    # Rounded first, so the stored arrays are exactly the ones the model was fitted with.
    mean = np.round(mean, _DECIMALS)
    scale = np.round(scale, _DECIMALS)
    x = sparse.hstack([words, sparse.csr_matrix((dense - mean) / scale)]).tocsr()
    clf = LogisticRegression(C=c, max_iter=5000)
    clf.fit(x, labels)
    if list(clf.classes_) != list(range(len(MOVES))):
        raise UserError("training data must contain every move: " + ", ".join(MOVES))
    vocab = {term: int(i) for term, i in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])}
    payload: dict[str, Any] = {
        "format": MODEL_FORMAT,
        "classes": list(MOVES),
        "dense_features": list(DENSE_FEATURES),
        "vocabulary": vocab,
        "idf": _round(vec.idf_),
        "dense_mean": _round(mean),
        "dense_scale": _round(scale),
        "coef": _round(clf.coef_),
        "intercept": _round(clf.intercept_),
    }
    payload["model_sha256"] = model_sha256(payload)
    return payload


def session_scaffolding(
    labels: NDArray[np.int64], dialogue: NDArray[np.int64], proba: NDArray[np.float64]
) -> tuple[list[float], list[float], list[float]]:
    """Per dialogue: labelled share, predicted ratio, predicted non-telling rate.

    Labelled share = (focus + probing) / (focus + probing + telling) of the teachers'
    labels; dialogues with no content move (only generic) are skipped. The model's
    two estimates: the same ratio of expected counts, and 1 - mean P(telling) over
    all tutor turns (what the judge scores: it ranks dialogues better, because a
    dialogue with few content turns is not pushed to 0 or 1 by one of them).
    """
    f, p, t = MOVES.index("focus"), MOVES.index("probing"), MOVES.index("telling")
    labelled: list[float] = []
    ratio: list[float] = []
    non_telling: list[float] = []
    for d in np.unique(dialogue):
        m = dialogue == d
        lab = labels[m]
        scaff = int(((lab == f) | (lab == p)).sum())
        den = scaff + int((lab == t).sum())
        if den == 0:
            continue
        pr = proba[m]
        s = float(pr[:, f].sum() + pr[:, p].sum())
        labelled.append(scaff / den)
        ratio.append(s / (s + float(pr[:, t].sum())))
        non_telling.append(1.0 - float(pr[:, t].mean()))
    return labelled, ratio, non_telling


def cross_validate(table: TurnTable, c: float = DEFAULT_C) -> tuple[dict[str, Any], Any]:
    """Grouped k-fold (by problem_id): turn accuracy, macro-F1, per-move F1, session Spearman."""
    proba = np.zeros((len(table.labels), len(MOVES)))
    for train, test in GroupKFold(n_splits=FOLDS).split(table.texts, table.labels, table.groups):
        payload = fit_payload(
            [table.grams[i] for i in train], table.dense[train], table.labels[train], c
        )
        model = MoveModel(payload)
        proba[test] = model.probabilities([table.grams[i] for i in test], table.dense[test])
    return move_metrics(table, proba), proba


def move_metrics(table: TurnTable, proba: NDArray[np.float64]) -> dict[str, Any]:
    pred = proba.argmax(axis=1)
    per_move = f1_score(table.labels, pred, average=None, labels=list(range(len(MOVES))))
    labelled, ratio, non_telling = session_scaffolding(table.labels, table.dialogue, proba)
    return {
        "folds": FOLDS,
        "grouped_by": "problem_id",
        "turns": len(table.labels),
        "accuracy": round(float(accuracy_score(table.labels, pred)), 4),
        "macro_f1": round(float(f1_score(table.labels, pred, average="macro")), 4),
        "f1": {m: round(float(v), 4) for m, v in zip(MOVES, per_move, strict=True)},
        "sessions": len(labelled),
        "session_scaffolding_spearman": round(float(spearmanr(non_telling, labelled)[0]), 4),
        "session_ratio_spearman": round(float(spearmanr(ratio, labelled)[0]), 4),
    }


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(
    data: Path, *, c: float = DEFAULT_C, cv: bool = True, limit: int | None = None
) -> dict[str, Any]:
    """The whole training run: payload with the data hash and (optionally) CV metrics."""
    dialogues = load_mathdial(data)
    if limit is not None:
        dialogues = dialogues[:limit]
    table = turn_table(dialogues)
    payload = fit_payload(table.grams, table.dense, table.labels, c)
    training: dict[str, Any] = {
        "data_file": data.name,
        "data_sha256": file_sha256(data),
        "dialogues": len(dialogues),
        "turns": len(table.labels),
        "label_counts": dict(sorted(Counter(MOVES[i] for i in table.labels).items())),
        "C": c,
        "scikit_learn": sklearn.__version__,
    }
    if cv:
        training["cross_validation"], _ = cross_validate(table, c)
    payload["training"] = training
    return payload


def write_model(payload: dict[str, Any], path: Path) -> None:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
