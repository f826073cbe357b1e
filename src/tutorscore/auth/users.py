"""Users, roles and API tokens.

API tokens are 256-bit random strings shown once; only their sha256 is stored
(a fast hash is enough for high-entropy secrets, unlike passwords).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tutorscore.auth.audit import record
from tutorscore.auth.passwords import hash_password, verify_password
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import ROLES, ApiToken, User
from tutorscore.errors import Conflict, NotFound, UserError

TOKEN_PREFIX = "tsk_"
MIN_PASSWORD_LENGTH = 8
DEMO_ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, their role, and how they authenticated."""

    username: str
    role: str
    via: str = "session"  # session | token | cli

    def can(self, *roles: str) -> bool:
        """Admin may do everything; otherwise the role must be listed."""
        return self.role == "admin" or self.role in roles


def _check_username(username: str) -> str:
    name = username.strip()
    if not 1 <= len(name) <= 100 or any(c.isspace() for c in name):
        raise UserError("username: expected 1-100 characters without spaces")
    return name


def create_user(
    session: Session, *, username: str, password: str, role: str, actor: str = "cli"
) -> User:
    name = _check_username(username)
    if role not in ROLES:
        raise UserError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: expected at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User.id).where(User.username == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(username=name, password_hash=hash_password(password), role=role, is_active=True)
    session.add(user)
    session.flush()
    record(
        session,
        actor=actor,
        action="user.create",
        entity_type="user",
        entity_id=name,
        before=None,
        after={"username": name, "role": role},
    )
    return user


def authenticate(session: Session, username: str, password: str) -> Principal | None:
    """The principal when the password matches an active user, else None (constant-ish time)."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        return None
    return Principal(user.username, user.role, "session")


def principal_for_username(session: Session, username: str) -> Principal | None:
    row = session.execute(
        select(User.username, User.role).where(User.username == username, User.is_active)
    ).first()
    return Principal(row[0], row[1], "session") if row else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, *, username: str, name: str | None = None, actor: str = "cli"
) -> str:
    """A new API token for `username`; returns the plain token (it is not stored)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=hash_token(token), name=name, revoked=False)
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor,
        action="token.create",
        entity_type="api_token",
        entity_id=row.id,
        before=None,
        after={"username": username, "name": name},
    )
    return token


# last_used_at is refreshed at most this often, so API calls do not all write.
_TOUCH_INTERVAL = timedelta(minutes=5)


def principal_for_token(session: Session, token: str) -> Principal | None:
    row = session.execute(
        select(ApiToken.id, ApiToken.last_used_at, User.username, User.role)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token), ~ApiToken.revoked, User.is_active)
    ).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > _TOUCH_INTERVAL:
        token_row = session.get(ApiToken, row.id)
        if token_row is not None:
            token_row.last_used_at = now
    return Principal(row.username, row.role, "token")


def ensure_demo_admin(engine: Engine, data_dir: str | None = None) -> tuple[str, str]:
    """Make sure a demo admin exists and return its login for `tutorscore demo` to print.

    The password comes from TUTORSCORE_DEMO_PASSWORD, else from `<data dir>/demo_password`,
    else it is generated and written there (mode 0600) so it stays the same across runs.
    """
    if data_dir is None:
        from tutorscore.config import get_settings

        data_dir = get_settings().data_dir
    password = os.environ.get("TUTORSCORE_DEMO_PASSWORD")
    path = Path(data_dir) / "demo_password"
    if not password:
        if path.exists():
            password = path.read_text().strip()
        else:
            password = secrets.token_urlsafe(12)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(password)
    with transaction(engine) as session:
        user = session.scalar(select(User).where(User.username == DEMO_ADMIN_USERNAME))
        if user is None:
            create_user(
                session,
                username=DEMO_ADMIN_USERNAME,
                password=password,
                role="admin",
                actor="demo",
            )
        elif not verify_password(user.password_hash, password) or user.role != "admin":
            before = {"role": user.role, "is_active": user.is_active}
            user.password_hash = hash_password(password)
            user.role = "admin"
            user.is_active = True
            record(
                session,
                actor="demo",
                action="user.reset_demo_password",
                entity_type="user",
                entity_id=DEMO_ADMIN_USERNAME,
                before=before,
                after={"role": "admin", "is_active": True},
            )
    return DEMO_ADMIN_USERNAME, password
