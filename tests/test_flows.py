"""The workflows of tutorscore.flows: their steps run in order, in the caller's transaction."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from analytics_support import AS_OF, Data
from tutorscore.analytics.service import compute_all
from tutorscore.config import RulesConfig, get_settings
from tutorscore.db.models import Alert, TutorMetrics
from tutorscore.flows.metrics import nightly_recompute, refresh_tutor
from tutorscore.interventions.alerts import FIRST_SESSION_FAILED

pytestmark = pytest.mark.usefixtures("private_data_dir")


class Receiver:
    """A webhook on 127.0.0.1 that keeps the JSON bodies it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def wait_for(self, n: int, seconds: float = 30.0) -> list[dict[str, Any]]:
        """The bodies once `n` arrived (the sender is a background thread)."""
        deadline = time.monotonic() + seconds
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.bodies


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    hook = Receiver()
    thread = threading.Thread(
        target=hook.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    monkeypatch.setenv("TUTORSCORE_ALERT_WEBHOOK_URL", hook.url)
    get_settings.cache_clear()  # private_data_dir clears it again afterwards
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
    thread.join(timeout=5)


def _world(engine: Engine) -> None:
    d = Data()
    d.tutor("A")
    d.tutor("B")
    # A's first session with this student went badly: an alert once metrics are written
    d.session("A", days_ago=1, is_first_session=True, student_rating=1)
    d.sessions_n("B", 6, student_rating=5)
    d.flush(engine)


def _alerts(engine: Engine) -> list[tuple[str, str, bool]]:
    with Session(engine) as s:
        return [
            (a.tutor_id, a.flag, a.delivered_at is not None)
            for a in s.scalars(select(Alert).order_by(Alert.id))
        ]


def test_analytics_alone_writes_the_rules_rows_and_nothing_else(
    engine: Engine, rules: RulesConfig, receiver: Receiver
) -> None:
    _world(engine)
    summary = compute_all(engine, as_of=AS_OF, rules=rules)
    assert summary.tutors == 2 and summary.model_scored == 0
    assert _alerts(engine) == []  # alerts are the after-metrics flow's step, not analytics'
    assert receiver.bodies == []


def test_nightly_recompute_alerts_then_sends_once_the_transaction_commits(
    engine: Engine, rules: RulesConfig, receiver: Receiver
) -> None:
    _world(engine)
    with Session(engine) as s, s.begin():
        summary = nightly_recompute(s, as_of=AS_OF, rules=rules)
        # inside the transaction: rows written, the alert recorded, nothing sent yet
        rows = s.scalar(select(func.count()).where(TutorMetrics.as_of == AS_OF))
        flags = [(a.tutor_id, a.flag) for a in s.scalars(select(Alert))]
        sent_before_commit = list(receiver.bodies)
    assert rows == 2 and summary.tutors == 2
    assert summary.model_scored == 0  # no churn model trained: the rules' labels stand
    assert "churn" in summary.stages
    assert flags == [("A", FIRST_SESSION_FAILED)]
    assert sent_before_commit == []
    bodies = receiver.wait_for(1)
    assert [(b["tutor_id"], b["flag"]) for b in bodies] == [("A", FIRST_SESSION_FAILED)]
    deadline = time.monotonic() + 30
    while _alerts(engine) != [("A", FIRST_SESSION_FAILED, True)] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _alerts(engine) == [("A", FIRST_SESSION_FAILED, True)]
    # the same state again: deduplicated, nothing new to send
    nightly_recompute(engine, as_of=AS_OF, rules=rules)
    assert [flag for _, flag, _ in _alerts(engine)] == [FIRST_SESSION_FAILED]


def test_refresh_tutor_runs_after_metrics_for_that_tutor_only(
    engine: Engine, rules: RulesConfig, receiver: Receiver
) -> None:
    _world(engine)
    with Session(engine) as s, s.begin():
        summary = refresh_tutor(s, "B", rules=rules, as_of=AS_OF)
        assert summary.tutors == 1
    assert _alerts(engine) == []  # B has no failed first session; A was not looked at
    with Session(engine) as s, s.begin():
        refresh_tutor(s, "A", rules=rules, as_of=AS_OF)
    assert [(t, f) for t, f, _ in _alerts(engine)] == [("A", FIRST_SESSION_FAILED)]
    assert [b["tutor_id"] for b in receiver.wait_for(1)] == ["A"]
