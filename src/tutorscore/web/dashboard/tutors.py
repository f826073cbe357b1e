"""Tutor list (sortable, filterable, paginated), tutor page and session page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from tutorscore.db.models import SessionTranscript, Tutor, TutoringSession
from tutorscore.errors import NotFound
from tutorscore.web.charts import trend_chart
from tutorscore.web.computed_reports import report_page
from tutorscore.web.dashboard import views
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.schemas import RiskLevel
from tutorscore.web.templating import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
SESSIONS_PER_PAGE = 25


@router.get("/tutors", response_class=HTMLResponse)
def tutor_list(
    request: Request,
    db: DbSession,
    state: State,
    user: CurrentUser,
    sort: Annotated[str, Query(max_length=64, pattern=r"^-?[a-z_]+$")] = "risk",
    subject: Annotated[str | None, Query(max_length=200)] = None,
    risk: Annotated[RiskLevel | Literal[""] | None, Query()] = None,
    min_sessions: Annotated[
        str | None, Query(max_length=7, pattern=r"^\d*$", description="empty = any")
    ] = None,
    flags: Annotated[list[str] | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """The filter form submits empty fields; they mean "any"."""
    risk = risk or None
    min_sessions_n = int(min_sessions) if min_sessions else None

    chosen_flags = [f for f in (flags or []) if f in views.FLAG_FILTERS]
    items, total = report_page(
        db,
        state,
        as_of=None,
        sort=sort,
        risk=risk,
        subject=subject or None,
        min_sessions=min_sessions_n,
        flags=tuple(chosen_flags),
        limit=PER_PAGE,
        offset=(page - 1) * PER_PAGE,
        kind="page",
    )
    query: dict[str, Any] = {"sort": sort}
    if subject:
        query["subject"] = subject
    if risk:
        query["risk"] = risk
    if min_sessions_n is not None:
        query["min_sessions"] = min_sessions_n
    if chosen_flags:
        query["flags"] = chosen_flags
    return render(
        request,
        "tutors.html",
        {
            "items": [views.shape_report(it) for it in items],
            "total": total,
            "page": page,
            "pages": views.pages(total, PER_PAGE),
            "sort": sort,
            "query": query,
            "filters": {
                "subject": subject,
                "risk": risk,
                "min_sessions": min_sessions,
                "flags": chosen_flags,
            },
            "any_filter": bool(subject or risk or min_sessions is not None or chosen_flags),
            "subjects": views.subjects(state.engine, db),
            "flag_names": views.FLAG_FILTERS,
        },
    )


def _weekly_points(detail: dict[str, Any]) -> list[dict[str, Any]]:
    points = []
    for week in detail.get("weekly") or []:
        start = str(week.get("week_end") or week.get("week_start") or "")
        label = start[5:10] if len(start) >= 10 else start
        points.append(
            {
                "label": label,
                "avg_rating": week.get("avg_rating"),
                "avg_ai_score": week.get("avg_ai_score"),
            }
        )
    return points


@router.get("/tutors/{tutor_id}", response_class=HTMLResponse)
def tutor_page(
    tutor_id: str,
    request: Request,
    db: DbSession,
    state: State,
    user: CurrentUser,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    from tutorscore.analytics.report import tutor_detail
    from tutorscore.reviews.counted import choose_counted

    detail = tutor_detail(db, tutor_id, rules=state.rules, store=False)
    tutor = views.shape_report(detail)
    counted = choose_counted(db, state.rules)  # which judge's scores this page shows, and why
    sessions, total_sessions = views.tutor_sessions(
        db,
        tutor_id,
        limit=SESSIONS_PER_PAGE,
        offset=(page - 1) * SESSIONS_PER_PAGE,
        counted=counted.params(),
    )
    reasons = sorted(
        detail.get("reasons") or [],
        key=lambda r: 0 if r.get("kind", "flag") == "flag" else 1,
    )
    return render(
        request,
        "tutor.html",
        {
            "tutor": tutor,
            "detail": detail,
            "reasons": reasons,
            "chart": trend_chart(_weekly_points(detail)),
            "counted": counted.explanation,
            "sessions": sessions,
            "total_sessions": total_sessions,
            "page": page,
            "pages": views.pages(total_sessions, SESSIONS_PER_PAGE),
            "query": {},
        },
    )


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(
    session_id: str,
    request: Request,
    db: DbSession,
    state: State,
    user: CurrentUser,
    show_ai: Annotated[int, Query(ge=0, le=1, description="reviewers: show the AI first")] = 0,
) -> HTMLResponse:
    from tutorscore.evaluation.service import get_evaluation
    from tutorscore.web.dashboard.reviews import review_context

    row = db.get(TutoringSession, session_id)
    if row is None:
        raise NotFound(f"session {session_id!r} does not exist")
    tutor_name = db.scalar(select(Tutor.name).where(Tutor.tutor_id == row.tutor_id)) or ""
    transcript = db.get(SessionTranscript, session_id)
    review = review_context(db, session_id, user, show_ai=bool(show_ai))
    # a reviewer who has not reviewed yet scores blind: no AI score, no quoted turns
    evaluation = None if review["hide_ai"] else get_evaluation(db, session_id, rules=state.rules)
    turns = views.highlight_turns(
        list(transcript.turns) if transcript else [],
        list((evaluation or {}).get("evidence") or []),
        views.turn_moves(evaluation),
    )
    return render(
        request,
        "session.html",
        {
            "s": row,
            "tutor_name": tutor_name,
            "turns": turns,
            "evaluation": evaluation,
            "review": review,
            "now": datetime.now(UTC),
        },
    )
