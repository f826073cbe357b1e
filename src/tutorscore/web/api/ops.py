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
from tutorscore.evaluation.health import assess
from tutorscore.web.deps import State, get_state
from tutorscore.web.errors import error_body
from tutorscore.web.state import AppState

router = APIRouter(tags=["ops"])
log = logging.getLogger("tutorscore.web")


class WorkerHealth(BaseModel):
    state: str  # starting | running | database_unavailable | stopped | dead | stalled | missing
    alive: bool
    heartbeat_age_s: float | None
    error: str | None


class Health(BaseModel):
    status: str
    database: str
    version: str
    worker: WorkerHealth | None = None  # absent when this server runs no worker


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"description": "the database is unreachable or the worker is dead"}},
)
def healthz(state: State) -> Health | JSONResponse:
    """200 when the database answers a trivial query and the evaluation worker this
    server runs (if any) is alive; 503 otherwise, saying which."""
    worker = _worker_health(state)
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not healthy"
        log.warning("health check failed", extra={"error": str(exc)[:200]})
        details: dict[str, object] = {"database": "down"}
        if worker is not None:
            details["worker"] = worker.model_dump()
        return JSONResponse(
            error_body("unavailable", "database unreachable", details), status_code=503
        )
    if worker is not None and not worker.alive:
        log.warning("health check failed: worker %s", worker.state, extra={"worker": worker.state})
        return JSONResponse(
            error_body(
                "unavailable",
                f"evaluation worker is not running ({worker.state})",
                {"database": state.engine.dialect.name, "worker": worker.model_dump()},
            ),
            status_code=503,
        )
    return Health(
        status="ok", database=state.engine.dialect.name, version=__version__, worker=worker
    )


def _worker_health(state: AppState) -> WorkerHealth | None:
    if state.worker_status is None:
        return None
    return WorkerHealth.model_validate(assess(state.worker_status()))


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format; queue, evaluation and LLM numbers are read from the DB now."""
    get_state(request)
    registry = request.app.state.metrics_registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
