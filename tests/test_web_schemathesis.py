"""Property-based API test: every documented operation, generated inputs, never a 5xx.

Runs on both backends (the `engine` fixture): Postgres refuses inputs SQLite takes
(NUL characters, out-of-range integers), so it is fuzzed there too. MAX_EXAMPLES
bounds the run: about 5 s per backend on the 2-core CI machine.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Err
from sqlalchemy import Engine

from tutorscore.config import RulesConfig
from tutorscore.flows.metrics import nightly_recompute
from web_support import AS_OF, add_people, bearer

MAX_EXAMPLES = 20
# Heavy or destructive operations are covered by their own tests, not fuzzed here; login
# and user creation hash passwords with argon2 (deliberately slow) on every example.
SKIP = {
    ("POST", "/api/login"),
    ("POST", "/api/users"),
    ("POST", "/api/seed-data"),
    ("POST", "/api/run-analytics"),
    ("POST", "/api/evaluate-batch"),
    ("POST", "/api/logout"),
    # would revoke the fuzzer's own token (id 1) or lock accounts: tests/test_web_sessions.py
    ("POST", "/api/tokens/{token_id}/revoke"),
    ("POST", "/api/users/{username}/deactivate"),
    ("POST", "/api/me/password"),
}


def _small_world(engine: Engine, rules: RulesConfig) -> None:
    from tutorscore.db.engine import transaction
    from tutorscore.db.models import TutoringSession

    add_people(engine, [{"tutor_id": "T1", "name": "Ada"}], ["S1"])
    with transaction(engine) as db:
        for i in range(3):
            db.add(
                TutoringSession(
                    session_id=f"X{i}",
                    tutor_id="T1",
                    student_id="S1",
                    subject="SAT Math",
                    scheduled_start_at=AS_OF - timedelta(days=i + 1),
                    status="completed",
                    student_rating=4,
                )
            )
    nightly_recompute(engine, as_of=AS_OF, rules=rules)


def test_no_server_errors_on_any_operation(
    app: FastAPI, engine: Engine, rules: RulesConfig
) -> None:
    _small_world(engine, rules)
    headers = bearer(engine, "fuzzer", "admin")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    tested = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the app's own schema does not load: a failure, not a skip
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        tested += 1

        @given(case=operation.as_strategy(), auth=st.booleans())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case[Any], auth: bool) -> None:
            try:
                response = case.call(headers=headers if auth else {})
            except Exception as exc:  # the test client re-raises what the app did not handle
                failures.append(f"{case.method} {case.formatted_path} raised {exc!r}"[:300])
                return
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]}"
                )
            elif (
                response.status_code >= 400
                and "json" in response.headers.get("content-type", [""])[0]
            ):
                body = response.json()
                assert set(body) == {"error"}, body
                assert {"code", "message", "details"} <= set(body["error"]), body

        run()
    assert tested >= 8
    assert not failures, "\n".join(failures[:20])
