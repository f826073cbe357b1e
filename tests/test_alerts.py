"""Alerts: detection and deduplication, and webhook delivery against a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import Alert, Student, Tutor, TutoringSession, TutorMetrics
from tutorscore.interventions import alerts

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
EARLIER = AS_OF - timedelta(days=1)


class Hook:
    """A webhook receiver on 127.0.0.1 answering with the scripted status codes."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = codes
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                code = hook.codes.pop(0) if hook.codes else 200
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"


@pytest.fixture
def hook_factory() -> Iterator[Any]:
    started: list[Hook] = []

    def make(codes: list[int]) -> Hook:
        hook = Hook(codes)
        hook.thread.start()
        started.append(hook)
        return hook

    yield make
    for hook in started:
        hook.server.shutdown()
        hook.server.server_close()
        hook.thread.join(timeout=5)


@pytest.fixture
def fast_rules(rules: RulesConfig) -> RulesConfig:
    ivs = rules.interventions.model_copy(
        update={"webhook_backoff_seconds": 0.01, "webhook_max_attempts": 4}
    )
    return rules.model_copy(update={"interventions": ivs})


def _metrics(s: Any, tutor_id: str, as_of: datetime, label: str, p: float | None = None) -> None:
    s.add(
        TutorMetrics(
            tutor_id=tutor_id,
            as_of=as_of,
            window_days=30,
            config_hash="x",
            churn_risk_label=label,
            churn_probability=p,
        )
    )


def _setup(engine: Engine) -> None:
    with transaction(engine) as s:
        s.add(Student(student_id="S"))
        for tid in ("A", "B", "C", "D"):
            s.add(Tutor(tutor_id=tid, name=tid, subjects=["Math"]))
        s.flush()
        _metrics(s, "A", EARLIER, "low")
        _metrics(s, "A", AS_OF, "high", 0.72)  # became high
        _metrics(s, "B", EARLIER, "high")
        _metrics(s, "B", AS_OF, "high")  # was already high
        _metrics(s, "C", AS_OF, "high")  # first row ever and high
        _metrics(s, "D", AS_OF, "medium")
        for i, (tid, rating, churned) in enumerate(
            [("D", 1, False), ("D", 2, True), ("B", 4, False), ("A", 1, False)]
        ):
            s.add(
                TutoringSession(
                    session_id=f"F{i}",
                    tutor_id=tid,
                    student_id="S",
                    subject="Math",
                    # A's bad first session is older than the dedup window: not alerted
                    scheduled_start_at=AS_OF - timedelta(days=30 if tid == "A" else 1, hours=i),
                    status="completed",
                    is_first_session=True,
                    student_rating=rating,
                    student_churned_after_session=churned,
                )
            )


def test_detects_high_risk_and_failed_first_sessions_once(
    engine: Engine, rules: RulesConfig
) -> None:
    _setup(engine)
    with transaction(engine) as s:
        found = alerts.detect_alerts(s, as_of=AS_OF, rules=rules)
        got = sorted((a.tutor_id, a.flag) for a in found)
    assert got == [
        ("A", alerts.HIGH_RISK),
        ("C", alerts.HIGH_RISK),
        ("D", alerts.FIRST_SESSION_FAILED),
    ]
    with transaction(engine) as s:
        d = s.scalars(select(Alert).where(Alert.tutor_id == "D")).one()
        a = s.scalars(select(Alert).where(Alert.tutor_id == "A")).one()
    # oldest first: F1 was scheduled an hour before F0
    assert [x["session_id"] for x in d.payload["sessions"]] == ["F1", "F0"]
    assert "72%" in a.message
    # same state again (e.g. the next analytics run): nothing new within the dedup window
    with transaction(engine) as s:
        assert alerts.detect_alerts(s, as_of=AS_OF, rules=rules) == []
    # after the dedup window the same flag may alert again
    later = datetime.now(UTC) + timedelta(days=rules.interventions.alert_dedup_days + 1)
    with transaction(engine) as s:
        again = alerts.detect_alerts(s, as_of=AS_OF, rules=rules, now=later)
        assert sorted(a.tutor_id for a in again) == ["A", "C", "D"]


def test_webhook_retries_with_backoff_until_delivered(
    engine: Engine, fast_rules: RulesConfig, hook_factory: Any
) -> None:
    _setup(engine)
    with transaction(engine) as s:
        alerts.detect_alerts(s, as_of=AS_OF, rules=fast_rules, tutor_ids=["A"])
    hook = hook_factory([500, 503])
    delays: list[float] = []
    report = alerts.deliver_pending(
        engine,
        rules=fast_rules,
        settings=Settings(TUTORSCORE_ALERT_WEBHOOK_URL=hook.url),
        sleep=delays.append,
    )
    assert (report.delivered, report.failed) == (1, 0)
    assert delays == [0.01, 0.02]  # exponential backoff between the three tries
    assert len(hook.bodies) == 3
    body = hook.bodies[-1]
    assert body["tutor_id"] == "A" and body["flag"] == alerts.HIGH_RISK
    assert body["details"]["churn_probability"] == 0.72
    with transaction(engine) as s:
        row = s.scalars(select(Alert)).one()
    assert row.delivered_at is not None and row.delivery_attempts == 3 and row.last_error is None
    # delivered alerts are not sent again
    again = alerts.deliver_pending(
        engine, rules=fast_rules, settings=Settings(TUTORSCORE_ALERT_WEBHOOK_URL=hook.url)
    )
    assert (again.delivered, again.failed) == (0, 0) and len(hook.bodies) == 3


def test_webhook_gives_up_and_keeps_the_error(
    engine: Engine, fast_rules: RulesConfig, hook_factory: Any
) -> None:
    _setup(engine)
    with transaction(engine) as s:
        alerts.detect_alerts(s, as_of=AS_OF, rules=fast_rules, tutor_ids=["A", "C"])
    down = hook_factory([500] * 4 + [400])
    report = alerts.deliver_pending(
        engine, rules=fast_rules, settings=Settings(TUTORSCORE_ALERT_WEBHOOK_URL=down.url)
    )
    assert (report.delivered, report.failed) == (0, 2)
    # first alert: 4 tries of 500; second: a 400 is final, no retry
    assert len(down.bodies) == 5
    with transaction(engine) as s:
        rows = {r.tutor_id: r for r in s.scalars(select(Alert))}
    assert rows["A"].delivery_attempts == 4 and rows["A"].last_error == "HTTP 500"
    assert rows["C"].delivery_attempts == 1 and rows["C"].last_error == "HTTP 400"
    assert all(r.delivered_at is None for r in rows.values())


def test_unreachable_webhook_and_no_webhook(engine: Engine, fast_rules: RulesConfig) -> None:
    _setup(engine)
    with transaction(engine) as s:
        alerts.detect_alerts(s, as_of=AS_OF, rules=fast_rules, tutor_ids=["A"])
    skipped = alerts.deliver_pending(engine, rules=fast_rules, settings=Settings())
    assert skipped.skipped and "TUTORSCORE_ALERT_WEBHOOK_URL" in skipped.skipped
    # a closed port on 127.0.0.1: connection errors are retried, then recorded
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = alerts.deliver_pending(
        engine,
        rules=fast_rules,
        settings=Settings(TUTORSCORE_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{port}/x"),
        sleep=lambda _s: None,
    )
    assert report.failed == 1
    with transaction(engine) as s:
        row = s.scalars(select(Alert)).one()
    assert row.delivery_attempts == 4 and "ConnectError" in (row.last_error or "")
