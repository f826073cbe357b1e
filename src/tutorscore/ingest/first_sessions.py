"""Keeps `sessions.is_first_session` right: the given flag, or derived when it is null.

Derived rule (docs/data-format.md): a session is the student's first with that tutor
when it is the earliest `completed` session of the pair (by scheduled start,
then session_id). One set-based UPDATE per call, on SQLite and Postgres alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.orm import Session

# Tutors per statement; above FULL_THRESHOLD one pass over the whole table is cheaper.
_CHUNK = 500
FULL_THRESHOLD = 2000

_UPDATE = """
WITH firsts AS (
    SELECT session_id FROM (
        SELECT session_id,
               ROW_NUMBER() OVER (
                   PARTITION BY tutor_id, student_id
                   ORDER BY scheduled_start_at, session_id
               ) AS rn
        FROM sessions
        WHERE status = 'completed' {filter}
    ) ranked
    WHERE rn = 1
)
UPDATE sessions
SET is_first_session = {resolved}
WHERE is_first_session <> {resolved} {filter}
"""

_RESOLVED = (
    "(CASE WHEN is_first_session_for_student IS NOT NULL THEN is_first_session_for_student "
    "WHEN session_id IN (SELECT session_id FROM firsts) THEN TRUE ELSE FALSE END)"
)


def derive_first_sessions(
    session: Session | Connection, pairs: Iterable[tuple[str, str]] | None
) -> int:
    """Recompute is_first_session for the (tutor_id, student_id) pairs, or all when None.

    Returns the number of sessions whose flag changed. Runs in the caller's transaction.
    """
    if pairs is None:
        return _run(session, "", {})
    tutors = sorted({tutor_id for tutor_id, _student_id in pairs})
    if len(tutors) > FULL_THRESHOLD:
        return _run(session, "", {})
    changed = 0
    # Recomputing every pair of the touched tutors is a harmless superset of `pairs`
    # and lets both backends walk the (tutor_id, scheduled_start_at) index.
    for start in range(0, len(tutors), _CHUNK):
        changed += _run(
            session, "AND tutor_id IN :tutors", {"tutors": tutors[start : start + _CHUNK]}
        )
    return changed


def _run(session: Session | Connection, where: str, params: dict[str, Any]) -> int:
    statement = text(_UPDATE.format(filter=where, resolved=_RESOLVED))
    if params:
        statement = statement.bindparams(bindparam("tutors", expanding=True))
    result = session.execute(statement, params)
    return max(int(getattr(result, "rowcount", 0) or 0), 0)
