"""Pre-serialised JSON responses for the hot read endpoints.

An endpoint that returns a `Response` skips FastAPI's response-model validation and
serialisation (a Pydantic model built per item and per reason, then dumped): the
report dicts are already in the documented shape (docs/data-format.md; the report tests
check it), so they are encoded once, by pydantic-core's JSON encoder. The route
keeps its `response_model` for the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from starlette.responses import Response


def json_response(content: Any, *, status_code: int = 200) -> Response:
    """`content` (dicts, lists, str, numbers, None) as JSON; NaN/inf as null like Pydantic."""
    return Response(
        to_json(content, inf_nan_mode="null"),
        status_code=status_code,
        media_type="application/json",
    )


__all__ = ["json_response"]
