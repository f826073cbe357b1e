"""Seed-demo and seed-synthetic: a deterministic data set, evaluated and analysed.

seed-demo is `tutorscore demo` (what `make run` does) and the browser tests' and
screenshots' database (`web.devserver.prepare_demo`): schema, synthetic data, the
heuristic judge on every transcript, the nightly recompute, then (for the demo) a
churn model trained on the generated outcomes, alert delivery and a demo login.
seed-synthetic is `tutorscore seed` and POST /api/seed-data: the data, then the
nightly recompute unless asked not to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, TypeVar

from sqlalchemy import Engine

from tutorscore.analytics.service import RunSummary
from tutorscore.auth.users import ensure_demo_admin
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.migrate import upgrade
from tutorscore.evaluation.worker import evaluate_pending
from tutorscore.flows.metrics import after_metrics, nightly_recompute
from tutorscore.ingest.synthetic import ProgressCallback, SeedSummary
from tutorscore.ingest.synthetic import seed as seed_data
from tutorscore.interventions.alerts import DeliveryReport, deliver_pending
from tutorscore.prediction.churn import train_and_apply

T = TypeVar("T")


class SeedSizes(TypedDict, total=False):
    """How much synthetic data; a missing key keeps `ingest.synthetic.seed`'s default."""

    tutors: int
    students: int
    sessions: int
    days: int
    transcripts: int


@dataclass(frozen=True)
class DemoResult:
    seeded: SeedSummary
    evaluated: int  # new heuristic evaluations
    analytics: RunSummary
    churn_model: str | None  # the training summary; None when not trained
    alerts: DeliveryReport | None  # None when delivery was not asked for
    login: tuple[str, str] | None  # demo admin (username, password)


def seed_synthetic(
    engine: Engine,
    *,
    rules: RulesConfig,
    as_of: datetime | None,
    seed: int = 42,
    sizes: SeedSizes | None = None,
    analytics: bool = True,
    progress: ProgressCallback | None = None,
) -> tuple[SeedSummary, RunSummary | None]:
    """Replace the synthetic data, then recompute every tutor at its as_of (`analytics`)."""
    summary = seed_data(engine, seed=seed, as_of=as_of, progress=progress, **(sizes or {}))
    if not analytics:
        return summary, None
    return summary, nightly_recompute(engine, as_of=summary.as_of, rules=rules)


def seed_demo(
    engine: Engine,
    *,
    settings: Settings,
    rules: RulesConfig,
    as_of: datetime,
    seed: int = 42,
    sizes: SeedSizes | None = None,
    train_churn_model: bool = True,
    deliver_alerts: bool = True,
    demo_login: bool = True,
    say: Callable[[str], None] | None = None,
) -> DemoResult:
    """Schema, seed, evaluate, recompute, [train the churn model], [alerts], [login].

    `say` hears one line per step as it finishes (the CLI numbers and prints them).
    """
    tell = say or (lambda _text: None)
    upgrade(engine)
    tell("schema ready")
    seeded = seed_data(engine, seed=seed, as_of=as_of, **(sizes or {}))
    tell(f"seeded {seeded}")
    evaluated = _run_coroutine(
        lambda: evaluate_pending(engine, settings, rules, after_write=after_metrics)
    )
    tell(f"evaluated {evaluated} sessions with the heuristic judge")
    analytics = nightly_recompute(engine, as_of=as_of, rules=rules)
    tell(f"analytics computed: {analytics}")
    trained = None
    if train_churn_model:
        # The generator draws each leaver's churned_on after `as_of`: those outcomes are
        # known, so the demo trains on them (a real history uses --labels-until = as_of).
        known = as_of + timedelta(days=rules.prediction.horizon_days)
        trained = train_and_apply(engine, as_of=as_of, rules=rules, labels_until=known)
        tell(f"churn model: {trained}")
    alerts = deliver_pending(engine, rules=rules, settings=settings) if deliver_alerts else None
    login = ensure_demo_admin(engine) if demo_login else None
    return DemoResult(seeded, evaluated, analytics, trained, alerts, login)


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end from synchronous code; in a thread of its own when
    the caller is already inside an event loop (Playwright's browser tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
