"""CSRF tokens: one per browser session, checked on cookie-authenticated writes.

Kept apart from `deps` so templates can put the token in forms without importing
the request dependencies (which import the error handlers, which render templates).
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request

from tutorscore.errors import PermissionDenied

CSRF_SESSION_KEY = "csrf"


def csrf_token(request: Request) -> str:
    """The CSRF token bound to this browser session (created on first use)."""
    token = request.session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_SESSION_KEY] = token
    return token


async def check_csrf(request: Request) -> None:
    """403 unless the request carries this session's CSRF token."""
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            sent = value if isinstance(value, str) else None
    verify_csrf_value(request, sent)


def verify_csrf_value(request: Request, sent: str | None) -> None:
    """403 unless `sent` equals this session's CSRF token (for sync form handlers)."""
    expected = request.session.get(CSRF_SESSION_KEY)
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise PermissionDenied("CSRF token missing or invalid; reload the page and try again")


__all__ = ["CSRF_SESSION_KEY", "check_csrf", "csrf_token", "verify_csrf_value"]
