"""Session evaluation over HTTP: evaluate one session, queue a batch, read an evaluation.

The heuristic judge answers within the request (milliseconds); the LLM judge is
queued for the worker so a slow provider never holds a request open.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from tutorscore.errors import Conflict, NotFound
from tutorscore.evaluation.backlog import llm_backlog
from tutorscore.evaluation.heuristic import HeuristicJudge
from tutorscore.evaluation.queries import queue_backlog
from tutorscore.evaluation.queue import enqueue_evaluation, enqueue_evaluations
from tutorscore.evaluation.service import evaluate_session, evaluation_to_dict, get_evaluation
from tutorscore.flows.metrics import after_metrics
from tutorscore.web.deps import CoachUser, CurrentUser, DbSession, State

router = APIRouter(prefix="/api", tags=["evaluation"])

JudgeName = Literal["heuristic", "llm"]


class EvaluateSessionIn(BaseModel):
    session_id: str = Field(min_length=1, max_length=64)
    judge: JudgeName = "heuristic"


class EvaluateBatchIn(BaseModel):
    session_ids: list[str] | None = Field(
        default=None, max_length=10000, description="these sessions; omit for all"
    )
    pending: bool = Field(
        default=True, description="only transcripts not yet evaluated by this judge"
    )
    judge: JudgeName = "heuristic"
    limit: int | None = Field(default=None, ge=1, le=100000)


class EvaluationQueued(BaseModel):
    session_id: str
    judge: str
    job_id: int
    status: str = "queued"


class BatchQueued(BaseModel):
    queued: int
    judge: str
    queue: dict[str, Any]


@router.post(
    "/evaluate-session",
    responses={
        200: {"description": "the evaluation object (docs/data-format.md) plus `cached`"},
        202: {"description": "LLM evaluation queued for the worker", "model": EvaluationQueued},
        404: {"description": "no such session, or it has no transcript"},
        409: {"description": "the LLM judge is not configured"},
    },
)
def evaluate_one(
    body: EvaluateSessionIn, response: Response, db: DbSession, state: State, user: CoachUser
) -> dict[str, Any]:
    """Evaluate one session now with the heuristic judge, or queue it for the LLM judge."""
    if body.judge == "llm":
        if not state.settings.llm_enabled:
            raise Conflict("the LLM judge is not configured (TUTORSCORE_LLM_BASE_URL)")
        job_id = enqueue_evaluation(
            db,
            body.session_id,
            judge="llm",
            priority=state.rules.evaluation.priority_first_session,
            rules=state.rules,
        )
        response.status_code = 202
        return EvaluationQueued(session_id=body.session_id, judge="llm", job_id=job_id).model_dump()
    judge = HeuristicJudge(state.rules.evaluation.heuristic)
    row, cached = evaluate_session(
        db, body.session_id, judge, rules=state.rules, after_write=after_metrics
    )
    return {**evaluation_to_dict(row), "cached": cached}


@router.post("/evaluate-batch", status_code=202, response_model=BatchQueued)
def evaluate_batch(
    body: EvaluateBatchIn, db: DbSession, state: State, user: CoachUser
) -> BatchQueued:
    """Queue many evaluations at their priority; the worker processes them."""
    if body.judge == "llm" and not state.settings.llm_enabled:
        raise Conflict("the LLM judge is not configured (TUTORSCORE_LLM_BASE_URL)")
    queued = enqueue_evaluations(
        db,
        judge=body.judge,
        session_ids=body.session_ids,
        pending=body.pending and body.session_ids is None,
        limit=body.limit,
        rules=state.rules,
    )
    return BatchQueued(queued=queued, judge=body.judge, queue=queue_backlog(db))


@router.get(
    "/sessions/{session_id}/evaluation",
    responses={404: {"description": "no such session or not evaluated yet"}},
)
def session_evaluation(
    session_id: str, db: DbSession, state: State, user: CurrentUser
) -> dict[str, Any]:
    """The session's evaluation that counts (`[evaluation.counted]`: by default the latest
    LLM one when present, else heuristic), all judges' evaluations under `evaluations`."""
    found = get_evaluation(db, session_id, rules=state.rules)
    if found is None:
        raise NotFound(f"session {session_id!r} has no evaluation")
    return found


@router.get("/evaluation-queue")
def evaluation_queue(db: DbSession, state: State, user: CurrentUser) -> dict[str, Any]:
    """Backlog: queued by priority, oldest queued age, running, done, dead; `llm`: how long
    the backlog takes at the LLM limits (null when the LLM judge is off)."""
    return {**queue_backlog(db), "llm": llm_backlog(db, state.settings)}
