"""Request dependencies as Annotated aliases.

- `DbSession`: one transaction per request, committed before the response is sent.
- `State`: settings, rules, engine.
- CSRF tokens live in `tutorscore.web.csrf`.
- `CurrentUser`: the `Principal` behind the request, from the signed session cookie
  or an `Authorization: Bearer <token>` header; 401 when there is none. Cookie-
  authenticated POST/PUT/PATCH/DELETE must carry the CSRF token (header
  `X-CSRF-Token` or form field `csrf_token`); Bearer requests are CSRF-exempt.
- `require_role("coach")`: 403 unless the user has one of the roles (admin always
  passes). Use as `user: Annotated[Principal, Depends(require_role("coach"))]` or
  the aliases `CoachUser` / `AdminUser`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from tutorscore.auth.users import Principal, principal_for_token, principal_for_username
from tutorscore.errors import PermissionDenied
from tutorscore.web.csrf import check_csrf
from tutorscore.web.errors import NotAuthenticated
from tutorscore.web.state import AppState

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_SESSION_KEY = "user"
SESSION_VERSION_KEY = "sv"  # users.session_version at login; stale -> logged out


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.tutorscore
    return state


async def _state(request: Request) -> AppState:
    # async: FastAPI runs a plain `def` dependency in the thread pool, one hop per request
    return get_state(request)


State = Annotated[AppState, Depends(_state)]


def _finish(session: Session, ok: bool) -> None:
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One transaction per request: committed when the handler returns normally.

    An async dependency so that opening and finishing the session cost no thread-pool
    hops (each hop waits for the GIL again under load): creating a session does no I/O
    (the connection is taken at the first query, in the handler's thread), and a GET's
    commit only ends a read transaction, so it runs right here.

    Write requests (POST, PUT, ...) take a write slot first and commit on threads of
    their own. A write transaction holds locks (the evaluation queue's advisory lock,
    row locks, SQLite's write lock) from its handler until its commit, and FastAPI still
    needs a handler-pool thread in between (response validation). If every pool thread
    were held by writers waiting for that lock, nothing would move again: seen with 32
    concurrent POSTs on Postgres and 4 handler threads. So at most `web_threads - 1`
    write requests are in flight per process: one pool thread is always left to readers,
    which never wait on those locks, or to the lock holder.
    """
    state = get_state(request)
    session = state.sessions()
    session.begin()
    # template helpers that render inside the handler (tutor_interventions_panel) read
    # through the request's own session instead of taking a second pooled connection
    request.state.db = session
    if request.method in SAFE_METHODS:
        try:
            yield session
        except BaseException:
            _finish(session, False)
            raise
        _finish(session, True)
        return
    if state.write_slots is None:  # created on the event loop, on first use
        slots = max(1, state.settings.web_threads - 1)
        state.write_slots = anyio.Semaphore(slots)
        # one commit thread per slot (a task holding a CapacityLimiter token cannot
        # borrow another from it for run_sync, so the slots cannot double as this)
        state.finish_limiter = anyio.CapacityLimiter(slots)
    async with state.write_slots:
        try:
            yield session
        except BaseException:
            await _finish_in_thread(state, session, False)
            raise
        await _finish_in_thread(state, session, True)


async def _finish_in_thread(state: AppState, session: Session, ok: bool) -> None:
    """Commit or roll back a write request's transaction, off the handlers' pool."""
    await anyio.to_thread.run_sync(_finish, session, ok, limiter=state.finish_limiter)


# scope="function": commit before the response goes out, so a client that reads
# right after a write sees it, and a failing commit is an error response.
DbSession = Annotated[Session, Depends(get_db, scope="function")]


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("Authorization header must be 'Bearer <token>'")
    return value.strip()


def _resolve_principal(request: Request, db: DbSession) -> Principal | None:
    token = bearer_token(request)
    if token is not None:
        principal = principal_for_token(db, token)
        if principal is None:
            raise NotAuthenticated("invalid or revoked API token")
        return principal
    username = request.session.get(USER_SESSION_KEY)
    if isinstance(username, str) and username:
        version = request.session.get(SESSION_VERSION_KEY)
        principal = None
        if isinstance(version, int):  # cookies from before versions: log in again
            principal = principal_for_username(db, username, version)
        if principal is None:  # deactivated, logged out or password changed since login
            request.session.clear()
        return principal
    return None


OptionalUser = Annotated[Principal | None, Depends(_resolve_principal)]


async def get_current_user(request: Request, principal: OptionalUser) -> Principal:
    if principal is None:
        raise NotAuthenticated("login required: sign in or send 'Authorization: Bearer <token>'")
    if principal.via == "session" and request.method not in SAFE_METHODS:
        await check_csrf(request)
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets through admins and the listed roles, else 403."""

    async def dependency(user: CurrentUser) -> Principal:
        if not user.can(*roles):
            allowed = ", ".join(sorted({"admin", *roles}))
            raise PermissionDenied(
                f"role {user.role!r} may not do this (needs {allowed})",
                details={"role": user.role, "allowed": sorted({"admin", *roles})},
            )
        return user

    return dependency


AdminUser = Annotated[Principal, Depends(require_role("admin"))]
CoachUser = Annotated[Principal, Depends(require_role("coach"))]
