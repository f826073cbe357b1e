"""Seed-demo and seed-synthetic: a deterministic data set, evaluated and analysed.

seed-demo is `tutorscore demo` (what `make run` does) and the browser tests' and
screenshots' database (`web.devserver.prepare_demo`): schema, synthetic data (with,
for the demo, a coaching history and coach reviews), the heuristic judge on every
transcript (and, when an LLM is configured, the LLM judge on a few reviewed
sessions), weekly metrics snapshots for the risk-over-time chart, the nightly
recompute, then churn and no-show models trained on the generated outcomes, alert delivery
and a demo login.
seed-synthetic is `tutorscore seed` and POST /api/seed-data: the data, then the
nightly recompute unless asked not to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, TypeVar

from sqlalchemy import Engine, func, select

from tutorscore.analytics.history import compute_weekly_history
from tutorscore.analytics.service import RunSummary
from tutorscore.auth.users import ensure_demo_admin
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import transaction
from tutorscore.db.migrate import upgrade
from tutorscore.db.models import Review, SessionEvaluation
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.evaluation.worker import evaluate_pending, run_worker
from tutorscore.flows.metrics import after_metrics, nightly_recompute
from tutorscore.ingest.synthetic import ProgressCallback, SeedSummary
from tutorscore.ingest.synthetic import seed as seed_data
from tutorscore.ingest.synthetic_coaching import DemoHistory
from tutorscore.interventions.alerts import DeliveryReport, deliver_pending
from tutorscore.prediction.churn import train_and_apply
from tutorscore.prediction.no_show_model import train_no_show_model

T = TypeVar("T")
# extra transcripts in the last weeks of the demo (the judge's recent trend has data)
RECENT_TRANSCRIPTS = 160
# weekly snapshots of every tutor's metrics (the overview's risk-over-time chart)
HISTORY_WEEKS = 12
# reviewed sessions the LLM judge evaluates in the demo, when an LLM is configured
LLM_DEMO_EVALUATIONS = 8


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
    demo_extras: bool = True,
    coaching: bool = True,
    history_weeks: int = HISTORY_WEEKS,
    train_churn_model: bool = True,
    deliver_alerts: bool = True,
    demo_login: bool = True,
    say: Callable[[str], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> DemoResult:
    """Schema, seed, evaluate, [weekly history], recompute, [churn model], [alerts], [login].

    `demo_extras` adds recent transcripts and, with `coaching`, the synthetic coaching
    history and coach reviews (and their LLM evaluations when an LLM is configured);
    `history_weeks` 0 stores no weekly snapshots; `train_churn_model` trains the no-show
    model too (the /model page shows both gates). `say` hears one line per numbered
    step as it finishes (the CLI numbers them, `demo_steps` says how many), `note`
    the lines in between.
    """
    tell = say or (lambda _text: None)
    aside = note or (lambda _text: None)
    upgrade(engine)
    tell("schema ready")
    history = None
    if demo_extras:
        transcripts = (sizes or {}).get("transcripts")
        history = DemoHistory(
            rules=rules,
            seed=seed,
            coaching=coaching,
            reviews=coaching,
            recent_transcripts=RECENT_TRANSCRIPTS
            if transcripts is None
            else min(RECENT_TRANSCRIPTS, transcripts),
        )
    extras = () if history is None else (history,)
    seeded = seed_data(engine, seed=seed, as_of=as_of, extras=extras, **(sizes or {}))
    tell(f"seeded {seeded}" + ("" if history is None else f"; {history.summary(as_of.date())}"))
    evaluated = _run_coroutine(
        lambda: evaluate_pending(engine, settings, rules, after_write=after_metrics)
    )
    tell(f"evaluated {evaluated} sessions with the heuristic judge")
    if demo_extras and coaching:
        aside(demo_llm_evaluations(engine, settings=settings, rules=rules))
    if history_weeks:
        mark = time.perf_counter()
        past = compute_weekly_history(engine, as_of=as_of, rules=rules, weeks=history_weeks)
        tell(
            f"metrics history: {len(past)} weekly snapshots before the current one "
            f"in {time.perf_counter() - mark:.1f} s"
        )
    analytics = nightly_recompute(engine, as_of=as_of, rules=rules)
    tell(f"analytics computed: {analytics}")
    trained = None
    if train_churn_model:
        # The generator draws each leaver's churned_on after `as_of`: those outcomes are
        # known, so the demo trains on them (a real history uses --labels-until = as_of).
        known = as_of + timedelta(days=rules.prediction.horizon_days)
        trained = train_and_apply(engine, as_of=as_of, rules=rules, labels_until=known)
        tell(f"churn model: {trained}")
        no_shows = train_no_show_model(engine, as_of=as_of, rules=rules, settings=settings)
        verdict = "model used" if no_shows.gate_passed else "the formula stays"
        tell(
            f"no-show model {no_shows.version}: held-out AUC {_auc(no_shows.model_auc)} "
            f"vs formula {_auc(no_shows.formula_auc)}, {verdict}"
        )
    alerts = deliver_pending(engine, rules=rules, settings=settings) if deliver_alerts else None
    login = ensure_demo_admin(engine) if demo_login else None
    return DemoResult(seeded, evaluated, analytics, trained, alerts, login)


def demo_steps(*, history_weeks: int = HISTORY_WEEKS, train_churn_model: bool = True) -> int:
    """How many numbered steps `seed_demo` reports through `say`."""
    return 4 + bool(history_weeks) + 2 * bool(train_churn_model)


def demo_llm_evaluations(engine: Engine, *, settings: Settings, rules: RulesConfig) -> str:
    """A handful of LLM-judge evaluations of reviewed sessions, only when an LLM is set up."""
    if not settings.llm_enabled:
        return "LLM judge: not configured (set TUTORSCORE_LLM_BASE_URL), no LLM evaluations"
    with transaction(engine) as s:
        ids = list(
            s.scalars(
                select(Review.session_id)
                .distinct()
                .order_by(Review.session_id)
                .limit(LLM_DEMO_EVALUATIONS)
            )
        )
        queued = enqueue_evaluations(
            s, judge="llm", session_ids=ids, pending=False, limit=None, rules=rules
        )
    result = run_worker(engine, settings, rules, once=True, use_llm=True, after_write=after_metrics)
    with transaction(engine) as s:  # the worker's count includes any other judge's jobs
        evaluated = s.scalar(
            select(func.count(func.distinct(SessionEvaluation.session_id))).where(
                SessionEvaluation.judge == "llm", SessionEvaluation.session_id.in_(ids)
            )
        )
    return (
        f"LLM judge: {evaluated} of {queued} reviewed sessions evaluated"
        f"{f', {result.dead} jobs failed' if result.dead else ''}"
    )


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end from synchronous code; in a thread of its own when
    the caller is already inside an event loop (Playwright's browser tests)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
