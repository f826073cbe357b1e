"""Transcript forms: a list of turns, or text with `Tutor:` / `Student:` prefixes."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypedDict

from tutorscore.textcheck import text_problem

SPEAKERS = ("tutor", "student")
_PREFIXES = {"tutor:": "tutor", "student:": "student"}


class Turn(TypedDict, total=False):
    speaker: str
    text: str
    start_s: float


class TranscriptFormatError(ValueError):
    """The transcript cannot be read; the message says where (1-based line or turn)."""


def parse_text(raw: str) -> list[Turn]:
    """`Tutor: Hi` / `Student: Hello` lines to turns; unprefixed lines continue the turn above."""
    turns: list[Turn] = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        problem = text_problem(line)
        if problem is not None:
            raise TranscriptFormatError(f"text line {lineno}: {problem} cannot be stored")
        stripped = line.strip()
        if not stripped:
            continue
        head, sep, rest = stripped.partition(":")
        speaker = _PREFIXES.get(head.strip().lower() + sep) if sep else None
        if speaker is not None:
            turns.append({"speaker": speaker, "text": rest.strip()})
        elif turns:
            turns[-1]["text"] = (
                f"{turns[-1]['text']}\n{stripped}" if turns[-1]["text"] else stripped
            )
        else:
            raise TranscriptFormatError(
                f"text line {lineno}: expected a line starting with 'Tutor:' or 'Student:', "
                f"got {stripped[:40]!r}"
            )
    return turns


def validate_turns(value: Any) -> list[Turn]:
    """Check a JSON `turns` value and return it normalised."""
    if not isinstance(value, list):
        raise TranscriptFormatError(f"expected a list of turns, got {type(value).__name__}")
    turns: list[Turn] = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise TranscriptFormatError(f"turn {i}: expected an object, got {type(item).__name__}")
        speaker = item.get("speaker")
        if speaker not in SPEAKERS:
            raise TranscriptFormatError(
                f"turn {i}: speaker: expected 'tutor' or 'student', got {speaker!r}"
            )
        text = item.get("text")
        if not isinstance(text, str):
            raise TranscriptFormatError(f"turn {i}: text: expected a string, got {text!r}")
        problem = text_problem(text)
        if problem is not None:
            raise TranscriptFormatError(f"turn {i}: text: {problem} cannot be stored")
        turn: Turn = {"speaker": speaker, "text": text}
        start = item.get("start_s")
        if start is not None:
            if isinstance(start, bool) or not isinstance(start, int | float) or start < 0:
                raise TranscriptFormatError(
                    f"turn {i}: start_s: expected a number >= 0, got {start!r}"
                )
            turn["start_s"] = float(start)
        turns.append(turn)
    return turns


def render_text(turns: list[Turn]) -> str:
    """Turns back to the text form (the stored raw text for transcripts given as turns)."""
    return "\n".join(f"{t['speaker'].capitalize()}: {t['text']}" for t in turns)


def content_hash(turns: list[Turn]) -> str:
    """sha256 of the normalised turns: the evaluation cache key."""
    blob = json.dumps(
        [[t["speaker"], t["text"]] for t in turns], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode()).hexdigest()
