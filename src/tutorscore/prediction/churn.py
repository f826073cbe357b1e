"""Tutor churn model: training with time- and tutor-grouped validation, a gate, scoring.

Examples are (tutor, as_of) snapshots: features at `as_of` (nothing after it is
read), label 1 when the tutor's `churned_on` falls in (as_of, as_of + horizon].
A snapshot is used only when its whole label horizon is observed: as_of +
horizon <= labels_until (by default the training `as_of`), so training never
reads an outcome from after the moment it pretends to be.

The model is a logistic regression on windowed features with missing-value
indicators and balanced class weights (`prediction.logit.WindowedLogit`); its
L2 strength C is chosen by cross-validation over earlier snapshots, grouped by
tutor. It is scored once on the latest labelled snapshot, which no training or
selection step saw, and *used* only if that held-out ROC AUC beats the rules'
churn_risk_label AUC on the same rows; otherwise the rules keep deciding and
every report says so. Probabilities are Platt-calibrated on out-of-fold
predictions. The stored model is plain JSON (`model_store`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from tutorscore.analytics.flags import CHURN_RISK
from tutorscore.config import RulesConfig, Settings, get_settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import TutoringSession, TutorMetrics
from tutorscore.errors import UserError
from tutorscore.prediction.features import (
    RULES_FEATURE,
    FeatureFrame,
    FeatureSpec,
    compute_features,
    describe_value,
    feature_specs,
)
from tutorscore.prediction.logit import Platt, WindowedLogit, brier, reliability_table
from tutorscore.prediction.model_store import StoredModel, load_model, new_version, save_model

Array = np.ndarray[Any, Any]
MODEL_REASON_FLAG = CHURN_RISK.name
MODEL_KIND = "logistic_regression"
# L2 strengths tried; the grouped CV picks one
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
# snapshots closer together than this are spread evenly instead (short histories)
SHORT_HISTORY_DAYS = 2.0
LOG_KINDS = ("count", "days")


def log_columns(specs: list[FeatureSpec]) -> tuple[int, ...]:
    return tuple(i for i, spec in enumerate(specs) if spec.kind in LOG_KINDS)


def make_candidates(rules: RulesConfig | None = None) -> dict[str, Any]:
    """One logistic regression per regularisation strength C."""
    logs = log_columns(feature_specs(rules or RulesConfig()))
    return {f"{MODEL_KIND} C={c:g}": WindowedLogit(C=c, log_columns=logs) for c in C_GRID}


@dataclass
class Dataset:
    names: list[str]
    X: Array
    y: Array
    rules_score: Array
    snapshot: Array  # index into as_ofs per row
    tutor_ids: list[str]
    as_ofs: list[datetime]
    horizon_days: int = 30


def auc(y: Array, score: Array) -> float | None:
    """ROC AUC, or None when only one class is present (AUC undefined)."""
    if len(y) == 0 or len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, score))


def pr_auc(y: Array, score: Array) -> float | None:
    """Average precision (area under the precision-recall curve), None with one class."""
    if len(y) == 0 or len(np.unique(y)) < 2:
        return None
    return float(average_precision_score(y, score))


def gate(model_auc: float | None, rules_auc: float | None) -> tuple[bool, str]:
    """The model is used only when its held-out AUC is strictly better than the rules'."""
    if model_auc is None:
        return False, "no held-out snapshot with both churned and retained tutors"
    if rules_auc is None:
        return False, "the rules' AUC could not be measured on the held-out snapshot"
    if model_auc > rules_auc:
        return True, f"held-out AUC {model_auc:.3f} beats the rules' {rules_auc:.3f}"
    return False, f"held-out AUC {model_auc:.3f} does not beat the rules' {rules_auc:.3f}"


def snapshot_times(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    labels_until: datetime | None = None,
) -> list[datetime]:
    """Training snapshots: up to `training_snapshots`, `snapshot_step_days` apart.

    The latest is min(as_of, labels_until - horizon), so every snapshot's label
    horizon is observed; each has `min_snapshot_history_days` of sessions behind
    it (its windows are not cut off by the start of the data). A history too
    short for that (the one-week demo) gets its snapshots spread evenly from
    SHORT_HISTORY_DAYS after the first session instead.
    """
    cfg = rules.prediction
    until = labels_until or as_of
    last = min(as_of, until - timedelta(days=cfg.horizon_days))
    first = session.scalar(
        select(func.min(TutoringSession.scheduled_start_at)).where(
            TutoringSession.scheduled_start_at <= last
        )
    )
    if first is None:
        raise UserError(
            f"no sessions before {last.isoformat()} (as_of minus the {cfg.horizon_days}-day "
            "label horizon): no snapshot has an observed outcome; pass --labels-until if the "
            "database records churn after --as-of"
        )
    n = max(cfg.training_snapshots, 1)
    if cfg.snapshot_step_days > 0 and last - first >= timedelta(days=cfg.min_snapshot_history_days):
        earliest = first + timedelta(days=cfg.min_snapshot_history_days)
        step = timedelta(days=cfg.snapshot_step_days)
        return sorted(t for t in (last - i * step for i in range(n)) if t >= earliest)
    earliest = first + timedelta(days=SHORT_HISTORY_DAYS)
    if earliest >= last or n == 1:
        return [last]
    span = (last - earliest) / (n - 1)
    times = [(earliest + i * span).replace(microsecond=0) for i in range(n - 1)]
    return [*times, last]


RISK_ORDER = {"low": 0, "medium": 1, "high": 2}


def rules_scores(session: Session, frame: FeatureFrame, rules: RulesConfig) -> Array:
    """The rules' churn_risk_label (0 low, 1 medium, 2 high) at the frame's as_of.

    Uses the analytics rules themselves (one place per rule) without writing
    tutor_metrics rows for past snapshots.
    """
    from tutorscore.analytics import metrics as analytics_metrics
    from tutorscore.analytics.rules import assess
    from tutorscore.analytics.window import Window

    if not frame.tutor_ids:
        return np.empty(0, dtype=np.int64)
    window = Window.build(frame.as_of, rules.analytics.window_days)
    counts = analytics_metrics.aggregate(session.connection(), window, rules, frame.tutor_ids)
    return np.array(
        [RISK_ORDER[assess(counts[t], rules, window).churn_risk_label] for t in frame.tutor_ids],
        dtype=np.int64,
    )


def with_rules_feature(session: Session, frame: FeatureFrame, rules: RulesConfig) -> FeatureFrame:
    """Fill the rules_churn_risk column from the analytics rules at the frame's as_of."""
    frame.X[:, frame.names.index(RULES_FEATURE.name)] = rules_scores(session, frame, rules)
    return frame


def build_dataset(session: Session, *, as_ofs: list[datetime], rules: RulesConfig) -> Dataset:
    frames: list[FeatureFrame] = [
        with_rules_feature(session, compute_features(session, as_of=t, rules=rules), rules)
        for t in as_ofs
    ]
    names = [f.name for f in feature_specs(rules)]
    horizon = rules.prediction.horizon_days
    return Dataset(
        names=names,
        X=np.vstack([f.X for f in frames]) if frames else np.empty((0, len(names))),
        y=np.concatenate([f.labels(horizon) for f in frames]) if frames else np.empty(0),
        rules_score=np.concatenate([f.column(RULES_FEATURE.name).astype(np.int64) for f in frames])
        if frames
        else np.empty(0),
        snapshot=np.concatenate([np.full(len(f.tutor_ids), i) for i, f in enumerate(frames)])
        if frames
        else np.empty(0, dtype=int),
        tutor_ids=[t for f in frames for t in f.tutor_ids],
        as_ofs=as_ofs,
        horizon_days=horizon,
    )


def _fit(estimator: Any, X: Array, y: Array) -> Any:
    model = clone(estimator)
    # One thread: OpenMP/BLAS spinning on a busy 2-core box makes small fits much slower.
    with threadpool_limits(1):
        model.fit(X, y)
    return model


def _scores(model: Any, X: Array) -> Array:
    """The model's log-odds (decision function), the scale Platt calibrates."""
    with threadpool_limits(1):
        if hasattr(model, "decision_function"):
            return np.asarray(model.decision_function(X), dtype=np.float64)
        p = np.clip(model.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
        return np.asarray(np.log(p / (1 - p)), dtype=np.float64)


def _sigmoid(z: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


@dataclass
class TrainResult:
    version: str | None
    chosen: str | None
    cv_auc: dict[str, float | None]
    heldout_model_auc: float | None
    heldout_rules_auc: float | None
    gate_passed: bool
    gate_reason: str
    rows: int
    positives: int
    heldout_rows: int
    heldout_positives: int
    snapshots: list[str]
    heldout_snapshot: str | None
    labels_until: str | None = None
    heldout: dict[str, Any] = field(default_factory=dict)
    reliability: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        model = "n/a" if self.heldout_model_auc is None else f"{self.heldout_model_auc:.3f}"
        rules = "n/a" if self.heldout_rules_auc is None else f"{self.heldout_rules_auc:.3f}"
        decision = "model used" if self.gate_passed else "rules decide"
        return (
            f"{self.chosen or 'no model'} v{self.version}: held-out AUC {model} vs rules {rules} "
            f"-> {decision} ({self.gate_reason})"
        )


FOLDS = 3  # tutor folds: each tutor is predicted by a model that never saw them
CV_SNAPSHOTS = 3  # model selection uses the last few snapshots before the held-out one


def tutor_folds(tutor_ids: list[str]) -> Array:
    """A stable fold per tutor (hash of the id), so splits are by tutor as well as time."""
    return np.array(
        [int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) % FOLDS for t in tutor_ids],
        dtype=np.int64,
    )


def training_snapshots_for(data: Dataset, target: int) -> tuple[list[int], bool]:
    """Snapshots a model predicting `target` may learn from, and whether the gap held.

    As in use: only snapshots whose label horizon had ended by the target's as_of
    (as_of_j + horizon <= as_of_target). On a history too short for any such
    snapshot with both classes (the demo) every earlier snapshot is used, and the
    metrics say so (`gap: false`).
    """
    horizon = timedelta(days=data.horizon_days)
    earlier = list(range(target))
    gapped = [j for j in earlier if data.as_ofs[j] + horizon <= data.as_ofs[target]]
    rows = np.isin(data.snapshot, gapped)
    if gapped and len(np.unique(data.y[rows])) == 2:
        return gapped, True
    return earlier, False


def cross_fitted(
    data: Dataset, estimator: Any, *, target: int, train_snaps: list[int], folds: Array
) -> tuple[Array, Array]:
    """Out-of-fold log-odds at snapshot `target` from models fitted on `train_snaps`.

    Returns (row mask, scores for those rows).
    """
    mask = np.zeros(len(data.y), dtype=bool)
    score = np.full(len(data.y), np.nan)
    earlier = np.isin(data.snapshot, train_snaps)
    for f in range(FOLDS):
        tr = earlier & (folds != f)
        va = (data.snapshot == target) & (folds == f)
        if not va.any() or len(np.unique(data.y[tr])) < 2:
            continue
        score[va] = _scores(_fit(estimator, data.X[tr], data.y[tr]), data.X[va])
        mask |= va
    return mask, score[mask]


@dataclass
class Validation:
    """What select_and_validate found (scores are log-odds, out of fold and out of time)."""

    chosen: str | None
    cv_auc: dict[str, float | None]
    heldout: int | None
    model_auc: float | None
    rules_auc: float | None
    heldout_mask: Array
    heldout_scores: Array  # raw log-odds of the chosen candidate on the held-out rows
    cv_mask: Array  # rows of the CV target snapshots predicted by the chosen candidate
    cv_scores: Array
    gap: bool = True


def select_and_validate(data: Dataset, candidates: dict[str, Any]) -> Validation:
    """Time-ordered, tutor-grouped CV over earlier snapshots; one held-out score on the latest.

    A tutor's label rarely changes between nearby snapshots, so scoring tutors the
    model trained on would mostly measure memory: every evaluated snapshot is
    predicted in three tutor folds, each by a model trained only on *earlier*
    snapshots (whose outcomes were known by then) of the *other* tutors. The
    candidate (C) with the best mean AUC over the last CV_SNAPSHOTS snapshots
    before the held-out one wins; the held-out (latest labelled) snapshot is
    scored once, for the gate.
    """
    folds = tutor_folds(data.tutor_ids)
    n = len(data.y)
    labelled = [
        i for i in range(len(data.as_ofs)) if len(np.unique(data.y[data.snapshot == i])) == 2
    ]
    heldout = labelled[-1] if labelled else None
    before = [i for i in range(len(data.as_ofs)) if heldout is None or i < heldout]
    cv: dict[str, list[float]] = {name: [] for name in candidates}
    cv_rows: dict[str, tuple[Array, Array]] = {
        name: (np.zeros(n, dtype=bool), np.full(n, np.nan)) for name in candidates
    }
    gap = True
    for k in before[max(1, len(before) - CV_SNAPSHOTS) :]:
        train, gapped = training_snapshots_for(data, k)
        gap = gap and gapped
        for name, est in candidates.items():
            mask, score = cross_fitted(data, est, target=k, train_snaps=train, folds=folds)
            value = auc(data.y[mask], score)
            if value is not None:
                cv[name].append(value)
            cv_rows[name][0][mask] = True
            cv_rows[name][1][mask] = score
    cv_mean = {name: (float(np.mean(v)) if v else None) for name, v in cv.items()}
    scored = {k: v for k, v in cv_mean.items() if v is not None}
    # Without a CV fold, fall back to the middle candidate rather than peeking at the
    # held-out rows to choose.
    names = list(candidates)
    chosen = max(scored, key=lambda k: scored[k]) if scored else (names[len(names) // 2]
                                                                  if names else None)  # fmt: skip
    empty = np.zeros(n, dtype=bool)
    if chosen is None:
        return Validation(None, cv_mean, heldout, None, None, empty, np.empty(0), empty,
                          np.empty(0), gap)  # fmt: skip
    cv_mask, cv_all = cv_rows[chosen]
    if heldout is None:
        return Validation(chosen, cv_mean, None, None, None, empty, np.empty(0), cv_mask,
                          cv_all[cv_mask], gap)  # fmt: skip
    train, gapped = training_snapshots_for(data, heldout)
    te, score = cross_fitted(
        data, candidates[chosen], target=heldout, train_snaps=train, folds=folds
    )
    return Validation(
        chosen=chosen,
        cv_auc=cv_mean,
        heldout=heldout,
        model_auc=auc(data.y[te], score),
        rules_auc=auc(data.y[te], data.rules_score[te].astype(np.float64)),
        heldout_mask=te,
        heldout_scores=score,
        cv_mask=cv_mask,
        cv_scores=cv_all[cv_mask],
        gap=gap and gapped,
    )


def rules_probability(data: Dataset, train: Array, score: Array) -> Array:
    """The rules' label as a probability: the churn rate of each label on training rows."""
    out = np.empty(len(score))
    base = float(data.y[train].mean()) if train.any() else 0.0
    for level in (0, 1, 2):
        rows = train & (data.rules_score == level)
        rate = float(data.y[rows].mean()) if rows.any() else base
        out[score == level] = rate
    return out


def heldout_report(data: Dataset, v: Validation) -> dict[str, Any]:
    """AUC, PR-AUC and Brier on the held-out rows for the model (raw and calibrated, the
    calibration fitted on the CV predictions only) and the rules."""
    te = v.heldout_mask
    y = data.y[te]
    if not te.any():
        return {}
    calib = Platt.fit(v.cv_scores, data.y[v.cv_mask]) if v.cv_mask.any() else Platt()
    raw = _sigmoid(v.heldout_scores)
    calibrated = calib(v.heldout_scores)
    rules_score = data.rules_score[te].astype(np.float64)
    before = np.isin(
        data.snapshot, [i for i in range(len(data.as_ofs)) if v.heldout and i < v.heldout]
    )
    rules_p = rules_probability(data, before, data.rules_score)[te]
    return {
        "rows": int(te.sum()),
        "positives": int(y.sum()),
        "model": {
            "auc": auc(y, calibrated),
            "pr_auc": pr_auc(y, calibrated),
            "brier": brier(y, calibrated),
            "brier_uncalibrated": brier(y, raw),
            "auc_uncalibrated": auc(y, raw),
            "mean_predicted": float(calibrated.mean()),
        },
        "rules": {
            "auc": auc(y, rules_score),
            "pr_auc": pr_auc(y, rules_score),
            "brier": brier(y, rules_p),
        },
        "observed_rate": float(y.mean()),
        "calibration_checked": calib.to_dict(),
        "reliability": reliability_table(y, calibrated),
    }


def train_churn_model(
    engine: Engine,
    *,
    as_of: datetime,
    rules: RulesConfig,
    settings: Settings | None = None,
    candidates: dict[str, Any] | None = None,
    as_ofs: list[datetime] | None = None,
    labels_until: datetime | None = None,
) -> TrainResult:
    """Train, validate, calibrate and store a new model version (stored even when it
    fails the gate, so `model show` can explain it)."""
    settings = settings or get_settings()
    candidates = candidates if candidates is not None else make_candidates(rules)
    until = labels_until or as_of
    with transaction(engine) as session:
        times = as_ofs or snapshot_times(
            session, as_of=as_of, rules=rules, labels_until=labels_until
        )
        data = build_dataset(session, as_ofs=times, rules=rules)
    if len(data.y) == 0 or len(np.unique(data.y)) < 2:
        raise UserError(
            f"cannot train: {int(data.y.sum())} churned of {len(data.y)} tutor snapshots "
            f"between {times[0].isoformat()} and {times[-1].isoformat()}; the data needs "
            f"tutors with churned_on inside a snapshot's {rules.prediction.horizon_days}-day "
            "horizon (observed by --labels-until, default --as-of) and tutors without"
        )
    v = select_and_validate(data, candidates)
    passed, reason = gate(v.model_auc, v.rules_auc)
    assert v.chosen is not None
    report = heldout_report(data, v)
    # The stored calibration uses every out-of-fold, out-of-time prediction (CV and
    # held-out); the reliability table above used the CV ones only.
    oof = v.cv_mask | v.heldout_mask
    oof_scores = np.full(len(data.y), np.nan)
    oof_scores[v.cv_mask] = v.cv_scores
    oof_scores[v.heldout_mask] = v.heldout_scores
    calibration = Platt.fit(oof_scores[oof], data.y[oof]) if oof.any() else Platt()
    final = _fit(candidates[v.chosen], data.X, data.y)
    if not hasattr(final, "to_dict"):
        raise UserError(f"candidate {v.chosen} cannot be stored as plain data (no to_dict)")
    version = new_version(settings.data_dir)
    te = v.heldout_mask
    result = TrainResult(
        version=version,
        chosen=v.chosen,
        cv_auc=v.cv_auc,
        heldout_model_auc=v.model_auc,
        heldout_rules_auc=v.rules_auc,
        gate_passed=passed,
        gate_reason=reason,
        rows=len(data.y),
        positives=int(data.y.sum()),
        heldout_rows=int(te.sum()),
        heldout_positives=int(data.y[te].sum()),
        snapshots=[t.isoformat() for t in data.as_ofs],
        heldout_snapshot=data.as_ofs[v.heldout].isoformat() if v.heldout is not None else None,
        labels_until=until.isoformat(),
        heldout={k: val for k, val in report.items() if k != "reliability"},
        reliability=report.get("reliability", []),
    )
    meta = {
        "kind": MODEL_KIND,
        "candidate": v.chosen,
        "trained_at": datetime.now(UTC).isoformat(),
        "as_of": as_of.isoformat(),
        "labels_until": until.isoformat(),
        "date_range": {"from": data.as_ofs[0].isoformat(), "to": data.as_ofs[-1].isoformat()},
        "horizon_days": rules.prediction.horizon_days,
        "window_days": rules.analytics.window_days,
        "short_window_days": rules.prediction.short_window_days,
        "features": data.names,
        "metrics": {
            "cv_auc": v.cv_auc,
            "cv_gap": v.gap,
            "heldout_model_auc": v.model_auc,
            "heldout_rules_auc": v.rules_auc,
            "rows": result.rows,
            "positives": result.positives,
            "heldout_rows": result.heldout_rows,
            "heldout_positives": result.heldout_positives,
            "heldout": result.heldout,
        },
        "calibration": calibration.to_dict(),
        "reliability": result.reliability,
        "snapshots": result.snapshots,
        "heldout_snapshot": result.heldout_snapshot,
        "gate": {"passed": passed, "reason": reason},
        "config_hash": rules.fingerprint(),
        "database": database_identity(engine),
    }
    payload = {
        "kind": MODEL_KIND,
        "feature_names": data.names,
        "model": final.to_dict(),
        "calibration": calibration.to_dict(),
    }
    save_model(settings.data_dir, version, payload, meta)
    result.meta = meta
    return result


class LoadedModel:
    """A stored model ready to score: the logistic regression and its calibration."""

    def __init__(self, stored: StoredModel) -> None:
        self.version = stored.version
        self.names: list[str] = list(stored.payload["feature_names"])
        self.model = WindowedLogit.from_dict(stored.payload["model"])
        self.calibration = Platt.from_dict(stored.payload.get("calibration"))

    def probability(self, X: Array) -> Array:
        return self.calibration(self.model.decision_function(X))

    def contributions(self, X: Array) -> Array:
        return self.model.contributions(X)


def loaded(stored: StoredModel) -> LoadedModel:
    cached = stored.payload.get("_loaded")
    if isinstance(cached, LoadedModel):
        return cached
    model = LoadedModel(stored)
    stored.payload["_loaded"] = model
    return model


def database_identity(bind: Engine | Session) -> str:
    """Short hash of the database URL (no password): a model only scores the database it
    was trained on, so a test database never picks up the demo's model from ./data."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    url = engine.engine.url.render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:16]


@dataclass
class ChurnScore:
    tutor_id: str
    probability: float
    label: str
    factors: list[dict[str, Any]]


def probability_label(p: float, rules: RulesConfig) -> str:
    cfg = rules.prediction
    if p >= cfg.churn_high_probability:
        return "high"
    if p >= cfg.churn_medium_probability:
        return "medium"
    return "low"


def score_frame(stored: StoredModel, frame: FeatureFrame, rules: RulesConfig) -> list[ChurnScore]:
    """Calibrated probabilities and the top factors raising each one, readable by a coach."""
    names: list[str] = stored.payload["feature_names"]
    missing = sorted(set(names) - set(frame.names))
    if missing or "model" not in stored.payload:
        raise UserError(
            f"model {stored.version} needs features {missing or names}; retrain with "
            "`tutorscore model train`"
        )
    X = frame.X[:, [frame.names.index(n) for n in names]]
    if len(X) == 0:
        return []
    model = loaded(stored)
    proba = model.probability(X)
    contrib = model.contributions(X)
    specs = {s.name: s for s in feature_specs(rules)}
    top = rules.prediction.top_features
    scores = []
    for i, tutor_id in enumerate(frame.tutor_ids):
        order = np.argsort(-contrib[i])
        factors = []
        for j in order[:top]:
            if contrib[i, j] <= 0:
                break
            spec = specs.get(names[j], FeatureSpec(names[j], names[j], "number"))
            value = float(X[i, j])
            shown = describe_value(spec, value)
            factors.append(
                {
                    "feature": spec.name,
                    "label": spec.label,
                    "value": None if math.isnan(value) else value,
                    "display": shown,
                    "contribution": round(float(contrib[i, j]), 4),
                    "text": f"{spec.label} {shown} ({contrib[i, j]:+.2f})",
                }
            )
        p = float(proba[i])
        scores.append(ChurnScore(tutor_id, p, probability_label(p, rules), factors))
    return scores


@dataclass
class ApplyResult:
    model_version: str | None
    used: bool
    scored: int
    reason: str

    def __str__(self) -> str:
        return f"{self.scored} tutors scored by model {self.model_version}: {self.reason}"


def model_status(settings: Settings | None = None) -> dict[str, Any]:
    """What the dashboard and API show about the churn model: used or not, and why."""
    stored = load_model((settings or get_settings()).data_dir)
    if stored is None:
        return {"used": False, "version": None, "reason": "no churn model trained; rules decide"}
    metrics = stored.meta.get("metrics", {})
    return {
        "used": stored.gate_passed,
        "version": stored.version,
        "kind": stored.meta.get("kind"),
        "heldout_model_auc": metrics.get("heldout_model_auc"),
        "heldout_rules_auc": metrics.get("heldout_rules_auc"),
        "reason": stored.meta.get("gate", {}).get("reason", ""),
        "trained_at": stored.meta.get("trained_at"),
        "date_range": stored.meta.get("date_range"),
        "labels_until": stored.meta.get("labels_until"),
        "heldout": metrics.get("heldout", {}),
        "calibration": stored.meta.get("calibration"),
        "reliability": stored.meta.get("reliability", []),
    }


def _rules_label(
    reasons: list[dict[str, Any]] | None, details: dict[str, Any] | None
) -> str | None:
    """The rules' label for a row: from the analytics summary reason, or kept from a
    previous scoring (which replaced that reason)."""
    for reason in reasons or []:
        if reason.get("flag") == MODEL_REASON_FLAG and reason.get("source") == "rules":
            label = reason.get("label")
            return str(label) if label in RISK_ORDER else None
    kept = (details or {}).get("churn_model", {}).get("rules_label")
    return str(kept) if kept in RISK_ORDER else None


def apply_churn_scores(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    settings: Settings | None = None,
    tutor_ids: list[str] | None = None,
    stored: StoredModel | None = None,
) -> ApplyResult:
    """Write churn_probability (and, past the gate, churn_risk_label) into tutor_metrics.

    Called by `tutorscore.flows.metrics.after_metrics` for the rows analytics
    just wrote at `as_of`. Without a model nothing changes; a model that failed the
    gate leaves the rules' label and says so in `details["churn_model"]`.
    """
    stored = stored or load_model((settings or get_settings()).data_dir)
    if stored is None:
        return ApplyResult(None, False, 0, "no churn model trained; rules decide")
    if stored.meta.get("database") != database_identity(session):
        return ApplyResult(stored.version, False, 0, "model trained on another database; ignored")
    query = select(
        TutorMetrics.id, TutorMetrics.tutor_id, TutorMetrics.reasons, TutorMetrics.details
    ).where(TutorMetrics.as_of == as_of)
    if tutor_ids is not None:
        query = query.where(TutorMetrics.tutor_id.in_(tutor_ids))
    rows = session.execute(query).all()
    if not rows:
        return ApplyResult(stored.version, stored.gate_passed, 0, "no tutor_metrics rows at as_of")
    passed = stored.gate_passed
    metrics = stored.meta.get("metrics", {})
    status = {
        "used": passed,
        "version": stored.version,
        "kind": stored.meta.get("kind"),
        "heldout_model_auc": metrics.get("heldout_model_auc"),
        "heldout_rules_auc": metrics.get("heldout_rules_auc"),
        "gate_reason": stored.meta.get("gate", {}).get("reason", ""),
    }
    rules_label = {r.tutor_id: _rules_label(r.reasons, r.details) for r in rows}
    by_tutor: dict[str, ChurnScore] = {}
    # A model that failed its gate is not shown, so it is not worth a features pass.
    if passed:
        # The caller's scope, not the ids of the rows: `tutor_id IN (10k ids)` makes
        # SQLite walk the sessions index once per tutor (3-4x slower for a full run).
        frame = compute_features(session, as_of=as_of, rules=rules, tutor_ids=tutor_ids)
        frame = frame.only(set(rules_label))
        if any(rules_label.get(t) is None for t in frame.tutor_ids):
            with_rules_feature(session, frame, rules)
        else:
            frame.X[:, frame.names.index(RULES_FEATURE.name)] = [
                RISK_ORDER[str(rules_label[t])] for t in frame.tutor_ids
            ]
        try:
            by_tutor = {s.tutor_id: s for s in score_frame(stored, frame, rules)}
        except UserError as exc:
            # e.g. a playbook tag removed since training: never break analytics for it
            return ApplyResult(stored.version, False, 0, f"{exc}; rules decide")
    horizon = rules.prediction.horizon_days
    updates: list[dict[str, Any]] = []
    for row in rows:
        score = by_tutor.get(row.tutor_id)
        details = dict(row.details or {})
        reasons = list(row.reasons or [])
        values: dict[str, Any] = {"id": row.id}
        if score is None:
            details["churn_model"] = {
                **status,
                "probability": None,
                "factors": [],
                "rules_label": rules_label[row.tutor_id],
            }
            values["churn_probability"] = None
        else:
            factors_text = (
                "; ".join(f["text"] for f in score.factors) or "no single factor stands out"
            )
            reasons = [r for r in reasons if r.get("flag") != MODEL_REASON_FLAG]
            threshold = (
                rules.prediction.churn_high_probability
                if score.label == "high"
                else rules.prediction.churn_medium_probability
            )
            reasons.append(
                {
                    "flag": MODEL_REASON_FLAG,
                    "kind": "summary",
                    "source": "model",
                    "value": round(score.probability, 4),
                    "threshold": threshold,
                    "numerator": None,
                    "denominator": None,
                    "label": score.label,
                    "factors": score.factors,
                    "text": (
                        f"Churn model {stored.version}: {score.probability:.0%} chance of leaving "
                        f"in the next {horizon} days ({score.label}); main factors: {factors_text}"
                    ),
                }
            )
            details["churn_model"] = {
                **status,
                "probability": score.probability,
                "factors": score.factors,
                "rules_label": rules_label[row.tutor_id],
            }
            values.update(churn_probability=score.probability, churn_risk_label=score.label)
        values["reasons"] = reasons
        values["details"] = details
        updates.append(values)
    session.execute(update(TutorMetrics), updates)
    reason = "model decides churn_risk_label" if passed else "model failed its gate; rules decide"
    return ApplyResult(stored.version, passed, len(by_tutor), reason)


def train_and_apply(
    engine: Engine,
    *,
    as_of: datetime,
    rules: RulesConfig,
    settings: Settings | None = None,
    labels_until: datetime | None = None,
) -> str:
    """Train a model and score the tutor_metrics rows at `as_of` (used by `tutorscore demo`)."""
    result = train_churn_model(
        engine, as_of=as_of, rules=rules, settings=settings, labels_until=labels_until
    )
    stored = load_model((settings or get_settings()).data_dir, result.version)
    with transaction(engine) as session:
        applied = apply_churn_scores(
            session, as_of=as_of, rules=rules, settings=settings, stored=stored
        )
    return f"{result.summary()}; {applied}"


def evaluate_model(
    engine: Engine,
    *,
    as_ofs: list[datetime],
    rules: RulesConfig,
    settings: Settings | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """AUC, PR-AUC and Brier of a stored model and the rules on labelled snapshots."""
    stored = load_model((settings or get_settings()).data_dir, version)
    if stored is None:
        raise UserError("no churn model stored; run `tutorscore model train` first")
    with transaction(engine) as session:
        data = build_dataset(session, as_ofs=as_ofs, rules=rules)
    model = loaded(stored)
    missing = sorted(set(model.names) - set(data.names))
    if missing:
        raise UserError(f"model {stored.version} needs features {missing}; retrain it")
    cols = [data.names.index(n) for n in model.names]
    proba = model.probability(data.X[:, cols]) if len(data.y) else np.empty(0)
    per_snapshot = []
    for i, t in enumerate(as_ofs):
        mask = data.snapshot == i
        per_snapshot.append(
            {
                "as_of": t.isoformat(),
                "rows": int(mask.sum()),
                "positives": int(data.y[mask].sum()),
                "model_auc": auc(data.y[mask], proba[mask]),
                "model_pr_auc": pr_auc(data.y[mask], proba[mask]),
                "model_brier": brier(data.y[mask], proba[mask]),
                "rules_auc": auc(data.y[mask], data.rules_score[mask].astype(np.float64)),
            }
        )
    return {
        "version": stored.version,
        "kind": stored.meta.get("kind"),
        "gate": stored.meta.get("gate"),
        "snapshots": per_snapshot,
        "model_auc": auc(data.y, proba),
        "rules_auc": auc(data.y, data.rules_score.astype(np.float64)),
        "reliability": reliability_table(data.y, proba),
        "note": "snapshots inside the training range overstate the model's AUC",
    }


def result_dict(result: TrainResult) -> dict[str, Any]:
    out = asdict(result)
    out.pop("meta", None)
    return out
