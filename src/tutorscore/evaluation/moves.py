"""The tutor-move model: what each tutor turn does (focus, probing, telling, generic).

The four moves are MathDial's teacher moves (Macina et al., 2023), labelled by the
teachers who wrote the turns:

- **focus**: steer the student to a sub-step or a strategy ("What do you get when
  you subtract 5 from both sides?");
- **probing**: ask for the student's reasoning, invite self-correction ("How did you
  get 29?");
- **telling**: state the strategy, a step's result or the answer;
- **generic**: greetings, encouragement, small talk.

Focus and probing are scaffolding; telling is what weak tutors over-use. A turn is
described by what it says (word n-grams), how it says it (question form, length,
position in the session), what it does with the student turn before it (reuses its
words and numbers, or states new ones) and whether it states a result (numbers,
equations). `tutorscore judge train` (evaluation/move_training.py) fits a multinomial
logistic regression on the MathDial dialogues bundled in `corpora/` and writes
`tutor_moves.json`: the vocabulary, idf weights, standardisation and coefficients as
plain JSON arrays, loaded here once per process without executing anything.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from importlib import resources  # the trained move model, shipped as package data
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.feature_extraction.text import TfidfVectorizer

from tutorscore.evaluation.heuristic_patterns import FUNCTION_WORDS, WORD
from tutorscore.ingest.transcript_format import Turn

MOVES: tuple[str, ...] = ("focus", "probing", "telling", "generic")
SCAFFOLDING: frozenset[str] = frozenset({"focus", "probing"})
# One letter per move, as evaluations store the moves of a session (`features.turn_moves`).
MOVE_CODES: dict[str, str] = {"focus": "F", "probing": "P", "telling": "T", "generic": "G"}
MODEL_FORMAT = "tutorscore-tutor-moves/1"
MODEL_FILE = "tutor_moves.json"

_NUMBER = re.compile(r"(?<![a-z])\d+(?:[.,/]\d+)*")
_EQUATION = re.compile(r"(?:[\d)]\s*(?:[-+*/×÷x]|times|plus|minus|divided by)\s*[\d(])|=")
_QUESTION_START = re.compile(
    r"\s*(?:(?:so|and|okay|ok|now|then|well|but|alright|right|hmm|great|good)[,!.]?\s+)*"
    r"(?:what|how|why|which|where|when|who|can|could|would|will|do|does|did|is|are|was|were"
    r"|have|has|should|if)\b"
)
# Cue words and phrases, matched against a turn's tokens and token bigrams (fast: no regex).
# Bigrams are written "a b", as `word_grams` writes them.
_WHY_HOW = frozenset(
    {"why", "explain", "how did", "how do", "how would", "how can", "walk me", "show me"}
)
_BACK_REFERENCE = frozenset(
    {
        f"you {w}"
        for w in (
            "said",
            "mentioned",
            "wrote",
            "got",
            "have",
            "did",
            "think",
            "stated",
            "calculated",
            "found",
            "used",
        )
    }
    | {f"your {w}" for w in ("answer", "work", "reasoning", "solution", "calculation", "thinking")}
)
_DIRECTIVE = frozenset(
    {
        "let's",
        "lets",
        "try",
        "remember",
        "first",
        "reread",
        "consider",
        "check",
        "think about",
        "look at",
        "start with",
        "focus on",
    }
)
_STATES_RESULT = frozenset(
    {
        "equals",
        "answer is",
        "should be",
        "is actually",
        "that gives",
        "which gives",
        "so it's",
        "you get",
        "we get",
        "correct answer",
        "right answer",
        "final answer",
    }
)
_SOCIAL = frozenset(
    {
        "hi",
        "hello",
        "hey",
        "thanks",
        "bye",
        "goodbye",
        "welcome",
        "nice",
        "awesome",
        "excellent",
        "perfect",
        "thank you",
        "good job",
        "great job",
        "well done",
        "good work",
        "great work",
        "see you",
    }
)
_AGREEMENT = frozenset(
    {
        "ok",
        "okay",
        "yes",
        "yeah",
        "alright",
        "thanks",
        "thank",
        "sure",
        "oh",
        "right",
        "got",
        "i",
        "so",
    }
)
_NEGATION = frozenset(
    {"no", "not", "incorrect", "wrong", "mistake", "isn't", "aren't", "doesn't", "don't"}
)

# Dense features in model order (docs/evaluation.md explains each).
DENSE_FEATURES: tuple[str, ...] = (
    "ends_with_question",
    "question_marks",
    "starts_as_question",
    "asks_why_or_how",
    "position",
    "first_tutor_turn",
    "last_tutor_turn",
    "log_words",
    "has_number",
    "numbers",
    "new_numbers",
    "has_equation",
    "reuses_student_words",
    "after_student_turn",
    "refers_to_student",
    "directive",
    "states_result",
    "social",
    "negation",
    "session_question_share",
    "session_mean_log_words",
    "session_number_share",
    "next_student_words",
    "next_repeats_numbers",
    "next_agrees",
)


@dataclass
class TurnInputs:
    """The model's inputs for every tutor turn of one transcript."""

    index: list[int]  # turn index of each tutor turn
    texts: list[str]
    grams: list[list[str]]  # word unigrams and bigrams
    dense: NDArray[np.float64]
    numbers: list[list[str]]  # the numbers of every turn (all speakers), as `_NUMBER` finds them


def word_grams(tokens: list[str]) -> list[str]:
    """Unigrams and bigrams of a turn's tokens (the model's n-gram vocabulary)."""
    return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]


def tutor_turn_features(
    turns: list[Turn],
    lowers: list[str] | None = None,
    tokens: list[list[str]] | None = None,
) -> TurnInputs:
    """Inputs of every tutor turn; training and inference share this one function.

    `lowers` / `tokens` (lower-cased text and `_WORD` tokens per turn) may be passed
    by a caller that has them already, so a transcript is tokenized once.
    """
    n_turns = len(turns)
    lows = lowers if lowers is not None else [str(t.get("text", "")).lower() for t in turns]
    toks = tokens if tokens is not None else [WORD.findall(low) for low in lows]
    nums = [_NUMBER.findall(low) for low in lows]
    is_tutor = [t.get("speaker") == "tutor" for t in turns]
    idx = [i for i in range(n_turns) if is_tutor[i]]
    n_tutor = len(idx)
    rows: list[list[float]] = []
    texts: list[str] = []
    grams: list[list[str]] = []
    said_numbers: set[str] = set()
    prev_student: int | None = None
    last = n_tutor - 1
    for i in range(n_turns):
        if not is_tutor[i]:
            said_numbers.update(nums[i])
            prev_student = i
            continue
        low = lows[i]
        k = len(rows)
        texts.append(str(turns[i].get("text", "")))
        words = toks[i]
        nxt = i + 1
        following = nxt < n_turns and not is_tutor[nxt]
        after = toks[nxt] if following else []
        # The student's reply tells what the turn did: after telling, students accept
        # ("okay", "I see") and repeat the tutor's numbers; after a question, they work.
        own = word_grams(words)
        grams.append(own + [f"next:{w}" for w in after[:3]])
        cues = set(own)  # tokens and "a b" bigrams, what the cue sets are written in
        numbers = nums[i]
        new_numbers = sum(1 for n in numbers if n not in said_numbers)
        reuse = 0.0
        if prev_student is not None:
            said = toks[prev_student]
            student_words = {w for w in said if w not in FUNCTION_WORDS and len(w) > 2}
            if student_words:
                reuse = len(student_words.intersection(words)) / len(student_words)
        repeats = 0.0
        if numbers and after:
            distinct = set(numbers)
            repeats = len(distinct.intersection(nums[nxt])) / len(distinct)
        rows.append(
            [
                float(low.rstrip().endswith("?")),
                min(low.count("?"), 3) / 3,
                float(bool(_QUESTION_START.match(low))),
                float(not _WHY_HOW.isdisjoint(cues)),
                k / last if n_tutor > 1 else 0.0,
                float(k == 0),
                float(k == last),
                math.log1p(len(words)),
                float(bool(numbers)),
                min(len(numbers), 5) / 5,
                min(new_numbers, 5) / 5,
                float(bool(_EQUATION.search(low))),
                reuse,
                float(prev_student is not None),
                float(not _BACK_REFERENCE.isdisjoint(cues)),
                float(not _DIRECTIVE.isdisjoint(cues)),
                float(not _STATES_RESULT.isdisjoint(cues)),
                float(not _SOCIAL.isdisjoint(cues)),
                float(not _NEGATION.isdisjoint(cues)),
                0.0,
                0.0,
                0.0,
                math.log1p(len(after)),
                repeats,
                float(bool(after) and after[0] in _AGREEMENT),
            ]
        )
        prev_student = None
    dense = np.array(rows, dtype=np.float64).reshape(n_tutor, len(DENSE_FEATURES))
    if n_tutor:
        # The tutor's style over the whole session: teachers are consistent within a session.
        dense[:, 19] = dense[:, 0].mean()
        dense[:, 20] = dense[:, 7].mean()
        dense[:, 21] = dense[:, 8].mean()
    return TurnInputs(idx, texts, grams, dense, nums)


def _pregrammed(doc: list[str]) -> list[str]:
    return doc


def word_vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    """Tf-idf over `word_grams` lists (the same settings when training and loading)."""
    return TfidfVectorizer(
        analyzer=_pregrammed,
        min_df=2,
        sublinear_tf=True,
        vocabulary=vocabulary,
        dtype=np.float64,
    )


@dataclass(frozen=True)
class TurnMove:
    """One tutor turn's move with the model's probability for each move."""

    turn: int
    move: str
    probabilities: dict[str, float]
    given_away: bool = False  # set by the judge: the turn states the answer (move = telling)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.move]


class MoveModel:
    """A loaded tutor-move model: word tf-idf + standardised dense features -> softmax."""

    def __init__(self, payload: dict[str, Any]) -> None:
        if payload.get("format") != MODEL_FORMAT:
            raise ValueError(f"tutor-move model: expected format {MODEL_FORMAT!r}")
        self.classes: tuple[str, ...] = tuple(payload["classes"])
        if set(self.classes) != set(MOVES):
            raise ValueError(f"tutor-move model: classes {self.classes} are not {MOVES}")
        if tuple(payload["dense_features"]) != DENSE_FEATURES:
            raise ValueError("tutor-move model: dense features differ from this code's")
        vocab = {str(k): int(v) for k, v in payload["vocabulary"].items()}
        self.vocabulary = vocab
        self.idf = np.asarray(payload["idf"], dtype=np.float64)
        self.dense_mean = np.asarray(payload["dense_mean"], dtype=np.float64)
        self.dense_scale = np.asarray(payload["dense_scale"], dtype=np.float64)
        coef = np.asarray(payload["coef"], dtype=np.float64)
        n_words = len(vocab)
        self.word_coef_t = np.ascontiguousarray(coef[:, :n_words].T)
        self.dense_coef_t = np.ascontiguousarray(coef[:, n_words:].T)
        self.intercept = np.asarray(payload["intercept"], dtype=np.float64)
        self.training: dict[str, Any] = dict(payload.get("training", {}))
        self.sha256: str = str(payload.get("model_sha256", ""))

    def probabilities(
        self, grams: list[list[str]], dense: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Rows of move probabilities (columns in `self.classes` order).

        Tf-idf exactly as the training vectorizer weights it (sublinear tf, idf, l2
        norm), computed for all turns at once on the few n-grams each turn has:
        several times faster than building a sparse matrix for a handful of texts.
        """
        n = len(grams)
        if not n:
            return np.zeros((0, len(self.classes)))
        # Elementwise, not `@`: a BLAS call on a 20x22 matrix costs more than it saves
        # (and may wake BLAS threads); this stays single-threaded.
        scaled = (dense - self.dense_mean) / self.dense_scale
        logits = (scaled[:, :, None] * self.dense_coef_t[None, :, :]).sum(axis=1)
        logits += self.intercept
        # Vocabulary ids of every n-gram of every turn, -1 where unknown, in one C-level map.
        lengths = [len(doc) for doc in grams]
        flat = np.fromiter(
            map(self.vocabulary.get, itertools.chain.from_iterable(grams), itertools.repeat(-1)),
            dtype=np.int64,
            count=sum(lengths),
        )
        known = flat >= 0
        doc_of = np.repeat(np.arange(n, dtype=np.int64), lengths)[known]
        ids = flat[known]
        if ids.size:
            # (row, column) pairs -> term frequency per row, all rows at once.
            width = len(self.vocabulary)
            keys, tf = np.unique(doc_of * width + ids, return_counts=True)
            row_of = keys // width
            col = keys % width
            w = (1.0 + np.log(tf)) * self.idf[col]
            norms = np.sqrt(np.bincount(row_of, weights=w * w, minlength=n))
            w /= norms[row_of]
            # keys are sorted, so each row's n-grams are contiguous: sum them per row.
            starts = np.flatnonzero(np.r_[True, row_of[1:] != row_of[:-1]])
            logits[row_of[starts]] += np.add.reduceat(w[:, None] * self.word_coef_t[col], starts)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return np.asarray(logits)

    def predict(
        self,
        turns: list[Turn],
        lowers: list[str] | None = None,
        tokens: list[list[str]] | None = None,
    ) -> list[TurnMove]:
        """The move of every tutor turn (see `tutor_turn_features` for lowers/tokens)."""
        return self.predict_with_inputs(turns, lowers, tokens)[0]

    def predict_with_inputs(
        self,
        turns: list[Turn],
        lowers: list[str] | None = None,
        tokens: list[list[str]] | None = None,
    ) -> tuple[list[TurnMove], TurnInputs]:
        """`predict`, and the inputs it computed (the judge reuses their numbers)."""
        inputs = tutor_turn_features(turns, lowers, tokens)
        proba = self.probabilities(inputs.grams, inputs.dense).tolist()
        classes = self.classes
        out = []
        for i, row in zip(inputs.index, proba, strict=True):
            probs = dict(zip(classes, row, strict=True))
            out.append(TurnMove(turn=i, move=classes[row.index(max(row))], probabilities=probs))
        return out, inputs


def model_sha256(payload: dict[str, Any]) -> str:
    """Hash of everything that decides predictions (not the metrics or the hash itself)."""
    keys = ("format", "classes", "dense_features", "vocabulary", "idf", "dense_mean",
            "dense_scale", "coef", "intercept")  # fmt: skip
    blob = json.dumps({k: payload[k] for k in keys}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def load_model(path: Path | None = None) -> MoveModel:
    """Read a model file (JSON only: nothing in it is executed)."""
    if path is None:
        text = resources.files("tutorscore.evaluation").joinpath(MODEL_FILE).read_text("utf-8")
    else:
        text = path.read_text("utf-8")
    return MoveModel(json.loads(text))


@functools.lru_cache(maxsize=1)
def bundled_model() -> MoveModel:
    """The model shipped in the package, loaded once per process."""
    return load_model()
