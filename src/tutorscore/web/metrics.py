"""Prometheus metrics: request latency from the middleware, the rest read from the DB
at scrape time (so every web process reports the same queue and cost numbers).

With `PROMETHEUS_MULTIPROC_DIR` set (`serve --workers N` sets it for its web
processes) the latency histogram is prometheus-client's multiprocess kind: each
process writes its samples to files in that directory and every scrape, whichever
process answers it, sums all of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from tutorscore.db.base import utcnow
from tutorscore.db.models import Job, LLMCall, SessionEvaluation
from tutorscore.evaluation.health import STATES, assess, is_database_error
from tutorscore.evaluation.queries import llm_spend_today, queue_backlog
from tutorscore.web.state import AppState

log = logging.getLogger("tutorscore.web")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DatabaseCollector(Collector):
    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        try:
            metrics = list(self._collect())
        except Exception as exc:  # a scrape during an outage still answers
            if not is_database_error(exc):
                raise
            log.warning("metrics: database unavailable", extra={"error": str(exc)[:200]})
            metrics = []
        yield GaugeMetricFamily(
            "tutorscore_database_up",
            "1 when the database answered this scrape's queries",
            value=1 if metrics else 0,
        )
        yield from metrics

    def _collect(self) -> Iterator[Metric]:
        now = utcnow()
        with self.state.sessions() as db:
            backlog = queue_backlog(db, now=now)
            # every job kind (batch submissions too), unlike the evaluation backlog
            by_status = db.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            evaluations = db.execute(
                select(SessionEvaluation.judge, func.count()).group_by(SessionEvaluation.judge)
            ).all()
            calls = db.execute(
                select(
                    LLMCall.status, func.count(), func.coalesce(func.sum(LLMCall.cost_usd), 0.0)
                ).group_by(LLMCall.status)
            ).all()
            cost_today = llm_spend_today(db, now).cost_usd
        g = GaugeMetricFamily(
            "tutorscore_jobs_queued", "Jobs waiting to run, by priority", labels=["priority"]
        )
        for priority, count in backlog["queued_by_priority"].items():
            g.add_metric([str(priority)], count)
        yield g
        g = GaugeMetricFamily("tutorscore_jobs", "Jobs by status", labels=["status"])
        for status, count in by_status:
            g.add_metric([status], count)
        yield g
        yield GaugeMetricFamily(
            "tutorscore_oldest_queued_job_age_seconds",
            "Age of the oldest queued job",
            value=max(0.0, backlog["oldest_queued_age_s"] or 0.0),
        )
        c = CounterMetricFamily(
            "tutorscore_evaluations", "Stored session evaluations, by judge", labels=["judge"]
        )
        for judge, count in evaluations:
            c.add_metric([judge], count)
        yield c
        c = CounterMetricFamily("tutorscore_llm_calls", "LLM calls by status", labels=["status"])
        errors = 0
        total_cost = 0.0
        for status, count, cost in calls:
            c.add_metric([status], count)
            total_cost += float(cost or 0.0)
            if status != "ok":
                errors += count
        yield c
        yield CounterMetricFamily(
            "tutorscore_llm_errors", "LLM calls that did not succeed", value=errors
        )
        yield CounterMetricFamily(
            "tutorscore_llm_cost_usd", "Money spent on LLM calls (all time)", value=total_cost
        )
        yield GaugeMetricFamily(
            "tutorscore_llm_cost_today_usd",
            "Money spent on LLM calls since midnight UTC",
            value=cost_today,
        )


class WorkerCollector(Collector):
    """The evaluation worker's state, when this server runs one (see /healthz)."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        if self.state.worker_status is None:
            return
        health = assess(self.state.worker_status())
        yield GaugeMetricFamily(
            "tutorscore_worker_up",
            "1 when the evaluation worker is alive (running or waiting for the database)",
            value=1 if health["alive"] else 0,
        )
        g = GaugeMetricFamily(
            "tutorscore_worker_state",
            "The evaluation worker's state (1 = current)",
            labels=["state"],
        )
        for name in (*STATES, "stalled", "missing"):
            g.add_metric([name], 1 if health["state"] == name else 0)
        yield g
        if health["heartbeat_age_s"] is not None:
            yield GaugeMetricFamily(
                "tutorscore_worker_heartbeat_age_seconds",
                "Seconds since the evaluation worker's event loop last beat",
                value=health["heartbeat_age_s"],
            )


def build_registry(state: AppState) -> tuple[CollectorRegistry, Histogram]:
    """A registry per app, so several apps (tests) never clash on metric names."""
    registry = CollectorRegistry(auto_describe=False)
    multiproc_dir = os.environ.get(MULTIPROC_ENV)
    if multiproc_dir:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
    latency = Histogram(
        "tutorscore_http_request_duration_seconds",
        "HTTP request latency",
        labelnames=["method", "route", "status"],
        buckets=LATENCY_BUCKETS,
        # multiprocess: samples go to the directory, read back by the collector above
        registry=None if multiproc_dir else registry,
    )
    registry.register(DatabaseCollector(state))
    registry.register(WorkerCollector(state))
    return registry, latency
