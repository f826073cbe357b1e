"""Login for API clients that prefer a cookie session, and who-am-I."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tutorscore.auth.users import (
    Principal,
    authenticate,
    end_sessions,
    normalize_username,
    session_version,
    set_password,
)
from tutorscore.web.csrf import CSRF_SESSION_KEY, csrf_token
from tutorscore.web.deps import (
    SESSION_VERSION_KEY,
    USER_SESSION_KEY,
    CurrentUser,
    DbSession,
    State,
)
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
    """Check the password under the throttle; on success start a fresh cookie session.

    The attempt is counted before the password is checked (`LoginThrottle.reserve`),
    so concurrent attempts cannot all pass the limit; a success clears the count.
    """
    address = client_address(request)
    throttle = state.login_throttle
    wait = throttle.reserve(username, address)
    if wait is not None:
        name = normalize_username(username)
        raise TooManyRequests(
            f"too many failed logins for {name!r}; try again in {wait} s", retry_after=wait
        )
    principal = authenticate(db, username, password)
    if principal is None:
        raise NotAuthenticated("wrong username or password")
    throttle.success(username, address)
    request.session.clear()  # new session id material: no fixation of an old CSRF token
    request.session[USER_SESSION_KEY] = principal.username
    request.session[SESSION_VERSION_KEY] = session_version(db, principal.username)
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


def end_session(request: Request, db: DbSession, user: Principal) -> None:
    """Logout: clear the cookie and end the user's sessions server-side (a saved copy of
    the cookie no longer works). Token callers keep their token (revoke it instead)."""
    if user.via == "session":
        end_sessions(db, user.username)
    request.session.clear()


@router.post("/logout", status_code=204)
def logout(request: Request, db: DbSession, user: CurrentUser) -> None:
    """Ends every cookie session of the caller (all browsers), not only this one."""
    end_session(request, db, user)


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=1, max_length=1000)


@router.post(
    "/me/password",
    status_code=204,
    responses={403: {"description": "wrong current password"}, 400: {"description": "weak"}},
)
def change_password(
    body: PasswordChange, request: Request, db: DbSession, user: CurrentUser
) -> None:
    """Change the caller's password; every cookie session of the user ends (log in again)."""
    set_password(
        db,
        username=user.username,
        new_password=body.new_password,
        current_password=body.current_password,
        actor=user.username,
    )
    request.session.clear()


@router.get("/me", response_model=Me)
def me(request: Request, user: CurrentUser) -> Me:
    token = request.session.get(CSRF_SESSION_KEY) if user.via == "session" else None
    return Me(username=user.username, role=user.role, via=user.via, csrf_token=token)
