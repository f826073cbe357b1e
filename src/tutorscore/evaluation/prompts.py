"""The LLM judge's prompt: rubric, risk-tag vocabulary, worked examples and output schema.

The version string is part of the evaluation cache key: change anything the
model sees (wording, examples, schema) and bump `PROMPT_VERSION`, so old
evaluations stay attributable and new ones are computed afresh.

The transcript goes in as one JSON object per turn between markers, so turn
numbers are unambiguous and a quote can be checked against the cited turn.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from tutorscore.evaluation.judge import RISK_TAGS, Evidence, Rubric
from tutorscore.ingest.transcript_format import Turn

PROMPT_VERSION = "llm-v1"
TRANSCRIPT_START = "<<<TRANSCRIPT"
TRANSCRIPT_END = "TRANSCRIPT>>>"
MAX_OUTPUT_TOKENS = 700


class LLMEvaluation(BaseModel):
    """What the model must return; validated before anything is stored."""

    quality_score: float = Field(ge=1, le=5)
    rubric: Rubric
    strengths: list[str] = Field(max_length=6)
    areas_for_improvement: list[str] = Field(max_length=6)
    risk_tags: list[str] = Field(max_length=10)
    evidence: list[Evidence] = Field(max_length=12)


def _score(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": 5, "description": description}


RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "quality_score",
        "rubric",
        "strengths",
        "areas_for_improvement",
        "risk_tags",
        "evidence",
    ],
    "properties": {
        "quality_score": {"type": "number", "minimum": 1, "maximum": 5},
        "rubric": {
            "type": "object",
            "additionalProperties": False,
            "required": ["clarity", "pacing", "engagement", "goal_alignment"],
            "properties": {
                "clarity": _score("explanations are correct, concrete and easy to follow"),
                "pacing": _score("time for the student to think and work; not rushed"),
                "engagement": _score("the student talks, reasons and asks"),
                "goal_alignment": _score("a goal is set, worked towards and recapped"),
            },
        },
        "strengths": {"type": "array", "items": {"type": "string"}},
        "areas_for_improvement": {"type": "array", "items": {"type": "string"}},
        "risk_tags": {"type": "array", "items": {"type": "string", "enum": sorted(RISK_TAGS)}},
        "evidence": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["turn", "quote", "note"],
                "properties": {
                    "turn": {"type": "integer", "minimum": 0},
                    "quote": {"type": "string"},
                    "note": {"type": "string"},
                },
            },
        },
    },
}

RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": "session_evaluation", "strict": True, "schema": RESPONSE_SCHEMA},
}

_TAGS = "\n".join(f"- {tag}: {meaning}" for tag, meaning in RISK_TAGS.items())

_RUBRIC_TEXT = """You are an experienced tutoring coach. You read the transcript of one
tutoring session and evaluate the tutor's teaching, to help a coach support them.

Score each rubric dimension from 1 (poor) to 5 (excellent):
- clarity: explanations are correct, concrete and easy to follow.
- pacing: the student gets time to think and work; the tutor does not rush or stall.
- engagement: the student talks, reasons and asks questions; the tutor invites it.
- goal_alignment: a goal for the session is set, worked towards and recapped.
quality_score is your overall judgement from 1 to 5 (one decimal), close to the rubric mean.

strengths and areas_for_improvement: at most 4 each, one short concrete sentence each,
addressed to a coach. risk_tags: only from this vocabulary, only when the transcript shows it:
{tags}

evidence: 2 to 6 items supporting your scores. Each has the 0-based turn number, a quote
copied character for character from that turn's text (a phrase or sentence, not the
whole turn, never paraphrased, never from another turn), and a short note.
Names, emails and phone numbers were replaced by [NAME], [EMAIL], [PHONE]; quote them as
they appear. Judge the teaching, not the student. Answer only with the JSON object.
"""

# Worked examples: (title, turns, the answer we want for them).
WORKED_EXAMPLES: list[tuple[str, list[Turn], dict[str, Any]]] = [
    (
        "strong session",
        [
            {
                "speaker": "tutor",
                "text": "Today let's get comfortable with slope. What do you remember about it?",
            },
            {"speaker": "student", "text": "It's like how steep a line is, rise over run?"},
            {
                "speaker": "tutor",
                "text": "Yes, rise over run. Can you find the rise between (1, 2) and (3, 8)?",
            },
            {"speaker": "student", "text": "8 minus 2 is 6, and the run is 2, so the slope is 3."},
            {
                "speaker": "tutor",
                "text": "Exactly. Before we finish, tell me in your own words what slope means.",
            },
        ],
        {
            "quality_score": 4.6,
            "rubric": {"clarity": 5, "pacing": 4, "engagement": 5, "goal_alignment": 5},
            "strengths": [
                "Built on the student's own words ('rise over run')",
                "Asked the student to explain the idea back",
            ],
            "areas_for_improvement": ["Give a second, harder example before the recap"],
            "risk_tags": ["excellent_engagement", "strong_uptake"],
            "evidence": [
                {
                    "turn": 0,
                    "quote": "Today let's get comfortable with slope.",
                    "note": "sets a goal",
                },
                {
                    "turn": 2,
                    "quote": "Yes, rise over run.",
                    "note": "uptake of the student's words",
                },
                {
                    "turn": 4,
                    "quote": "tell me in your own words what slope means",
                    "note": "check for understanding",
                },
            ],
        },
    ),
    (
        "weak session",
        [
            {
                "speaker": "tutor",
                "text": "OK so the answer to number 4 is x = 7 because you "
                "subtract 3 and divide by 2, and number 5 is 12, "
                "and then for 6 you just factor it, "
                "it's (x+2)(x+3). Number 7 is the same idea.",
            },
            {"speaker": "student", "text": "Wait, why do we divide by 2?"},
            {"speaker": "tutor", "text": "Number 8 is 15. Let's move on to the next worksheet."},
        ],
        {
            "quality_score": 1.6,
            "rubric": {"clarity": 2, "pacing": 1, "engagement": 1, "goal_alignment": 2},
            "strengths": ["Covered the worksheet's answers"],
            "areas_for_improvement": [
                "Answer the student's question before moving on",
                "Let the student solve a step instead of giving answers",
            ],
            "risk_tags": [
                "answer_giveaway",
                "ignored_student_question",
                "rushed_pacing",
                "low_student_talk_ratio",
            ],
            "evidence": [
                {
                    "turn": 0,
                    "quote": "the answer to number 4 is x = 7",
                    "note": "gives the answer away",
                },
                {"turn": 1, "quote": "Wait, why do we divide by 2?", "note": "student question"},
                {
                    "turn": 2,
                    "quote": "Let's move on to the next worksheet.",
                    "note": "question ignored",
                },
            ],
        },
    ),
]


def render_transcript(turns: list[Turn]) -> str:
    """One JSON object per turn between markers (the form the examples use)."""
    lines = [
        json.dumps({"turn": i, "speaker": t["speaker"], "text": t["text"]}, ensure_ascii=False)
        for i, t in enumerate(turns)
    ]
    return "\n".join([TRANSCRIPT_START, *lines, TRANSCRIPT_END])


def _system_prompt() -> str:
    parts = [_RUBRIC_TEXT.format(tags=_TAGS)]
    for n, (title, turns, answer) in enumerate(WORKED_EXAMPLES, start=1):
        parts.append(f"Worked example {n} ({title}):\n{render_transcript(turns)}")
        parts.append("Answer: " + json.dumps(answer, ensure_ascii=False))
    return "\n\n".join(parts)


def build_messages(turns: list[Turn], *, subject: str | None = None) -> list[dict[str, str]]:
    """System prompt plus the (already redacted) transcript to evaluate."""
    about = f" The subject is {subject}." if subject else ""
    user = (
        f"Evaluate this tutoring session ({len(turns)} turns).{about}\n{render_transcript(turns)}"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


SYSTEM_PROMPT = _system_prompt()


def parse_transcript(content: str) -> list[Turn]:
    """The turns of the last transcript block in a message (used by the fake server)."""
    start = content.rfind(TRANSCRIPT_START)
    end = content.rfind(TRANSCRIPT_END)
    if start < 0 or end < start:
        return []
    turns: list[Turn] = []
    for line in content[start + len(TRANSCRIPT_START) : end].splitlines():
        line = line.strip()
        if not line:
            continue
        item = json.loads(line)
        turns.append({"speaker": str(item["speaker"]), "text": str(item["text"])})
    return turns


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """A deliberately high prompt-token estimate (3 characters a token) for the budget.

    Only the cost check uses it: a cost estimate must not come out low. The rate
    limiter reserves what the provider counts instead (`rate_limit_tokens`).
    """
    chars = sum(len(m["content"]) for m in messages)
    return chars // 3 + 8 * len(messages)


def rate_limit_tokens(messages: list[dict[str, Any]], max_tokens: int) -> int:
    """What an OpenAI-style limiter counts against TPM for one request.

    The provider does not tokenize before admitting a request: it estimates the
    prompt as the characters of all message contents / 4 and adds the output
    allowance (`max_tokens` / `max_completion_tokens`), used or not. Reserving
    exactly this keeps the client's token window equal to the provider's.
    """
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return -(-chars // 4) + max_tokens
