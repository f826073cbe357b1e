"""CSV formula injection: cells a spreadsheet would run as a formula get a leading `'`.

The OWASP rule: a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage
return is prefixed with a single quote, which spreadsheets show but do not evaluate.
A value that already starts with quotes followed by one of those is prefixed too, so
the rule stays reversible (strip one `'` from cells matching `'+[=+\\-@\\t\\r]`).
Numbers are never touched (a negative number is not a formula). `tutorscore export`
and `tutorscore tutors --format csv` apply it unless `--raw` is given: raw output is
what re-imports exactly.
"""

from __future__ import annotations

import re

_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def neutralise(text: str) -> str:
    """`text`, prefixed with `'` when a spreadsheet would read it as a formula."""
    return "'" + text if _FORMULA.match(text) else text


def restore(text: str) -> str:
    """The inverse of `neutralise` (for tools reading neutralised CSV back)."""
    return text[1:] if text.startswith("'") and _FORMULA.match(text, 1) else text


__all__ = ["neutralise", "restore"]
