"""Issue 14: usernames normalised once, an atomic throttle, sessions that end server-side,
token revocation and user deactivation (CLI and API, audited), argon2 rehash on login."""


from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from argon2 import PasswordHasher, profiles
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from tutorscore.auth import passwords
from tutorscore.db.engine import make_engine, transaction
from tutorscore.db.models import ApiToken, AuditLog, User
from web_support import PASSWORD, bearer, login, make_user


def _actions(engine: Engine) -> list[tuple[str, str, str | None]]:
    with transaction(engine) as db:
        rows = db.execute(select(AuditLog.actor, AuditLog.action, AuditLog.entity_id)).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_username_variants_are_one_user_and_one_throttle_key(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    make_user(engine, " Admin\t", "viewer")
    with transaction(engine) as db:
        assert db.scalar(select(User.username)) == "admin"
    variants = [" admin", "admin\t", "admin\u00a0", "ADMIN", "\uff41dmin"]  # last: fullwidth a
    for name in variants:
        r = await client.post("/api/login", json={"username": name, "password": "wrong-one"})
        assert r.status_code == 401, (name, r.text)
    for name in ("admin", " Admin "):
        r = await client.post("/api/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 429, (name, r.text)
    # creating the same name in another form is a conflict
    r = await client.post(
        "/api/users",
        json={"username": "ADMIN ", "password": PASSWORD, "role": "viewer"},
        headers=bearer(engine, "root", "admin"),
    )
    assert r.status_code == 409, r.text


async def test_concurrent_wrong_logins_never_pass_the_limit(
    client: httpx.AsyncClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 wrong passwords at once: exactly 5 are checked, 25 answer 429."""
    make_user(engine, "gina", "viewer")
    real = passwords.verify_password

    def slow_verify(password_hash: str | None, password: str) -> bool:
        time.sleep(0.05)  # what argon2 costs in production, so the attempts overlap
        return real(password_hash, password)

    monkeypatch.setattr("tutorscore.auth.users.verify_password", slow_verify)
    body = {"username": "gina", "password": "wrong-one"}
    responses = await asyncio.gather(*(client.post("/api/login", json=body) for _ in range(30)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [401] * 5 + [429] * 25, codes


async def _me(client: httpx.AsyncClient, cookies: httpx.Cookies) -> int:
    client.cookies = cookies
    return (await client.get("/api/me")).status_code


async def test_logout_ends_the_session_server_side(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    csrf = await login(client, engine, "lou", "coach")
    saved = httpx.Cookies(client.cookies)
    assert await _me(client, saved) == 200
    r = await client.post("/api/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    # a saved copy of the cookie no longer reads nor writes
    assert await _me(client, saved) == 401
    r = await client.post("/api/tokens", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401
    # the page logout does the same
    r = await client.post("/api/login", json={"username": "lou", "password": PASSWORD})
    csrf = r.json()["csrf_token"]
    saved = httpx.Cookies(client.cookies)
    r = await client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert await _me(client, saved) == 401


async def test_password_change_ends_every_session(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    csrf = await login(client, engine, "pat", "viewer")
    first = httpx.Cookies(client.cookies)
    client.cookies = httpx.Cookies()
    r = await client.post("/api/login", json={"username": "pat", "password": PASSWORD})
    second_csrf = r.json()["csrf_token"]
    second = httpx.Cookies(client.cookies)
    r = await client.post(
        "/api/me/password",
        json={"current_password": "not-it", "new_password": "a new long password"},
        headers={"X-CSRF-Token": second_csrf},
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": "a new long password"},
        headers={"X-CSRF-Token": second_csrf},
    )
    assert r.status_code == 204, r.text
    assert await _me(client, first) == 401 and await _me(client, second) == 401
    assert csrf
    client.cookies = httpx.Cookies()
    r = await client.post("/api/login", json={"username": "pat", "password": PASSWORD})
    assert r.status_code == 401
    r = await client.post(
        "/api/login", json={"username": "pat", "password": "a new long password"}
    )
    assert r.status_code == 200
    assert ("pat", "user.set_password", "pat") in _actions(engine)


async def test_tokens_listed_and_revoked_over_the_api(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    admin = bearer(engine, "root", "admin")
    coach = bearer(engine, "cora", "coach")
    other = bearer(engine, "vic", "viewer")
    assert (await client.get("/api/me", headers=coach)).status_code == 200
    r = await client.get("/api/tokens", headers=coach)
    (mine,) = r.json()
    assert mine["username"] == "cora" and mine["revoked"] is False and "token" not in mine
    vic_id = next(t["id"] for t in (await client.get("/api/tokens", headers=admin)).json()
                  if t["username"] == "vic")  # fmt: skip
    # a coach cannot revoke someone else's token (404, not a hint that it exists)
    r = await client.post(f"/api/tokens/{vic_id}/revoke", headers=coach)
    assert r.status_code == 404
    r = await client.post(f"/api/tokens/{mine['id']}/revoke", headers=coach)
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert (await client.get("/api/me", headers=coach)).status_code == 401
    r = await client.post(f"/api/tokens/{vic_id}/revoke", headers=admin)
    assert r.status_code == 200
    assert (await client.get("/api/me", headers=other)).status_code == 401
    actions = _actions(engine)
    assert ("cora", "token.revoke", str(mine["id"])) in actions
    assert ("root", "token.revoke", str(vic_id)) in actions


async def test_deactivated_user_loses_login_sessions_and_tokens(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    admin = bearer(engine, "root", "admin")
    await login(client, engine, "dana", "coach")
    saved = httpx.Cookies(client.cookies)
    client.cookies = httpx.Cookies()
    token = bearer(engine, "dana")
    r = await client.post("/api/users/DANA/deactivate", headers=admin)
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert await _me(client, saved) == 401
    client.cookies = httpx.Cookies()
    assert (await client.get("/api/me", headers=token)).status_code == 401
    r = await client.post("/api/login", json={"username": "dana", "password": PASSWORD})
    assert r.status_code == 401
    r = await client.post("/api/users/nobody/deactivate", headers=admin)
    assert r.status_code == 404
    coach = bearer(engine, "cy", "coach")
    assert (await client.post("/api/users/root/deactivate", headers=coach)).status_code == 403
    assert ("root", "user.deactivate", "dana") in _actions(engine)


def test_cli_tokens_revoke_users_deactivate_set_password(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tutorscore.cli.web as module
    from tutorscore.auth.users import authenticate, principal_for_token
    from tutorscore.cli import app as cli

    monkeypatch.setattr(module, "get_engine", lambda: engine)
    runner = CliRunner()
    make_user(engine, "ema", "coach")
    r = runner.invoke(cli, ["tokens", "create", "--username", " EMA"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    listed = runner.invoke(cli, ["tokens", "list", "--username", "ema"])
    assert listed.exit_code == 0 and "\tema\t" in listed.stdout and "active" in listed.stdout
    token_id = int(listed.stdout.split("\t")[0])
    r = runner.invoke(cli, ["tokens", "revoke", str(token_id)])
    assert r.exit_code == 0 and "revoked 1" in r.output
    with transaction(engine) as db:
        assert principal_for_token(db, token) is None
        assert db.scalar(select(ApiToken.revoked).where(ApiToken.id == token_id)) is True
    r = runner.invoke(cli, ["tokens", "revoke", "999999"])
    assert r.exit_code == 1 and "not found" in str(r.exception)  # main() prints it
    r = runner.invoke(cli, ["users", "set-password", "--username", "ema", "--password-stdin"],
                      input="brand new secret\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    with transaction(engine) as db:
        assert authenticate(db, "ema", "brand new secret") is not None
    r = runner.invoke(cli, ["users", "deactivate", "--username", "Ema"])
    assert r.exit_code == 0, r.output
    with transaction(engine) as db:
        assert authenticate(db, "ema", "brand new secret") is None
    actions = _actions(engine)
    for action in ("token.revoke", "user.set_password", "user.deactivate"):
        assert ("cli", action, str(token_id) if action == "token.revoke" else "ema") in actions


def test_login_rehashes_a_hash_with_old_parameters(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tutorscore.auth.users import authenticate

    make_user(engine, "olga", "viewer")  # hashed with the tests' cheapest profile
    with transaction(engine) as db:
        old = db.scalars(select(User.password_hash)).one()
    stronger = PasswordHasher.from_parameters(profiles.CHEAPEST)
    stronger = PasswordHasher(
        time_cost=stronger.time_cost + 1,
        memory_cost=stronger.memory_cost * 2,
        parallelism=1,
        hash_len=16,
        salt_len=16,
    )
    monkeypatch.setattr(passwords, "_hasher", stronger)
    assert passwords.needs_rehash(old)
    with transaction(engine) as db:
        assert authenticate(db, "olga", PASSWORD) is not None
    with transaction(engine) as db:
        new = db.scalars(select(User.password_hash)).one()
        assert new != old and not passwords.needs_rehash(new)
        assert authenticate(db, "olga", PASSWORD) is not None
    with transaction(engine) as db:
        assert db.scalar(select(User.password_hash)) == new  # no rehash when current


def test_migration_0005_normalises_usernames(engine: Engine) -> None:
    from tutorscore.db.migrate import downgrade, upgrade
    from tutorscore.testing.databases import temporary_database

    backend = "postgres" if engine.dialect.name == "postgresql" else "sqlite"
    with temporary_database(backend, label="mig3") as url:
        db = make_engine(url)
        upgrade(db)
        downgrade(db, "0004")
        insert = text(
            "INSERT INTO users (username, password_hash, role, is_active, created_at)"
            " VALUES (:u, 'x', 'viewer', :a, '2026-11-01 00:00:00')"
        )
        with db.begin() as conn:
            for name in ("Carol", " Dave ", "erin", "ERIN"):
                conn.execute(insert, {"u": name, "a": True})
        upgrade(db)
        with db.connect() as conn:
            result = conn.execute(text("SELECT username, session_version FROM users"))
            rows: dict[str, int] = {r[0]: r[1] for r in result}
        db.dispose()
    # ERIN would collide with erin: left as it was
    assert rows == {"carol": 0, "dave": 0, "erin": 0, "ERIN": 0}


def test_token_use_is_recorded_outside_the_request_transaction(engine: Engine) -> None:
    """A GET with a token must not turn into a write transaction holding locks: the
    last_used_at refresh commits on its own (it survives the request's rollback) and the
    request's transaction holds no lock on the token row (on SQLite: no write lock)."""
    from sqlalchemy.orm import Session

    from tutorscore.auth.users import principal_for_token

    make_user(engine, "tia", "viewer")
    with transaction(engine) as db:
        from tutorscore.auth.users import create_token

        token = create_token(db, username="tia", actor="test")
    with Session(engine) as request_db:
        request_db.begin()
        assert principal_for_token(request_db, token) is not None
        with engine.connect() as other:
            if engine.dialect.name == "sqlite":
                other.exec_driver_sql("PRAGMA busy_timeout=0")
                other.exec_driver_sql("BEGIN IMMEDIATE")  # raises 'database is locked' if held
                other.exec_driver_sql("ROLLBACK")
            else:
                other.execute(
                    text("SELECT id FROM api_tokens FOR UPDATE NOWAIT")
                ).all()  # raises if the request's transaction locked the row
                other.rollback()
        request_db.rollback()
    with transaction(engine) as db:
        assert db.scalar(select(ApiToken.last_used_at)) is not None
