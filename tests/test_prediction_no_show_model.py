"""The trained no-show model: gated against the formula on a time-ordered backtest."""
from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import Engine, insert, update

from tutorscore.config import RulesConfig, Settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import Student, Tutor, TutoringSession
from tutorscore.errors import UserError
from tutorscore.prediction import no_show_model as nm
from tutorscore.prediction.no_show import formula_risks, no_show_risks
from web_support import bearer, login

END = datetime(2026, 11, 1, tzinfo=UTC)


def history(engine: Engine, *, days: int = 70, seed: int = 5) -> None:
    """No-shows the formula cannot see: a session that replaces a rescheduled one is
    missed 35% of the time, a Sunday session 12%, any other 2%. Tutors and students
    have no rate of their own. Sessions are booked 1-10 days ahead."""
    rng = random.Random(seed)
    tutors = [f"T{i:02d}" for i in range(25)]
    students = [f"S{i:03d}" for i in range(150)]
    rows: list[dict[str, Any]] = []
    start = END - timedelta(days=days)
    n = 0
    for d in range(days + 7):
        for _ in range(45):
            n += 1
            at = start + timedelta(days=d, hours=rng.choice((15, 17, 19)))
            back = rng.randint(1, 30)
            replaces = (
                rows[-back]["session_id"] if len(rows) >= back and rng.random() < 0.2 else None
            )
            p = 0.35 if replaces else (0.12 if at.weekday() == 6 else 0.02)
            status = "no_show" if rng.random() < p else "completed"
            if at > END:
                status = "scheduled"
            rows.append(
                {
                    "session_id": f"X{n:06d}",
                    "tutor_id": rng.choice(tutors),
                    "student_id": rng.choice(students),
                    "subject": "Math",
                    "scheduled_start_at": at,
                    "status": status,
                    "no_show_by": "student" if status == "no_show" else None,
                    "rescheduled_from_session_id": replaces,
                    "created_at": at - timedelta(days=rng.uniform(1, 10)),
                }
            )
    with engine.begin() as conn:
        conn.execute(insert(Tutor), [{"tutor_id": t, "name": t, "subjects": []} for t in tutors])
        conn.execute(insert(Student), [{"student_id": s} for s in students])
        conn.execute(insert(TutoringSession), rows)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(TUTORSCORE_DATA_DIR=str(tmp_path))


def test_model_beats_the_formula_on_the_backtest_and_then_scores_sessions(
    engine: Engine, rules: RulesConfig, settings: Settings
) -> None:
    history(engine)
    result = nm.train_no_show_model(
        engine, as_of=END, rules=rules, settings=settings, days=7, windows=6
    )
    assert result.model_auc is not None and result.formula_auc is not None
    assert result.model_auc > result.formula_auc + 0.1 and result.gate_passed
    assert result.heldout_window.startswith(f"({(END - timedelta(days=7)).isoformat()}")
    assert sum(b["rows"] for b in result.reliability) == result.heldout_sessions
    model_file = Path(settings.data_dir) / "models" / f"no-show-{result.version}.model.json"
    assert json.loads(model_file.read_text())["model"]["coef"]  # plain arrays

    with transaction(engine) as s:
        risks = no_show_risks(s, as_of=END, rules=rules, days=7, settings=settings)
        formula = {r.session_id: r for r in formula_risks(s, as_of=END, rules=rules, days=7)}
    assert risks and all(r.source == "model" for r in risks)
    replacements = [r for r in risks if r.rescheduled_from]
    others = [r for r in risks if not r.rescheduled_from and r.scheduled_start_at.weekday() != 6]
    assert np.mean([r.probability for r in replacements]) > 3 * np.mean(
        [r.probability for r in others]
    )
    top = max(risks, key=lambda r: r.probability)
    assert any(f["feature"] in ("is_replacement", "reschedule_chain") for f in top.factors)
    # the formula's counts are still there, and its probability beside the model's
    assert [c.name for c in top.components] == [c.name for c in formula[top.session_id].components]
    assert top.formula_probability == pytest.approx(formula[top.session_id].probability)
    assert top.as_dict()["source"] == "model" and top.as_dict()["factors"] == top.factors

    # a model that failed its gate leaves the formula in charge
    sidecar = Path(settings.data_dir) / "models" / f"no-show-{result.version}.json"
    meta = json.loads(sidecar.read_text())
    meta["gate"] = {"passed": False, "reason": "forced"}
    sidecar.write_text(json.dumps(meta))
    (Path(settings.data_dir) / "models" / f"no-show-{result.version}.model.json").touch()
    with transaction(engine) as s:
        again = no_show_risks(s, as_of=END, rules=rules, days=7, settings=settings)
    assert all(r.source == "formula" and not r.factors for r in again)
    assert {r.session_id: r.probability for r in again} == pytest.approx(
        {k: v.probability for k, v in formula.items()}
    )


def test_window_features_never_read_outcomes_from_the_window_or_after(
    engine: Engine, rules: RulesConfig
) -> None:
    history(engine, days=30)
    t = END - timedelta(days=7)
    with transaction(engine) as s:
        risks = formula_risks(s, as_of=t, rules=rules, days=7, statuses=("completed", "no_show"))
        before = nm.session_features(s, risks, as_of=t, rules=rules, days=7)
    with engine.begin() as conn:
        conn.execute(
            update(TutoringSession)
            .where(TutoringSession.scheduled_start_at > t, TutoringSession.status == "completed")
            .values(status="no_show", no_show_by="tutor")
        )
    with transaction(engine) as s:
        risks = formula_risks(s, as_of=t, rules=rules, days=7, statuses=("completed", "no_show"))
        after = nm.session_features(s, risks, as_of=t, rules=rules, days=7)
    np.testing.assert_array_equal(after, before)


def test_too_little_history_is_a_clear_error(
    engine: Engine, rules: RulesConfig, settings: Settings
) -> None:
    history(engine, days=9)
    with pytest.raises(UserError, match="--days or --windows"):
        nm.train_no_show_model(engine, as_of=END, rules=rules, settings=settings, windows=6)


async def test_page_and_api_say_which_scores_and_show_the_factors(
    engine: Engine, rules: RulesConfig, web_settings: Settings, client: httpx.AsyncClient
) -> None:
    history(engine)
    h = bearer(engine, "ops", "viewer")
    r = await client.get("/api/no-show-model", headers=h)
    assert r.status_code == 200 and r.json()["status"]["used"] is False
    result = nm.train_no_show_model(engine, as_of=END, rules=rules, settings=web_settings)
    assert result.gate_passed
    r = await client.get("/api/no-show-model", headers=h)
    assert r.json()["status"]["version"] == result.version and r.json()["status"]["used"]
    r = await client.get(
        "/api/no-show-risk", params={"as_of": END.isoformat(), "all": "true"}, headers=h
    )
    body = r.json()
    assert body["model"]["used"] is True
    assert body["items"] and all(i["source"] == "model" for i in body["items"])
    assert any(i["factors"] for i in body["items"])
    await login(client, engine, "olga", "viewer")
    r = await client.get("/no-shows", params={"as_of": END.isoformat()})
    assert r.status_code == 200, r.text
    assert f"no-show model {result.version}" in r.text
    assert 'class="factor"' in r.text and "tutor" in r.text


def test_cli_trains_shows_and_backtests(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import tutorscore.cli.prediction as pred_module
    from tutorscore.cli import app as cli_app
    from tutorscore.config import get_rules, get_settings

    monkeypatch.setenv("TUTORSCORE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    get_rules.cache_clear()
    monkeypatch.setattr(pred_module, "get_engine", lambda: engine)
    history(engine)
    cli = CliRunner()
    try:
        result = cli.invoke(cli_app, ["model", "show", "--no-shows"])
        assert isinstance(result.exception, UserError)
        args = ["model", "train-no-shows", "--as-of", END.isoformat(), "--format", "json"]
        result = cli.invoke(cli_app, args)
        assert result.exit_code == 0, result.output
        trained = json.loads(result.stdout)
        assert trained["gate_passed"] == (trained["model_auc"] > trained["formula_auc"])
        result = cli.invoke(cli_app, ["model", "show", "--no-shows"])
        assert result.exit_code == 0 and "held-out AUC formula" in result.stdout
        assert "no-show reliability" in result.stdout
        result = cli.invoke(
            cli_app,
            ["no-shows", "--backtest", "--as-of", (END - timedelta(days=7)).isoformat()],
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["source"] == "model" and report["formula_auc"] is not None
    finally:
        get_settings.cache_clear()
        get_rules.cache_clear()
