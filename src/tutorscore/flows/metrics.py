"""After-metrics, nightly-recompute and refresh-tutor: every write of tutor_metrics.

Analytics computes the rules' metrics, flags and labels; whenever it has written
rows, `after_metrics` runs on them in the same transaction: the churn model scores
them (and, past its gate, sets the label), alerts are detected on the result, and
once the transaction commits the alerts go to the webhook.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from tutorscore.analytics.service import Bind, RunSummary, compute_all, update_tutor
from tutorscore.config import RulesConfig, Settings, get_settings
from tutorscore.interventions.alerts import deliver_in_background, detect_alerts
from tutorscore.prediction.churn import apply_churn_scores


def after_metrics(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    tutor_ids: list[str] | None = None,
    settings: Settings | None = None,
) -> int:
    """Churn scoring, then alert detection, then webhooks, for the rows written at `as_of`.

    `tutor_ids` None: every tutor's row at `as_of`. Returns the rows the churn model
    scored (0 without a model). Analytics calls it as its `after_write` step.
    """
    settings = settings or get_settings()
    applied = apply_churn_scores(
        session, as_of=as_of, rules=rules, settings=settings, tutor_ids=tutor_ids
    )
    found = detect_alerts(session, as_of=as_of, rules=rules, tutor_ids=tutor_ids)
    bind = session.get_bind()
    # An ORM session that owns its transaction tells us when it commits; a session
    # borrowed on a caller's connection does not: `tutorscore alerts deliver` (or the
    # next scoring pass) sends those.
    if found and settings.alert_webhook_url and isinstance(bind, Engine):
        event.listen(
            session,
            "after_commit",
            lambda _s: deliver_in_background(bind, rules=rules, settings=settings),
            once=True,
        )
    return applied.scored


def nightly_recompute(bind: Bind, *, as_of: datetime, rules: RulesConfig) -> RunSummary:
    """Every tutor's metrics at `as_of`, then after-metrics (`tutorscore analytics`, cron)."""
    return compute_all(bind, as_of=as_of, rules=rules, after_write=after_metrics)


def refresh_tutor(
    bind: Bind, tutor_id: str, *, rules: RulesConfig, as_of: datetime | None = None
) -> RunSummary:
    """One tutor's metrics (live when `as_of` is None), then after-metrics for that tutor."""
    return update_tutor(bind, tutor_id, rules=rules, as_of=as_of, after_write=after_metrics)
