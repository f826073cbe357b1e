"""What the app holds for its lifetime: settings, rules, the engine and web helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anyio import CapacityLimiter, Semaphore
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tutorscore.auth.throttle import LoginThrottle
from tutorscore.config import RulesConfig, Settings
from tutorscore.web.computed_reports import ComputedReports
from tutorscore.web.report_cache import ReportCache


@dataclass
class AppState:
    settings: Settings
    rules: RulesConfig
    engine: Engine
    sessions: sessionmaker[Session]
    login_throttle: LoginThrottle
    report_cache: ReportCache = field(default_factory=ReportCache)
    # reports at an as_of no stored run covers (web.computed_reports)
    computed_reports: ComputedReports = field(default_factory=ComputedReports)
    # write requests in flight and the threads that commit them (web.deps.get_db)
    write_slots: Semaphore | None = None
    finish_limiter: CapacityLimiter | None = None
    # the evaluation worker's status snapshot (evaluation.health), when this app
    # reports one: /healthz answers 503 and /metrics tutorscore_worker_up 0 when it is dead
    worker_status: Callable[[], dict[str, Any] | None] | None = None
