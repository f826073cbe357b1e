"""Login for API clients that prefer a cookie session, and who-am-I."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tutorscore.auth.users import Principal, authenticate
from tutorscore.web.csrf import CSRF_SESSION_KEY, csrf_token
from tutorscore.web.deps import USER_SESSION_KEY, CurrentUser, DbSession, State
from tutorscore.web.errors import NotAuthenticated, TooManyRequests

router = APIRouter(prefix="/api", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)


class Me(BaseModel):
    username: str
    role: str
    via: str
    csrf_token: str | None = None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def attempt_login(
    request: Request, state: State, db: DbSession, username: str, password: str
) -> Principal:
    """Check the password under the throttle; on success start a fresh cookie session."""
    address = client_address(request)
    throttle = state.login_throttle
    wait = throttle.retry_after(username, address)
    if wait is not None:
        raise TooManyRequests(
            f"too many failed logins for {username!r}; try again in {wait} s", retry_after=wait
        )
    principal = authenticate(db, username, password)
    if principal is None:
        throttle.failure(username, address)
        raise NotAuthenticated("wrong username or password")
    throttle.success(username, address)
    request.session.clear()  # new session id material: no fixation of an old CSRF token
    request.session[USER_SESSION_KEY] = principal.username
    csrf_token(request)
    return principal


@router.post(
    "/login",
    response_model=Me,
    responses={401: {"description": "wrong credentials"}, 429: {"description": "throttled"}},
)
def login(body: LoginRequest, request: Request, state: State, db: DbSession) -> Me:
    """Cookie login. Mutating calls with the cookie must send `X-CSRF-Token` (returned here)."""
    p = attempt_login(request, state, db, body.username, body.password)
    return Me(username=p.username, role=p.role, via="session", csrf_token=csrf_token(request))


@router.post("/logout", status_code=204)
def logout(request: Request, user: CurrentUser) -> None:
    request.session.pop(USER_SESSION_KEY, None)
    request.session.pop(CSRF_SESSION_KEY, None)


@router.get("/me", response_model=Me)
def me(request: Request, user: CurrentUser) -> Me:
    token = request.session.get(CSRF_SESSION_KEY) if user.via == "session" else None
    return Me(username=user.username, role=user.role, via=user.via, csrf_token=token)
