"""GET /api/llm-usage: LLM calls, tokens, cost and errors by day and model, and a projection."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from tutorscore.evaluation.costs import usage_report
from tutorscore.web.deps import CurrentUser, State

router = APIRouter(prefix="/api", tags=["llm"])


@router.get("/llm-usage")
def llm_usage(
    state: State,
    user: CurrentUser,
    days: int = Query(7, ge=1, le=366, description="days of history, today included"),
) -> dict[str, Any]:
    """The cost ledger summarised, and what 3,000 sessions a day would cost per model."""
    return usage_report(
        state.engine,
        days=days,
        budget_usd=state.settings.llm_budget_usd,
        current_model=state.settings.llm_model if state.settings.llm_enabled else None,
    )
