"""Churn: the shipped model beside a plain baseline and the rules, on the same splits.

Run: .venv/bin/python benchmarks/prediction.py [--dataset demo|planted|planted-800|1m ...]
     [--reuse-sqlite PATH]   (the 1M set takes minutes to seed; PATH keeps it)

Datasets (churn outcomes are known after the history for `demo` and `1m`, so
labels are read up to as_of + horizon; `planted` has churn inside its history and
trains strictly on outcomes observed by as_of):
  demo     `tutorscore demo`'s data: 100 tutors, 3,000 sessions over 7 days, seed 42,
           heuristic-judge evaluations of its transcripts
  planted  testing/churn_history.py: 240 active tutors, 180 days, leavers fade out
           over 2-7 weeks (the shape of the imported history in issue 16)
  planted-800  the same with 800 active tutors (the churn test's dataset: about
           100 leavers in the held-out snapshot instead of about 30)
  1m       `seed --tutors 10000 --students 200000 --sessions 1000000 --days 90`

For each: the shipped pipeline's snapshots and its held-out split (the latest
labelled snapshot; each tutor predicted by models trained on earlier snapshots of
the *other* tutors, outcomes known by then). On those rows:
  shipped   what `tutorscore model train` does: windowed features, C by grouped CV,
            Platt calibration fitted on the CV predictions only
  baseline  standardised logistic regression (C=1) on the nine windowed features of
            benchmarks/prediction_baseline.py, fitted on the same training rows
  rules     churn_risk_label 0/1/2 (Brier: each label's training churn rate)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import Engine, func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prediction_baseline import baseline_features  # noqa: E402
from tutorscore.config import RulesConfig, load_rules  # noqa: E402
from tutorscore.db.engine import make_engine, transaction  # noqa: E402
from tutorscore.db.migrate import upgrade  # noqa: E402
from tutorscore.db.models import TutoringSession  # noqa: E402
from tutorscore.prediction import churn  # noqa: E402
from tutorscore.prediction.logit import Platt, brier  # noqa: E402
from tutorscore.testing.databases import temporary_database  # noqa: E402

DEMO_AS_OF = datetime(2026, 11, 24, tzinfo=UTC)
PLANTED_END = datetime(2026, 11, 1, tzinfo=UTC)


def load_demo(engine: Engine, rules: RulesConfig) -> tuple[datetime, datetime | None]:
    from tutorscore.config import Settings
    from tutorscore.evaluation.worker import evaluate_pending
    from tutorscore.ingest.synthetic import seed

    seed(engine, seed=42, as_of=DEMO_AS_OF)
    asyncio.run(evaluate_pending(engine, Settings(), rules))
    return DEMO_AS_OF, DEMO_AS_OF + timedelta(days=rules.prediction.horizon_days)


def load_planted(
    engine: Engine, rules: RulesConfig, tutors: int = 240
) -> tuple[datetime, datetime | None]:
    from tutorscore.testing.churn_history import load_history

    load_history(engine, end=PLANTED_END, tutors=tutors, days=180, seed=1)
    return PLANTED_END, None


def load_planted_800(engine: Engine, rules: RulesConfig) -> tuple[datetime, datetime | None]:
    return load_planted(engine, rules, tutors=800)


def load_1m(engine: Engine, rules: RulesConfig) -> tuple[datetime, datetime | None]:
    from tutorscore.ingest.synthetic import seed

    with engine.connect() as conn:
        have = conn.scalar(select(func.count()).select_from(TutoringSession))
    if not have:
        seed(engine, tutors=10_000, students=200_000, sessions=1_000_000, days=90,
             transcripts=0, seed=42, as_of=DEMO_AS_OF)  # fmt: skip
    return DEMO_AS_OF, DEMO_AS_OF + timedelta(days=rules.prediction.horizon_days)


LOADERS = {
    "demo": load_demo,
    "planted": load_planted,
    "planted-800": load_planted_800,
    "1m": load_1m,
}


def metrics(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> tuple[Any, Any, Any]:
    return churn.auc(y, p), churn.pr_auc(y, p), brier(y, p)


def run(name: str, engine: Engine, rules: RulesConfig) -> list[tuple[str, ...]]:
    started = time.perf_counter()
    as_of, labels_until = LOADERS[name](engine, rules)
    loaded_s = time.perf_counter() - started
    started = time.perf_counter()
    with transaction(engine) as session:
        times = churn.snapshot_times(session, as_of=as_of, rules=rules, labels_until=labels_until)
        data = churn.build_dataset(session, as_ofs=times, rules=rules)
        Xb = baseline_features(session, data)
    features_s = time.perf_counter() - started
    started = time.perf_counter()
    v = churn.select_and_validate(data, churn.make_candidates(rules))
    assert v.heldout is not None and v.chosen is not None
    report = churn.heldout_report(data, v)
    select_s = time.perf_counter() - started
    te = v.heldout_mask
    y = data.y[te]
    folds = churn.tutor_folds(data.tutor_ids)
    train, gap = churn.training_snapshots_for(data, v.heldout)
    base_data = churn.Dataset(data.names, Xb, data.y, data.rules_score, data.snapshot,
                              data.tutor_ids, data.as_ofs, data.horizon_days)  # fmt: skip
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    bmask, bscore = churn.cross_fitted(base_data, baseline, target=v.heldout, train_snaps=train,
                                       folds=folds)  # fmt: skip
    assert np.array_equal(bmask, te), "baseline and shipped scored different rows"
    base_p = 1 / (1 + np.exp(-bscore))
    shipped_p = Platt.fit(v.cv_scores, data.y[v.cv_mask])(v.heldout_scores)
    before = data.snapshot < v.heldout
    rules_p = churn.rules_probability(data, before, data.rules_score)[te]
    rows = []
    print(
        f"\n{name}: {len(times)} snapshots {times[0]:%Y-%m-%d}..{times[-1]:%Y-%m-%d}, "
        f"{len(data.y):,} rows ({int(data.y.sum()):,} churned); "
        f"held-out {times[v.heldout]:%Y-%m-%d}: "
        f"{int(te.sum())} tutors, {int(y.sum())} churned; shipped chose {v.chosen}; "
        f"train/test gap of one horizon: {gap}; seconds: data {loaded_s:.0f}, "
        f"features {features_s:.1f}, CV+held-out {select_s:.1f}"
    )
    print(f"  {'model':<10}{'AUC':>8}{'PR-AUC':>8}{'Brier':>8}")
    for label, p in (("shipped", shipped_p), ("baseline", base_p), ("rules", rules_p)):
        a, pr, b = metrics(y, p) if label != "rules" else (
            churn.auc(y, data.rules_score[te].astype(float)),
            churn.pr_auc(y, data.rules_score[te].astype(float)), brier(y, p))  # fmt: skip
        print(f"  {label:<10}{a:>8.3f}{pr:>8.3f}{b:>8.3f}")
        rows.append((name, label, f"{a:.3f}", f"{pr:.3f}", f"{b:.3f}"))
    raw = report["model"]
    print(f"  shipped uncalibrated: AUC {raw['auc_uncalibrated']:.3f}, "
          f"Brier {raw['brier_uncalibrated']:.3f} (balanced class weights)")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", action="append", choices=sorted(LOADERS))
    parser.add_argument("--reuse-sqlite", help="SQLite file for the 1m set (seeded if empty)")
    args = parser.parse_args()
    rules = load_rules(None, environ={})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load {load:.1f}, {datetime.now(UTC):%Y-%m-%d}"
    )
    rows: list[tuple[str, ...]] = []
    for name in args.dataset or ["demo", "planted", "planted-800"]:
        if name == "1m" and args.reuse_sqlite:
            engine = make_engine(f"sqlite:///{args.reuse_sqlite}")
            upgrade(engine)
            rows += run(name, engine, rules)
            engine.dispose()
            continue
        with temporary_database("sqlite", label=f"bench-{name}") as url:
            engine = make_engine(url)
            rows += run(name, engine, rules)
            engine.dispose()
    print("\n| dataset | model | AUC | PR-AUC | Brier |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
