"""Refuse request bodies with text no database can store: 422 naming the field.

JSON allows `"\\u0000"` and a lone `"\\ud800"`; both decode to Python strings that
Postgres (NUL) or either backend's UTF-8 encoding (surrogates) refuse deep inside a
handler, which used to answer 500 (or 400 "out_of_range"). Form posts can carry NUL
as `%00`. This middleware reads the (already size-capped) body of JSON and form
writes, and only when the raw bytes contain such an escape parses it and walks every
key and value: a body with one answers 422 `validation_error` listing each field
(`turns.3.text: an unpaired surrogate U+D800 at position 5 cannot be stored`); any
other body goes on unchanged (a valid surrogate pair such as an emoji passes).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tutorscore.textcheck import printable, text_problem

_JSON_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_FORM_SUSPECT = re.compile(rb"%00")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _walk(value: Any, path: list[str], out: list[dict[str, Any]]) -> None:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            field = ".".join(path) or "body"
            out.append(
                {
                    "field": field,
                    "location": "body",
                    "message": f"{field}: {problem} cannot be stored",
                    "type": "unstorable_text",
                }
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            key_problem = text_problem(key)
            if key_problem is not None:
                name = printable(".".join([*path, key]))
                out.append(
                    {
                        "field": name,
                        "location": "body",
                        "message": f"{name}: the key has {key_problem}",
                        "type": "unstorable_text",
                    }
                )
                continue
            _walk(item, [*path, key], out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, [*path, str(i)], out)


def body_problems(content_type: str, body: bytes) -> list[dict[str, Any]]:
    """The unstorable strings in a JSON or form body (empty when none, or not parseable)."""
    out: list[dict[str, Any]] = []
    if "json" in content_type:
        if not _JSON_SUSPECT.search(body):
            return out
        try:
            parsed = json.loads(body)
        except ValueError:  # FastAPI answers malformed JSON itself
            return out
        _walk(parsed, [], out)
    elif "application/x-www-form-urlencoded" in content_type and _FORM_SUSPECT.search(body):
        pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8")
        for key, item in pairs:
            _walk({key: item}, [], out)
    return out


class StorableTextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if "json" not in content_type and "form-urlencoded" not in content_type:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            try:
                message = await receive()
            except Exception as exc:  # e.g. the body cap (413): the app reports it as before
                await self.app(scope, _raising(exc), send)
                return
            if message["type"] != "http.request":  # client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        problems = body_problems(content_type, body)
        if not problems:
            replay = _replay([{"type": "http.request", "body": body}], receive)
            await self.app(scope, replay, send)
            return
        from tutorscore.web.errors import _respond

        fields = ", ".join(sorted({p["field"] for p in problems}))
        response = _respond(
            Request(scope), 422, "validation_error", f"invalid input: {fields}", problems
        )
        await response(scope, receive, send)


def _raising(exc: Exception) -> Receive:
    async def receive() -> Message:
        raise exc

    return receive


def _replay(messages: list[Message], then: Receive) -> Receive:
    """Hand out the buffered messages, then whatever the server sends (a disconnect)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        return await then()

    return receive


__all__ = ["StorableTextMiddleware", "body_problems"]
