"""Operations: health check and Prometheus metrics (no login, for probes and scrapers)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from tutorscore import __version__
from tutorscore.web.deps import State, get_state
from tutorscore.web.errors import error_body

router = APIRouter(tags=["ops"])
log = logging.getLogger("tutorscore.web")


class Health(BaseModel):
    status: str
    database: str
    version: str


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"description": "the database is unreachable"}},
)
def healthz(state: State) -> Health | JSONResponse:
    """200 when the database answers a trivial query, 503 otherwise."""
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not healthy"
        log.warning("health check failed", extra={"error": str(exc)[:200]})
        return JSONResponse(
            error_body("unavailable", "database unreachable", {"database": "down"}),
            status_code=503,
        )
    return Health(status="ok", database=state.engine.dialect.name, version=__version__)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format; queue, evaluation and LLM numbers are read from the DB now."""
    get_state(request)
    registry = request.app.state.metrics_registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
