"""The heuristic judge on hand-written good and poor sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorscore.config import HeuristicConfig
from tutorscore.evaluation.heuristic import HeuristicJudge, evaluate_turns, prompt_version_for
from tutorscore.evaluation.judge import RISK_TAGS, EvaluationResult, Judge
from tutorscore.ingest.transcript_format import Turn, parse_text

DATA = Path(__file__).parent / "data" / "evaluation"
GOOD = parse_text((DATA / "good_session.txt").read_text())
POOR = parse_text((DATA / "poor_session.txt").read_text())


def run(turns: list[Turn]) -> EvaluationResult:
    return evaluate_turns(turns, HeuristicConfig())


def assert_quotes_verbatim(turns: list[Turn], result: EvaluationResult) -> None:
    for ev in result.evidence:
        assert ev.quote, ev
        assert ev.quote in turns[ev.turn]["text"], (ev.turn, ev.quote)


def test_good_session_scores_higher_than_poor() -> None:
    good, poor = run(GOOD), run(POOR)
    assert good.quality_score >= 4.0
    assert poor.quality_score <= 2.5
    assert good.quality_score - poor.quality_score >= 1.5
    for dim in ("clarity", "pacing", "engagement", "goal_alignment"):
        assert getattr(good.rubric, dim) >= getattr(poor.rubric, dim), dim


def test_good_session_tags_and_strengths() -> None:
    good = run(GOOD)
    assert "excellent_engagement" in good.risk_tags
    assert "strong_uptake" in good.risk_tags
    for bad in (
        "low_student_talk_ratio",
        "answer_giveaway",
        "ignored_student_question",
        "no_check_for_understanding",
        "long_monologue",
        "no_session_structure",
    ):
        assert bad not in good.risk_tags
    text = " | ".join(good.strengths)
    assert "Checked for understanding" in text
    assert "Set a goal at the start" in text and "Recapped at the end" in text
    assert good.features["goal_set"] == 1 and good.features["recap"] == 1
    assert_quotes_verbatim(GOOD, good)


def test_poor_session_tags_cite_their_turns() -> None:
    poor = run(POOR)
    for tag in (
        "low_student_talk_ratio",
        "long_monologue",
        "ignored_student_question",
        "answer_giveaway",
        "closed_questions_only",
        "rushed_pacing",
    ):
        assert tag in poor.risk_tags, tag
    assert set(poor.risk_tags) <= set(RISK_TAGS)
    assert_quotes_verbatim(POOR, poor)
    cited = {ev.turn for ev in poor.evidence}
    assert 0 in cited  # the monologue
    assert 3 in cited  # the ignored "why do we subtract first?"
    giveaway_quotes = [ev.quote for ev in poor.evidence if ev.note.startswith("answer given")]
    assert any("the answer is 5" in q for q in giveaway_quotes)
    talk = next(a for a in poor.areas_for_improvement if a.startswith("Tutor spoke"))
    share = 1 - float(poor.features["student_word_share"] or 0)
    assert f"{round(100 * share)}% of the words" in talk


def test_confirming_the_students_answer_is_not_a_giveaway() -> None:
    turns: list[Turn] = [
        {"speaker": "tutor", "text": "What is 6 times 7?"},
        {"speaker": "student", "text": "I think it is 42"},
        {"speaker": "tutor", "text": "Yes, the answer is 42. How did you get it?"},
        {"speaker": "student", "text": "I did 6 times 6 and added 6 more"},
        {"speaker": "tutor", "text": "So the answer is 42 because you built on a fact you knew."},
    ]
    result = run(turns)
    assert "answer_giveaway" not in result.risk_tags


def test_timings_feed_talk_time() -> None:
    turns: list[Turn] = [
        {"speaker": "tutor", "text": "Let's start.", "start_s": 0.0},
        {"speaker": "student", "text": "Okay, I tried the first problem.", "start_s": 2.0},
        {"speaker": "tutor", "text": "Go on.", "start_s": 200.0},
        {"speaker": "student", "text": "Done.", "start_s": 202.0},
    ]
    result = run(turns)
    assert result.features["student_time_share"] is not None
    assert float(result.features["student_time_share"] or 0) > 0.9


def test_deterministic_and_empty_input() -> None:
    assert run(POOR).model_dump() == run(POOR).model_dump()
    empty = run([])
    assert empty.quality_score == 1.0 and empty.risk_tags == []


def test_unicode_quotes_stay_verbatim() -> None:
    turns: list[Turn] = [
        {"speaker": "tutor", "text": "İstanbul example. Does that make sense?"},
        {"speaker": "student", "text": "Yes."},
    ]
    result = run(turns)
    assert_quotes_verbatim(turns, result)


def test_judge_protocol_and_prompt_version() -> None:
    judge: Judge = HeuristicJudge()
    assert (judge.name, judge.model, judge.prompt_version) == ("heuristic", "", "heuristic-v2.1")
    result = asyncio.run(judge.evaluate(GOOD, session_id="S1"))
    assert result == run(GOOD)
    custom = HeuristicConfig(monologue_words=90)
    assert prompt_version_for(custom).startswith("heuristic-v2.1+")
    assert len(prompt_version_for(custom)) <= 32


@pytest.mark.parametrize("n", [10, 80])
def test_every_quote_verbatim_on_longer_transcripts(n: int) -> None:
    turns = (GOOD + POOR) * (n // (len(GOOD) + len(POOR)) + 1)
    result = run(turns[:n])
    assert 1 <= result.quality_score <= 5
    assert_quotes_verbatim(turns[:n], result)


PHRASES = [
    "Does that make sense?",
    "The answer is 12.",
    "Why do you think so?",
    "Today we'll work on fractions.",
    "To recap, we learned a lot.",
    "Great thinking!",
    "Let's move on.",
    "Is it 4?",
    "so x = 3",
    "I don't know",
    "İ",
    "ß ﬁ",
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["tutor", "student"]),
            st.lists(
                st.one_of(st.sampled_from(PHRASES), st.text(max_size=40)), min_size=0, max_size=6
            ),
        ),
        max_size=30,
    )
)
def test_any_transcript_scores_in_range_with_verbatim_quotes(
    raw: list[tuple[str, list[str]]],
) -> None:
    turns: list[Turn] = [{"speaker": sp, "text": " ".join(parts)} for sp, parts in raw]
    result = run(turns)
    assert 1 <= result.quality_score <= 5
    assert set(result.risk_tags) <= set(RISK_TAGS)
    assert_quotes_verbatim(turns, result)
    assert result == run(turns)
