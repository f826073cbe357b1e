"""Helpers shared by the web tests; the web fixtures (web_settings, app, client) are in conftest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Engine

from tutorscore.auth.users import create_token, create_user
from tutorscore.db.engine import transaction

PASSWORD = "correct-horse-battery"

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)


def make_user(engine: Engine, username: str, role: str, password: str = PASSWORD) -> None:
    with transaction(engine) as db:
        create_user(db, username=username, password=password, role=role, actor="test")


def bearer(engine: Engine, username: str, role: str | None = None) -> dict[str, str]:
    """Authorization headers for `username` (created with `role` first when given)."""
    if role is not None:
        make_user(engine, username, role)
    with transaction(engine) as db:
        token = create_token(db, username=username, actor="test")
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, engine: Engine, username: str, role: str) -> str:
    """Create the user, log in with a cookie session, return the CSRF token."""
    make_user(engine, username, role)
    r = await client.post("/api/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["csrf_token"]
    return token


def add_people(engine: Engine, tutors: list[dict[str, Any]], students: list[str]) -> None:
    from tutorscore.db.models import Student, Tutor

    with transaction(engine) as db:
        for t in tutors:
            db.add(Tutor(subjects=["SAT Math"], **t))
        for sid in students:
            db.add(Student(student_id=sid))


def session_record(
    session_id: str,
    tutor_id: str,
    student_id: str,
    *,
    when: datetime,
    status: str = "completed",
    **extra: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "session_id": session_id,
        "tutor_id": tutor_id,
        "student_id": student_id,
        "subject": "SAT Math",
        "scheduled_start_at": when.isoformat().replace("+00:00", "Z"),
        "status": status,
    }
    if status == "completed":
        record["actual_start_at"] = (when + timedelta(minutes=1)).isoformat()
        record["duration_minutes"] = 50
    record.update(extra)
    return record


TRANSCRIPT = [
    {"speaker": "tutor", "text": "Hi! What would you like to work on today?"},
    {"speaker": "student", "text": "Quadratic equations, I keep getting stuck."},
    {"speaker": "tutor", "text": "Great. Can you show me where you get stuck on this one?"},
    {"speaker": "student", "text": "I don't know how to factor x^2 + 5x + 6."},
    {"speaker": "tutor", "text": "Which two numbers multiply to 6 and add to 5?"},
    {"speaker": "student", "text": "2 and 3! So (x + 2)(x + 3)."},
    {"speaker": "tutor", "text": "Exactly. Does that make sense? Try the next one yourself."},
    {"speaker": "student", "text": "Yes, that makes sense now."},
]
