"""User and token management over the API (admins; anyone may mint their own token)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from tutorscore.auth.users import create_token, create_user
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
