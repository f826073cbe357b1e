"""App factory. Routers are collected from web/api/* and web/dashboard/* modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import import_module

from fastapi import APIRouter, FastAPI
from sqlalchemy import Engine

from tutorscore import __version__
from tutorscore.config import RulesConfig, Settings, get_rules, get_settings
from tutorscore.db.engine import make_engine, session_factory
from tutorscore.web.state import AppState

API_MODULES = (
    "ops",
    "auth",
    "tutors",
    "sessions",
    "analytics",
    "evaluation",
    "interventions",
    "prediction",
)
DASHBOARD_MODULES = ("auth", "overview", "tutors", "first_sessions", "interventions")


def _routers(package: str, names: tuple[str, ...]) -> list[APIRouter]:
    found: list[APIRouter] = []
    for name in names:
        try:
            module = import_module(f"tutorscore.web.{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"tutorscore.web.{package}.{name}":
                continue
            raise
        found.append(module.router)
    return found


def create_app(
    settings: Settings | None = None,
    rules: RulesConfig | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    rules = rules or get_rules()
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url)
    state = AppState(
        settings=settings, rules=rules, engine=engine, sessions=session_factory(engine)
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            engine.dispose()

    app = FastAPI(title="tutorscore", version=__version__, lifespan=lifespan)
    app.state.tutorscore = state
    for router in _routers("api", API_MODULES) + _routers("dashboard", DASHBOARD_MODULES):
        app.include_router(router)
    return app
