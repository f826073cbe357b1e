"""The analytics facts every reader shares: the current metrics rows, a tutor's recent sessions.

Defined here once and read by the report (API, CLI), the dashboard and the queue's
priorities, so "current" and "recent" mean the same thing everywhere.

- `current_metrics(*columns)`: each tutor's latest row (`is_current`, kept by
  `analytics.service`), as a SELECT to add filters to; `is_current_row(alias)` is its
  predicate for other statements, `current_as_of` the newest such row's as_of.
- `recent_sessions(bind, tutor_id, ...)`: a tutor's sessions newest first, each with
  the evaluation that counts (`evaluation.queries.chosen_evaluations`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Connection, Select, func, select, true
from sqlalchemy.orm import Session

from tutorscore.analytics.metrics import statement
from tutorscore.db.base import JSONType, UTCDateTime
from tutorscore.db.models import TutoringSession, TutorMetrics
from tutorscore.evaluation.queries import chosen_evaluations


def is_current_row(m: Any = TutorMetrics) -> ColumnElement[bool]:
    """`m` (TutorMetrics or an alias of it) is its tutor's latest row: the maintained,
    indexed `is_current` marker (SQLite `= 1`, Postgres `= true`: both use the partial
    index ix_tutor_metrics_current)."""
    return m.is_current == true()  # type: ignore[no-any-return]


def current_metrics(*columns: Any) -> Select[Any]:
    """SELECT `columns` (default: the TutorMetrics entity) of each tutor's latest row."""
    return select(*(columns or (TutorMetrics,))).where(is_current_row())


def current_as_of(bind: Session | Connection) -> datetime | None:
    """The newest as_of among the current rows (the analytics the pages show), None for none."""
    value: datetime | None = bind.scalar(current_metrics(func.max(TutorMetrics.as_of)))
    return value


def session_count(bind: Session | Connection, tutor_id: str) -> int:
    """How many sessions the tutor has (any status, any time): `recent_sessions`' pages."""
    return int(
        bind.scalar(
            select(func.count())
            .select_from(TutoringSession)
            .where(TutoringSession.tutor_id == tutor_id)
        )
        or 0
    )


def _recent_sql(upto: bool) -> str:
    own = "s.tutor_id = :tutor_id" + (" AND s.scheduled_start_at <= :upto" if upto else "")
    return f"""WITH recent AS (
  SELECT s.session_id FROM sessions s WHERE {own}
  ORDER BY s.scheduled_start_at DESC, s.session_id LIMIT :limit OFFSET :offset
), {chosen_evaluations("s.session_id IN (SELECT session_id FROM recent)")}
SELECT s.session_id, s.student_id, s.subject, s.scheduled_start_at, s.status, s.no_show_by,
  s.reschedule_initiator, s.is_first_session, s.student_rating,
  s.student_churned_after_session, s.duration_minutes,
  c.evaluation_id, c.judge, c.quality_score, c.risk_tags,
  (t.session_id IS NOT NULL) AS has_transcript
FROM sessions s JOIN recent r ON r.session_id = s.session_id
LEFT JOIN chosen c ON c.session_id = s.session_id
LEFT JOIN session_transcripts t ON t.session_id = s.session_id
ORDER BY s.scheduled_start_at DESC, s.session_id"""


def recent_sessions(
    bind: Session | Connection,
    tutor_id: str,
    *,
    counted: Mapping[str, str],
    limit: int,
    offset: int = 0,
    upto: datetime | None = None,
) -> list[dict[str, Any]]:
    """The tutor's sessions newest first (ties by session_id), `limit` from `offset`, only
    those scheduled at or before `upto` when given; each with the chosen evaluation's
    `evaluation_id`, `judge`, `quality_score`, `risk_tags` (None when not evaluated) and
    `has_transcript`. `counted` are the binds of `reviews.counted.counted_params`."""
    params: dict[str, Any] = {"tutor_id": tutor_id, "limit": limit, "offset": offset, **counted}
    if upto is not None:
        params["upto"] = upto
    typed = statement(_recent_sql(upto is not None), params).columns(
        scheduled_start_at=UTCDateTime(),
        risk_tags=JSONType,
        is_first_session=Boolean(),
        student_churned_after_session=Boolean(),
        has_transcript=Boolean(),
    )
    out = []
    for row in bind.execute(typed).mappings():
        item = dict(row)
        item["is_first_session"] = bool(item["is_first_session"])
        item["has_transcript"] = bool(item["has_transcript"])
        out.append(item)
    return out
