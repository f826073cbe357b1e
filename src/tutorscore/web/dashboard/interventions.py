"""`/interventions` board, one intervention's page with its outcome, and the tutor-page panel.

Forms post with the session's CSRF token; only coaches and admins may change
anything (viewers get 403). The tutor page (owned by the tutors dashboard)
includes `_tutor_interventions.html`, which calls the `tutor_interventions_panel`
template global registered here.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from tutorscore.auth.users import Principal
from tutorscore.errors import ValidationFailed
from tutorscore.interventions import alerts, outcomes, playbook, service
from tutorscore.web.dashboard import views
from tutorscore.web.deps import CurrentUser, DbSession, State, require_role
from tutorscore.web.templating import render, templates

router = APIRouter(include_in_schema=False)

Coach = Annotated[Principal, Depends(require_role("coach"))]
PER_PAGE = 50


def tutor_interventions_panel(request: Request, tutor_id: str) -> dict[str, Any]:
    """Recommendations, open tasks and recent alerts for the tutor page partial.

    A template global: the tutor page's handler belongs to another module, so the
    partial fetches its own data, through the request's session (`request.state.db`,
    set by the DbSession dependency) or else a short read-only session of its own.
    """
    state = request.app.state.tutorscore
    own = getattr(request.state, "db", None)
    if isinstance(own, Session):
        return _panel(own, state, tutor_id)
    with state.sessions() as db:
        return _panel(db, state, tutor_id)


def _panel(db: Session, state: Any, tutor_id: str) -> dict[str, Any]:
    from tutorscore.prediction.churn import model_status

    recs = playbook.tutor_recommendations(db, tutor_id, rules=state.rules)
    items, _ = service.list_interventions(db, tutor_id=tutor_id, limit=20)
    return {
        "recommendations": [r.as_dict() for r in recs],
        "interventions": [service.serialize(iv) for iv in items],
        "alerts": alerts.list_alerts(db, tutor_id=tutor_id, limit=5),
        "churn_model": model_status(state.settings),
        "today": date.today().isoformat(),
    }


templates.env.globals["tutor_interventions_panel"] = tutor_interventions_panel


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(f"due_date: expected YYYY-MM-DD, got {value!r}") from exc


@router.get("/interventions", response_class=HTMLResponse)
def board(
    request: Request,
    db: DbSession,
    state: State,
    user: CurrentUser,
    status: Annotated[str | None, Query(max_length=16)] = None,
    owner: Annotated[str | None, Query(max_length=100)] = None,
    type: Annotated[str | None, Query(max_length=200)] = None,
    tutor_id: Annotated[str | None, Query(max_length=64)] = None,
    overdue: Annotated[str | None, Query(max_length=5)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    filters: dict[str, Any] = {
        "status": status or None,
        "owner": owner or None,
        "type": type or None,
        "tutor_id": tutor_id or None,
        "overdue": True if overdue in ("1", "true", "on", "yes") else None,
    }
    items, total = service.list_interventions(
        db, **filters, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    owners, types = service.owners_and_types(db)
    query = {k: ("1" if k == "overdue" else v) for k, v in filters.items() if v}
    return render(
        request,
        "interventions.html",
        {
            "items": [service.serialize(iv) for iv in items],
            "total": total,
            "filters": filters,
            "owners": owners,
            "types": types,
            "statuses": service.STATUSES,
            "query": query,
            "page": page,
            "pages": views.pages(total, PER_PAGE),
            "can_edit": user.can("coach"),
        },
    )


@router.get("/interventions/outcomes", response_class=HTMLResponse)
def outcomes_page(request: Request, db: DbSession, state: State, user: CurrentUser) -> HTMLResponse:
    """The effect per intervention type (its own page: it recomputes every outcome)."""
    return render(
        request,
        "interventions_outcomes.html",
        {"summary": outcomes.outcome_summary(db, rules=state.rules)},
    )


@router.get("/interventions/{intervention_id}", response_class=HTMLResponse)
def detail(
    intervention_id: int, request: Request, db: DbSession, state: State, user: CurrentUser
) -> HTMLResponse:
    iv = service.get_intervention(db, intervention_id)
    return render(
        request,
        "interventions_detail.html",
        {
            "iv": service.serialize(iv),
            "outcome": outcomes.intervention_outcome(db, iv, rules=state.rules),
            "can_edit": user.can("coach"),
        },
    )


@router.post("/interventions", response_model=None)
def create(
    request: Request,
    db: DbSession,
    state: State,
    user: Coach,
    tutor_id: Annotated[str, Form(max_length=64)],
    type: Annotated[str, Form(max_length=200)],
    flag: Annotated[str | None, Form(max_length=64)] = None,
    owner: Annotated[str | None, Form(max_length=100)] = None,
    due_date: Annotated[str | None, Form(max_length=10)] = None,
    notes: Annotated[str | None, Form(max_length=20000)] = None,
) -> RedirectResponse:
    iv = service.create_intervention(
        db,
        tutor_id=tutor_id,
        type=type,
        flag=flag or None,
        owner=owner or user.username,
        due_date=_date(due_date),
        notes=notes or None,
        actor=user.username,
        rules=state.rules,
    )
    return RedirectResponse(f"/interventions/{iv.id}", status_code=303)


@router.post("/interventions/{intervention_id}", response_model=None)
def change(
    intervention_id: int,
    request: Request,
    db: DbSession,
    user: Coach,
    status: Annotated[str | None, Form(max_length=16)] = None,
    owner: Annotated[str | None, Form(max_length=100)] = None,
    due_date: Annotated[str | None, Form(max_length=10)] = None,
    notes: Annotated[str | None, Form(max_length=20000)] = None,
    back: Annotated[str | None, Form(max_length=500)] = None,
) -> RedirectResponse:
    changes: dict[str, Any] = {}
    if status:
        changes["status"] = status
    if owner is not None:
        changes["owner"] = owner
    if due_date is not None:
        changes["due_date"] = _date(due_date)
    if notes is not None:
        changes["notes"] = notes
    service.update_intervention(db, intervention_id, actor=user.username, **changes)
    target = back if back and back.startswith("/") and not back.startswith("//") else None
    return RedirectResponse(target or f"/interventions/{intervention_id}", status_code=303)
