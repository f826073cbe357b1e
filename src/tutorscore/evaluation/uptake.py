"""Uptake: how much a tutor reply builds on what the student just said.

Uptake (Demszky et al., ACL 2021) is the teacher revoicing, elaborating or asking a
follow-up about the student's contribution. The measure here is lexical, so it runs
offline at hundreds of transcripts a second: the share of the student's words the
reply repeats (all words and content words, half each), plus a follow-up question,
minus a bare acknowledgement ("Yeah.", "Okay."). On the NCTE exchanges bundled in
`corpora/` it ranks the experts' uptake ratings with Spearman 0.51
(`benchmarks/judge_validity.py`); it cannot see a paraphrase that shares no words.
"""

from __future__ import annotations

from tutorscore.evaluation.heuristic_patterns import FUNCTION_WORDS, WORD

_MAX = 1.3  # 1 (every word reused) + 0.3 (a follow-up question)


def uptake_score(student_text: str, tutor_text: str) -> float:
    """0..1: how strongly `tutor_text` takes up `student_text`."""
    return uptake_tokens(
        WORD.findall(student_text.lower()), WORD.findall(tutor_text.lower()), "?" in tutor_text
    )


def uptake_tokens(student_tokens: list[str], reply: list[str], asks: bool) -> float:
    """`uptake_score` on already tokenized turns (`asks`: the reply holds a question)."""
    student = set(student_tokens)
    if not student:
        return 0.0
    reply_set = set(reply)
    reuse = len(student & reply_set) / len(student)
    content = {w for w in student if w not in FUNCTION_WORDS and len(w) > 2}
    content_reuse = len(content & reply_set) / len(content) if content else reuse
    score = 0.5 * reuse + 0.5 * content_reuse
    if asks:
        score += 0.3
    if len(reply) <= 2:
        score -= 0.3
    return min(1.0, max(0.0, score / _MAX))
