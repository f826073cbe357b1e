"""The LLM judge against the fake OpenAI-compatible server running as a subprocess."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from llm_support import TRANSCRIPT, add_session
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models.evaluation import LLMCall
from tutorscore.evaluation.costs import CallRecord, DbLedger, MemoryLedger, call_cost
from tutorscore.evaluation.judge import RISK_TAGS, JudgeUnavailable
from tutorscore.evaluation.limiter import RateLimiter
from tutorscore.evaluation.llm_judge import LLMJudge, RetryPolicy, retry_after_seconds
from tutorscore.ingest.transcript_format import Turn
from tutorscore.testing.fake_llm import FakeServerProcess, evaluate_transcript


class RecordingSleep:
    """Records every backoff the judge asks for, and sleeps for real."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(seconds)


def make_judge(
    server: FakeServerProcess,
    *,
    ledger: MemoryLedger | DbLedger | None = None,
    budget_usd: float = 10.0,
    max_attempts: int = 4,
    max_concurrency: int = 20,
    timeout_s: float = 30.0,
    sleep: RecordingSleep | None = None,
    base_delay_s: float = 0.05,
) -> LLMJudge:
    return LLMJudge(
        base_url=server.base_url,
        model="gpt-4o-mini",
        limiter=RateLimiter(10_000, 50_000_000),
        ledger=ledger if ledger is not None else MemoryLedger(),
        budget_usd=budget_usd,
        max_concurrency=max_concurrency,
        timeout_s=timeout_s,
        retry=RetryPolicy(max_attempts=max_attempts, base_delay_s=base_delay_s),
        sleep=sleep or RecordingSleep(),
        rng=random.Random(7),
    )


def _statuses(ledger: MemoryLedger) -> list[str]:
    return [c.status for c in ledger.calls]


async def test_evaluates_and_logs_the_call(fake: FakeServerProcess) -> None:
    ledger = MemoryLedger()
    judge = make_judge(fake, ledger=ledger)
    result = await judge.evaluate(TRANSCRIPT, session_id="S1")
    assert 1 <= result.quality_score <= 5
    assert set(result.risk_tags) <= set(RISK_TAGS)
    assert result.evidence, "the fake server always cites some turns"
    for item in result.evidence:
        assert item.quote and item.quote in TRANSCRIPT[item.turn]["text"]
    assert _statuses(ledger) == ["ok"]
    call = ledger.calls[0]
    assert call.session_id == "S1" and call.model == "gpt-4o-mini"
    assert call.prompt_version == judge.prompt_version == "llm-v1"
    assert call.tokens_in > 0 and call.tokens_out > 0
    assert call.cost_usd == pytest.approx(call_cost("gpt-4o-mini", call.tokens_in, call.tokens_out))
    assert result.features["llm_tokens_in"] == call.tokens_in
    assert result.features["llm_attempts"] == 1


async def test_pii_never_leaves_and_quotes_map_back_to_the_original(
    fake: FakeServerProcess,
) -> None:
    turns: list[Turn] = [
        {"speaker": "tutor", "text": "Hi Olivia, I'm Mr Quackenbush. Does that make sense?"},
        {"speaker": "student", "text": "Yes! Call me on 555-123-4567 or olivia@example.com."},
    ]
    judge = make_judge(fake)
    result = await judge.evaluate(turns, names=["Zebulon Quackenbush"])
    sent = "\n".join(fake.recent_prompts())
    for secret in ("Olivia", "olivia@example.com", "555-123-4567", "Quackenbush"):
        assert secret not in sent
    assert "[NAME]" in sent and "[EMAIL]" in sent and "[PHONE]" in sent
    assert result.features["redactions"] == 4
    # the model quoted the redacted text; the stored quotes are the verbatim original
    assert any("Olivia" in e.quote for e in result.evidence)
    for item in result.evidence:
        assert item.quote in turns[item.turn]["text"]


async def test_wrong_quotes_are_dropped_and_counted(fake: FakeServerProcess) -> None:
    # find transcripts for which the fake server deliberately misquotes
    def variant(i: int) -> list[Turn]:
        return [
            {
                "speaker": "tutor",
                "text": f"Let's start problem {i}. What do you think comes first?",
            },
            {"speaker": "student", "text": f"I think we divide by {i} first."},
            {"speaker": "tutor", "text": "Why do you say that? Walk me through it."},
        ]

    def wrong_quotes(turns: list[Turn]) -> int:
        evaluation = evaluate_transcript(turns)
        return sum(1 for e in evaluation["evidence"] if e["quote"] not in turns[e["turn"]]["text"])

    cases = [variant(i) for i in range(60) if wrong_quotes(variant(i))][:3]
    assert cases, "the fake server should misquote some transcripts"
    judge = make_judge(fake)
    for turns in cases:
        result = await judge.evaluate(turns)
        assert result.features["quotes_dropped"] == wrong_quotes(turns)
        assert result.features["quotes_verified"] == len(result.evidence)
        for item in result.evidence:
            assert item.quote in turns[item.turn]["text"]


async def test_429_retry_honours_retry_after(fake: FakeServerProcess) -> None:
    fake.control(script=[{"status": 429, "retry_after": 1.2}])
    ledger = MemoryLedger()
    sleep = RecordingSleep()
    judge = make_judge(fake, ledger=ledger, sleep=sleep)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await judge.evaluate(TRANSCRIPT)
    assert result.features["llm_attempts"] == 2
    assert _statuses(ledger) == ["http_429", "ok"]
    assert sleep.delays and sleep.delays[0] >= 1.2  # never earlier than Retry-After
    assert loop.time() - started >= 1.2
    assert fake.stats()["http_429"] == 1


async def test_server_error_is_retried_with_backoff(fake: FakeServerProcess) -> None:
    fake.control(script=[{"status": 500}, {"status": 503}])
    ledger = MemoryLedger()
    sleep = RecordingSleep()
    judge = make_judge(fake, ledger=ledger, sleep=sleep, base_delay_s=0.05)
    await judge.evaluate(TRANSCRIPT)
    assert _statuses(ledger) == ["http_500", "http_500", "ok"]
    assert "HTTP 503" in (ledger.calls[1].error or "")
    # exponential with jitter: attempt n waits base * 2**(n-1) * [0.5, 1]
    assert 0.025 <= sleep.delays[0] <= 0.05
    assert 0.05 <= sleep.delays[1] <= 0.1


async def test_malformed_answers_are_retried_then_give_up(fake: FakeServerProcess) -> None:
    fake.control(script=[{"malformed": True}] * 3)
    ledger = MemoryLedger()
    judge = make_judge(fake, ledger=ledger, max_attempts=3)
    with pytest.raises(JudgeUnavailable, match=r"gave up after 3 attempt\(s\).*malformed"):
        await judge.evaluate(TRANSCRIPT)
    assert _statuses(ledger) == ["invalid"] * 3
    assert all(c.tokens_in > 0 and c.cost_usd > 0 for c in ledger.calls)  # paid for anyway
    assert fake.stats()["requests"] == 3


async def test_malformed_once_then_valid(fake: FakeServerProcess) -> None:
    fake.control(script=[{"malformed": True}])
    ledger = MemoryLedger()
    result = await make_judge(fake, ledger=ledger).evaluate(TRANSCRIPT)
    assert _statuses(ledger) == ["invalid", "ok"]
    assert result.features["llm_attempts"] == 2


async def test_client_error_is_not_retried(fake: FakeServerProcess) -> None:
    fake.control(script=[{"status": 401}])
    ledger = MemoryLedger()
    with pytest.raises(JudgeUnavailable, match="HTTP 401"):
        await make_judge(fake, ledger=ledger).evaluate(TRANSCRIPT)
    assert _statuses(ledger) == ["http_401"]


async def test_timeout_is_logged_and_retried(fake: FakeServerProcess) -> None:
    fake.control(latency_ms=1500)
    ledger = MemoryLedger()
    judge = make_judge(fake, ledger=ledger, timeout_s=0.3, max_attempts=2)
    with pytest.raises(JudgeUnavailable, match="timeout"):
        await judge.evaluate(TRANSCRIPT)
    assert _statuses(ledger) == ["timeout", "timeout"]


async def test_budget_cap_stops_calls_before_they_are_made(fake: FakeServerProcess) -> None:
    ledger = MemoryLedger()
    ledger.record(
        CallRecord(model="gpt-4o-mini", prompt_version="llm-v1", status="ok", cost_usd=0.0099)
    )
    judge = make_judge(fake, ledger=ledger, budget_usd=0.01)
    with pytest.raises(JudgeUnavailable, match="daily LLM budget reached") as info:
        await judge.evaluate(TRANSCRIPT)
    assert info.value.retry_after_s is not None and 0 < info.value.retry_after_s <= 86_400
    assert fake.stats().get("requests", 0) == 0
    # yesterday's spending does not count against today's cap
    ledger.calls[0].created_at = utcnow() - timedelta(days=1)
    await judge.evaluate(TRANSCRIPT)
    assert fake.stats()["requests"] == 1


async def test_budget_counts_calls_in_flight(fake: FakeServerProcess) -> None:
    """Concurrent calls cannot all pass the check and overrun the cap together."""
    fake.control(latency_ms=1000)  # every check happens while the first calls are in flight
    ledger = MemoryLedger()
    judge = make_judge(fake, ledger=ledger)
    estimate = judge.estimate_cost(judge.prepare(TRANSCRIPT))
    judge.budget_usd = estimate * 3.5
    results = await asyncio.gather(
        *(judge.evaluate(TRANSCRIPT) for _ in range(8)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, JudgeUnavailable)]
    assert len(refused) == 5
    assert fake.stats()["requests"] == 3
    assert sum(c.cost_usd for c in ledger.calls) <= judge.budget_usd


async def test_concurrency_cap(fake: FakeServerProcess) -> None:
    fake.control(latency_ms=300)
    judge = make_judge(fake, max_concurrency=3)
    await asyncio.gather(*(judge.evaluate(TRANSCRIPT) for _ in range(12)))
    stats = fake.stats()
    assert stats["ok"] == 12
    assert stats["max_in_flight"] == 3


async def test_limiter_learns_from_rate_limit_headers(fake: FakeServerProcess) -> None:
    fake.control(rpm=3)
    judge = make_judge(fake)
    for _ in range(3):
        await judge.evaluate(TRANSCRIPT)
    # the server said 0 requests remain: the next acquisition has to wait, without a 429
    wait = judge.limiter.reserve(10)
    assert isinstance(wait, float) and wait > 30
    assert fake.stats().get("http_429", 0) == 0


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None


def test_transcript_too_large_for_tpm_is_refused_without_a_call(
    fake: FakeServerProcess,
) -> None:
    judge = make_judge(fake)
    judge.limiter = RateLimiter(100, 1000)
    with pytest.raises(JudgeUnavailable, match="tokens-per-minute"):
        asyncio.run(judge.evaluate(TRANSCRIPT))
    assert fake.stats().get("requests", 0) == 0


def test_cache_hit_makes_no_http_call_and_calls_land_in_llm_calls(
    engine: Engine, fake: FakeServerProcess
) -> None:
    from tutorscore.evaluation.service import evaluate_session, evaluation_to_dict

    add_session(engine, "S1", TRANSCRIPT)
    judge = make_judge(fake, ledger=DbLedger(engine))
    with transaction(engine) as s:
        row, cached = evaluate_session(s, "S1", judge, update_analytics=False)
        first = evaluation_to_dict(row)
    assert not cached and first["judge"] == "llm" and first["model"] == "gpt-4o-mini"
    assert fake.stats()["requests"] == 1
    with transaction(engine) as s:
        row, cached = evaluate_session(s, "S1", judge, update_analytics=False)
    assert cached
    assert fake.stats()["requests"] == 1  # the cache answered
    with engine.connect() as conn:
        calls = conn.execute(select(LLMCall.status, LLMCall.session_id, LLMCall.cost_usd)).all()
        total = conn.execute(select(func.sum(LLMCall.cost_usd))).scalar_one()
    assert [(c.status, c.session_id) for c in calls] == [("ok", "S1")]
    assert DbLedger(engine).spent_today() == pytest.approx(total)
    # the tutor's name from the database was redacted before it left
    assert "Quackenbush" not in json.dumps(fake.recent_prompts())


def test_from_settings_uses_the_database_and_the_shared_limiter(
    engine: Engine, fake: FakeServerProcess
) -> None:
    from tutorscore.config import Settings

    settings = Settings(TUTORSCORE_LLM_BASE_URL=fake.base_url, TUTORSCORE_LLM_MODEL="gpt-4o")
    a = LLMJudge.from_settings(settings, engine)
    b = LLMJudge.from_settings(settings, engine)
    assert a.limiter is b.limiter
    assert isinstance(a.ledger, DbLedger)
    add_session(engine, "S9", TRANSCRIPT, tutor_name="Ingeborg Vasquez")
    turns: list[Turn] = [{"speaker": "tutor", "text": "Ingeborg here, shall we start?"}]
    asyncio.run(a.evaluate(turns, session_id="S9"))
    assert "Ingeborg" not in json.dumps(fake.recent_prompts())
    with pytest.raises(JudgeUnavailable, match="TUTORSCORE_LLM_BASE_URL"):
        LLMJudge.from_settings(Settings(), engine)


def _wait_for_batches(server: FakeServerProcess, expected: int) -> None:
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.stats().get("batches", 0) >= expected:
            time.sleep(0.4)  # the fake completes a batch batch_delay_s after creation
            return
        time.sleep(0.05)
    raise AssertionError("batch never created")


def test_batch_path_submits_collects_and_stores_at_half_price(
    engine: Engine, fake: FakeServerProcess, rules: object
) -> None:
    from tutorscore.config import RulesConfig, Settings
    from tutorscore.db.models import Job, SessionEvaluation
    from tutorscore.evaluation.batch import (
        BATCH_KIND,
        collect_batches,
        split_for_batch,
        submit_batch,
    )

    assert isinstance(rules, RulesConfig)
    settings = Settings(
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_MODEL="gpt-4o",
        TUTORSCORE_LLM_BATCH_BACKLOG=True,
    )
    priorities = {"B0": rules.evaluation.priority_first_session, "B1": 20, "B2": 25}
    realtime, backlog = split_for_batch(priorities, settings, rules)
    assert realtime == ["B0"] and backlog == ["B1", "B2"]
    off = Settings(TUTORSCORE_LLM_BASE_URL=fake.base_url)
    assert split_for_batch(priorities, off, rules) == (list(priorities), [])

    for i, sid in enumerate(["B1", "B2", "B3"]):
        turns = [Turn(**t) for t in TRANSCRIPT]
        turns[2]["text"] += f" (problem {i})"
        add_session(engine, sid, turns)
    judge = LLMJudge.from_settings(settings, engine)
    batch_id = submit_batch(engine, settings, rules, ["B1", "B2", "B3"], judge=judge)
    assert batch_id is not None
    # sessions already waiting in a batch are not sent twice
    assert submit_batch(engine, settings, rules, ["B1", "B2"], judge=judge) is None
    assert fake.stats()["batches"] == 1
    _wait_for_batches(fake, 1)
    summary = collect_batches(engine, settings, rules, judge=judge)
    assert summary["batches_completed"] == 1 and summary["stored"] == 3
    assert fake.stats().get("requests", 0) == 0  # nothing went through the real-time path
    with engine.connect() as conn:
        stored = conn.execute(
            select(SessionEvaluation.session_id, SessionEvaluation.evidence).where(
                SessionEvaluation.judge == "llm"
            )
        ).all()
        calls = conn.execute(
            select(LLMCall.mode, LLMCall.tokens_in, LLMCall.tokens_out, LLMCall.cost_usd)
        ).all()
        job = conn.execute(select(Job.status).where(Job.kind == BATCH_KIND)).scalar_one()
    assert sorted(r.session_id for r in stored) == ["B1", "B2", "B3"]
    for _, evidence in stored:
        for item in evidence:
            assert item["quote"] in TRANSCRIPT[item["turn"]]["text"] or item["turn"] == 2
    assert job == "done"
    assert len(calls) == 3 and {c.mode for c in calls} == {"batch"}
    for c in calls:
        assert c.cost_usd == pytest.approx(call_cost("gpt-4o", c.tokens_in, c.tokens_out) / 2)
    # everything is evaluated now: a new submission sends nothing
    assert submit_batch(engine, settings, rules, ["B1", "B2", "B3"], judge=judge) is None


def test_batch_failures_are_requeued(
    engine: Engine, fake: FakeServerProcess, rules: object
) -> None:
    from tutorscore.config import RulesConfig, Settings
    from tutorscore.db.models import Job
    from tutorscore.evaluation.batch import collect_batches, submit_batch

    assert isinstance(rules, RulesConfig)
    settings = Settings(TUTORSCORE_LLM_BASE_URL=fake.base_url, TUTORSCORE_LLM_MODEL="gpt-4o")
    add_session(engine, "F1", TRANSCRIPT)
    fake.control(error_rate=1.0)
    judge = LLMJudge.from_settings(settings, engine)
    assert submit_batch(engine, settings, rules, ["F1"], judge=judge)
    _wait_for_batches(fake, 1)
    summary = collect_batches(engine, settings, rules, judge=judge)
    assert summary["requeued"] == 1 and summary["stored"] == 0
    with engine.connect() as conn:
        queued = conn.execute(
            select(Job.session_id, Job.payload).where(Job.kind == "evaluate")
        ).all()
        statuses = conn.execute(select(LLMCall.status)).scalars().all()
    assert [(q.session_id, q.payload["judge"]) for q in queued] == [("F1", "llm")]
    assert statuses == ["http_500"]


def test_batch_respects_the_budget(engine: Engine, fake: FakeServerProcess, rules: object) -> None:
    from tutorscore.config import RulesConfig, Settings
    from tutorscore.evaluation.batch import submit_batch

    assert isinstance(rules, RulesConfig)
    settings = Settings(
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_MODEL="gpt-4o",
        TUTORSCORE_LLM_BUDGET_USD=0.0001,
    )
    add_session(engine, "G1", TRANSCRIPT)
    with pytest.raises(JudgeUnavailable, match="budget"):
        submit_batch(engine, settings, rules, ["G1"])
    assert fake.stats().get("files", 0) == 0


async def test_usage_report_by_day_and_model_with_projection(
    engine: Engine, tmp_path: object
) -> None:
    import httpx

    from tutorscore.config import Settings, load_rules
    from tutorscore.evaluation.costs import ESTIMATED_TOKENS_IN, usage_report
    from tutorscore.web.app import create_app
    from web_support import bearer

    now = utcnow()
    ledger = DbLedger(engine)
    calls = [
        CallRecord(
            "gpt-4o",
            "llm-v1",
            "ok",
            tokens_in=3000,
            tokens_out=400,
            cost_usd=call_cost("gpt-4o", 3000, 400),
            created_at=now,
        ),
        CallRecord(
            "gpt-4o",
            "llm-v1",
            "ok",
            tokens_in=2000,
            tokens_out=600,
            cost_usd=call_cost("gpt-4o", 2000, 600),
            created_at=now,
        ),
        CallRecord("gpt-4o", "llm-v1", "http_429", error="HTTP 429", created_at=now),
        CallRecord(
            "gpt-4o-mini",
            "llm-v1",
            "ok",
            tokens_in=1000,
            tokens_out=100,
            cost_usd=call_cost("gpt-4o-mini", 1000, 100),
            created_at=now - timedelta(days=1),
        ),
        CallRecord(
            "gpt-4o",
            "llm-v1",
            "ok",
            tokens_in=9,
            tokens_out=9,
            cost_usd=5.0,
            created_at=now - timedelta(days=30),
        ),  # outside the period
    ]
    ledger.record_many(calls)
    report = usage_report(engine, now=now, days=7, budget_usd=10.0, current_model="gpt-4o")
    today = now.strftime("%Y-%m-%d")
    rows = {(r["day"], r["model"]): r for r in report["by_day"]}
    assert set(rows) == {
        (today, "gpt-4o"),
        ((now - timedelta(days=1)).strftime("%Y-%m-%d"), "gpt-4o-mini"),
    }
    gpt4o = rows[(today, "gpt-4o")]
    assert (gpt4o["calls"], gpt4o["ok"], gpt4o["errors"]) == (3, 2, 1)
    assert gpt4o["errors_by_status"] == {"http_429": 1}
    assert (gpt4o["tokens_in"], gpt4o["tokens_out"]) == (5000, 1000)
    assert report["spent_today_usd"] == pytest.approx(gpt4o["cost_usd"])
    projection = {p["model"]: p for p in report["projection"]}
    assert projection["gpt-4o"]["source"] == "measured"
    assert projection["gpt-4o"]["avg_tokens_in"] == 2500
    assert projection["gpt-4o"]["calls_per_session"] == 1.5
    expected = call_cost("gpt-4o", 2500, 500) * 3000
    assert projection["gpt-4o"]["daily_cost_usd"] == pytest.approx(expected, abs=0.01)
    assert projection["gpt-4o"]["daily_cost_batch_usd"] == pytest.approx(expected / 2, abs=0.01)
    assert projection["gpt-4.1-mini"]["source"] == "estimate"
    assert projection["gpt-4.1-mini"]["avg_tokens_in"] == ESTIMATED_TOKENS_IN

    settings = Settings(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        TUTORSCORE_SECRET_KEY="test-secret-key-" * 3,
        TUTORSCORE_DATA_DIR=str(tmp_path),
    )
    app = create_app(settings, load_rules(None, environ={}), engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/api/llm-usage")).status_code == 401
        headers = bearer(engine, "viewer1", "viewer")
        r = await client.get("/api/llm-usage", params={"days": 2}, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["totals"]["calls"] == 4 and body["totals"]["errors"] == 1
        assert (await client.get("/api/llm-usage?days=0", headers=headers)).status_code == 422


def test_llm_usage_command(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from tutorscore.cli import app
    from tutorscore.cli.common import get_engine
    from tutorscore.config import get_settings

    DbLedger(engine).record(
        CallRecord(
            "gpt-4o",
            "llm-v1",
            "ok",
            tokens_in=2000,
            tokens_out=300,
            cost_usd=call_cost("gpt-4o", 2000, 300),
        )
    )
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    get_engine.cache_clear()
    try:
        result = CliRunner().invoke(app, ["llm-usage", "--format", "json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["totals"]["calls"] == 1
        table = CliRunner().invoke(app, ["llm-usage"])
        assert table.exit_code == 0 and "Projected daily cost of 3,000 sessions" in table.output
    finally:
        get_engine().dispose()
        get_settings.cache_clear()
        get_engine.cache_clear()


def _urgent_and_backlog(engine: Engine, *backlog_ids: str) -> None:
    """A first session "U1" (urgent) and backlog sessions, each with its own transcript text."""
    add_session(engine, "U1", TRANSCRIPT, first=True)
    for sid in backlog_ids:
        turns = [Turn(**t) for t in TRANSCRIPT]
        turns[0]["text"] += f" ({sid})"
        add_session(engine, sid, turns)


def test_backlog_leaves_the_queue_for_a_batch_and_urgent_jobs_stay(
    engine: Engine, fake: FakeServerProcess, rules: object
) -> None:
    from tutorscore.config import RulesConfig, Settings
    from tutorscore.db.models import Job, SessionEvaluation
    from tutorscore.evaluation.batch import collect_batches, send_backlog_to_batch
    from tutorscore.evaluation.queue import enqueue_evaluations

    assert isinstance(rules, RulesConfig)
    settings = Settings(
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_MODEL="gpt-4o",
        TUTORSCORE_LLM_BATCH_BACKLOG=True,
    )
    _urgent_and_backlog(engine, "L1", "L2")
    with transaction(engine) as s:
        assert enqueue_evaluations(s, judge="llm", rules=rules) == 3
    judge = LLMJudge.from_settings(settings, engine)
    off = Settings(TUTORSCORE_LLM_BASE_URL=fake.base_url)
    assert send_backlog_to_batch(engine, off, rules, judge=judge) is None  # option off
    batch_id = send_backlog_to_batch(engine, settings, rules, judge=judge)
    assert batch_id is not None
    with engine.connect() as conn:
        jobs = dict(
            conn.execute(select(Job.session_id, Job.status).where(Job.kind == "evaluate")).all()
        )
    assert jobs == {"U1": "queued", "L1": "done", "L2": "done"}  # the first session stays
    assert send_backlog_to_batch(engine, settings, rules, judge=judge) is None
    _wait_for_batches(fake, 1)
    assert collect_batches(engine, settings, rules, judge=judge)["stored"] == 2
    with engine.connect() as conn:
        stored = conn.execute(
            select(SessionEvaluation.session_id).where(SessionEvaluation.judge == "llm")
        ).scalars()
        assert sorted(stored) == ["L1", "L2"]


def test_backlog_jobs_return_to_the_queue_when_submission_fails(
    engine: Engine, fake: FakeServerProcess, rules: object
) -> None:
    from tutorscore.config import RulesConfig, Settings
    from tutorscore.db.models import Job
    from tutorscore.evaluation.batch import send_backlog_to_batch
    from tutorscore.evaluation.queue import enqueue_evaluations

    assert isinstance(rules, RulesConfig)
    settings = Settings(
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_BATCH_BACKLOG=True,
        TUTORSCORE_LLM_BUDGET_USD=0.000001,
    )
    add_session(engine, "L9", TRANSCRIPT)
    with transaction(engine) as s:
        enqueue_evaluations(s, judge="llm", rules=rules)
    with pytest.raises(JudgeUnavailable, match="budget"):
        send_backlog_to_batch(engine, settings, rules)
    with engine.connect() as conn:
        status, error = conn.execute(select(Job.status, Job.last_error)).one()
    assert status == "queued" and "batch submission failed" in (error or "")


def test_worker_sends_the_backlog_to_a_batch_and_evaluates_urgent_jobs_in_real_time(
    engine: Engine, fake: FakeServerProcess, rules: object
) -> None:
    from tutorscore.config import RulesConfig, Settings
    from tutorscore.db.models import Job, SessionEvaluation
    from tutorscore.evaluation.queue import enqueue_evaluations
    from tutorscore.evaluation.worker import run_worker

    assert isinstance(rules, RulesConfig)
    settings = Settings(
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_MODEL="gpt-4o",
        TUTORSCORE_LLM_BATCH_BACKLOG=True,
        TUTORSCORE_LLM_RPM=10_000,
        TUTORSCORE_LLM_TPM=50_000_000,
    )
    _urgent_and_backlog(engine, "L1")
    with transaction(engine) as s:
        enqueue_evaluations(s, judge="llm", rules=rules)
    run_worker(engine, settings, rules, once=True, concurrency=1)
    with engine.connect() as conn:
        jobs = dict(conn.execute(select(Job.session_id, Job.last_error)).all())
        llm_done = set(
            conn.execute(
                select(SessionEvaluation.session_id).where(SessionEvaluation.judge == "llm")
            ).scalars()
        )
    assert jobs["L1"] is not None and jobs["L1"].startswith("sent to batch")
    assert "U1" in llm_done  # the first session went through the real-time path
    assert "L1" not in llm_done  # the backlog waits for the batch
