"""What LLM calls cost: price table, the llm_calls ledger, the daily budget and a usage report.

Prices are USD per million tokens (input, output) as published by the provider;
batch calls cost half. A model missing from the table is priced like gpt-4o so a
budget cap never silently treats an unknown model as free.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, func, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models.evaluation import LLMCall
from tutorscore.evaluation.queries import day_start, llm_spend_today

# USD per 1M tokens: (input, output)
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
}
DEFAULT_PRICE = PRICES["gpt-4o"]
BATCH_DISCOUNT = 0.5
SESSIONS_PER_DAY = 3000
# Without history: a 40-turn transcript (~1,500 tokens) plus the rubric prompt with
# its worked examples (~1,300 tokens) in; a filled evaluation object (~450 tokens) out.
ESTIMATED_TOKENS_IN = 2800
ESTIMATED_TOKENS_OUT = 450


def price_for(model: str) -> tuple[float, float]:
    return PRICES.get(model, DEFAULT_PRICE)


def call_cost(model: str, tokens_in: int, tokens_out: int, *, batch: bool = False) -> float:
    """Cost in USD of one call."""
    price_in, price_out = price_for(model)
    cost = (tokens_in * price_in + tokens_out * price_out) / 1_000_000
    return cost * BATCH_DISCOUNT if batch else cost


@dataclass
class CallRecord:
    """One HTTP call to the provider, as the ledger stores it."""

    model: str
    prompt_version: str
    status: str  # ok | http_429 | http_500 | invalid | timeout | error
    session_id: str | None = None
    mode: str = "realtime"
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    created_at: datetime | None = None


def spent_on_day_in(conn: Connection | Session, now: datetime) -> float:
    """Total cost of the calls made since midnight UTC of `now`'s day (on a connection
    or in a session's transaction): `evaluation.queries.llm_spend_today`'s cost."""
    return llm_spend_today(conn, now).cost_usd


def spent_on_day(engine: Engine, now: datetime) -> float:
    """Total cost of the calls made since midnight UTC of `now`'s day."""
    with engine.connect() as conn:
        return spent_on_day_in(conn, now)


def insert_calls(session: Session, calls: list[CallRecord]) -> None:
    """The calls as llm_calls rows, in the caller's transaction."""
    if not calls:
        return
    rows = [
        {
            "session_id": c.session_id,
            "model": c.model,
            "prompt_version": c.prompt_version,
            "mode": c.mode,
            "tokens_in": c.tokens_in,
            "tokens_out": c.tokens_out,
            "latency_ms": c.latency_ms,
            "cost_usd": c.cost_usd,
            "status": c.status,
            "error": (c.error or None) and c.error[:2000],
            "created_at": c.created_at or utcnow(),
        }
        for c in calls
    ]
    session.execute(insert(LLMCall), rows)


class DbLedger:
    """Writes each call to llm_calls in its own short transaction (never the caller's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, call: CallRecord) -> None:
        self.record_many([call])

    def record_many(self, calls: list[CallRecord]) -> None:
        if not calls:
            return
        with transaction(self.engine) as session:
            insert_calls(session, calls)

    def spent_today(self, now: datetime | None = None) -> float:
        return spent_on_day(self.engine, now or utcnow())


class MemoryLedger:
    """A ledger in a list: for tests and for runs without a database."""

    in_memory = True  # record/spent_today do no I/O: the judge calls them inline

    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def record(self, call: CallRecord) -> None:
        call.created_at = call.created_at or utcnow()
        self.calls.append(call)

    def spent_today(self, now: datetime | None = None) -> float:
        start = day_start(now or utcnow())
        return sum(
            c.cost_usd for c in self.calls if c.created_at is not None and c.created_at >= start
        )


def _day_expr(engine: Engine) -> ColumnElement[str]:
    if engine.dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", LLMCall.created_at), "YYYY-MM-DD")
    return func.substr(LLMCall.created_at, 1, 10)


def usage_report(
    engine: Engine,
    *,
    now: datetime | None = None,
    days: int = 7,
    budget_usd: float | None = None,
    current_model: str | None = None,
) -> dict[str, Any]:
    """Calls, tokens, cost and errors by day and model, and a 3,000-sessions-a-day projection."""
    now = now or utcnow()
    since = day_start(now) - timedelta(days=days - 1)
    day = _day_expr(engine).label("day")
    ok = case((LLMCall.status == "ok", 1), else_=0)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                day,
                LLMCall.model,
                LLMCall.mode,
                func.count().label("calls"),
                func.sum(ok).label("ok"),
                func.sum(LLMCall.tokens_in).label("tokens_in"),
                func.sum(LLMCall.tokens_out).label("tokens_out"),
                func.sum(LLMCall.cost_usd).label("cost_usd"),
                func.avg(LLMCall.latency_ms).label("avg_latency_ms"),
            )
            .where(LLMCall.created_at >= since)
            .group_by(day, LLMCall.model, LLMCall.mode)
            .order_by(day.desc(), LLMCall.model, LLMCall.mode)
        ).all()
        # per-model averages over the same period feed the projection
        per_model = conn.execute(
            select(
                LLMCall.model,
                func.count().label("calls"),
                func.sum(ok).label("ok"),
                func.sum(case((LLMCall.status == "ok", LLMCall.tokens_in), else_=0)).label("tin"),
                func.sum(case((LLMCall.status == "ok", LLMCall.tokens_out), else_=0)).label("tout"),
            )
            .where(LLMCall.created_at >= since)
            .group_by(LLMCall.model)
        ).all()
        status_rows = conn.execute(
            select(day, LLMCall.model, LLMCall.status, func.count())
            .where(LLMCall.created_at >= since, LLMCall.status != "ok")
            .group_by(day, LLMCall.model, LLMCall.status)
        ).all()
    errors: dict[tuple[str, str], dict[str, int]] = {}
    for d, model, status, count in status_rows:
        errors.setdefault((d, model), {})[status] = int(count)
    by_day = [
        {
            "day": r.day,
            "model": r.model,
            "mode": r.mode,
            "calls": int(r.calls),
            "ok": int(r.ok or 0),
            "errors": int(r.calls) - int(r.ok or 0),
            "tokens_in": int(r.tokens_in or 0),
            "tokens_out": int(r.tokens_out or 0),
            "cost_usd": round(float(r.cost_usd or 0.0), 6),
            "avg_latency_ms": round(float(r.avg_latency_ms or 0.0), 1),
        }
        for r in rows
    ]
    for item in by_day:
        item["errors_by_status"] = errors.get((item["day"], item["model"]), {})
    measured = {r.model: r for r in per_model if int(r.ok or 0) > 0}
    models = list(dict.fromkeys([*([current_model] if current_model else []), *measured, *PRICES]))
    projection = []
    for model in models:
        r = measured.get(model)
        if r is not None:
            ok_calls = int(r.ok)
            tokens_in = float(r.tin) / ok_calls
            tokens_out = float(r.tout) / ok_calls
            calls_per_session = int(r.calls) / ok_calls
            source = "measured"
        else:
            tokens_in, tokens_out, calls_per_session = (
                ESTIMATED_TOKENS_IN,
                ESTIMATED_TOKENS_OUT,
                1.0,
            )
            source = "estimate"
        per_session = call_cost(model, round(tokens_in), round(tokens_out))
        projection.append(
            {
                "model": model,
                "source": source,
                "priced": model in PRICES,
                "avg_tokens_in": round(tokens_in, 1),
                "avg_tokens_out": round(tokens_out, 1),
                "calls_per_session": round(calls_per_session, 3),
                "sessions_per_day": SESSIONS_PER_DAY,
                "daily_cost_usd": round(per_session * SESSIONS_PER_DAY, 2),
                "daily_cost_batch_usd": round(per_session * SESSIONS_PER_DAY * BATCH_DISCOUNT, 2),
            }
        )
    return {
        "as_of": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "days": days,
        "budget_usd": budget_usd,
        "spent_today_usd": round(spent_on_day(engine, now), 6),
        "totals": {
            "calls": sum(i["calls"] for i in by_day),
            "errors": sum(i["errors"] for i in by_day),
            "tokens_in": sum(i["tokens_in"] for i in by_day),
            "tokens_out": sum(i["tokens_out"] for i in by_day),
            "cost_usd": round(sum(i["cost_usd"] for i in by_day), 6),
        },
        "by_day": by_day,
        "projection": projection,
    }


class BufferedLedger:
    """Calls held in memory until the pipeline's writer stores them with its next batch.

    `record` and `spent_today` do no I/O, so an LLM call never waits for the
    database. `spent_today` is today's total in llm_calls as the writer last
    read it (every few seconds, so other processes' calls count too), plus the
    calls it wrote since, plus those taken for a write not yet committed, plus
    those still held.
    """

    in_memory = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[CallRecord] = []
        self._in_transit = 0.0  # cost of calls taken by the writer, not yet committed
        self._base = 0.0
        self._base_day: datetime | None = None

    def record(self, call: CallRecord) -> None:
        call.created_at = call.created_at or utcnow()
        with self._lock:
            self._pending.append(call)

    def take(self) -> list[CallRecord]:
        """The held calls, for the writer to insert; `committed` or `put_back` follows."""
        with self._lock:
            calls, self._pending = self._pending, []
            self._in_transit += sum(c.cost_usd for c in calls)
        return calls

    def put_back(self, calls: list[CallRecord]) -> None:
        """The write failed: hold the calls again for the next one."""
        with self._lock:
            self._in_transit -= sum(c.cost_usd for c in calls)
            self._pending[:0] = calls

    def committed(self, spent_today_in_db: float | None, now: datetime | None = None) -> None:
        """After the writer's commit: today's total as the database has it now, or None
        when the writer did not read it (then the calls just written are added)."""
        today = day_start(now or utcnow())
        with self._lock:
            if spent_today_in_db is not None:
                self._base = spent_today_in_db
            elif self._base_day == today:
                self._base += self._in_transit
            else:
                self._base = self._in_transit
            self._base_day = today
            self._in_transit = 0.0

    def held(self) -> int:
        with self._lock:
            return len(self._pending)

    def spent_today(self, now: datetime | None = None) -> float:
        today = day_start(now or utcnow())
        with self._lock:
            base = self._base if self._base_day == today else 0.0
            held = sum(c.cost_usd for c in self._pending if c.created_at and c.created_at >= today)
            return base + self._in_transit + held
