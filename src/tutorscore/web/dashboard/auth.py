"""Login and logout pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tutorscore.errors import UserError
from tutorscore.web.api.auth import attempt_login, end_session
from tutorscore.web.csrf import verify_csrf_value
from tutorscore.web.deps import CurrentUser, DbSession, State
from tutorscore.web.errors import TooManyRequests
from tutorscore.web.templating import render

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect to another host after login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_model=None)
def login_submit(
    request: Request,
    state: State,
    db: DbSession,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str | None, Form()] = None,
    next: Annotated[str, Form()] = "/",
) -> Response:
    verify_csrf_value(request, csrf_token)
    try:
        attempt_login(request, state, db, username, password)
    except TooManyRequests as exc:
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": exc.message, "username": username},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    except UserError as exc:
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": exc.message, "username": username},
            status_code=exc.status_code,
        )
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, db: DbSession, user: CurrentUser) -> RedirectResponse:
    end_session(request, db, user)
    return RedirectResponse("/login", status_code=303)
