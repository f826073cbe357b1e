"""Training and cross-validating the tutor-move model (`tutorscore judge train`).

Data (`corpora/tutoring-dialogues/`, licences in NOTICE):

- MathDial train dialogues with the teacher's own move label on every tutor turn
  (`mathdial_train_moves.jsonl`, CC BY-SA 4.0): the bulk of the training data;
- the `train` split of Bridge (`bridge.jsonl`, MIT): real chat tutoring where expert
  teachers wrote and labelled a response. Its strategies map onto the moves (asking:
  `ask_question`, `simplify_question`; telling: `explain_concept`, `provide_correction`,
  `provide_strategy`), and they carry a convention MathDial's labels do not: a response
  that explains a concept and then asks a question is telling. Bridge's `validation`
  and `test` splits are never trained on; benchmarks/judge_validity.py reports them.

Training is deterministic: the same files give the same arrays and the same
`model_sha256` (lbfgs on a fixed matrix, no random state involved, folds grouped by
`problem_id` in file order).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

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
T = TypeVar("T")
# Bridge strategies as moves. `ask_question` is focus or probing, whichever the
# MathDial-only model finds likelier for that response (Bridge does not say which).
BRIDGE_ASKING: frozenset[str] = frozenset({"ask_question", "simplify_question"})
BRIDGE_TELLING: frozenset[str] = frozenset(
    {"explain_concept", "provide_correction", "provide_strategy"}
)
BRIDGE_TRAIN_SPLIT = "train"
# Weight of one Bridge example against one MathDial turn. The two datasets disagree on
# one kind of turn (an explanation followed by a question: MathDial's teachers call it
# focus, Bridge's experts telling), so the weight trades Bridge's held-out accuracy
# against MathDial's session ranking; docs/evaluation.md shows the sweep (0, 1.5, 3, 10,
# 30) it was picked from, the smallest weight that reaches 0.75 on Bridge.
BRIDGE_WEIGHT = 1.5


def repo_corpus_dir() -> Path:
    """`corpora/tutoring-dialogues/` of a source checkout (src layout)."""
    return Path(__file__).resolve().parents[3] / "corpora" / "tutoring-dialogues"


def default_data_path() -> Path:
    return repo_corpus_dir() / "mathdial_train_moves.jsonl"


def default_bridge_path() -> Path:
    return repo_corpus_dir() / "bridge.jsonl"


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


def _read_jsonl(
    path: Path, source: str, what: str, parse: Callable[[dict[str, Any]], T]
) -> list[T]:
    """One `parse`d object per non-blank line; a missing file or a malformed line is a
    UserError naming the file (and line) and what was expected there."""
    if not path.exists():
        raise UserError(f"{path}: no such file ({source})")
    out: list[T] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append(parse(json.loads(line)))
            except (KeyError, TypeError, ValueError) as exc:
                raise UserError(f"{path}:{lineno}: expected {what} object ({exc})") from None
    return out


def _dialogue(row: dict[str, Any]) -> Dialogue:
    turns: list[Turn] = []
    moves: dict[int, str] = {}
    for i, t in enumerate(row["turns"]):
        speaker = "tutor" if t["speaker"] == "tutor" else "student"
        turns.append({"speaker": speaker, "text": str(t["text"])})
        if speaker == "tutor" and t.get("move") in MOVES:
            moves[i] = t["move"]
    return Dialogue(str(row["dialogue_id"]), str(row["problem_id"]), turns, moves)


def load_mathdial(path: Path) -> list[Dialogue]:
    """Read the JSONL file; a malformed line is a UserError naming file and line."""
    out = _read_jsonl(path, "the MathDial training dialogues", "a MathDial dialogue", _dialogue)
    if not out:
        raise UserError(f"{path}: no dialogues")
    return out


@dataclass
class BridgeItem:
    """One Bridge conversation up to the expert's revised response (and the reply to it)."""

    item_id: str
    split: str
    strategy: str
    turns: list[Turn]
    at: int  # index of the expert's response in `turns`

    @property
    def asks(self) -> bool | None:
        """True for an asking strategy, False for telling, None for the others."""
        if self.strategy in BRIDGE_ASKING:
            return True
        return False if self.strategy in BRIDGE_TELLING else None


def _bridge_item(row: dict[str, Any]) -> BridgeItem:
    turns: list[Turn] = []
    for t in row["c_h"]:
        speaker = "tutor" if t["user"] == "tutor" else "student"
        text = str(t["text"]).strip()
        if not text:
            continue
        if turns and turns[-1]["speaker"] == speaker:
            turns[-1]["text"] += " " + text  # chat messages in a row are one turn
        else:
            turns.append({"speaker": speaker, "text": text})
    revised = " ".join(str(t["text"]).strip() for t in row["c_r_"])
    turns.append({"speaker": "tutor", "text": revised})
    at = len(turns) - 1
    # The conversation goes on (c_revision): the student's reply is part of what the
    # judge sees, as it is for every tutor turn but the last of a real session.
    after = row["c_revision"][len(row["c_r_"]) :]
    if after and after[0]["user"] == "student":
        turns.append({"speaker": "student", "text": str(after[0]["text"])})
    return BridgeItem(str(row["c_id"]), str(row["bridge_split"]), str(row["z_what"]), turns, at)


def load_bridge(path: Path) -> list[BridgeItem]:
    """Read bridge.jsonl; a malformed line is a UserError naming file and line."""
    return _read_jsonl(path, "the Bridge conversations", "a Bridge item", _bridge_item)


def bridge_table(items: list[BridgeItem], mathdial_model: MoveModel) -> TurnTable:
    """Bridge responses with an asking or telling strategy, labelled as moves."""
    table = TurnTable()
    rows: list[NDArray[np.float64]] = []
    labels: list[int] = []
    focus, probing = MOVES.index("focus"), MOVES.index("probing")
    for item in items:
        asks = item.asks
        if asks is None:
            continue
        inputs = tutor_turn_features(item.turns)
        k = inputs.index.index(item.at)
        if not asks:
            label = MOVES.index("telling")
        elif item.strategy == "simplify_question":
            label = focus
        else:
            p = mathdial_model.probabilities([inputs.grams[k]], inputs.dense[k : k + 1])[0]
            label = focus if p[focus] >= p[probing] else probing
        table.texts.append(inputs.texts[k])
        table.grams.append(inputs.grams[k])
        rows.append(inputs.dense[k])
        labels.append(label)
        table.groups.append("bridge:" + item.item_id)
    if rows:
        table.dense = np.vstack(rows)
    table.labels = np.asarray(labels, dtype=np.int64)
    table.dialogue = np.full(len(labels), -1, dtype=np.int64)
    return table


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
    sample_weight: NDArray[np.float64] | None = None,
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
    clf.fit(x, labels, sample_weight=sample_weight)
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


def fit_with_bridge(
    table: TurnTable, rows: NDArray[np.int64], bridge: list[BridgeItem], c: float
) -> dict[str, Any]:
    """Fit on MathDial turns `rows` plus Bridge's training items, labelled by a model
    fitted on those same MathDial rows (so no fold ever sees its held-out turns)."""
    grams = [table.grams[i] for i in rows]
    payload = fit_payload(grams, table.dense[rows], table.labels[rows], c)
    if not bridge:
        return payload
    extra = bridge_table(bridge, MoveModel(payload))
    weight = np.r_[np.ones(len(rows)), np.full(len(extra.labels), BRIDGE_WEIGHT)]
    return fit_payload(
        grams + extra.grams,
        np.vstack([table.dense[rows], extra.dense]),
        np.r_[table.labels[rows], extra.labels],
        c,
        sample_weight=weight,
    )


def cross_validate(
    table: TurnTable, c: float = DEFAULT_C, bridge: list[BridgeItem] | None = None
) -> tuple[dict[str, Any], Any]:
    """Grouped k-fold (by problem_id): turn accuracy, macro-F1, per-move F1, session Spearman.

    Every fold trains on its MathDial turns plus `bridge` (Bridge's training split) and is
    scored on its held-out MathDial dialogues only.
    """
    proba = np.zeros((len(table.labels), len(MOVES)))
    for train, test in GroupKFold(n_splits=FOLDS).split(table.texts, table.labels, table.groups):
        model = MoveModel(fit_with_bridge(table, train, bridge or [], c))
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


def bridge_training_items(path: Path) -> list[BridgeItem]:
    """Bridge's training split with an asking or telling strategy (what training uses).

    Bridge has two experts' revisions of most conversations, and the two can fall in
    different splits; a training item whose conversation (`c_id`) is also in the
    validation or test split is left out, so the held-out conversations stay unseen.
    """
    items = load_bridge(path)
    held_out = {i.item_id for i in items if i.split != BRIDGE_TRAIN_SPLIT}
    return [
        i
        for i in items
        if i.split == BRIDGE_TRAIN_SPLIT and i.asks is not None and i.item_id not in held_out
    ]


def train(
    data: Path,
    *,
    bridge_data: Path | None = None,
    c: float = DEFAULT_C,
    cv: bool = True,
    limit: int | None = None,
) -> dict[str, Any]:
    """The whole training run: payload with the data hashes and (optionally) CV metrics.

    `bridge_data=None` trains on MathDial alone.
    """
    dialogues = load_mathdial(data)
    if limit is not None:
        dialogues = dialogues[:limit]
    table = turn_table(dialogues)
    bridge = bridge_training_items(bridge_data) if bridge_data is not None else []
    payload = fit_with_bridge(table, np.arange(len(table.labels)), bridge, c)
    training: dict[str, Any] = {
        "data_file": data.name,
        "data_sha256": file_sha256(data),
        "dialogues": len(dialogues),
        "turns": len(table.labels),
        "label_counts": dict(sorted(Counter(MOVES[i] for i in table.labels).items())),
        "C": c,
        "scikit_learn": sklearn.__version__,
    }
    if bridge_data is not None:
        training["bridge"] = {
            "data_file": bridge_data.name,
            "data_sha256": file_sha256(bridge_data),
            "split": BRIDGE_TRAIN_SPLIT,
            "responses": len(bridge),
            "weight": BRIDGE_WEIGHT,
        }
    if cv:
        training["cross_validation"], _ = cross_validate(table, c, bridge)
    payload["training"] = training
    return payload


def write_model(payload: dict[str, Any], path: Path) -> None:
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)
