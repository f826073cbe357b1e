"""Errors that mean "the user asked for something wrong", not "the program broke".

The CLI prints them without a traceback and exits 1; the web layer turns them
into structured JSON with the status code they carry.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(UserError):
    status_code = 404
    code = "not_found"


class Conflict(UserError):
    status_code = 409
    code = "conflict"


class ValidationFailed(UserError):
    """Input rows or fields failed validation; `details` lists every problem."""

    status_code = 422
    code = "validation_error"


class PermissionDenied(UserError):
    status_code = 403
    code = "forbidden"
