"""Alerts (a tutor turned high risk, a first session went badly): recorded, then sent on.

Detection runs inside the analytics transaction (after churn scoring) and only
adds rows; delivery is a separate step after commit, so a slow or dead webhook
never holds up analytics. One alert per tutor and flag within
`interventions.alert_dedup_days`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session

from tutorscore.analytics.flags import CHURN_RISK
from tutorscore.config import RulesConfig, Settings, get_settings
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Alert, TutoringSession, TutorMetrics

log = logging.getLogger(__name__)

HIGH_RISK = CHURN_RISK.playbook_key
FIRST_SESSION_FAILED = "first_session_failed"
GIVE_UP_AFTER_PASSES = 5  # a delivery pass makes up to webhook_max_attempts tries


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _recent_alerts(session: Session, flag: str, tutor_ids: list[str], since: datetime) -> set[str]:
    if not tutor_ids:
        return set()
    return set(
        session.scalars(
            select(Alert.tutor_id).where(
                Alert.flag == flag, Alert.created_at >= since, Alert.tutor_id.in_(tutor_ids)
            )
        )
    )


def detect_alerts(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    tutor_ids: list[str] | None = None,
    now: datetime | None = None,
) -> list[Alert]:
    """Record new alerts for the tutor_metrics rows at `as_of` and recent first sessions."""
    now = now or utcnow()
    dedup = timedelta(days=rules.interventions.alert_dedup_days)
    since = now - dedup
    created: list[Alert] = []

    # 1. became high risk: high at as_of and not high in the tutor's previous row.
    current = select(TutorMetrics.tutor_id, TutorMetrics.churn_probability).where(
        TutorMetrics.as_of == as_of, TutorMetrics.churn_risk_label == "high"
    )
    if tutor_ids is not None:
        current = current.where(TutorMetrics.tutor_id.in_(tutor_ids))
    high = {r.tutor_id: r.churn_probability for r in session.execute(current)}
    if high:
        prev_as_of = (
            select(TutorMetrics.tutor_id, func.max(TutorMetrics.as_of).label("as_of"))
            .where(TutorMetrics.as_of < as_of, TutorMetrics.tutor_id.in_(list(high)))
            .group_by(TutorMetrics.tutor_id)
            .subquery()
        )
        was_high = set(
            session.scalars(
                select(TutorMetrics.tutor_id)
                .join(
                    prev_as_of,
                    and_(
                        prev_as_of.c.tutor_id == TutorMetrics.tutor_id,
                        prev_as_of.c.as_of == TutorMetrics.as_of,
                    ),
                )
                .where(TutorMetrics.churn_risk_label == "high")
            )
        )
        fresh = sorted(set(high) - was_high)
        recent = _recent_alerts(session, HIGH_RISK, fresh, since)  # once, not per tutor
        fresh = [t for t in fresh if t not in recent]
        for tutor_id in fresh:
            p = high[tutor_id]
            chance = "" if p is None else f" (churn probability {p:.0%})"
            created.append(
                Alert(
                    tutor_id=tutor_id,
                    flag=HIGH_RISK,
                    message=f"Tutor {tutor_id} became high churn risk{chance}",
                    payload={"as_of": _iso(as_of), "churn_probability": p},
                    created_at=now,
                )
            )

    # 2. a first session failed badly: rated <= 1, or the student left after it.
    s = TutoringSession
    failed = select(
        s.tutor_id, s.session_id, s.student_rating, s.student_churned_after_session
    ).where(
        s.status == "completed",
        s.is_first_session.is_(True),
        s.scheduled_start_at > as_of - dedup,
        s.scheduled_start_at <= as_of,
        or_(s.student_rating <= 1, s.student_churned_after_session.is_(True)),
    )
    if tutor_ids is not None:
        failed = failed.where(s.tutor_id.in_(tutor_ids))
    per_tutor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in session.execute(failed.order_by(s.scheduled_start_at)):
        per_tutor[r.tutor_id].append(
            {
                "session_id": r.session_id,
                "student_rating": r.student_rating,
                "student_churned_after_session": bool(r.student_churned_after_session),
            }
        )
    already = _recent_alerts(session, FIRST_SESSION_FAILED, list(per_tutor), since)
    for tutor_id, sessions in sorted(per_tutor.items()):
        if tutor_id in already:
            continue
        ids = ", ".join(x["session_id"] for x in sessions[:5])
        created.append(
            Alert(
                tutor_id=tutor_id,
                flag=FIRST_SESSION_FAILED,
                message=(
                    f"Tutor {tutor_id}: {len(sessions)} first session(s) failed badly "
                    f"(rating <= 1 or the student left): {ids}"
                ),
                payload={"as_of": _iso(as_of), "sessions": sessions},
                created_at=now,
            )
        )
    session.add_all(created)
    session.flush()
    return created


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "alert_id": alert.id,
        "tutor_id": alert.tutor_id,
        "flag": alert.flag,
        "message": alert.message,
        "created_at": _iso(alert.created_at),
        "details": alert.payload,
    }


def _retry_after(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after")
    try:
        return min(max(float(value), 0.0), 60.0) if value is not None else default
    except ValueError:
        return default


def post_with_retries(
    client: httpx.Client,
    url: str,
    body: dict[str, Any],
    *,
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, int, str | None]:
    """POST JSON; retry connection errors, timeouts, 429 and 5xx with exponential backoff.

    Returns (delivered, attempts made, last error). Other 4xx answers are final.
    """
    error: str | None = None
    for attempt in range(1, attempts + 1):
        delay = backoff * 2 ** (attempt - 1)
        try:
            response = client.post(url, json=body)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 300:
                return True, attempt, None
            error = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                return False, attempt, error
            if response.status_code == 429:
                delay = _retry_after(response, delay)
        if attempt < attempts:
            sleep(delay)
    return False, attempts, error


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    skipped: str | None = None


def deliver_pending(
    engine: Engine,
    *,
    rules: RulesConfig,
    settings: Settings | None = None,
    limit: int = 200,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Send undelivered alerts to Settings.alert_webhook_url, oldest first."""
    settings = settings or get_settings()
    url = settings.alert_webhook_url
    if not url:
        return DeliveryReport(skipped="no alert webhook configured (TUTORSCORE_ALERT_WEBHOOK_URL)")
    cfg = rules.interventions
    give_up = cfg.webhook_max_attempts * GIVE_UP_AFTER_PASSES
    with transaction(engine) as session:
        pending = list(
            session.scalars(
                select(Alert)
                .where(Alert.delivered_at.is_(None), Alert.delivery_attempts < give_up)
                .order_by(Alert.id)
                .limit(limit)
            )
        )
        session.expunge_all()
    report = DeliveryReport()
    with httpx.Client(timeout=cfg.webhook_timeout_seconds) as client:
        for alert in pending:
            ok, tries, error = post_with_retries(
                client,
                url,
                alert_payload(alert),
                attempts=cfg.webhook_max_attempts,
                backoff=cfg.webhook_backoff_seconds,
                sleep=sleep,
            )
            with transaction(engine) as session:
                row = session.get(Alert, alert.id)
                if row is None:
                    continue
                row.delivery_attempts = (row.delivery_attempts or 0) + tries
                row.last_error = error
                if ok:
                    row.delivered_at = utcnow()
            if ok:
                report.delivered += 1
            else:
                report.failed += 1
                log.warning("alert %s not delivered after %s tries: %s", alert.id, tries, error)
    return report


def deliver_in_background(engine: Engine, *, rules: RulesConfig, settings: Settings) -> None:
    """Fire-and-forget delivery after a commit (the request or analytics run does not wait)."""
    if not settings.alert_webhook_url:
        return

    def run() -> None:
        try:
            deliver_pending(engine, rules=rules, settings=settings)
        except Exception:  # a background thread must not die silently
            log.exception("alert delivery failed")

    threading.Thread(target=run, name="tutorscore-alerts", daemon=True).start()


def list_alerts(
    session: Session, *, tutor_id: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    query = select(Alert).order_by(Alert.id.desc()).limit(limit)
    if tutor_id is not None:
        query = query.where(Alert.tutor_id == tutor_id)
    return [
        {
            **alert_payload(a),
            "delivered_at": None if a.delivered_at is None else _iso(a.delivered_at),
            "delivery_attempts": a.delivery_attempts,
            "last_error": a.last_error,
        }
        for a in session.scalars(query)
    ]
