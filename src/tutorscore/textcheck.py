"""Text the databases cannot store: NUL characters and unpaired UTF-16 surrogates.

Postgres refuses NUL in text; neither backend can encode a lone surrogate (`"\\ud800"`
in JSON decodes to one) as UTF-8. Both are caught where input arrives (the importer's
fields and transcripts, JSON request bodies) with a message naming the character.
"""

from __future__ import annotations

import re

_BAD = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """The first character of `value` that cannot be stored, described (None: all fine).

    E.g. "a NUL character at position 2", "an unpaired surrogate U+D800 at position 0".
    """
    found = _BAD.search(value)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else f"an unpaired surrogate U+{ord(char):04X}"
    return f"{what} at position {found.start()}"


def printable(value: str) -> str:
    """`value` with NUL and surrogates written as \\uXXXX escapes (safe to print or encode)."""
    return _BAD.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


__all__ = ["printable", "text_problem"]
