"""`/first-sessions`: first-session outcomes by subject, worst tutors, telling risk tags."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from tutorscore.db.base import utcnow
from tutorscore.db.models import TutorMetrics
from tutorscore.errors import UserError
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/first-sessions", response_class=HTMLResponse)
def first_sessions_page(
    request: Request,
    db: DbSession,
    state: State,
    user: CurrentUser,
    as_of: Annotated[datetime | None, Query()] = None,
) -> HTMLResponse:
    """Defaults to the latest analytics as_of, so the page matches the tutor list."""
    from tutorscore.analytics.first_sessions import first_session_patterns

    if as_of is not None and as_of.tzinfo is None:
        raise UserError("as_of: the timestamp needs an offset or Z (times are UTC)")
    when = as_of or db.scalar(select(func.max(TutorMetrics.as_of))) or utcnow()
    patterns = first_session_patterns(db, as_of=when, rules=state.rules)
    return render(request, "first_sessions.html", {"p": patterns})
