"""`tutorscore demo`'s LLM-judge step: a handful of reviewed sessions evaluated by the LLM
judge (real HTTP to the fake OpenAI-compatible server) only when an LLM is configured."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import Review, SessionEvaluation
from tutorscore.flows.demo import LLM_DEMO_EVALUATIONS, demo_llm_evaluations
from tutorscore.ingest.synthetic import seed
from tutorscore.ingest.synthetic_coaching import DemoHistory
from tutorscore.testing.fake_llm import FakeServerProcess

AS_OF = datetime(2026, 11, 24, 12, tzinfo=UTC)


def _seed_with_reviews(engine: Engine, rules: RulesConfig) -> None:
    history = DemoHistory(rules=rules, seed=4, coaching=False)
    seed(engine, tutors=20, students=400, sessions=1500, days=14, transcripts=40, seed=4,
         as_of=AS_OF, extras=[history])  # fmt: skip
    assert history.reviews_written > LLM_DEMO_EVALUATIONS


def _llm_evaluations(engine: Engine) -> list[str]:
    with transaction(engine) as db:
        return list(
            db.scalars(select(SessionEvaluation.session_id).where(SessionEvaluation.judge == "llm"))
        )


def test_without_an_llm_the_demo_writes_no_llm_evaluations(
    engine: Engine, rules: RulesConfig
) -> None:
    _seed_with_reviews(engine, rules)
    message = demo_llm_evaluations(engine, settings=Settings(DATABASE_URL="sqlite://"), rules=rules)
    assert "not configured" in message and "TUTORSCORE_LLM_BASE_URL" in message
    assert _llm_evaluations(engine) == []


def test_with_an_llm_a_handful_of_reviewed_sessions_get_llm_evaluations(
    engine: Engine, rules: RulesConfig, fake: FakeServerProcess, private_data_dir: object
) -> None:
    _seed_with_reviews(engine, rules)
    settings = Settings(
        DATABASE_URL="sqlite://",
        TUTORSCORE_LLM_BASE_URL=fake.base_url,
        TUTORSCORE_LLM_MODEL="gpt-4o-mini",
        TUTORSCORE_LLM_RPM=10_000,
        TUTORSCORE_LLM_TPM=50_000_000,
    )
    message = demo_llm_evaluations(engine, settings=settings, rules=rules)
    evaluated = _llm_evaluations(engine)
    assert message == (
        f"LLM judge: {LLM_DEMO_EVALUATIONS} of {LLM_DEMO_EVALUATIONS} reviewed sessions evaluated"
    )
    assert len(set(evaluated)) == LLM_DEMO_EVALUATIONS
    with transaction(engine) as db:
        reviewed = set(db.scalars(select(Review.session_id)))
        assert set(evaluated) <= reviewed
        llm_rows = select(func.count()).where(SessionEvaluation.judge == "llm")
        assert db.scalar(llm_rows) == len(evaluated)  # one each, nothing else sent to the LLM
    assert fake.stats()["requests"] >= LLM_DEMO_EVALUATIONS
