"""Users, roles and API tokens.

API tokens are 256-bit random strings shown once; only their sha256 is stored
(a fast hash is enough for high-entropy secrets, unlike passwords).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from tutorscore.auth import passwords
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


def normalize_username(username: str) -> str:
    """The one form of a username: NFKC, surrounding whitespace stripped, case-folded.

    Used for creation, login, throttling and every lookup, so `" Admin"`, `"admin\t"`
    and `"admin\u00a0"` are all `"admin"` (NFKC turns NBSP and other compatibility
    spaces into plain ones before the strip).
    """
    return unicodedata.normalize("NFKC", username).strip().casefold()


def _check_username(username: str) -> str:
    name = normalize_username(username)
    if (
        not 1 <= len(name) <= 100
        or any(c.isspace() for c in name)
        or any(unicodedata.category(c)[0] == "C" for c in name)
    ):
        raise UserError("username: expected 1-100 characters without spaces or control characters")
    return name


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == normalize_username(username)))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user


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
    """The principal when the password matches an active user, else None (constant-ish time).

    A hash made with older argon2 parameters is replaced by one with the current
    parameters (in the caller's transaction) while the plain password is at hand.
    """
    user = session.scalar(select(User).where(User.username == normalize_username(username)))
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return Principal(user.username, user.role, "session")


def session_version(session: Session, username: str) -> int | None:
    """The user's current session version (None when no such active user)."""
    return session.scalar(
        select(User.session_version).where(User.username == username, User.is_active)
    )


def principal_for_username(
    session: Session, username: str, version: int | None = None
) -> Principal | None:
    """The active user behind a cookie session; None when the session's version is stale."""
    row = session.execute(
        select(User.username, User.role, User.session_version).where(
            User.username == username, User.is_active
        )
    ).first()
    if row is None or (version is not None and row.session_version != version):
        return None
    return Principal(row.username, row.role, "session")


def end_sessions(session: Session, username: str) -> None:
    """Invalidate every cookie session of the user (logout, password change, deactivation)."""
    session.execute(
        update(User)
        .where(User.username == normalize_username(username))
        .values(session_version=User.session_version + 1)
    )


def set_password(
    session: Session,
    *,
    username: str,
    new_password: str,
    actor: str,
    current_password: str | None = None,
) -> None:
    """Change a password (checking `current_password` when given); ends the user's sessions."""
    user = _user(session, username)
    if current_password is not None and not verify_password(user.password_hash, current_password):
        from tutorscore.errors import PermissionDenied

        raise PermissionDenied("current_password: wrong password")
    if len(new_password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: expected at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = hash_password(new_password)
    user.session_version += 1
    record(
        session,
        actor=actor,
        action="user.set_password",
        entity_type="user",
        entity_id=user.username,
        before=None,
        after={"sessions_ended": True},
    )


def deactivate_user(session: Session, *, username: str, actor: str) -> User:
    """Deactivate a user: no login, cookie sessions and API tokens refused from now on."""
    user = _user(session, username)
    before = {"is_active": user.is_active}
    user.is_active = False
    user.session_version += 1
    record(
        session,
        actor=actor,
        action="user.deactivate",
        entity_type="user",
        entity_id=user.username,
        before=before,
        after={"is_active": False},
    )
    return user


def list_tokens(session: Session, *, username: str | None = None) -> list[dict[str, object]]:
    """API tokens (never their values), newest first; one user's when `username` is given."""
    query = (
        select(ApiToken, User.username)
        .join(User, User.id == ApiToken.user_id)
        .order_by(ApiToken.id.desc())
    )
    if username is not None:
        query = query.where(User.username == normalize_username(username))
    return [
        {
            "id": t.id,
            "username": name,
            "name": t.name,
            "created_at": t.created_at,
            "last_used_at": t.last_used_at,
            "revoked": t.revoked,
        }
        for t, name in session.execute(query)
    ]


def revoke_token(
    session: Session, *, token_id: int, actor: str, owner: str | None = None
) -> ApiToken:
    """Revoke one API token by id; `owner` restricts it to that user's tokens (404 otherwise)."""
    query = select(ApiToken).join(User, User.id == ApiToken.user_id).where(ApiToken.id == token_id)
    if owner is not None:
        query = query.where(User.username == normalize_username(owner))
    token = session.scalar(query)
    if token is None:
        raise NotFound(f"API token {token_id} not found")
    before = {"revoked": token.revoked}
    token.revoked = True
    record(
        session,
        actor=actor,
        action="token.revoke",
        entity_type="api_token",
        entity_id=token.id,
        before=before,
        after={"revoked": True},
    )
    return token


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, *, username: str, name: str | None = None, actor: str = "cli"
) -> str:
    """A new API token for `username`; returns the plain token (it is not stored)."""
    user = _user(session, username)
    username = user.username
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
        _touch_token(session, row.id, now)
    return Principal(row.username, row.role, "token")


def _touch_token(session: Session, token_id: int, now: datetime) -> None:
    """Refresh `last_used_at` in a short transaction of its own, not the request's.

    In the request's transaction the UPDATE would make every GET with a token a
    write transaction: on SQLite it held the database's write lock for the whole
    request (a seconds-long report serialised every other token request behind
    it). Best effort: a busy or unreachable database does not fail the request.
    """
    bind = session.get_bind()
    stmt = update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
    if not isinstance(bind, Engine):  # a session on a caller's connection: stay inside it
        session.execute(stmt)
        return
    try:
        with bind.begin() as conn:
            conn.execute(stmt)
    except SQLAlchemyError:
        import logging

        logging.getLogger("tutorscore.auth").warning("could not record API token use")


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
            user.session_version += 1
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
