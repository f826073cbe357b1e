"""Issue 14: hostile input answers 4xx naming the field, never 500 or a traceback.

Extreme as_of offsets, NUL and lone surrogates in JSON bodies, forms and import files,
ids that cannot be part of a URL path."""


from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from tutorscore.db.engine import transaction
from tutorscore.db.models import Tutor, TutoringSession
from tutorscore.ingest.importer import ImportFailed, import_bundle
from tutorscore.web.body_check import body_problems
from web_support import AS_OF, TRANSCRIPT, add_people, bearer, session_record

EXTREME = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-24T00:00:00"]


@pytest.mark.parametrize(
    "path", ["/api/tutors", "/api/tutors/T1", "/api/no-show-risk", "/no-shows", "/first-sessions"]
)
async def test_extreme_as_of_is_400(client: httpx.AsyncClient, engine: Engine, path: str) -> None:
    add_people(engine, [{"tutor_id": "T1", "name": "Ada"}], [])
    headers = bearer(engine, "vera", "viewer")
    for value in EXTREME:
        r = await client.get(path, params={"as_of": value}, headers=headers)
        assert r.status_code == 400, (path, value, r.text)
        if path.startswith("/api"):
            assert r.json()["error"]["code"] == "bad_request"
            assert "as_of" in r.json()["error"]["message"]
        else:
            assert "as_of" in r.text


def _raw_post(body: str, auth: dict[str, str]) -> dict[str, Any]:
    """A JSON body as text, so escapes like \\ud800 reach the server as sent."""
    return {"content": body.encode(), "headers": {**auth, "Content-Type": "application/json"}}


async def test_nul_and_lone_surrogates_in_json_bodies_are_422(
    client: httpx.AsyncClient, engine: Engine
) -> None:
    add_people(engine, [{"tutor_id": "T1", "name": "Ada"}], ["S1"])
    admin = bearer(engine, "root", "admin")
    record = session_record("X1", "T1", "S1", when=AS_OF - timedelta(hours=2))
    record["turns"] = TRANSCRIPT
    text = json.dumps(record)
    cases = {
        "turns.1.text": text.replace("Quadratic", "Quad\\ud800ratic"),
        "student_feedback": text[:-1] + ', "student_feedback": "ok\\u0000"}',
        "subject": text.replace('"SAT Math"', '"\\udfff"'),
    }
    for field, body in cases.items():
        r = await client.post("/api/sessions", **_raw_post(body, admin))
        assert r.status_code == 422, (field, r.text)
        error = r.json()["error"]
        assert error["code"] == "validation_error"
        assert [d["field"] for d in error["details"]] == [field]
        assert "cannot be stored" in error["details"][0]["message"]
        assert "out_of_range" not in r.text
    r = await client.post(
        "/api/evaluate-batch", **_raw_post('{"session_ids": ["X1", "\\ud800"]}', admin)
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "session_ids.1"
    with transaction(engine) as db:
        assert db.scalar(select(func.count()).select_from(TutoringSession)) == 0
    # a surrogate *pair* (an emoji) is ordinary text
    r = await client.post(
        "/api/sessions",
        **_raw_post(text.replace("Quadratic", "Quadratic \\ud83d\\ude00"), admin),
    )
    assert r.status_code == 201, r.text


def test_form_bodies_with_nul_are_found() -> None:
    found = body_problems("application/x-www-form-urlencoded", b"note=a%00b&csrf_token=x")
    assert [p["field"] for p in found] == ["note"]
    assert body_problems("application/x-www-form-urlencoded", b"note=a%2500b") == []
    assert body_problems("application/json", b'{"a": "\\\\u0000"}') == []  # escaped backslash


async def test_ids_with_a_slash_are_refused(client: httpx.AsyncClient, engine: Engine) -> None:
    add_people(engine, [{"tutor_id": "T1", "name": "Ada"}], ["S1"])
    admin = bearer(engine, "root", "admin")
    body = session_record("X/1", "T1", "S1", when=AS_OF - timedelta(hours=2))
    r = await client.post("/api/sessions", json=body, headers=admin)
    assert r.status_code == 422
    assert "session_id: expected an id of 1-64 characters without '/'" in r.text


def _bundle(tmp: Path, *, tutor_name: str, turn_text: str) -> Path:
    (tmp / "tutors.csv").write_text(
        f"tutor_id,name,subjects\nT1,Ada,Math\nT2,{tutor_name},Math\nT/3,Cy,Math\n",
        encoding="utf-8",
        errors="surrogatepass",
    )
    (tmp / "students.csv").write_text("student_id\nS1\n")
    (tmp / "sessions.csv").write_text(
        "session_id,tutor_id,student_id,subject,scheduled_start_at,status\n"
        "X1,T1,S1,Math,2026-11-20T10:00:00Z,scheduled\n"
    )
    turn = {"speaker": "tutor", "text": turn_text}
    line = json.dumps({"session_id": "X1", "turns": [turn]})  # escapes \ud800 as text
    (tmp / "transcripts.jsonl").write_text(line + "\n")
    return tmp


def test_import_reports_nul_and_surrogates_with_file_and_line(
    engine: Engine, tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path, tutor_name="Bo\x00b", turn_text="hi \ud800 there")
    with pytest.raises(ImportFailed) as failed:
        import_bundle(engine, [bundle])
    details = failed.value.details
    assert any(
        d.startswith("tutors.csv:3: name: expected text without NUL characters")
        and "a NUL character at position 2" in d
        and '"Bo\\u0000b"' in d
        for d in details
    ), details
    assert any(d.startswith("tutors.csv:4: tutor_id: expected an id") for d in details), details
    assert any(
        d.startswith("transcripts.jsonl:1:") and "unpaired surrogate U+D800" in d for d in details
    ), details
    for d in details:
        d.encode("utf-8")  # printable: no raw surrogate in any message
    with transaction(engine) as db:
        assert db.scalar(select(func.count()).select_from(Tutor)) == 0


def test_import_cli_prints_errors_not_a_traceback(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import tutorscore.cli.ingest as module
    from tutorscore.cli import app as cli

    monkeypatch.setattr(module, "get_engine", lambda: engine)
    bundle = _bundle(tmp_path, tutor_name="Bo\x00b", turn_text="\udc00")
    result = CliRunner().invoke(cli, ["import", str(bundle)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "tutors.csv:3: name:" in result.output
    assert "transcripts.jsonl:1:" in result.output and "U+DC00" in result.output
