"""GET /api/tutors (ranked, filtered, paginated reports) and GET /api/tutors/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from tutorscore.analytics.flags import FLAG_NAMES
from tutorscore.web.computed_reports import report_page
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.params import checked_as_of
from tutorscore.web.responses import json_response
from tutorscore.web.schemas import RiskLevel, TutorDetail, TutorPage, TutorReport

router = APIRouter(prefix="/api", tags=["tutors"])


@router.get("/tutors", response_model=TutorPage)
def list_tutors(
    db: DbSession,
    state: State,
    user: CurrentUser,
    sort: Annotated[
        str,
        Query(
            max_length=64,
            pattern=r"^-?[a-z_]+$",
            description="risk (default), tutor_reschedule_rate, tutor_no_show_rate, "
            "avg_student_rating, ai_avg_quality_score, ...; prefix '-' to reverse",
        ),
    ] = "risk",
    subject: Annotated[str | None, Query(max_length=200)] = None,
    risk: Annotated[RiskLevel | None, Query(description="churn risk label")] = None,
    min_sessions: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    flags: Annotated[
        list[str] | None, Query(description=f"only tutors with all these flags: {FLAG_NAMES}")
    ] = None,
    as_of: Annotated[datetime | None, Query(description="ISO 8601; default: latest")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """Tutors ranked by `sort`, as docs/data-format.md describes; `total` counts all pages.

    Never writes: an `as_of` without stored metrics is computed in memory (rules only,
    one such computation per process at a time, others answer 429)."""

    items, total = report_page(
        db,
        state,
        as_of=checked_as_of(as_of),
        sort=sort,
        risk=risk,
        subject=subject,
        min_sessions=min_sessions,
        flags=tuple(flags or ()),
        limit=limit,
        offset=offset,
        kind="api",
    )
    return json_response({"items": items, "total": total, "limit": limit, "offset": offset})


@router.get(
    "/tutors/{tutor_id}",
    response_model=TutorDetail,
    responses={404: {"description": "no such tutor"}},
)
def get_tutor(
    tutor_id: str,
    db: DbSession,
    state: State,
    user: CurrentUser,
    as_of: Annotated[datetime | None, Query()] = None,
) -> Response:
    """One tutor: the report above plus history and recent sessions."""
    from tutorscore.analytics import report

    detail: dict[str, Any] = report.tutor_detail(
        db, tutor_id, as_of=checked_as_of(as_of), rules=state.rules, store=False
    )
    return json_response(detail)


__all__ = ["router", "TutorReport"]
