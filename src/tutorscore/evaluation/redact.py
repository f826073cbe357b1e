"""PII redaction before any transcript text leaves for an LLM provider.

Emails are found by pattern; phone numbers by pattern (North American and `+`
international forms, local `555-1234`) and by `phonenumbers` (Google's libphonenumber
metadata, offline) for national formats of `PHONE_REGIONS` (`020 7946 0958` in the
UK, `06 12 34 56 78` in France): digit runs of 7+ digits that start with the trunk
prefix `0` (or `+`) are parsed for each region and redacted when one of them calls
the number valid, so arithmetic such as `12 x 12 = 144`, `10 20 30 40 50` or
`3x + 7 = 31` stays. Approximate: national formats without a trunk prefix (Spain,
Mexico) are only caught in their `+` form. Names come from three places:
the names we know from the database (tutor name, passed in by the caller), a
list of common first names, and the capitalised words that follow a
self-introduction ("I'm Sofia", "my name is Liam Chen"). Ambiguous first names
that are also ordinary words (Will, May, Mark, Grace...) are left out of the list
on purpose: redacting every "will" would damage the transcript more than it
protects.

`Redacted` keeps the position of every replacement so a quote the model makes of
the redacted text can be mapped back to the verbatim original text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import NumberParseException

EMAIL_TOKEN = "[EMAIL]"
PHONE_TOKEN = "[PHONE]"
NAME_TOKEN = "[NAME]"

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONES = [
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, +1 555 123 4567
    re.compile(r"(?<![\w.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)|\d{3})[\s.-]?\d{3}[\s.-]\d{4}(?![\w])"),
    # international with a leading +: +44 20 7946 0958, +33 1 23 45 67 89
    re.compile(r"(?<![\w.])\+\d{1,3}(?:[\s.-]?\d{1,4}){2,6}(?![\w])"),
    # local seven digits 555-0134 and ten digits written together 5551234567
    re.compile(r"(?<![\w.-])(?:\d{3}-\d{4}|\d{10})(?![\w-])"),
]

# Regions whose national formats are recognised (the `+` form works for every country).
PHONE_REGIONS = ("US", "GB", "FR", "DE", "ES", "IT", "IN", "AU", "CA", "MX", "BR")
# A run of digits and phone separators with at least 7 digits is a candidate.
_PHONE_CANDIDATE = re.compile(r"(?<![\w.+])(?:\+\s?)?\(?\d[\d\s().-]{5,}\d(?!\w)")


def _valid_somewhere(candidate: str) -> bool:
    # national forms start with the trunk prefix 0 (020 ..., 06 ..., (02) ...): a bare
    # digit run such as "20 30 40 50" is arithmetic far more often than a phone number
    if not candidate.lstrip("(").startswith(("0", "+")):
        return False
    for region in PHONE_REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return True
    return False


def _national_phones(text: str) -> Iterator[tuple[int, int]]:
    """Spans of phone numbers valid in one of PHONE_REGIONS (libphonenumber metadata).

    A candidate run is taken whole when it is a valid number; otherwise its
    space-separated groups are tried, longest first from each group, so
    `020 7946 0958 2005` redacts the number and keeps the year.
    """
    for m in _PHONE_CANDIDATE.finditer(text):
        candidate = m.group()
        if sum(ch.isdigit() for ch in candidate) < 7:
            continue
        if _valid_somewhere(candidate):
            yield m.span()
            continue
        groups = [(g.start(), g.end()) for g in re.finditer(r"\S+", candidate)]
        i = 0
        while i < len(groups):
            for j in range(len(groups), i, -1):
                piece = candidate[groups[i][0] : groups[j - 1][1]]
                if sum(ch.isdigit() for ch in piece) >= 7 and _valid_somewhere(piece):
                    yield m.start() + groups[i][0], m.start() + groups[j - 1][1]
                    i = j
                    break
            else:
                i += 1


# Common first names that are not also everyday English words.
COMMON_FIRST_NAMES = frozenset(
    """
    Aaliyah Aaron Abigail Adam Adrian Aiden Alejandro Alex Alexander Alexis Alice Alicia Allison
    Alyssa Amanda Amelia Amir Amy Ana Andre Andrea Andrew Angela Anna Anthony Antonio Aria Ariana
    Ashley Aubrey Austin Ava Avery Benjamin Brandon Brayden Brian Brianna Brittany Brooklyn Caleb
    Cameron Camila Carlos Caroline Carter Charlotte Chloe Christian Christopher Claire Daniel David
    Diana Diego Dylan Elena Eli Elijah Elizabeth Ella Emily Emma Eric Ethan Evelyn Fatima Gabriel
    Gabriella Hannah Harper Hailey Henry Isaac Isabella Isaiah Jacob James Jasmine Jason Javier
    Jayden Jennifer Jessica Jesus Jonathan Jose Joseph Joshua Juan Julia Julian Justin Kayla
    Kevin Kimberly Kyle Laila Lauren Layla Leah Liam Lily Logan Lucas Lucy Luis Luna Madison Maria
    Mariana Matthew Maya Mason Megan Mia Michael Michelle Miguel Mohammed Muhammad Natalie Nathan
    Nevaeh Nicholas Noah Nora Oliver Olivia Omar Priya Rahul Rebecca Riley Ryan Samantha Samuel
    Sarah Savannah Scarlett Sebastian Sofia Sophia Sophie Stephanie Steven Taylor Thomas Tyler
    Valentina Victoria William Wei Xavier Yusuf Zachary Zoe Zoey
    """.split()
)

# Capitalised words that follow "I'm" or "this is" without being names.
_NOT_NAMES = frozenset(
    """
    I A An The So Not Just Sorry Here There Ready Good Fine Okay Ok OK Done Back Sure Still Also
    Really Very Going Trying Confused Stuck Lost Happy Glad Excited Working Doing Thinking Excellent
    Great Right Correct Wrong Better Worse Tired Nervous Done Almost Pretty Kind Honestly Actually
    Mr Mrs Ms Miss Dr Professor Coach Your Their His Her My Our What How Why When Where Which It
    That This Because Yes No Algebra Geometry Calculus Chemistry Physics Biology History English
    Math Maths Spanish French SAT ACT AP
    """.split()
)

_INTRO = re.compile(
    r"\b(?:I'm|I’m|Im|I am|[Mm]y name is|[Mm]y name's|[Tt]his is|[Cc]all me|[Nn]ame's)\s+"
    r"([A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)?)"
)
_COMMON_NAMES_RE = re.compile(r"\b(?:" + "|".join(sorted(COMMON_FIRST_NAMES)) + r")\b")


@dataclass
class Redacted:
    """Redacted text plus where each replacement sits, to map quotes back to the original."""

    original: str
    text: str
    # (original start, original end, redacted start, redacted end, token)
    spans: list[tuple[int, int, int, int, str]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for *_, token in self.spans:
            out[token] = out.get(token, 0) + 1
        return out

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) range of the redacted text to the original text."""
        return self._map(start, is_end=False), self._map(end, is_end=True)

    def _map(self, pos: int, *, is_end: bool) -> int:
        shift = 0
        for o_start, o_end, r_start, r_end, _ in self.spans:
            if pos < r_start or (pos == r_start and is_end):
                break
            if pos < r_end or (pos == r_end and is_end):
                return o_end if is_end else o_start  # inside a placeholder: take it whole
            shift = o_end - r_end
        return pos + shift


def _name_patterns(names: Iterable[str]) -> re.Pattern[str] | None:
    """Full names and each of their parts (two letters or more), case-insensitive."""
    parts: set[str] = set()
    for name in names:
        name = name.strip()
        if not name:
            continue
        parts.add(name)
        parts.update(p for p in re.split(r"[\s,]+", name) if len(p) >= 2 and p not in _NOT_NAMES)
    if not parts:
        return None
    ordered = sorted(parts, key=len, reverse=True)  # longest first: "Maria Lopez" before "Maria"
    return re.compile(r"\b(?:" + "|".join(re.escape(p) for p in ordered) + r")\b", re.IGNORECASE)


class Redactor:
    """Redacts emails, phones and names; `names` are always redacted (e.g. the tutor's)."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._names = tuple(names)
        self._known = _name_patterns(self._names)

    def redact(self, text: str, extra_names: Sequence[str] = ()) -> Redacted:
        found: list[tuple[int, int, str]] = []
        found += [(m.start(), m.end(), EMAIL_TOKEN) for m in _EMAIL.finditer(text)]
        for pattern in _PHONES:
            found += [(m.start(), m.end(), PHONE_TOKEN) for m in pattern.finditer(text)]
        found += [(start, end, PHONE_TOKEN) for start, end in _national_phones(text)]
        known = _name_patterns(extra_names) if extra_names else None
        for names in (self._known, known, _COMMON_NAMES_RE):
            if names is not None:
                found += [(m.start(), m.end(), NAME_TOKEN) for m in names.finditer(text)]
        for m in _INTRO.finditer(text):
            words = m.group(1).split()
            while words and words[-1] in _NOT_NAMES:
                words.pop()
            if words and words[0] not in _NOT_NAMES:
                start = m.start(1)
                found.append((start, start + len(" ".join(words)), NAME_TOKEN))
        return _apply(text, found)


def _apply(text: str, found: list[tuple[int, int, str]]) -> Redacted:
    """Replace non-overlapping matches (earliest first, longest on ties)."""
    found.sort(key=lambda f: (f[0], -(f[1] - f[0])))
    out: list[str] = []
    spans: list[tuple[int, int, int, int, str]] = []
    pos = 0
    length = 0
    for start, end, token in found:
        if start < pos:
            if spans and end > pos and spans[-1][4] == token:
                # an overlapping match of the same kind extends the previous one
                o_start, _, r_start, r_end, _ = spans[-1]
                spans[-1] = (o_start, end, r_start, r_end, token)
                pos = end
            continue
        out.append(text[pos:start])
        length += start - pos
        out.append(token)
        spans.append((start, end, length, length + len(token), token))
        length += len(token)
        pos = end
    out.append(text[pos:])
    return Redacted(original=text, text="".join(out), spans=spans)


def redact_text(text: str, names: Sequence[str] = ()) -> str:
    """Convenience: the redacted text only."""
    return Redactor(names).redact(text).text
