"""Reasons: the numbers behind a flag and one sentence a coach can read aloud."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# kinds of reasons
FLAG = "flag"  # a flag or label raised by a rule
NOT_ENOUGH_DATA = "not_enough_data"  # a small-sample guard not met
SUMMARY = "summary"  # why a label has its value (e.g. the churn signals counted)


def pct(value: float, threshold: float | None = None) -> str:
    """`22%`; one decimal when rounding would make it look equal to the threshold."""
    text = f"{value * 100:.0f}%"
    if threshold is not None and text == f"{threshold * 100:.0f}%" and value != threshold:
        text = f"{value * 100:.1f}%"
    return text


def num(value: float) -> str:
    """A score for reading aloud: `3.4`, `4`, `-0.75`."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


@dataclass
class Reason:
    flag: str
    value: Any
    threshold: Any
    numerator: float | None
    denominator: int | None
    text: str
    kind: str = FLAG
    evidence: str | None = None  # which sessions back it (a metrics evidence kind)
    subject: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    session_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "flag": self.flag,
            "kind": self.kind,
            "value": self.value,
            "threshold": self.threshold,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "text": self.text,
            "session_ids": self.session_ids,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        out.update(self.extra)
        return out
