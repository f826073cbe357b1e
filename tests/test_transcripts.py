"""The transcript grammar: shape, variety, and behaviours that follow the tutor's quality."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from tutorscore.ingest.transcript_format import parse_text, render_text, validate_turns
from tutorscore.ingest.transcripts import (
    GOOD_MOVES,
    POOR_MOVES,
    SUBJECTS,
    GeneratedTranscript,
    generate_transcript,
)


def _make(seed: int, quality: float, *, subject: str = "Algebra", first: bool = True,
          minutes: int = 60) -> GeneratedTranscript:  # fmt: skip
    return generate_transcript(
        random.Random(seed),
        subject=subject,
        tutor_name="Ada",
        student_name="Maria Lopez",
        quality=quality,
        first_session=first,
        duration_minutes=minutes,
    )


def _tutor_text(t: GeneratedTranscript) -> str:
    return "\n".join(turn["text"] for turn in t.turns if turn["speaker"] == "tutor")


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_subject_gives_valid_transcripts_of_10_to_80_turns(subject: str) -> None:
    for i in range(12):
        minutes = [15, 30, 60, 90][i % 4]
        t = _make(i, quality=i / 11, subject=subject, first=i % 2 == 0, minutes=minutes)
        assert 10 <= len(t.turns) <= 80
        assert validate_turns(t.turns) == t.turns
        starts = [turn["start_s"] for turn in t.turns]
        assert starts == sorted(starts) and starts[0] >= 0
        assert {turn["speaker"] for turn in t.turns} == {"tutor", "student"}
        # no two turns in a row by the same speaker, and the text form round-trips
        assert all(a["speaker"] != b["speaker"] for a, b in zip(t.turns, t.turns[1:], strict=False))
        assert [(x["speaker"], x["text"]) for x in parse_text(render_text(t.turns))] == [
            (x["speaker"], x["text"]) for x in t.turns
        ]
        assert "{" not in render_text(t.turns)  # every slot filled


def test_unknown_subject_falls_back_to_a_known_one() -> None:
    t = _make(1, 0.8, subject="Underwater Basket Weaving")
    assert 10 <= len(t.turns) <= 80


def test_same_random_state_gives_the_same_transcript() -> None:
    assert _make(42, 0.6).turns == _make(42, 0.6).turns
    assert _make(42, 0.6).turns != _make(43, 0.6).turns


def test_strong_tutors_use_good_moves_and_weak_tutors_poor_ones() -> None:
    strong = [_make(i, 0.92) for i in range(40)]
    weak = [_make(1000 + i, 0.12) for i in range(40)]
    assert sum(t.good_moves for t in strong) > 5 * sum(t.good_moves for t in weak)
    assert sum(t.poor_moves for t in weak) > 5 * sum(t.poor_moves for t in strong)
    strong_moves = Counter(m for t in strong for m in t.behaviours.elements())
    weak_moves = Counter(m for t in weak for m in t.behaviours.elements())
    for move in ("goal_setting", "open_question", "check_understanding", "uptake",
                 "praise_effort", "student_explains", "recap"):  # fmt: skip
        assert strong_moves[move] > weak_moves[move], move
    for move in ("monologue", "gives_answer", "ignored_question", "rushing"):
        assert weak_moves[move] > strong_moves[move], move
    assert set(strong_moves) | set(weak_moves) >= (GOOD_MOVES | POOR_MOVES) - {"no_goal"}


def test_behaviours_show_in_the_text_as_a_judge_would_see_them() -> None:
    strong = [_make(i, 0.95) for i in range(30)]
    weak = [_make(500 + i, 0.08) for i in range(30)]
    strong_text = "\n".join(_tutor_text(t) for t in strong)
    weak_text = "\n".join(_tutor_text(t) for t in weak)
    # checks for understanding and open questions
    assert strong_text.count("Does that make sense?") + strong_text.count("explain back") > 5
    assert strong_text.count("?") > 2 * weak_text.count("?")
    # answers given away
    assert weak_text.count("The answer is") + weak_text.count("it's ") > 5

    def tutor_word_share(t: GeneratedTranscript) -> float:
        words: Counter[str] = Counter()
        for turn in t.turns:
            words[turn["speaker"]] += len(turn["text"].split())
        return words["tutor"] / (words["tutor"] + words["student"])

    def longest_tutor_turn(t: GeneratedTranscript) -> int:
        return max(len(x["text"].split()) for x in t.turns if x["speaker"] == "tutor")

    assert (sum(map(tutor_word_share, weak)) / 30) > (sum(map(tutor_word_share, strong)) / 30) + 0.1
    assert sum(longest_tutor_turn(t) > 80 for t in weak) > 15  # monologues
    assert sum(longest_tutor_turn(t) > 80 for t in strong) < 5


def test_uptake_repeats_the_students_own_words() -> None:
    checked = 0
    for i in range(30):
        t = _make(i, 0.95)
        for prev, turn in zip(t.turns, t.turns[1:], strict=False):
            if turn["speaker"] != "tutor" or prev["speaker"] != "student":
                continue
            for quote in re.findall(r'"([^"]+)"', turn["text"]):
                assert quote in prev["text"]
                checked += 1
    assert checked > 20


def test_transcripts_vary_and_sometimes_carry_fake_pii() -> None:
    made = [_make(i, random.Random(i).random(), subject=SUBJECTS[i % len(SUBJECTS)])
            for i in range(120)]  # fmt: skip
    lines = {turn["text"] for t in made for turn in t.turns}
    assert len(lines) > 1500
    text = "\n".join(render_text(t.turns) for t in made)
    assert text.count("@example.com") >= 3 and re.search(r"555-01\d\d", text)
    assert "Maria" in text  # the student's name, for redaction to remove
