"""Pure-ASGI middleware: request id, JSON access log, latency histogram, body size cap."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tutorscore.auth.audit import current_request_id
from tutorscore.web.errors import PayloadTooLarge, error_body

log = logging.getLogger("tutorscore.web.access")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContextMiddleware:
    """Outermost layer: everything below sees the request id and a bounded body."""

    def __init__(self, app: ASGIApp, *, latency: Histogram, max_body_bytes: int) -> None:
        self.app = app
        self.latency = latency
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = raw_id if _REQUEST_ID_RE.match(raw_id) else uuid.uuid4().hex
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 500
        rid_header = (b"x-request-id", request_id.encode())
        too_large = {"hit": False, "sent": False}

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if too_large["hit"]:
                # The body overflowed while the app read it; whatever the app answers
                # (FastAPI turns read errors into 400), the client gets one 413.
                if not too_large["sent"]:
                    too_large["sent"] = True
                    status = 413
                    await self._too_large(send, rid_header)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
                status = 413
                await self._too_large(send, rid_header)
                return
            await self.app(scope, self._bounded(receive, too_large), send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.latency.labels(method, template, str(status)).observe(elapsed)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": scope.get("path"),
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )
            current_request_id.reset(token)

    def _bounded(self, receive: Receive, too_large: dict[str, bool]) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large["hit"] = True
                    raise PayloadTooLarge(f"request body larger than {limit} bytes")
            return message

        return wrapped

    async def _too_large(self, send: Send, rid_header: tuple[bytes, bytes]) -> None:
        body = json.dumps(
            error_body("payload_too_large", f"request body larger than {self.max_body_bytes} bytes")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    rid_header,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extras."""

    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = current_request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the tutorscore loggers and uvicorn's error log."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    for name in ("tutorscore", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
