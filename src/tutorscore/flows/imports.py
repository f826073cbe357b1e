"""After-import: what a bundle import triggers, once for the whole bundle.

`tutorscore import` runs it when the import created or changed rows: the new
transcripts are queued for evaluation, every tutor's metrics are recomputed
(set-based, then after-metrics), and the alerts that raised are delivered.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from tutorscore.analytics.service import RunSummary
from tutorscore.config import RulesConfig, Settings
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.evaluation.queue import enqueue_evaluations
from tutorscore.flows.metrics import nightly_recompute
from tutorscore.interventions.alerts import DeliveryReport, deliver_pending


@dataclass(frozen=True)
class AfterImport:
    queued: int  # evaluation jobs queued for transcripts not yet evaluated
    analytics: RunSummary
    alerts: DeliveryReport


def after_import(
    engine: Engine, *, rules: RulesConfig, settings: Settings | None = None
) -> AfterImport:
    """Queue pending evaluations, recompute every tutor at now, deliver alerts."""
    with transaction(engine) as s:
        queued = enqueue_evaluations(s, pending=True, rules=rules)
    summary = nightly_recompute(engine, as_of=utcnow().replace(microsecond=0), rules=rules)
    sent = deliver_pending(engine, rules=rules, settings=settings)
    return AfterImport(queued=queued, analytics=summary, alerts=sent)
