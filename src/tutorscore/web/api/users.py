"""User and token management over the API (admins; anyone may mint their own token)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from tutorscore.auth.users import (
    create_token,
    create_user,
    deactivate_user,
    list_tokens,
    revoke_token,
)
from tutorscore.db.models import User
from tutorscore.web.deps import AdminUser, CurrentUser, DbSession

router = APIRouter(prefix="/api", tags=["auth"])


class UserIn(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1000)
    role: Literal["admin", "coach", "viewer"]


class UserOut(BaseModel):
    username: str
    role: str
    is_active: bool
    created_at: datetime


class TokenIn(BaseModel):
    name: str | None = Field(None, max_length=100)


class TokenOut(BaseModel):
    token: str = Field(description="shown once; only its hash is stored")
    username: str


@router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    responses={409: {"description": "username taken"}, 400: {"description": "weak password"}},
)
def add_user(body: UserIn, db: DbSession, user: AdminUser) -> UserOut:
    row = create_user(
        db, username=body.username, password=body.password, role=body.role, actor=user.username
    )
    return UserOut(
        username=row.username, role=row.role, is_active=row.is_active, created_at=row.created_at
    )


@router.get("/users", response_model=list[UserOut])
def list_users(db: DbSession, user: AdminUser) -> list[UserOut]:
    rows = db.scalars(select(User).order_by(User.username)).all()
    return [
        UserOut(username=r.username, role=r.role, is_active=r.is_active, created_at=r.created_at)
        for r in rows
    ]


@router.post("/tokens", response_model=TokenOut, status_code=201)
def add_token(body: TokenIn, db: DbSession, user: CurrentUser) -> TokenOut:
    """A new API token acting as the caller, with the caller's role."""
    token = create_token(db, username=user.username, name=body.name, actor=user.username)
    return TokenOut(token=token, username=user.username)


class TokenInfo(BaseModel):
    id: int
    username: str
    name: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


@router.get("/tokens", response_model=list[TokenInfo])
def get_tokens(db: DbSession, user: CurrentUser) -> list[dict[str, object]]:
    """API tokens (never their values): an admin sees everyone's, others their own."""
    return list_tokens(db, username=None if user.role == "admin" else user.username)


@router.post(
    "/tokens/{token_id}/revoke",
    response_model=TokenInfo,
    responses={404: {"description": "no such token (or not the caller's)"}},
)
def revoke(token_id: int, db: DbSession, user: CurrentUser) -> dict[str, object]:
    """Revoke a token at once (audited). Admins may revoke any, others only their own."""
    owner = None if user.role == "admin" else user.username
    revoke_token(db, token_id=token_id, actor=user.username, owner=owner)
    db.flush()
    (info,) = [t for t in list_tokens(db) if t["id"] == token_id]
    return info


@router.post(
    "/users/{username}/deactivate",
    response_model=UserOut,
    responses={404: {"description": "no such user"}},
)
def deactivate(username: str, db: DbSession, user: AdminUser) -> UserOut:
    """Deactivate a user (audited): logins, cookie sessions and API tokens stop working."""
    row = deactivate_user(db, username=username, actor=user.username)
    return UserOut(
        username=row.username, role=row.role, is_active=row.is_active, created_at=row.created_at
    )
