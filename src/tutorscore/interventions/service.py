"""Coaching interventions: create from a recommendation, move open -> in_progress -> done.

Every change is written to the audit log in the same transaction. Roles are the
web layer's business; here an `actor` name is enough.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, case, func, or_, select
from sqlalchemy.orm import Session

from tutorscore.auth import audit
from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.models import Intervention, Tutor
from tutorscore.errors import Conflict, NotFound, ValidationFailed

STATUSES = ("open", "in_progress", "done")
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"in_progress"}),
    "in_progress": frozenset({"done"}),
    "done": frozenset(),
}
UNSET: Any = object()  # "field not given" in updates, as opposed to None = clear it


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text.replace("+00:00", "Z") if isinstance(value, datetime) else text


def is_overdue(iv: Intervention, today: date) -> bool:
    return iv.status != "done" and iv.due_date is not None and iv.due_date < today


def serialize(iv: Intervention, *, today: date | None = None) -> dict[str, Any]:
    today = today or utcnow().date()
    return {
        "id": iv.id,
        "tutor_id": iv.tutor_id,
        "type": iv.type,
        "flag": iv.flag,
        "status": iv.status,
        "owner": iv.owner,
        "due_date": _iso(iv.due_date),
        "notes": iv.notes,
        "created_by": iv.created_by,
        "created_at": _iso(iv.created_at),
        "updated_at": _iso(iv.updated_at),
        "started_at": _iso(iv.started_at),
        "completed_at": _iso(iv.completed_at),
        "overdue": is_overdue(iv, today),
        "allowed_transitions": sorted(TRANSITIONS.get(iv.status, frozenset())),
    }


def _audit_view(iv: Intervention) -> dict[str, Any]:
    keys = ("tutor_id", "type", "flag", "status", "owner", "due_date", "notes")
    return {k: getattr(iv, k) for k in keys}


def _check_text(field: str, value: str | None, *, max_len: int, required: bool = False) -> None:
    if value is None or not value.strip():
        if required:
            raise ValidationFailed(f"{field}: required", details=[{"field": field}])
        return
    if len(value) > max_len:
        raise ValidationFailed(
            f"{field}: at most {max_len} characters, got {len(value)}", details=[{"field": field}]
        )


def create_intervention(
    session: Session,
    *,
    tutor_id: str,
    type: str,
    actor: str,
    rules: RulesConfig,
    flag: str | None = None,
    owner: str | None = None,
    due_date: date | None = None,
    notes: str | None = None,
    now: datetime | None = None,
) -> Intervention:
    """A new open coaching task. `flag` must be a playbook key when given."""
    if session.get(Tutor, tutor_id) is None:
        raise NotFound(f"tutor {tutor_id!r} not found")
    _check_text("type", type, max_len=200, required=True)
    _check_text("owner", owner, max_len=100)
    _check_text("notes", notes, max_len=20000)
    if flag is not None and flag not in rules.playbook:
        known = ", ".join(sorted(rules.playbook))
        raise ValidationFailed(
            f"flag: {flag!r} is not a playbook key (known: {known})", details=[{"field": "flag"}]
        )
    at = now or utcnow()
    iv = Intervention(
        tutor_id=tutor_id,
        type=type.strip(),
        flag=flag,
        status="open",
        owner=(owner or "").strip() or None,
        due_date=due_date,
        notes=notes,
        created_by=actor,
        created_at=at,
        updated_at=at,
        outcome={},
    )
    session.add(iv)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="intervention.create",
        entity_type="intervention",
        entity_id=iv.id,
        before=None,
        after=_audit_view(iv),
    )
    return iv


def get_intervention(session: Session, intervention_id: int) -> Intervention:
    iv = session.get(Intervention, intervention_id)
    if iv is None:
        raise NotFound(f"intervention {intervention_id} not found")
    return iv


def _move(iv: Intervention, status: str | None, at: datetime) -> None:
    """Change an intervention's status along TRANSITIONS (else Conflict), with its times."""
    if status is None or status not in STATUSES:
        raise ValidationFailed(
            f"status: expected one of {', '.join(STATUSES)}, got {status!r}",
            details=[{"field": "status"}],
        )
    if status not in TRANSITIONS[iv.status]:
        allowed = ", ".join(sorted(TRANSITIONS[iv.status])) or "none"
        raise Conflict(
            f"intervention {iv.id} is {iv.status}: cannot move to {status} (allowed: {allowed})"
        )
    iv.status = status
    if status == "in_progress":
        iv.started_at = at
    elif status == "done":
        iv.completed_at = at
        if iv.started_at is None:
            iv.started_at = at


def update_intervention(
    session: Session,
    intervention_id: int,
    *,
    actor: str,
    status: str | None = UNSET,
    owner: str | None = UNSET,
    due_date: date | None = UNSET,
    notes: str | None = UNSET,
    type: str | None = UNSET,
    now: datetime | None = None,
) -> Intervention:
    """Change status (only along TRANSITIONS, else Conflict) and/or the other fields."""
    iv = get_intervention(session, intervention_id)
    before = _audit_view(iv)
    at = now or utcnow()
    if status is not UNSET and status != iv.status:
        _move(iv, status, at)
    if type is not UNSET:
        _check_text("type", type, max_len=200, required=True)
        assert type is not None
        iv.type = type.strip()
    if owner is not UNSET:
        _check_text("owner", owner, max_len=100)
        iv.owner = (owner or "").strip() or None
    if due_date is not UNSET:
        iv.due_date = due_date
    if notes is not UNSET:
        _check_text("notes", notes, max_len=20000)
        iv.notes = notes
    after = _audit_view(iv)
    if after != before:
        iv.updated_at = at
        session.flush()
        audit.record(
            session,
            actor=actor,
            action="intervention.update",
            entity_type="intervention",
            entity_id=iv.id,
            before=before,
            after=after,
        )
    return iv


def _filtered(
    query: Select[Any],
    *,
    status: str | None,
    owner: str | None,
    type: str | None,
    tutor_id: str | None,
    overdue: bool | None,
    today: date,
) -> Select[Any]:
    if status is not None:
        if status not in STATUSES:
            raise ValidationFailed(
                f"status: expected one of {', '.join(STATUSES)}, got {status!r}",
                details=[{"field": "status"}],
            )
        query = query.where(Intervention.status == status)
    if owner is not None:
        query = query.where(Intervention.owner == owner)
    if type is not None:
        query = query.where(Intervention.type == type)
    if tutor_id is not None:
        query = query.where(Intervention.tutor_id == tutor_id)
    if overdue is True:
        query = query.where(
            Intervention.status != "done",
            Intervention.due_date.is_not(None),
            Intervention.due_date < today,
        )
    elif overdue is False:
        query = query.where(
            or_(
                Intervention.status == "done",
                Intervention.due_date.is_(None),
                Intervention.due_date >= today,
            )
        )
    return query


def list_interventions(
    session: Session,
    *,
    status: str | None = None,
    owner: str | None = None,
    type: str | None = None,
    tutor_id: str | None = None,
    overdue: bool | None = None,
    today: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Intervention], int]:
    """Filtered page (overdue first, then by due date) and the total count."""
    today = today or utcnow().date()
    filters: dict[str, Any] = {
        "status": status,
        "owner": owner,
        "type": type,
        "tutor_id": tutor_id,
        "overdue": overdue,
        "today": today,
    }
    total = session.scalar(_filtered(select(func.count(Intervention.id)), **filters)) or 0
    status_order = case((Intervention.status == "done", 1), else_=0)  # done last
    query = _filtered(select(Intervention), **filters).order_by(
        status_order,
        Intervention.due_date.is_(None),
        Intervention.due_date,
        Intervention.id.desc(),
    )
    items = list(session.scalars(query.limit(limit).offset(offset)))
    return items, int(total)


def owners_and_types(session: Session) -> tuple[list[str], list[str]]:
    """Distinct owners and types, for the board's filter drop-downs."""
    owners = session.scalars(
        select(Intervention.owner).where(Intervention.owner.is_not(None)).distinct()
    )
    types = session.scalars(select(Intervention.type).distinct())
    return sorted(o for o in owners if o), sorted(types)
