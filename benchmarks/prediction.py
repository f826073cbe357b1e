"""Churn model training and scoring time for 10,000 tutors (features generated directly).

Run: .venv/bin/python benchmarks/prediction.py [--tutors N] [--snapshots S]
Training = time-based, tutor-grouped CV of both candidates + the held-out check +
the final fit, exactly as `tutorscore model train` does after reading features.
Scoring = probabilities plus per-tutor explanations (top factors), as analytics does.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from tutorscore.config import load_rules
from tutorscore.prediction import churn
from tutorscore.prediction.features import RULES_FEATURE, FeatureFrame, feature_specs
from tutorscore.prediction.model_store import StoredModel


def synthetic_dataset(tutors: int, snapshots: int, seed: int = 0) -> churn.Dataset:
    """Plausible feature values with a churn signal in volume, reschedules and rating."""
    rng = np.random.default_rng(seed)
    names = [f.name for f in feature_specs(load_rules(None, environ={}))]
    latent = rng.normal(size=tutors)  # propensity to leave
    rows, ys, snaps, ids = [], [], [], []
    for s in range(snapshots):
        drift = latent + 0.15 * s
        X = np.full((tutors, len(names)), np.nan)
        col = {n: i for i, n in enumerate(names)}
        total = np.maximum(rng.poisson(30 * np.exp(-0.3 * drift)), 0)
        X[:, col["total_sessions"]] = total
        X[:, col["volume_change"]] = rng.normal(-0.1 * drift, 0.3)
        X[:, col["tutor_reschedule_rate"]] = np.clip(rng.normal(0.07 + 0.04 * drift, 0.04), 0, 1)
        X[:, col["reschedule_rate_change"]] = rng.normal(0.02 * drift, 0.03)
        X[:, col["tutor_no_show_rate"]] = np.clip(rng.normal(0.03 + 0.01 * drift, 0.02), 0, 1)
        X[:, col["no_show_rate_change"]] = rng.normal(0, 0.02)
        X[:, col["avg_student_rating"]] = np.clip(rng.normal(4.2 - 0.25 * drift, 0.4), 1, 5)
        X[:, col["rating_slope"]] = rng.normal(-0.1 * drift, 0.3)
        X[:, col["ai_avg_quality_score"]] = np.clip(rng.normal(3.5 - 0.2 * drift, 0.5), 1, 5)
        X[:, col["ai_score_slope"]] = rng.normal(0, 0.3)
        X[:, col["first_sessions"]] = rng.poisson(6, size=tutors)
        X[:, col["first_session_dropout_rate"]] = np.clip(
            rng.normal(0.15 + 0.05 * drift, 0.1), 0, 1
        )
        X[:, col["first_session_avg_rating"]] = np.clip(rng.normal(4.0 - 0.2 * drift, 0.5), 1, 5)
        X[:, col["student_churn_rate"]] = np.clip(rng.normal(0.05 + 0.02 * drift, 0.03), 0, 1)
        X[:, col["tenure_days"]] = rng.integers(10, 1500, size=tutors)
        X[:, col["days_since_last_session"]] = rng.exponential(1 + np.exp(0.5 * drift))
        for n in names:
            if n.startswith("tag_"):
                X[:, col[n]] = rng.beta(1, 8, size=tutors)
        X[:, col[RULES_FEATURE.name]] = np.clip(np.round(drift + rng.normal(0, 1, tutors)), 0, 2)
        p = 1 / (1 + np.exp(-(drift * 1.2 - 2.5)))
        rows.append(X)
        ys.append((rng.random(tutors) < p).astype(np.int64))
        snaps.append(np.full(tutors, s))
        ids.extend(f"T{i:05d}" for i in range(tutors))
    X_all = np.vstack(rows)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    return churn.Dataset(
        names=names,
        X=X_all,
        y=np.concatenate(ys),
        rules_score=X_all[:, names.index(RULES_FEATURE.name)].astype(np.int64),
        snapshot=np.concatenate(snaps),
        tutor_ids=ids,
        as_ofs=[start + timedelta(days=7 * s) for s in range(snapshots)],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tutors", type=int, default=10_000)
    parser.add_argument("--snapshots", type=int, default=6)
    args = parser.parse_args()
    rules = load_rules(None, environ={})

    started = time.perf_counter()
    data = synthetic_dataset(args.tutors, args.snapshots)
    gen_s = time.perf_counter() - started
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}; "
        f"{args.tutors:,} tutors x {args.snapshots} snapshots = {len(data.y):,} rows "
        f"({int(data.y.sum()):,} churned), {len(data.names)} features (generated in {gen_s:.2f} s)"
    )
    candidates = churn.make_candidates()
    started = time.perf_counter()
    chosen, cv, _heldout, model_auc, rules_auc, _te = churn.select_and_validate(data, candidates)
    select_s = time.perf_counter() - started
    assert chosen is not None
    print(f"{'step':<52}{'seconds':>10}")
    print(f"{'CV (both candidates) + held-out check':<52}{select_s:>10.2f}")
    print(
        "  CV AUC: "
        + ", ".join(f"{k} {v:.3f}" for k, v in cv.items() if v is not None)
        + f"; held-out {chosen} {model_auc:.3f} vs rules {rules_auc:.3f}"
    )

    last = data.snapshot == data.snapshot.max()
    frame = FeatureFrame(
        as_of=data.as_ofs[-1],
        tutor_ids=[t for t, m in zip(data.tutor_ids, last, strict=True) if m],
        names=data.names,
        X=data.X[last],
    )
    for name, est in candidates.items():
        started = time.perf_counter()
        model = churn._fit(est, data.X, data.y)
        fit_s = time.perf_counter() - started
        reference = np.nanmedian(data.X, axis=0).tolist()
        stored = StoredModel(
            version="bench",
            meta={},
            payload={
                "estimator": model,
                "feature_names": data.names,
                "reference": reference,
                "kind": name,
            },
        )
        started = time.perf_counter()
        scores = churn.score_frame(stored, frame, rules)
        score_s = time.perf_counter() - started
        print(f"{'final fit ' + name + f' ({len(data.y):,} rows)':<52}{fit_s:>10.2f}")
        print(f"{'score + explain ' + name + f' ({len(scores):,} tutors)':<52}{score_s:>10.2f}")


if __name__ == "__main__":
    main()
