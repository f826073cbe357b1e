"""App factory: the routers of web/api/* and web/dashboard/*, mounted in ROUTERS order."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine, event
from starlette.middleware.sessions import SessionMiddleware

from tutorscore import __version__
from tutorscore.auth.throttle import LoginThrottle
from tutorscore.config import RulesConfig, Settings, get_rules, get_settings
from tutorscore.db.engine import make_engine, session_factory
from tutorscore.web.api import analytics as analytics_api
from tutorscore.web.api import auth as auth_api
from tutorscore.web.api import evaluation as evaluation_api
from tutorscore.web.api import interventions as interventions_api
from tutorscore.web.api import llm as llm_api
from tutorscore.web.api import ops as ops_api
from tutorscore.web.api import prediction as prediction_api
from tutorscore.web.api import reviews as reviews_api
from tutorscore.web.api import seed as seed_api
from tutorscore.web.api import sessions as sessions_api
from tutorscore.web.api import tutors as tutors_api
from tutorscore.web.api import users as users_api
from tutorscore.web.body_check import StorableTextMiddleware
from tutorscore.web.dashboard import auth as auth_pages
from tutorscore.web.dashboard import first_sessions as first_sessions_pages
from tutorscore.web.dashboard import interventions as interventions_pages
from tutorscore.web.dashboard import model as model_pages
from tutorscore.web.dashboard import no_shows as no_shows_pages
from tutorscore.web.dashboard import overview as overview_pages
from tutorscore.web.dashboard import reviews as reviews_pages
from tutorscore.web.dashboard import tutors as tutors_pages
from tutorscore.web.errors import install_error_handlers
from tutorscore.web.metrics import build_registry
from tutorscore.web.middleware import RequestContextMiddleware
from tutorscore.web.report_cache import ReportCache
from tutorscore.web.security import SecurityHeadersMiddleware
from tutorscore.web.state import AppState
from tutorscore.web.templating import STATIC_DIR

# The routers in mounting order (the first match wins): the JSON API, then the pages.
ROUTERS: tuple[APIRouter, ...] = (
    ops_api.router,
    auth_api.router,
    users_api.router,
    tutors_api.router,
    sessions_api.router,
    seed_api.router,
    analytics_api.router,
    evaluation_api.router,
    llm_api.router,
    interventions_api.router,
    prediction_api.router,
    reviews_api.router,
    auth_pages.router,
    overview_pages.router,
    tutors_pages.router,
    first_sessions_pages.router,
    no_shows_pages.router,
    interventions_pages.router,
    model_pages.router,
    reviews_pages.router,
)

# Transcripts of several MB are valid input; anything beyond this is refused with 413.
MAX_BODY_BYTES = 32 * 1024 * 1024
SESSION_COOKIE = "tutorscore_session"
SESSION_MAX_AGE = 12 * 3600


# Memory-map the SQLite file in the web process (up to this size). Pages then come
# straight from the OS page cache: a tutor page reads ~150 session rows scattered over
# a large file, and through SQLite's default 2 MB page cache (read() per page) that
# cost ~0.3-0.6 ms per query where the map costs ~0.05-0.1 (docs/web.md "Performance").
SQLITE_MMAP_BYTES = 2**31 - 2**16


def _sqlite_read_tuning(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cur.close()


def tune_sqlite(engine: Engine) -> None:
    """Memory-map a SQLite engine's connections (those opened from now on); once per engine."""
    if engine.dialect.name == "sqlite" and not event.contains(
        engine, "connect", _sqlite_read_tuning
    ):
        event.listen(engine, "connect", _sqlite_read_tuning)


# A serving process allocates many short-lived objects per request (rows, report dicts,
# template output). With the default gen-0 threshold (700) the collector runs every few
# hundred allocations and promotes whatever the 8 in-flight requests hold at that moment;
# the promoted garbage then triggers full collections that walk every object of the
# process (SQLAlchemy, scikit-learn, NumPy: ~120-180 ms each, every second or two under
# load, stalling every request in flight). Serving processes freeze what exists after
# start-up (never collected again) and collect the young generation less often.
GC_THRESHOLDS = (20_000, 20, 10)


def tune_gc_for_serving() -> None:
    """Call once in a serving process, after the app is built and before it serves."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def create_app(
    settings: Settings | None = None,
    rules: RulesConfig | None = None,
    engine: Engine | None = None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    worker_status: Callable[[], dict[str, Any] | None] | None = None,
) -> FastAPI:
    """The app. `worker_status`: how to read the evaluation worker's status
    (`WorkerStatus.snapshot`, or a status file of another process) for /healthz."""
    settings = settings or get_settings()
    rules = rules or get_rules()
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    tune_sqlite(engine)
    state = AppState(
        settings=settings,
        rules=rules,
        engine=engine,
        sessions=session_factory(engine),
        login_throttle=LoginThrottle(engine),
        report_cache=ReportCache(ttl=settings.report_cache_ttl),
        worker_status=worker_status,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync handlers run in AnyIO's thread pool (40 threads by default). CPU-bound
        # handlers share one GIL, so 8 requests in 8 threads all progress slowly and
        # hand the GIL back and forth at every query; a few threads finish requests in
        # arrival order instead, with less switching (docs/web.md "Performance").
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = settings.web_threads
        yield
        if owns_engine:
            engine.dispose()

    # Swagger UI and ReDoc served from the installed package, never a CDN.
    app = FastAPIOffline(
        title="tutorscore",
        version=__version__,
        lifespan=lifespan,
        description=(
            "Tutor quality scoring: per-tutor metrics, flags with reasons, session "
            "evaluations, interventions. Authenticate with `Authorization: Bearer <token>` "
            "(create one with `tutorscore tokens create --username U`). Errors answer "
            '`{"error": {"code", "message", "details"}}`.'
        ),
    )
    app.state.tutorscore = state
    registry, latency = build_registry(state)
    app.state.metrics_registry = registry
    install_error_handlers(app)
    # innermost: sees the session (for error pages) and a body already capped in size
    app.add_middleware(StorableTextMiddleware)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.resolved_secret_key(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=False,  # Secure is added per request by SecurityHeadersMiddleware
    )
    app.add_middleware(
        SecurityHeadersMiddleware, cookie_name=SESSION_COOKIE, cookie_secure=settings.cookie_secure
    )
    app.add_middleware(RequestContextMiddleware, latency=latency, max_body_bytes=max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app


def create_served_app() -> FastAPI:
    """Factory for `uvicorn --factory` worker processes: JSON logs, settings from the env."""
    from tutorscore.web.middleware import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    app = create_app(settings, worker_status=worker_status_from_env())
    tune_gc_for_serving()
    return app


# set by `serve --workers N` for its web processes: where the worker thread of the
# serving process writes its status (evaluation.health.WorkerStatus)
WORKER_STATUS_FILE_ENV = "TUTORSCORE_WORKER_STATUS_FILE"


def worker_status_from_env() -> Callable[[], dict[str, Any] | None] | None:
    path = os.environ.get(WORKER_STATUS_FILE_ENV)
    if not path:
        return None
    from tutorscore.evaluation.health import read_status_file

    return lambda: read_status_file(path)
