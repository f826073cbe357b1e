"""`/first-sessions`: first-session outcomes by subject, worst tutors, telling risk tags."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from tutorscore.analytics.queries import current_as_of
from tutorscore.db.base import utcnow
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.params import checked_as_of
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

    when = checked_as_of(as_of) or current_as_of(db) or utcnow()
    patterns = first_session_patterns(db, as_of=when, rules=state.rules)
    return render(request, "first_sessions.html", {"p": patterns})
