"""Judge agreement against a hand-computed example, on SQLite and Postgres.

Four reviewed sessions, heuristic judge scores x = [2, 3, 4, 4] (a tie), human
means y = [3, 3, 4.5, 3.5] (a tie; S1 has three reviewers: 2, 3, 4; S2 two: 3, 3).

- Spearman: ranks x [1, 2, 3.5, 3.5], y [1.5, 1.5, 4, 3]; deviations from 2.5:
  dx [-1.5, -0.5, 1, 1], dy [-1, -1, 1.5, 0.5]; sum dx*dy = 4, sum dx² = sum dy² = 4.5
  -> 4 / 4.5 = 0.8889.
- Pearson: dx [-1.25, -0.25, 0.75, 0.75], dy [-0.5, -0.5, 1, 0]; 1.5 / sqrt(2.75 * 1.5)
  = 0.7385.
- MAE: (1 + 0 + 0.5 + 0.5) / 4 = 0.5.
- Kappa on rounded scores: judge [2, 3, 4, 4], human [3, 3, 5, 4] (4.5 -> 5, 3.5 -> 4);
  observed mean squared difference 0.5, expected from the marginals 1.625
  -> 1 - 0.5 / 1.625 = 0.6923.
- Tags: answer_giveaway applies to S1 (2 of 3 reviewers), the judge said it on S1, S2:
  support 1, precision 0.5, recall 1, F1 2/3. long_monologue applies to S3, the judge
  never said it: support 1, precision null, recall 0, F1 0. rushed_pacing was listed
  by 1 of S1's 3 reviewers only: support 0, all null. no_check_for_understanding: the
  judge said it, no reviewer ever did, so it is not reported.
- Inter-reviewer: S1 [2, 3, 4], S2 [3, 3]: 4 pairs, mean |diff| (1 + 2 + 1 + 0) / 4 = 1;
  Krippendorff alpha: D_o = (12 / 2) / 5 = 1.2, D_e = 20 / 20 = 1 -> -0.2; pairwise kappa
  (both orders, marginals 2: .25, 3: .5, 4: .25): 1 - 1.5 / 1.0 = -0.5.
"""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import numpy as np
import pytest
from scipy.stats import spearmanr
from sqlalchemy import Engine
from typer.testing import CliRunner

from tutorscore.config import load_rules
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Review, SessionEvaluation, Student, Tutor, TutoringSession
from tutorscore.errors import UserError
from tutorscore.reviews.agreement import (
    agreement_report,
    bootstrap_indices,
    compare_versions,
    round_half_up,
)
from web_support import bearer, login

RUBRIC = {"clarity": 3, "pacing": 3, "engagement": 3, "goal_alignment": 3}


def _evaluation(
    session_id: str, score: float, tags: list[str], *, version: str = "heuristic-v1",
    judge: str = "heuristic", model: str = "", age_days: float = 0.0,
) -> SessionEvaluation:  # fmt: skip
    return SessionEvaluation(
        session_id=session_id,
        judge=judge,
        model=model,
        prompt_version=version,
        transcript_hash=f"h{session_id}-{age_days}",
        quality_score=score,
        rubric=RUBRIC,
        risk_tags=tags,
        created_at=utcnow() - timedelta(days=age_days),
    )


def _world(engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as db:
        db.add(Tutor(tutor_id="T1", name="Ada", subjects=["Math"]))
        db.add(Student(student_id="St"))
        db.flush()
        for i, sid in enumerate(["S1", "S2", "S3", "S4", "S5"]):
            db.add(
                TutoringSession(
                    session_id=sid, tutor_id="T1", student_id="St", subject="Math",
                    scheduled_start_at=now - timedelta(days=2, hours=i), status="completed",
                )
            )  # fmt: skip
        db.flush()
        # an older evaluation (an earlier transcript) by the same version does not count
        db.add(_evaluation("S1", 5.0, ["long_monologue"], age_days=1))
        db.add(_evaluation("S1", 2.0, ["answer_giveaway"]))
        db.add(_evaluation("S2", 3.0, ["answer_giveaway"]))
        db.add(_evaluation("S3", 4.0, []))
        db.add(_evaluation("S4", 4.0, ["no_check_for_understanding"]))
        db.add(_evaluation("S5", 1.0, []))  # not reviewed: not compared
        # a second version on three of the sessions (for --compare)
        for sid, score in (("S1", 3.0), ("S3", 4.5), ("S4", 3.0)):
            db.add(_evaluation(sid, score, [], judge="llm", model="gpt-x", version="llm-v1"))
        for sid, reviewer, score, tags in (
            ("S1", "ana", 2.0, ["answer_giveaway"]),
            ("S1", "ben", 3.0, ["answer_giveaway"]),
            ("S1", "cy", 4.0, ["rushed_pacing"]),
            ("S2", "ana", 3.0, []),
            ("S2", "ben", 3.0, []),
            ("S3", "ana", 4.5, ["long_monologue"]),
            ("S4", "ana", 3.5, []),
        ):
            db.add(Review(session_id=sid, reviewer=reviewer, quality_score=score, tags=tags))


def test_round_half_up() -> None:
    assert [round_half_up(v) for v in (1.0, 2.5, 3.49, 3.5, 4.5, 5.0)] == [1, 3, 3, 4, 5, 5]


def test_agreement_equals_the_hand_computed_example(engine: Engine) -> None:
    _world(engine)
    with transaction(engine) as db:
        report = agreement_report(db, seed=5, resamples=400)
    heuristic = next(j for j in report["judges"] if j["judge"] == "heuristic")
    assert {k: heuristic[k] for k in ("judge", "model", "prompt_version", "n")} == {
        "judge": "heuristic", "model": None, "prompt_version": "heuristic-v1", "n": 4,
    }  # fmt: skip
    assert heuristic["spearman"] == 0.8889
    assert heuristic["pearson"] == 0.7385
    assert heuristic["mae"] == 0.5
    assert heuristic["kappa"] == 0.6923
    assert heuristic["tags"] == {
        "rushed_pacing": {"support": 0, "precision": None, "recall": None, "f1": None},
        "answer_giveaway": {"support": 1, "precision": 0.5, "recall": 1.0, "f1": 0.6667},
        "long_monologue": {"support": 1, "precision": None, "recall": 0.0, "f1": 0.0},
    }
    assert report["inter_reviewer"] == {
        "sessions": 2, "reviews": 5, "pairs": 4, "mean_abs_diff": 1.0,
        "krippendorff_alpha": -0.2, "pairwise_kappa": -0.5,
    }  # fmt: skip
    assert (report["reviewed_sessions"], report["reviews"]) == (4, 7)

    # the interval: the same resamples, each through scipy's spearmanr in a plain loop
    x = np.array([2.0, 3.0, 4.0, 4.0])
    y = np.array([3.0, 3.0, 4.5, 3.5])
    values = []
    for row in bootstrap_indices(4, 5, 400):
        xs, ys = x[row], y[row]
        if len(set(xs)) > 1 and len(set(ys)) > 1:
            values.append(spearmanr(xs, ys).statistic)
    low, high = np.percentile(values, [2.5, 97.5])
    assert heuristic["spearman_ci"] == [round(float(low), 4), round(float(high), 4)]
    with transaction(engine) as db:  # seeded: the same numbers every time
        assert agreement_report(db, seed=5, resamples=400) == report


def test_judge_filter_json_shape_and_cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from tutorscore.cli import app as cli_app
    from tutorscore.cli.common import console, get_engine
    from tutorscore.config import get_rules, get_settings

    _world(engine)
    monkeypatch.setattr(console, "width", 200)  # tables unwrapped
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    for cache in (get_settings, get_engine, get_rules):
        cache.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["agreement", "--judge", "llm", "--format", "json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert [j["prompt_version"] for j in data["judges"]] == ["llm-v1"]
        llm = data["judges"][0]
        assert set(llm) >= {"judge", "model", "prompt_version", "n", "spearman", "spearman_ci",
                            "pearson", "kappa", "mae", "tags"}  # fmt: skip
        assert (llm["model"], llm["n"]) == ("gpt-x", 3)
        result = CliRunner().invoke(cli_app, ["agreement"])
        assert result.exit_code == 0, result.output
        assert "heuristic/heuristic-v1" in result.output and "0.8889" in result.output
        result = CliRunner().invoke(cli_app, ["agreement", "--compare", "heuristic-v1", "llm-v1"])
        assert result.exit_code == 0, result.output
        assert "3 sessions reviewed and evaluated by both" in result.output
        result = CliRunner().invoke(cli_app, ["agreement", "--compare", "heuristic-v1", "nope"])
        assert isinstance(result.exception, UserError)  # main() prints it and exits 1
        assert "expected a judge version with reviews, got 'nope'" in str(result.exception)
    finally:
        for cache in (get_settings, get_engine, get_rules):
            cache.cache_clear()


def test_compare_uses_only_sessions_both_versions_evaluated(engine: Engine) -> None:
    _world(engine)
    with transaction(engine) as db:
        out = compare_versions(db, "heuristic/heuristic-v1", "llm/gpt-x/llm-v1", seed=3)
        with pytest.raises(UserError):
            compare_versions(db, "heuristic-v1", "heuristic/heuristic-v1")
    a, b = out["judges"]
    # common sessions S1, S3, S4: human [3, 4.5, 3.5]; heuristic [2, 4, 4]; llm [3, 4.5, 3]
    assert (a["n"], b["n"], out["compare"]["n"]) == (3, 3, 3)
    assert a["mae"] == round((1 + 0.5 + 0.5) / 3, 4)
    assert b["mae"] == round((0 + 0 + 0.5) / 3, 4)
    assert b["spearman"] == round(float(spearmanr([3, 4.5, 3], [3, 4.5, 3.5]).statistic), 4)
    assert out["compare"]["spearman_diff"] == round(b["spearman"] - a["spearman"], 4)
    assert out["compare"]["mae_diff"] == round(b["mae"] - a["mae"], 4)


async def test_api_and_judges_page(engine: Engine, client: httpx.AsyncClient) -> None:
    _world(engine)
    viewer = bearer(engine, "viewer1", "viewer")
    r = await client.get("/api/judges/agreement", headers=viewer)
    assert r.status_code == 200
    rules = load_rules(None, environ={})
    with transaction(engine) as db:
        expected = agreement_report(
            db, seed=rules.reviews.bootstrap_seed, resamples=rules.reviews.bootstrap_resamples
        )
    assert r.json() == expected
    r = await client.get("/api/judges/agreement?judge=llm", headers=viewer)
    assert [j["judge"] for j in r.json()["judges"]] == ["llm"]
    await login(client, engine, "viewer2", "viewer")
    page = (await client.get("/judges")).text
    assert page.count('<circle class="dot"') == 4 + 3  # one per compared session per version
    assert '<a href="/sessions/S1"><circle' in page
    # largest disagreement of the heuristic first: S1 (judge 2, reviewers 3) before S3, S4
    table = page.split('class="disagreements"')[1]
    assert table.index('href="/sessions/S1"') < table.index('href="/sessions/S3"')
    assert '<td>heuristic/heuristic-v1</td><td class="num">4</td><td class="num">0.889</td>' in page
