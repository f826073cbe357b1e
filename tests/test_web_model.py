"""`/model` page: the churn model's gate, held-out scores and the SVG reliability diagram."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine

from test_prediction_churn import END, populate
from tutorscore.config import RulesConfig, Settings
from tutorscore.prediction.churn import train_churn_model
from tutorscore.prediction.logit import WindowedLogit
from web_support import login

EVIL = '<script>alert("x")</script>'


async def test_model_page_shows_gate_scores_and_reliability(
    client: httpx.AsyncClient, engine: Engine, rules: RulesConfig, web_settings: Settings
) -> None:
    await login(client, engine, "olga", "viewer")
    r = await client.get("/model")
    assert r.status_code == 200 and "no churn model trained" in r.text
    assert 'href="/model" aria-current="page"' in r.text

    populate(engine, tutors=40, days=45)
    five = rules.model_copy(
        update={"prediction": rules.prediction.model_copy(update={"training_snapshots": 5})}
    )
    result = train_churn_model(
        engine,
        as_of=END,
        rules=five,
        settings=web_settings,
        candidates={"lr": WindowedLogit(C=0.1)},
        labels_until=END + timedelta(days=30),
    )
    assert result.reliability
    # a sidecar is data from disk: whatever it says is escaped
    sidecar = Path(web_settings.data_dir) / "models" / f"churn-{result.version}.json"
    meta = json.loads(sidecar.read_text())
    meta["candidate"] = EVIL
    sidecar.write_text(json.dumps(meta))

    r = await client.get("/model")
    assert r.status_code == 200, r.text
    html = r.text
    assert result.version is not None and result.version in html
    assert ("Used:" in html) is result.gate_passed
    heldout = html.split('id="heldout-table"')[1].split("</table>")[0]
    assert f"{result.heldout['model']['auc']:.3f}" in heldout
    assert f"{result.heldout['rules']['auc']:.3f}" in heldout
    assert f"{result.heldout['model']['brier']:.3f}" in heldout
    svg = html.split('id="reliability-chart"')[1].split("</svg>")[0]
    assert len(re.findall(r"<circle ", svg)) == len(result.reliability)
    assert 'class="diagonal"' in svg
    table = html.split('id="reliability-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == len(result.reliability) + 1
    assert EVIL not in html and "&lt;script&gt;" in html


async def test_model_page_needs_a_login(client: httpx.AsyncClient) -> None:
    r = await client.get("/model")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
