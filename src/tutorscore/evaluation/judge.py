"""One judge interface for the heuristic and the LLM judge.

A judge takes a transcript's turns and returns an `EvaluationResult` (the
evaluation object of docs/data-format.md minus the storage fields). Results are
stored per session x judge x model x prompt version x transcript hash, so the
same transcript evaluated again is a cache hit.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from tutorscore.ingest.transcript_format import Turn

# Risk tags: the documented vocabulary (see README "Risk tags"). Judges use only these.
RISK_TAGS: dict[str, str] = {
    "low_student_talk_ratio": "The tutor spoke most of the words; the student rarely explained.",
    "rushed_pacing": "Moved on quickly: short wait time, many topics, little student work.",
    "ignored_student_question": "A student question got no answer in the tutor's next turn.",
    "answer_giveaway": "The tutor gave the answer instead of letting the student work it out.",
    "no_check_for_understanding": "The tutor never checked whether the student understood.",
    "long_monologue": "The tutor spoke at length without a student turn.",
    "no_session_structure": "No goal was set and nothing was recapped at the end.",
    "closed_questions_only": "The tutor asked only yes/no or one-word questions.",
    "excellent_engagement": "The student did much of the talking and reasoning.",
    "strong_uptake": "The tutor built on the student's own words repeatedly.",
}


class Rubric(BaseModel):
    clarity: int = Field(ge=1, le=5)
    pacing: int = Field(ge=1, le=5)
    engagement: int = Field(ge=1, le=5)
    goal_alignment: int = Field(ge=1, le=5)


class Evidence(BaseModel):
    turn: int = Field(ge=0, description="0-based index into the transcript's turns")
    quote: str = Field(description="verbatim text of that turn")
    note: str = ""


class EvaluationResult(BaseModel):
    quality_score: float = Field(ge=1, le=5)
    rubric: Rubric
    strengths: list[str] = Field(default_factory=list)
    areas_for_improvement: list[str] = Field(default_factory=list)
    risk_tags: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    # judge-specific numbers (feature values, dropped quotes, token counts...)
    features: dict[str, float | int | str | None] = Field(default_factory=dict)


class Judge(Protocol):
    name: str  # "heuristic" | "llm"
    model: str  # "" for the heuristic judge
    prompt_version: str

    async def evaluate(
        self, turns: list[Turn], *, session_id: str | None = None
    ) -> EvaluationResult:
        """Evaluate one transcript. Raises JudgeUnavailable when it cannot answer now."""
        ...


class JudgeUnavailable(Exception):
    """The judge cannot answer now (LLM down, rate limited, budget spent); retry later."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
