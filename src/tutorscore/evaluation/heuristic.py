"""The heuristic judge: offline, deterministic, fast (the default judge).

Version 2 reads real tutoring dialogue, not only our synthetic grammar. It asks a
learned tutor-move model (evaluation/moves.py, trained on MathDial teachers' own
labels) what each tutor turn does: focus or probing (scaffolding), telling, or
generic talk. The quality score rises with scaffolding, with uptake of the
student's words (evaluation/uptake.py, checked against NCTE expert ratings) and
with checks for understanding, and falls with telling and answer give-aways.
Session structure, monologues, unanswered questions and talk share stay as
smaller terms (student talk share says little where students always talk a lot).
docs/evaluation.md documents each feature, formula and its measured validity; the
thresholds live in `[evaluation.heuristic]` of defaults.toml.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from tutorscore.config import HeuristicConfig
from tutorscore.evaluation import heuristic_patterns as P
from tutorscore.evaluation.judge import EvaluationResult, Evidence, Rubric
from tutorscore.evaluation.moves import (
    MOVE_CODES,
    MOVES,
    SCAFFOLDING,
    MoveModel,
    TurnMove,
    bundled_model,
)
from tutorscore.evaluation.uptake import uptake_tokens
from tutorscore.ingest.transcript_format import Turn

PROMPT_VERSION = "heuristic-v2.1"
# The tutor-move model this version ships with: retraining it changes every score, so a
# test fails until PROMPT_VERSION is bumped with it (and cached evaluations are redone).
MOVE_MODEL_SHA256_PREFIX = "e9f34d62e0e4"
# Seconds per word used for the last turn's duration when turns carry start_s.
_SECONDS_PER_WORD = 0.4
_QUOTE_CHARS = 160
_MAX_EVIDENCE_PER_KIND = 3


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _quote(text: str, start: int = 0, end: int | None = None) -> str:
    """An exact substring of `text` (stripped, cut at a word boundary when long)."""
    end = len(text) if end is None else end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end - start > _QUOTE_CHARS:
        cut = text.rfind(" ", start, start + _QUOTE_CHARS)
        end = cut if cut > start else start + _QUOTE_CHARS
        while end > start and text[end - 1].isspace():
            end -= 1
    return text[start:end]


@dataclass
class _Analysis:
    """Everything measured on one transcript (the numbers behind every sentence)."""

    n_turns: int = 0
    tutor_turns: int = 0
    student_turns: int = 0
    tutor_words: int = 0
    student_words: int = 0
    tutor_seconds: float | None = None
    student_seconds: float | None = None
    questions: int = 0
    open_questions: int = 0
    closed_questions: int = 0
    question_turns: int = 0
    self_answered: list[tuple[int, int, int]] = field(default_factory=list)
    checks: list[tuple[int, int, int]] = field(default_factory=list)
    praise: list[tuple[int, int, int]] = field(default_factory=list)
    goal: tuple[int, int, int] | None = None
    recap: tuple[int, int, int] | None = None
    uptake_eligible: int = 0
    uptake: list[int] = field(default_factory=list)
    uptake_scores: list[tuple[int, float]] = field(default_factory=list)  # (tutor turn, 0..1)
    student_questions: int = 0
    ignored: list[int] = field(default_factory=list)
    closed_examples: list[tuple[int, int, int]] = field(default_factory=list)
    longest_run_words: int = 0
    monologues: list[tuple[int, int]] = field(default_factory=list)  # (longest turn, run words)
    longest_tutor_turns: list[tuple[int, int]] = field(default_factory=list)  # (words, index)
    longest_student_turns: list[tuple[int, int]] = field(default_factory=list)

    @property
    def total_words(self) -> int:
        return self.tutor_words + self.student_words

    @property
    def student_word_share(self) -> float | None:
        return self.student_words / self.total_words if self.total_words else None

    @property
    def student_time_share(self) -> float | None:
        if self.tutor_seconds is None or self.student_seconds is None:
            return None
        total = self.tutor_seconds + self.student_seconds
        return self.student_seconds / total if total > 0 else None

    @property
    def mean_student_turn_words(self) -> float:
        return self.student_words / self.student_turns if self.student_turns else 0.0

    @property
    def uptake_rate(self) -> float | None:
        return len(self.uptake) / self.uptake_eligible if self.uptake_eligible else None

    @property
    def mean_uptake(self) -> float:
        if not self.uptake_scores:
            return 0.0
        return sum(v for _, v in self.uptake_scores) / len(self.uptake_scores)

    @property
    def tutor_words_per_second(self) -> float | None:
        if not self.tutor_seconds:
            return None
        return self.tutor_words / self.tutor_seconds


def _durations(turns: list[Turn], words: list[int]) -> list[float] | None:
    """Seconds per turn from start_s, when every turn has one and they never go back."""
    starts: list[float] = []
    for t in turns:
        s = t.get("start_s")
        if s is None:
            return None
        starts.append(float(s))
    if any(b < a for a, b in zip(starts, starts[1:], strict=False)):
        return None
    out = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    out.append(words[-1] * _SECONDS_PER_WORD)
    return out


def _content(tokens: list[str]) -> set[str]:
    return {w for w in tokens if w not in P.STOPWORDS and (len(w) >= 4 or not w.isalpha())}


def tokenize(turns: list[Turn]) -> tuple[list[str], list[list[str]]]:
    """Lower-cased text and word tokens of every turn (computed once per transcript)."""
    lowers = [t["text"].lower() for t in turns]
    return lowers, [P.WORD.findall(low) for low in lowers]


@dataclass
class _Pass:
    """State carried from turn to turn while `analyse` walks the transcript."""

    lowers: list[str]
    tokens: list[list[str]]
    cfg: HeuristicConfig
    first_tutor: set[int]
    last_tutor: set[int]
    run_words: int = 0
    run_best: tuple[int, int] = (-1, -1)  # (words, index) of the longest turn in the run
    prev_student: int | None = None  # the student turn just before a tutor turn
    pending_question: int | None = None  # a student question waiting for the tutor's reply


def analyse(
    turns: list[Turn],
    cfg: HeuristicConfig,
    text: tuple[list[str], list[list[str]]] | None = None,
) -> _Analysis:
    """One pass over the turns; regexes run only on the turns that need them."""
    a = _Analysis(n_turns=len(turns))
    lowers, tokens = text or tokenize(turns)
    words = [len(tk) for tk in tokens]
    speakers = [t["speaker"] for t in turns]
    tutor_idx = [i for i, s in enumerate(speakers) if s == "tutor"]
    a.tutor_turns = len(tutor_idx)
    a.student_turns = len(turns) - a.tutor_turns
    durations = _durations(turns, words) if turns else None
    if durations is not None:
        pairs = list(zip(durations, speakers, strict=True))
        a.tutor_seconds = sum(d for d, s in pairs if s == "tutor")
        a.student_seconds = sum(d for d, s in pairs if s == "student")
    window = cfg.structure_window_turns
    st = _Pass(lowers, tokens, cfg, set(tutor_idx[:window]), set(tutor_idx[-window:]))
    for i, speaker in enumerate(speakers):
        if speaker == "student":
            _student_turn(a, st, i, words[i])
        else:
            _tutor_turn(a, st, i, words[i])
    if st.pending_question is not None:
        a.ignored.append(st.pending_question)
    _end_run(a, st)
    a.longest_tutor_turns.sort(key=lambda x: (-x[0], x[1]))
    a.longest_student_turns.sort(key=lambda x: (-x[0], x[1]))
    del a.longest_tutor_turns[_MAX_EVIDENCE_PER_KIND:]
    del a.longest_student_turns[_MAX_EVIDENCE_PER_KIND:]
    return a


def _end_run(a: _Analysis, st: _Pass) -> None:
    """A run of tutor turns ended (a student spoke, or the transcript did)."""
    if st.run_words:
        if st.run_words >= st.cfg.monologue_words:
            a.monologues.append((st.run_best[1], st.run_words))
        a.longest_run_words = max(a.longest_run_words, st.run_words)
        st.run_words, st.run_best = 0, (-1, -1)


def _student_turn(a: _Analysis, st: _Pass, i: int, n: int) -> None:
    a.student_words += n
    a.longest_student_turns.append((n, i))
    _end_run(a, st)
    if "?" in st.lowers[i]:
        a.student_questions += 1
        if st.pending_question is not None:
            a.ignored.append(st.pending_question)
        st.pending_question = i
    st.prev_student = i


def _tutor_turn(a: _Analysis, st: _Pass, i: int, n: int) -> None:
    low = st.lowers[i]
    tokens = st.tokens
    a.tutor_words += n
    a.longest_tutor_turns.append((n, i))
    st.run_words += n
    if n > st.run_best[0]:
        st.run_best = (n, i)
    if st.prev_student is not None:
        student_content = _content(tokens[st.prev_student])
        if student_content:
            a.uptake_eligible += 1
            if not student_content.isdisjoint(tokens[i]):
                a.uptake.append(i)
            up = uptake_tokens(tokens[st.prev_student], tokens[i], "?" in low)
            a.uptake_scores.append((i, up))
    if st.pending_question is not None:
        q_content = _content(tokens[st.pending_question])
        answered = (not q_content.isdisjoint(tokens[i])) or bool(P.ANSWER_START.match(low))
        if P.DISMISSAL.search(low) or not answered:
            a.ignored.append(st.pending_question)
        st.pending_question = None
    if "?" in low:
        _tutor_questions(a, i, low, st.cfg.self_answered_tail_words)
    _tutor_cues(a, st, i, low)
    st.prev_student = None


def _tutor_questions(a: _Analysis, i: int, low: str, tail_min: int) -> None:
    """Every question sentence of a tutor turn: open, closed, or asked and not waited on."""
    a.question_turns += 1
    q_end = low.find("?")
    while q_end != -1:
        q_start = _sentence_start(low, q_end)
        while q_end < len(low) and low[q_end] == "?":
            q_end += 1
        a.questions += 1
        if P.OPEN_QUESTION.match(low, q_start):
            a.open_questions += 1
        elif P.CLOSED_QUESTION.match(low, q_start):
            a.closed_questions += 1
            if len(a.closed_examples) < _MAX_EVIDENCE_PER_KIND:
                a.closed_examples.append((i, q_start, q_end))
        q_end = low.find("?", q_end)
    last_q = low.rfind("?")
    if len(P.WORD.findall(low, last_q)) >= tail_min:
        a.self_answered.append((i, _sentence_start(low, last_q), last_q + 1))


def _tutor_cues(a: _Analysis, st: _Pass, i: int, low: str) -> None:
    """Checks for understanding, praise of effort, the goal and the recap."""
    tok = st.tokens[i]
    m = None if P.CHECK_WORDS.isdisjoint(tok) else P.CHECK_FOR_UNDERSTANDING.search(low)
    if m:
        a.checks.append((i, *_sentence_span(low, m.start(), m.end())))
    m = None if P.PRAISE_WORDS.isdisjoint(tok) else P.PRAISE_OF_EFFORT.search(low)
    if m:
        a.praise.append((i, *_sentence_span(low, m.start(), m.end())))
    if a.goal is None and i in st.first_tutor:
        m = P.GOAL_SETTING.search(low)
        if m:
            a.goal = (i, *_sentence_span(low, m.start(), m.end()))
    if i in st.last_tutor:
        m = P.RECAP.search(low)
        if m:
            a.recap = (i, *_sentence_span(low, m.start(), m.end()))


def _sentence_start(low: str, start: int) -> int:
    s = max(low.rfind(".", 0, start), low.rfind("!", 0, start), low.rfind("?", 0, start))
    return max(s, low.rfind("\n", 0, start)) + 1


def _sentence_span(low: str, start: int, end: int) -> tuple[int, int]:
    """Widen a match to its sentence (spans index the lower-cased text)."""
    s = _sentence_start(low, start)
    e = len(low)
    for ch in ".!?\n":
        k = low.find(ch, end)
        if k != -1 and k + 1 < e:
            e = k + 1
    return s, e


@dataclass
class _Moves:
    """The tutor-move model's view of the session (docs/evaluation.md, "Tutor moves")."""

    predictions: list[TurnMove]
    counts: dict[str, int]
    expected: dict[str, float]  # sum of probabilities per move over tutor turns
    giveaways: list[tuple[int, int, int]]  # (turn, start, end) of the sentence stating a result

    @property
    def content_turns(self) -> int:
        return self.counts["focus"] + self.counts["probing"] + self.counts["telling"]

    @property
    def scaffolding_share(self) -> float | None:
        """Expected (focus + probing) / (focus + probing + telling); None without content."""
        s = self.expected["focus"] + self.expected["probing"]
        den = s + self.expected["telling"]
        return s / den if den > 0.5 else None

    @property
    def non_telling(self) -> float:
        """1 - the mean chance that a tutor turn tells (the scaffolding term of the score)."""
        n = len(self.predictions)
        return 1.0 - self.expected["telling"] / n if n else 0.5

    @property
    def codes(self) -> str:
        return "".join(MOVE_CODES[m.move] for m in self.predictions)


_RESULT = re.compile(
    r"(?:=|\bequals\b|\bis\b|\bare\b|\bgives?\b|\bget\b|\bgot\b|\bmakes\b|\bleaves\b|\bmeans\b"
    r"|\bwould be\b|\bwill be\b|\bso\b|\btotal of\b|\bthat's\b|\bit's\b)\s*(?:\$\s*)?"
    r"(?P<num>-?\d+(?:[.,/]\d+)*)(?![\d.,/]*\s*(?:[-+*/x×÷]|times|plus|minus|divided)\s*\d)"
)


def _moves(
    turns: list[Turn],
    text: tuple[list[str], list[list[str]]],
    model: MoveModel,
    cfg: HeuristicConfig,
) -> _Moves:
    lowers, tokens = text
    predictions, inputs = model.predict_with_inputs(turns, lowers, tokens)
    by_turn = {p.turn: k for k, p in enumerate(predictions)}
    giveaways: list[tuple[int, int, int]] = []
    said_words: set[str] = set()  # every word the student has said so far
    said_numbers: set[str] = set()  # and every number, as `P.NUMBER` writes it
    for i, turn in enumerate(turns):
        low = lowers[i]
        if turn["speaker"] != "tutor":
            said_words.update(tokens[i])
            said_numbers.update(inputs.numbers[i])
            continue
        k = by_turn[i]
        p_telling = predictions[k].probabilities["telling"]
        span = _stated_result(low, tokens[i], said_words, said_numbers, p_telling, cfg)
        if span is not None:
            giveaways.append((i, *span))
            # A turn that hands over the answer tells, whatever else it asks.
            predictions[k] = TurnMove(i, "telling", predictions[k].probabilities, given_away=True)
    counts = dict.fromkeys(MOVES, 0)
    expected = dict.fromkeys(MOVES, 0.0)
    for p in predictions:
        counts[p.move] += 1
        if p.given_away:
            expected["telling"] += 1.0
            continue
        for m, v in p.probabilities.items():
            expected[m] += v
    return _Moves(predictions, counts, expected, giveaways)


def _stated_result(
    low: str,
    tokens: list[str],
    said_words: set[str],
    said_numbers: set[str],
    p_telling: float,
    cfg: HeuristicConfig,
) -> tuple[int, int] | None:
    """The sentence that gives the answer away, or None.

    Either the turn says "the answer is ..." / "so x = ..." (not echoing an answer the
    student already said), or the move model reads it as telling and it states a result
    (a number after "=", "is", "gives", "so" ...) the student has not said yet.
    """
    m = (
        P.ANSWER_GIVEAWAY.search(low)
        if "=" in low or not P.GIVEAWAY_WORDS.isdisjoint(tokens)
        else None
    )
    if m and not P.CONFIRMATION_START.match(low):
        ans = (m.group("ans") or "").strip("./")
        if not (ans and ans in said_words):
            return _sentence_span(low, m.start(), m.end())
    if p_telling < cfg.giveaway_min_telling:
        return None
    for m in _RESULT.finditer(low):
        if m.group("num") not in said_numbers:
            return _sentence_span(low, m.start(), m.end())
    return None


@dataclass
class _Scores:
    clarity: float
    pacing: float
    engagement: float
    goal_alignment: float
    quality: float
    components: dict[str, float]


# Weight of each component in the quality score (sum 1). Scaffolding (focus + probing
# against telling) leads: it is what the teachers' own labels rank sessions by.
QUALITY_WEIGHTS: dict[str, float] = {
    "scaffolding": 0.60,
    "uptake": 0.12,
    "no_giveaway": 0.08,
    "checks": 0.06,
    "answered": 0.04,
    "structure": 0.04,
    "monologue": 0.03,
    "open": 0.02,
    "talk": 0.01,
}


def score(a: _Analysis, mv: _Moves, cfg: HeuristicConfig) -> _Scores:
    """Components in [0, 1] -> quality and rubric on 1-5 (docs/evaluation.md, "Formulas")."""
    share = a.student_word_share or 0.0
    if a.student_time_share is not None:
        share = (share + a.student_time_share) / 2
    c = {
        "scaffolding": _clamp01(
            (mv.non_telling - cfg.scaffolding_floor)
            / (cfg.scaffolding_ceiling - cfg.scaffolding_floor)
        ),
        "uptake": _clamp01(a.mean_uptake / cfg.strong_uptake_score),
        "no_giveaway": 1 - _clamp01(len(mv.giveaways) / 2),
        "checks": _clamp01(len(a.checks) / 2),
        "answered": 1 - _clamp01(len(a.ignored) / a.student_questions)
        if a.student_questions
        else 1.0,
        "structure": 0.5 * (a.goal is not None) + 0.5 * (a.recap is not None),
        "monologue": 1 - _clamp01((a.longest_run_words - 80) / (cfg.monologue_words + 100 - 80)),
        "open": _clamp01(a.open_questions / a.questions / 0.5) if a.questions else 0.0,
        "talk": _clamp01((share - 0.10) / (cfg.engaged_student_word_share - 0.10)),
        "student_turns": _clamp01((a.mean_student_turn_words - 3) / (15 - 3)),
        "wait_time": 1 - _clamp01(len(a.self_answered) / a.question_turns)
        if a.question_turns
        else 0.5,
    }

    def dim(weights: dict[str, float]) -> float:
        total = sum(weights.values())
        return 1 + 4 * sum(c[k] * w for k, w in weights.items()) / total

    return _Scores(
        clarity=dim({"checks": 2, "monologue": 1, "no_giveaway": 2, "structure": 1}),
        pacing=dim({"wait_time": 2, "monologue": 1, "scaffolding": 1}),
        engagement=dim({"scaffolding": 3, "uptake": 2, "open": 1, "talk": 1}),
        goal_alignment=dim({"structure": 2, "answered": 1, "scaffolding": 2, "no_giveaway": 1}),
        quality=round(min(5.0, max(1.0, dim(QUALITY_WEIGHTS))), 2),
        components=c,
    )


def _round_rubric(x: float) -> int:
    return int(min(5, max(1, int(x + 0.5))))


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


class _Builder:
    """Collects risk tags, evidence and sentences; quotes are exact substrings of turns."""

    def __init__(self, turns: list[Turn]) -> None:
        self.turns = turns
        self.tags: list[str] = []
        self.evidence: list[Evidence] = []
        self.strengths: list[str] = []
        self.areas: list[str] = []

    def cite(self, index: int, note: str, span: tuple[int, int] | None = None) -> None:
        text = self.turns[index]["text"]
        if span and len(text.lower()) != len(text):
            span = None  # lower-casing changed the length: spans would not line up
        quote = _quote(text, *span) if span else _quote(text)
        if quote:
            self.evidence.append(Evidence(turn=index, quote=quote, note=note))

    def quote(self, index: int, span: tuple[int, int] | None = None) -> str:
        text = self.turns[index]["text"]
        if span and len(text.lower()) != len(text):
            span = None
        return _quote(text, *span) if span else _quote(text)

    def tag(self, name: str) -> None:
        if name not in self.tags:
            self.tags.append(name)


def _report_moves(b: _Builder, a: _Analysis, mv: _Moves, cfg: HeuristicConfig) -> None:
    content = mv.content_turns
    scaff = mv.counts["focus"] + mv.counts["probing"]
    telling = mv.counts["telling"]
    if content == 0:
        return
    if scaff and (mv.scaffolding_share or 0.0) >= cfg.strong_scaffolding_share:
        b.strengths.append(
            f"{scaff} of {content} content turns were focusing or probing questions "
            f"({mv.counts['focus']} focusing, {mv.counts['probing']} probing)"
        )
        best = max(
            (p for p in mv.predictions if p.move in SCAFFOLDING),
            key=lambda p: p.confidence,
        )
        b.cite(best.turn, f"{best.move} move: the student is asked to do the thinking")
    if telling and telling / content >= cfg.telling_share_area:
        worst = max((p for p in mv.predictions if p.move == "telling"), key=lambda p: p.confidence)
        quote = b.quote(worst.turn)
        b.areas.append(
            f"{telling} of {content} content turns told the student the step or the answer; "
            f"ask a focusing question instead of: \u201c{quote}\u201d"
        )
        b.cite(worst.turn, "telling move: the tutor did the step for the student")


def _report_talk(b: _Builder, a: _Analysis, cfg: HeuristicConfig) -> None:
    share = a.student_word_share or 0.0
    time_share = a.student_time_share
    low_talk = share < cfg.low_student_word_share or (
        time_share is not None and time_share < cfg.low_student_word_share
    )
    if low_talk:
        b.tag("low_student_talk_ratio")
        for _, i in a.longest_tutor_turns[:2]:
            b.cite(i, "long tutor turn: the student listened instead of explaining")
        timing = f" and {_pct(1 - time_share)} of the time" if time_share is not None else ""
        b.areas.append(
            f"Tutor spoke {_pct(1 - share)} of the words{timing}; "
            "ask the student to explain their reasoning"
        )
    elif share >= cfg.engaged_student_word_share:
        b.strengths.append(f"Student spoke {_pct(share)} of the words")
    if (
        share >= cfg.engaged_student_word_share
        and a.mean_student_turn_words >= cfg.engaged_student_turn_words
    ):
        b.tag("excellent_engagement")
        for _, i in a.longest_student_turns[:2]:
            b.cite(i, "student explains at length")


def _report_questions(b: _Builder, a: _Analysis, cfg: HeuristicConfig) -> None:
    if a.open_questions:
        b.strengths.append(
            f"Asked {a.open_questions} open question{'s' if a.open_questions > 1 else ''} "
            f"({_pct(a.open_questions / a.questions)} of {a.questions} questions)"
        )
    elif a.questions >= cfg.min_questions_for_closed_tag:
        b.tag("closed_questions_only")
        for i, st, en in a.closed_examples:
            b.cite(i, "yes/no question", (st, en))
        b.areas.append(
            f"All {a.questions} questions were yes/no or one-word questions; ask how and why"
        )
    if a.checks:
        b.strengths.append(f"Checked for understanding {_times(len(a.checks))}")
        for i, st, en in a.checks[:_MAX_EVIDENCE_PER_KIND]:
            b.cite(i, "check for understanding", (st, en))
    elif a.tutor_turns >= cfg.min_tutor_turns_for_checks:
        b.tag("no_check_for_understanding")
        for _, i in a.longest_tutor_turns[:2]:
            b.cite(i, "explanation not followed by a check for understanding")
        b.areas.append(
            f"Never checked for understanding in {a.tutor_turns} tutor turns; "
            "ask the student to explain it back in their own words"
        )


def _report_uptake(b: _Builder, a: _Analysis, cfg: HeuristicConfig) -> None:
    if not a.uptake_eligible:
        return
    strong = [i for i, s in a.uptake_scores if s >= cfg.strong_uptake_score]
    share = len(strong) / a.uptake_eligible
    if len(strong) >= cfg.strong_uptake_turns and share >= cfg.strong_uptake_share:
        b.tag("strong_uptake")
        for i in strong[:_MAX_EVIDENCE_PER_KIND]:
            b.cite(i, "builds on the student's words")
        b.strengths.append(
            f"Built on the student's own words in {len(strong)} of {a.uptake_eligible} replies"
        )
    elif a.uptake_eligible >= 3 and share < cfg.weak_uptake_share:
        b.areas.append(
            f"Took up the student's words in only {len(strong)} of {a.uptake_eligible} "
            "replies; build on what the student says (repeat it, ask about it)"
        )


def _report_structure(b: _Builder, a: _Analysis, cfg: HeuristicConfig) -> None:
    if a.praise:
        b.strengths.append(f"Praised effort or reasoning {_times(len(a.praise))}")
        for i, st, en in a.praise[:2]:
            b.cite(i, "praise of effort", (st, en))
    if a.goal:
        b.strengths.append("Set a goal at the start of the session")
        b.cite(a.goal[0], "goal set", a.goal[1:])
    if a.recap:
        b.strengths.append("Recapped at the end of the session")
        b.cite(a.recap[0], "recap", a.recap[1:])
    if not a.goal and not a.recap and a.tutor_turns >= 2 * cfg.structure_window_turns:
        b.tag("no_session_structure")
        tutor = [i for i, t in enumerate(b.turns) if t["speaker"] == "tutor"]
        b.cite(tutor[0], "no goal set")
        b.cite(tutor[-1], "no recap at the end")
        b.areas.append(
            "No goal at the start and no recap at the end; open with the plan "
            "and close with a summary"
        )
    elif not a.goal:
        b.areas.append("No goal stated at the start; open with what the session will achieve")
    elif not a.recap:
        b.areas.append("No recap at the end; close by summarising what was learned")


def _report_red_flags(b: _Builder, a: _Analysis, mv: _Moves, cfg: HeuristicConfig) -> None:
    if a.monologues:
        b.tag("long_monologue")
        for i, _ in sorted(a.monologues, key=lambda m: -m[1])[:_MAX_EVIDENCE_PER_KIND]:
            b.cite(i, "long stretch of tutor talk without a student turn")
        b.areas.append(
            f"Longest tutor stretch ran {a.longest_run_words} words without a student turn; "
            "pause every few sentences"
        )
    if a.ignored:
        b.tag("ignored_student_question")
        for i in a.ignored[:_MAX_EVIDENCE_PER_KIND]:
            b.cite(i, "student question not answered in the tutor's next turn")
        b.areas.append(
            f"{len(a.ignored)} of {a.student_questions} student questions went unanswered"
        )
    elif a.student_questions >= 2:
        b.strengths.append(f"Answered all {a.student_questions} student questions")
    if mv.giveaways:
        b.tag("answer_giveaway")
        for i, st, en in mv.giveaways[:_MAX_EVIDENCE_PER_KIND]:
            b.cite(i, "answer given before the student worked it out", (st, en))
        first, st, en = mv.giveaways[0]
        b.areas.append(
            f"Gave the answer away {_times(len(mv.giveaways))} "
            f"(\u201c{b.quote(first, (st, en))}\u201d); give a hint and let the student finish"
        )
    _report_rushed(b, a, cfg)


def _report_rushed(b: _Builder, a: _Analysis, cfg: HeuristicConfig) -> None:
    wps = a.tutor_words_per_second
    rushed_by_rate = wps is not None and wps > cfg.rushed_words_per_second
    if (
        len(a.self_answered) >= cfg.rushed_self_answered
        and len(a.self_answered) >= 0.4 * a.question_turns
    ) or rushed_by_rate:
        b.tag("rushed_pacing")
        for i, st, en in a.self_answered[:_MAX_EVIDENCE_PER_KIND]:
            b.cite(i, "asked a question and kept talking without waiting", (st, en))
        if a.self_answered:
            b.areas.append(
                f"Kept talking after {len(a.self_answered)} of {a.question_turns} questions; "
                "wait for the student to answer"
            )
        if rushed_by_rate and wps is not None:
            b.areas.append(f"Tutor spoke {wps * 60:.0f} words a minute; slow down")


def _features(a: _Analysis, mv: _Moves, s: _Scores) -> dict[str, float | int | str | None]:
    wps = a.tutor_words_per_second
    share = mv.scaffolding_share
    features: dict[str, float | int | str | None] = {
        "turns": a.n_turns,
        "tutor_turns": a.tutor_turns,
        "student_turns": a.student_turns,
        "tutor_words": a.tutor_words,
        "student_words": a.student_words,
        "student_word_share": round(a.student_word_share or 0.0, 4),
        "student_time_share": None
        if a.student_time_share is None
        else round(a.student_time_share, 4),
        "mean_student_turn_words": round(a.mean_student_turn_words, 2),
        "turn_moves": mv.codes,
        "turn_move_confidence": ",".join(f"{p.confidence:.2f}" for p in mv.predictions),
        "moves_focus": mv.counts["focus"],
        "moves_probing": mv.counts["probing"],
        "moves_telling": mv.counts["telling"],
        "moves_generic": mv.counts["generic"],
        "scaffolding_share": None if share is None else round(share, 4),
        "non_telling": round(mv.non_telling, 4),
        "move_model": mv_model_id(),
        "questions": a.questions,
        "open_questions": a.open_questions,
        "closed_questions": a.closed_questions,
        "checks_for_understanding": len(a.checks),
        "uptake_turns": len(a.uptake),
        "uptake_rate": None if a.uptake_rate is None else round(a.uptake_rate, 4),
        "uptake_score": round(a.mean_uptake, 4),
        "praise_of_effort": len(a.praise),
        "goal_set": int(a.goal is not None),
        "recap": int(a.recap is not None),
        "longest_tutor_run_words": a.longest_run_words,
        "monologues": len(a.monologues),
        "student_questions": a.student_questions,
        "unanswered_student_questions": len(a.ignored),
        "answer_giveaways": len(mv.giveaways),
        "self_answered_questions": len(a.self_answered),
        "tutor_words_per_second": None if wps is None else round(wps, 3),
    }
    features.update({f"component_{k}": round(v, 4) for k, v in s.components.items()})
    return features


def mv_model_id() -> str:
    """Short hash of the bundled tutor-move model (which model produced the moves)."""
    return bundled_model().sha256[:12]


def evaluate_turns(
    turns: list[Turn], cfg: HeuristicConfig | None = None, model: MoveModel | None = None
) -> EvaluationResult:
    """Score one transcript (synchronous; the Judge wrapper below is async)."""
    cfg = cfg or HeuristicConfig()
    text = tokenize(turns)
    a = analyse(turns, cfg, text)
    if a.tutor_turns == 0 or a.total_words == 0:
        return EvaluationResult(
            quality_score=1.0,
            rubric=Rubric(clarity=1, pacing=1, engagement=1, goal_alignment=1),
            areas_for_improvement=["The transcript has no tutor speech to evaluate"],
            features={"turns": a.n_turns, "tutor_turns": a.tutor_turns},
        )
    mv = _moves(turns, text, model or bundled_model(), cfg)
    s = score(a, mv, cfg)
    b = _Builder(turns)
    _report_moves(b, a, mv, cfg)
    _report_talk(b, a, cfg)
    _report_questions(b, a, cfg)
    _report_uptake(b, a, cfg)
    _report_structure(b, a, cfg)
    _report_red_flags(b, a, mv, cfg)
    return EvaluationResult(
        quality_score=s.quality,
        rubric=Rubric(
            clarity=_round_rubric(s.clarity),
            pacing=_round_rubric(s.pacing),
            engagement=_round_rubric(s.engagement),
            goal_alignment=_round_rubric(s.goal_alignment),
        ),
        strengths=b.strengths[:8],
        areas_for_improvement=b.areas[:8],
        risk_tags=b.tags,
        evidence=b.evidence,
        features=_features(a, mv, s),
    )


def prompt_version_for(cfg: HeuristicConfig) -> str:
    """`PROMPT_VERSION`, plus a config hash when thresholds differ from the defaults."""
    if cfg == HeuristicConfig():
        return PROMPT_VERSION
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return f"{PROMPT_VERSION}+{hashlib.sha256(blob).hexdigest()[:8]}"


class HeuristicJudge:
    """The Judge protocol over `evaluate_turns` (never raises JudgeUnavailable)."""

    name = "heuristic"
    model = ""

    def __init__(self, config: HeuristicConfig | None = None) -> None:
        self.config = config or HeuristicConfig()
        self.prompt_version = prompt_version_for(self.config)

    def evaluate_sync(self, turns: list[Turn]) -> EvaluationResult:
        return evaluate_turns(turns, self.config)

    async def evaluate(
        self, turns: list[Turn], *, session_id: str | None = None
    ) -> EvaluationResult:
        return evaluate_turns(turns, self.config)
