"""Structured errors: every failure answers {"error": {"code", "message", "details"}}.

Pages (non-/api paths) get a small HTML error page instead, and a missing login
on a page redirects to /login.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from tutorscore.errors import UserError

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


class NotAuthenticated(UserError):
    status_code = 401
    code = "unauthorized"


class PayloadTooLarge(UserError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(UserError):
    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after: int, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after = retry_after


def is_page_request(request: Request) -> bool:
    path = request.url.path
    return not (path.startswith("/api") or path in ("/healthz", "/metrics", "/docs"))


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    if is_page_request(request):
        if status == 401 and request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        from tutorscore.web.templating import render_error

        return render_error(request, status, message, headers=headers)
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


async def user_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UserError)
    headers = None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    return _respond(request, exc.status_code, exc.code, exc.message, exc.details, headers)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    details = None if isinstance(exc.detail, str) else exc.detail
    headers = dict(exc.headers) if exc.headers else None
    return _respond(request, exc.status_code, code, message, details, headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form"):
        parts = parts[1:] or parts
    return ".".join(parts)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = []
    for err in exc.errors():
        loc = err.get("loc", ())
        details.append(
            {
                "field": _field_name(loc),
                "location": str(loc[0]) if loc else None,
                "message": f"{_field_name(loc)}: {err.get('msg', 'invalid')}",
                "type": err.get("type"),
            }
        )
    fields = ", ".join(sorted({d["field"] for d in details if d["field"]})) or "request"
    return _respond(request, 422, "validation_error", f"invalid input: {fields}", details)


async def out_of_range_handler(request: Request, exc: Exception) -> Response:
    """A number the database cannot store (e.g. an id beyond 64 bits) is the caller's mistake."""
    if "NUL" in str(exc):  # Postgres: text with a NUL character (bodies are checked earlier)
        return _respond(
            request,
            422,
            "validation_error",
            "a text value in the request contains a NUL character, which cannot be stored",
        )
    return _respond(request, 400, "out_of_range", "a value in the request is out of range")


async def unstorable_text_handler(request: Request, exc: Exception) -> Response:
    """A lone surrogate reached the database driver (bodies are checked earlier)."""
    return _respond(
        request,
        422,
        "validation_error",
        "a text value in the request contains an unpaired surrogate, which cannot be stored",
    )


# Seconds a client is told to wait when the database is busy or unreachable.
DATABASE_RETRY_AFTER_S = 5


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """The database could not be used now (SQLite's write lock held past the busy
    timeout by a long import, Postgres refusing connections): 503 with Retry-After,
    one log line without a traceback. Other errors of these types stay 500s."""
    import logging

    from tutorscore.evaluation.health import is_database_error, short_error

    if not is_database_error(exc):
        return await unexpected_error_handler(request, exc)
    locked = "database is locked" in str(exc)
    logging.getLogger("tutorscore.web").warning(
        "database unavailable for a request", extra={"error": short_error(exc)}
    )
    return _respond(
        request,
        503,
        "unavailable",
        "the database is busy with another write; retry shortly"
        if locked
        else "the database is unavailable; retry shortly",
        {"reason": "locked" if locked else "unreachable", "retry_after_s": DATABASE_RETRY_AFTER_S},
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """Last resort: log the traceback, answer 500 without leaking internals."""
    import logging

    logging.getLogger("tutorscore.web").exception("unhandled error", exc_info=exc)
    return _respond(request, 500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UserError, user_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DataError, out_of_range_handler)
    app.add_exception_handler(OverflowError, out_of_range_handler)
    app.add_exception_handler(UnicodeEncodeError, unstorable_text_handler)
    for db_error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(db_error, database_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
