"""Prometheus metrics: request latency from the middleware, the rest read from the DB
at scrape time (so every web process reports the same queue and cost numbers)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from tutorscore.db.base import utcnow
from tutorscore.db.models import Job, LLMCall, SessionEvaluation
from tutorscore.web.state import AppState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DatabaseCollector(Collector):
    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        with self.state.sessions() as db:
            queued = db.execute(
                select(Job.priority, func.count())
                .where(Job.status == "queued")
                .group_by(Job.priority)
            ).all()
            by_status = db.execute(select(Job.status, func.count()).group_by(Job.status)).all()
            oldest = db.scalar(select(func.min(Job.created_at)).where(Job.status == "queued"))
            evaluations = db.execute(
                select(SessionEvaluation.judge, func.count()).group_by(SessionEvaluation.judge)
            ).all()
            calls = db.execute(
                select(
                    LLMCall.status, func.count(), func.coalesce(func.sum(LLMCall.cost_usd), 0.0)
                ).group_by(LLMCall.status)
            ).all()
            cost_today = db.scalar(
                select(func.coalesce(func.sum(LLMCall.cost_usd), 0.0)).where(
                    LLMCall.created_at >= midnight
                )
            )
        g = GaugeMetricFamily(
            "tutorscore_jobs_queued", "Jobs waiting to run, by priority", labels=["priority"]
        )
        for priority, count in queued:
            g.add_metric([str(priority)], count)
        yield g
        g = GaugeMetricFamily("tutorscore_jobs", "Jobs by status", labels=["status"])
        for status, count in by_status:
            g.add_metric([status], count)
        yield g
        age = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=now.tzinfo)
            age = max(0.0, (now - oldest).total_seconds())
        yield GaugeMetricFamily(
            "tutorscore_oldest_queued_job_age_seconds", "Age of the oldest queued job", value=age
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
            value=float(cost_today or 0.0),
        )


def build_registry(state: AppState) -> tuple[CollectorRegistry, Histogram]:
    """A registry per app, so several apps (tests) never clash on metric names."""
    registry = CollectorRegistry(auto_describe=False)
    latency = Histogram(
        "tutorscore_http_request_duration_seconds",
        "HTTP request latency",
        labelnames=["method", "route", "status"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    registry.register(DatabaseCollector(state))
    return registry, latency
