"""The model / no-shows / interventions / alerts commands and the churn-model endpoint."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from test_prediction_churn import END, populate
from tutorscore.config import RulesConfig, Settings, get_rules, get_settings
from tutorscore.errors import Conflict, UserError
from web_support import bearer


@pytest.fixture
def cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    import tutorscore.cli.interventions as iv_module
    import tutorscore.cli.prediction as pred_module

    monkeypatch.setenv("TUTORSCORE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TUTORSCORE_PREDICTION__TRAINING_SNAPSHOTS", "5")
    get_settings.cache_clear()
    get_rules.cache_clear()
    monkeypatch.setattr(pred_module, "get_engine", lambda: engine)
    monkeypatch.setattr(iv_module, "get_engine", lambda: engine)
    yield CliRunner()
    get_settings.cache_clear()
    get_rules.cache_clear()


def test_model_commands(cli: CliRunner, engine: Engine) -> None:
    from tutorscore.cli import app as cli_app

    populate(engine, tutors=50, days=45)
    result = cli.invoke(cli_app, ["model", "show"])
    assert isinstance(result.exception, UserError)  # nothing trained yet
    result = cli.invoke(cli_app, ["model", "train", "--as-of", "2026-09-20"])
    assert isinstance(result.exception, UserError)  # no outcome observed that early
    assert "--labels-until" in str(result.exception)
    until = (END + timedelta(days=30)).isoformat()
    result = cli.invoke(
        cli_app,
        ["model", "train", "--as-of", END.isoformat(), "--labels-until", until, "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout)
    assert trained["heldout_model_auc"] is not None and trained["heldout_rules_auc"] is not None
    assert trained["gate_passed"] == (trained["heldout_model_auc"] > trained["heldout_rules_auc"])
    result = cli.invoke(cli_app, ["model", "show", "--format", "json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["version"] == trained["version"]
    assert shown["metrics"]["heldout_model_auc"] == trained["heldout_model_auc"]
    result = cli.invoke(cli_app, ["model", "evaluate", "--format", "json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    assert evaluated["snapshots"][0]["as_of"] == trained["heldout_snapshot"]
    assert evaluated["snapshots"][0]["rules_auc"] is not None
    assert evaluated["reliability"] and shown["reliability"] == trained["reliability"]
    result = cli.invoke(cli_app, ["model", "show"])  # table output
    assert result.exit_code == 0 and "held-out AUC rules" in result.stdout
    assert "churn reliability on the held-out rows" in result.stdout
    assert "observed rate" in result.stdout


def test_no_shows_interventions_and_alerts_commands(
    cli: CliRunner, engine: Engine, rules: RulesConfig
) -> None:
    from tutorscore.cli import app as cli_app

    populate(engine, tutors=3, days=10)
    result = cli.invoke(cli_app, ["no-shows", "--as-of", END.isoformat(), "--all"])
    assert result.exit_code == 0, result.output
    assert "0 upcoming sessions" in result.stdout
    result = cli.invoke(
        cli_app,
        ["interventions", "create", "--tutor", "T000", "--type", "Pacing", "--due", "2026-01-01"],
    )
    assert result.exit_code == 0, result.output
    result = cli.invoke(cli_app, ["interventions", "update", "1", "--status", "done"])
    assert isinstance(result.exception, Conflict)
    result = cli.invoke(cli_app, ["interventions", "update", "1", "--status", "in_progress"])
    assert result.exit_code == 0, result.output
    result = cli.invoke(cli_app, ["interventions", "list", "--overdue", "--format", "json"])
    listed = json.loads(result.stdout)
    assert listed["total"] == 1 and listed["items"][0]["status"] == "in_progress"
    assert listed["items"][0]["overdue"] is True
    result = cli.invoke(cli_app, ["interventions", "create", "--tutor", "T000", "--type", "x",
                                  "--due", "tomorrow"])  # fmt: skip
    assert isinstance(result.exception, UserError)
    result = cli.invoke(cli_app, ["recommendations", "T000"])
    assert result.exit_code == 0 and "nothing flagged" in result.stdout
    result = cli.invoke(cli_app, ["alerts", "list"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    result = cli.invoke(cli_app, ["alerts", "deliver"])
    assert isinstance(result.exception, UserError)


async def test_churn_model_endpoint_says_who_decides(
    engine: Engine, rules: RulesConfig, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    from tutorscore.prediction.churn import train_churn_model
    from tutorscore.prediction.logit import WindowedLogit

    h = bearer(engine, "viewer", "viewer")
    r = await client.get("/api/churn-model", headers=h)
    assert r.status_code == 200
    assert r.json()["status"]["used"] is False and r.json()["versions"] == []
    populate(engine, tutors=40, days=40)
    five = rules.model_copy(
        update={"prediction": rules.prediction.model_copy(update={"training_snapshots": 5})}
    )
    result = train_churn_model(
        engine,
        as_of=END,
        rules=five,
        settings=Settings(TUTORSCORE_DATA_DIR=str(tmp_path)),
        candidates={"lr": WindowedLogit(C=0.1)},
        labels_until=END + timedelta(days=30),
    )
    r = await client.get("/api/churn-model", headers=h)
    status = r.json()["status"]
    assert status["version"] == result.version
    assert status["used"] is result.gate_passed
    assert status["heldout_model_auc"] == result.heldout_model_auc
    assert status["heldout_rules_auc"] == result.heldout_rules_auc
    assert status["reliability"] == result.reliability
    assert status["calibration"]["method"] == "platt"
