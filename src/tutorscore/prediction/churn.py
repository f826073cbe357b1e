"""Tutor churn model: training with time-based validation, a quality gate, scoring.

Examples are (tutor, as_of) snapshots: features at `as_of`, label 1 when the
tutor's `churned_on` falls in (as_of, as_of + horizon]. Two candidates (a scaled
logistic regression and a histogram gradient-boosting classifier) are compared
by expanding-window cross-validation over the earlier snapshots (train on
earlier, validate on the next); the winner is then scored on the latest labelled
snapshot, which no training or selection step saw. The model is *used* only if
that held-out ROC AUC beats the rules' churn_risk_label AUC on the same rows;
otherwise the rules keep deciding and every report says so.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from tutorscore.config import RulesConfig, Settings, get_settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import TutoringSession, TutorMetrics
from tutorscore.errors import UserError
from tutorscore.prediction.features import (
    RULES_FEATURE,
    FeatureFrame,
    compute_features,
    describe_value,
    feature_specs,
)
from tutorscore.prediction.model_store import StoredModel, load_model, new_version, save_model

Array = np.ndarray[Any, Any]
MODEL_REASON_FLAG = "churn_risk_label"


class FillAllMissing(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Zero-fill columns that were entirely missing in training.

    HistGradientBoosting handles NaN natively but fails on an all-NaN column
    (e.g. a risk tag before any session was evaluated).
    """

    def fit(self, X: Array, y: Array | None = None) -> FillAllMissing:
        self.empty_ = np.all(np.isnan(X), axis=0)
        return self

    def transform(self, X: Array) -> Array:
        X = np.array(X, dtype=np.float64, copy=True)
        X[:, self.empty_] = 0.0
        return X


def make_candidates(seed: int = 0) -> dict[str, Any]:
    """The two model families compared on every training run."""
    return {
        "logistic_regression": Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
                ("model", LogisticRegression(C=0.5, max_iter=2000)),
            ]
        ),
        "gradient_boosting": Pipeline(
            [
                ("fill", FillAllMissing()),
                (
                    "model",
                    HistGradientBoostingClassifier(
                        learning_rate=0.05,
                        max_iter=100,
                        max_leaf_nodes=15,
                        min_samples_leaf=20,
                        l2_regularization=1.0,
                        random_state=seed,
                    ),
                ),
            ]
        ),
    }


@dataclass
class Dataset:
    names: list[str]
    X: Array
    y: Array
    rules_score: Array
    snapshot: Array  # index into as_ofs per row
    tutor_ids: list[str]
    as_ofs: list[datetime]


def auc(y: Array, score: Array) -> float | None:
    """ROC AUC, or None when only one class is present (AUC undefined)."""
    if len(y) == 0 or len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, score))


def gate(model_auc: float | None, rules_auc: float | None) -> tuple[bool, str]:
    """The model is used only when its held-out AUC is strictly better than the rules'."""
    if model_auc is None:
        return False, "no held-out snapshot with both churned and retained tutors"
    if rules_auc is None:
        return False, "the rules' AUC could not be measured on the held-out snapshot"
    if model_auc > rules_auc:
        return True, f"held-out AUC {model_auc:.3f} beats the rules' {rules_auc:.3f}"
    return False, f"held-out AUC {model_auc:.3f} does not beat the rules' {rules_auc:.3f}"


def snapshot_times(session: Session, *, as_of: datetime, rules: RulesConfig) -> list[datetime]:
    """as_of dates for training: `training_snapshots` of them ending at `as_of`.

    With snapshot_step_days = 0 they spread evenly over the sessions' history, so a
    week of demo data still yields several snapshots.
    """
    cfg = rules.prediction
    first = session.scalar(
        select(func.min(TutoringSession.scheduled_start_at)).where(
            TutoringSession.scheduled_start_at <= as_of
        )
    )
    if first is None:
        raise UserError(f"no sessions at or before {as_of.isoformat()}: nothing to train on")
    earliest = first + timedelta(days=cfg.min_snapshot_history_days)
    n = max(cfg.training_snapshots, 1)
    if cfg.snapshot_step_days > 0:
        step = timedelta(days=cfg.snapshot_step_days)
        times = [as_of - i * step for i in range(n)]
        times = [t for t in times if t >= earliest] or [as_of]
        return sorted(times)
    if earliest >= as_of or n == 1:
        return [as_of]
    span = (as_of - earliest) / (n - 1)
    times = [(earliest + i * span).replace(microsecond=0) for i in range(n - 1)]
    return [*times, as_of]


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
    )


def _fit(estimator: Any, X: Array, y: Array) -> Any:
    model = clone(estimator)
    with threadpool_limits(1):
        model.fit(X, y)
    return model


def _positive_proba(model: Any, X: Array) -> Array:
    # One thread: OpenMP spinning on a busy 2-core box makes small fits 15x slower.
    with threadpool_limits(1):
        return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


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


def cross_fitted(
    data: Dataset, estimator: Any, *, target: int, train_snaps: list[int], folds: Array
) -> tuple[Array, Array]:
    """Out-of-fold probabilities at snapshot `target` from models fitted on `train_snaps`.

    Returns (row mask, probabilities for those rows).
    """
    mask = np.zeros(len(data.y), dtype=bool)
    proba = np.full(len(data.y), np.nan)
    earlier = np.isin(data.snapshot, train_snaps)
    for f in range(FOLDS):
        tr = earlier & (folds != f)
        va = (data.snapshot == target) & (folds == f)
        if not va.any() or len(np.unique(data.y[tr])) < 2:
            continue
        proba[va] = _positive_proba(_fit(estimator, data.X[tr], data.y[tr]), data.X[va])
        mask |= va
    return mask, proba[mask]


def select_and_validate(
    data: Dataset, candidates: dict[str, Any]
) -> tuple[str | None, dict[str, float | None], int | None, float | None, float | None, Array]:
    """Time-based CV over earlier snapshots, then one held-out score on the latest.

    Splits are by time *and* by tutor: a tutor's label rarely changes between
    nearby snapshots, so scoring tutors the model trained on (a week earlier)
    would mostly measure memory. Each evaluated snapshot is predicted in three
    tutor folds, each by a model trained only on *earlier* snapshots of the
    *other* tutors. Model selection uses the snapshots before the held-out one;
    the held-out (latest labelled) snapshot is scored once, for the gate.

    Returns (chosen, mean CV AUC per candidate, held-out snapshot, model AUC,
    rules AUC, held-out row mask).
    """
    folds = tutor_folds(data.tutor_ids)
    labelled = [
        i for i in range(len(data.as_ofs)) if len(np.unique(data.y[data.snapshot == i])) == 2
    ]
    heldout = labelled[-1] if labelled else None
    before = [i for i in range(len(data.as_ofs)) if heldout is None or i < heldout]
    cv: dict[str, list[float]] = {name: [] for name in candidates}
    for k in range(max(1, len(before) - CV_SNAPSHOTS), len(before)):
        for name, est in candidates.items():
            mask, proba = cross_fitted(
                data, est, target=before[k], train_snaps=before[:k], folds=folds
            )
            score = auc(data.y[mask], proba)
            if score is not None:
                cv[name].append(score)
    cv_mean = {name: (float(np.mean(v)) if v else None) for name, v in cv.items()}
    scored = {n: v for n, v in cv_mean.items() if v is not None}
    # Without a CV fold, fall back to the first (simplest) candidate rather than
    # peeking at the held-out rows to choose.
    chosen = max(scored, key=lambda n: scored[n]) if scored else next(iter(candidates), None)
    if heldout is None or chosen is None:
        return chosen, cv_mean, heldout, None, None, np.zeros(len(data.y), dtype=bool)
    te, proba = cross_fitted(
        data, candidates[chosen], target=heldout, train_snaps=before, folds=folds
    )
    model_auc = auc(data.y[te], proba)
    rules_auc = auc(data.y[te], data.rules_score[te].astype(np.float64))
    return chosen, cv_mean, heldout, model_auc, rules_auc, te


def train_churn_model(
    engine: Engine,
    *,
    as_of: datetime,
    rules: RulesConfig,
    settings: Settings | None = None,
    candidates: dict[str, Any] | None = None,
    as_ofs: list[datetime] | None = None,
) -> TrainResult:
    """Train, validate and store a new model version (stored even when it fails the gate)."""
    settings = settings or get_settings()
    candidates = candidates if candidates is not None else make_candidates()
    with transaction(engine) as session:
        times = as_ofs or snapshot_times(session, as_of=as_of, rules=rules)
        data = build_dataset(session, as_ofs=times, rules=rules)
    if len(data.y) == 0 or len(np.unique(data.y)) < 2:
        raise UserError(
            f"cannot train: {int(data.y.sum())} churned of {len(data.y)} tutor snapshots; "
            "the data needs tutors with churned_on inside the prediction horizon and tutors "
            "without"
        )
    chosen, cv_mean, heldout, model_auc, rules_auc, te = select_and_validate(data, candidates)
    passed, reason = gate(model_auc, rules_auc)
    assert chosen is not None
    final = _fit(candidates[chosen], data.X, data.y)
    with np.errstate(all="ignore"):
        reference = [
            float(np.nanmedian(col)) if not np.all(np.isnan(col)) else math.nan for col in data.X.T
        ]
    version = new_version(settings.data_dir)
    result = TrainResult(
        version=version,
        chosen=chosen,
        cv_auc=cv_mean,
        heldout_model_auc=model_auc,
        heldout_rules_auc=rules_auc,
        gate_passed=passed,
        gate_reason=reason,
        rows=len(data.y),
        positives=int(data.y.sum()),
        heldout_rows=int(te.sum()),
        heldout_positives=int(data.y[te].sum()),
        snapshots=[t.isoformat() for t in data.as_ofs],
        heldout_snapshot=data.as_ofs[heldout].isoformat() if heldout is not None else None,
    )
    meta = {
        "kind": chosen,
        "trained_at": datetime.now(UTC).isoformat(),
        "as_of": as_of.isoformat(),
        "date_range": {"from": data.as_ofs[0].isoformat(), "to": data.as_ofs[-1].isoformat()},
        "horizon_days": rules.prediction.horizon_days,
        "window_days": rules.analytics.window_days,
        "features": data.names,
        "metrics": {
            "cv_auc": cv_mean,
            "heldout_model_auc": model_auc,
            "heldout_rules_auc": rules_auc,
            "rows": result.rows,
            "positives": result.positives,
            "heldout_rows": result.heldout_rows,
            "heldout_positives": result.heldout_positives,
        },
        "snapshots": result.snapshots,
        "heldout_snapshot": result.heldout_snapshot,
        "gate": {"passed": passed, "reason": reason},
        "config_hash": rules.fingerprint(),
        "database": database_identity(engine),
    }
    payload = {
        "estimator": final,
        "feature_names": data.names,
        "reference": reference,
        "kind": chosen,
    }
    save_model(settings.data_dir, version, payload, meta)
    result.meta = meta
    return result


def database_identity(bind: Engine | Session) -> str:
    """Short hash of the database URL (no password): a model only scores the database it
    was trained on, so a test database never picks up the demo's model from ./data."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    url = engine.engine.url.render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _logit(p: Array) -> Array:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64)


def contributions(stored: StoredModel, X: Array) -> Array:
    """Per-feature push on the log-odds of churning, one row per tutor.

    Logistic regression: coefficient x standardised value. Gradient boosting: the
    change in log-odds when the feature is set back to its training median.
    """
    est = stored.payload["estimator"]
    if stored.payload["kind"] == "logistic_regression":
        z = est.named_steps["scale"].transform(est.named_steps["impute"].transform(X))
        return np.asarray(z * est.named_steps["model"].coef_[0], dtype=np.float64)
    n, f = X.shape
    if n == 0:
        return np.zeros((0, f))
    base = _logit(_positive_proba(est, X))
    reference = np.asarray(stored.payload["reference"], dtype=np.float64)
    stacked = np.repeat(X[np.newaxis, :, :], f, axis=0)  # (f, n, f)
    for j in range(f):
        stacked[j, :, j] = reference[j]
    moved = _logit(_positive_proba(est, stacked.reshape(f * n, f))).reshape(f, n)
    return np.asarray((base[np.newaxis, :] - moved).T, dtype=np.float64)


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
    """Probabilities and the top factors raising each one, readable by a coach."""
    names: list[str] = stored.payload["feature_names"]
    if names != frame.names:
        missing = sorted(set(names) - set(frame.names))
        if missing:
            raise UserError(
                f"model {stored.version} needs features {missing}; retrain with "
                "`tutorscore model train`"
            )
    X = frame.X[:, [frame.names.index(n) for n in names]]
    if len(X) == 0:
        return []
    proba = _positive_proba(stored.payload["estimator"], X)
    if stored.payload["kind"] == "logistic_regression":
        contrib = contributions(stored, X)
    else:
        # Perturbation costs one prediction per feature per tutor: explain only the
        # tutors a coach will look at (medium risk and up); the rest get no factors.
        contrib = np.zeros_like(X)
        explain = proba >= rules.prediction.churn_medium_probability
        if explain.any():
            contrib[explain] = contributions(stored, X[explain])
    specs = {s.name: s for s in feature_specs(rules)}
    top = rules.prediction.top_features
    scores = []
    for i, tutor_id in enumerate(frame.tutor_ids):
        order = np.argsort(-contrib[i])
        factors = []
        for j in order[:top]:
            if contrib[i, j] <= 0:
                break
            spec = specs[names[j]]
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

    Called by analytics after compute_all / update_tutor for the rows it just
    wrote at `as_of`. Without a model nothing changes; a model that failed the
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
    engine: Engine, *, as_of: datetime, rules: RulesConfig, settings: Settings | None = None
) -> str:
    """Train a model and score the tutor_metrics rows at `as_of` (used by `tutorscore demo`)."""
    result = train_churn_model(engine, as_of=as_of, rules=rules, settings=settings)
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
    """AUC of a stored model and of the rules on labelled snapshots at `as_ofs`."""
    stored = load_model((settings or get_settings()).data_dir, version)
    if stored is None:
        raise UserError("no churn model stored; run `tutorscore model train` first")
    with transaction(engine) as session:
        data = build_dataset(session, as_ofs=as_ofs, rules=rules)
    est = stored.payload["estimator"]
    cols = [data.names.index(n) for n in stored.payload["feature_names"]]
    per_snapshot = []
    for i, t in enumerate(as_ofs):
        mask = data.snapshot == i
        X = data.X[mask][:, cols]
        per_snapshot.append(
            {
                "as_of": t.isoformat(),
                "rows": int(mask.sum()),
                "positives": int(data.y[mask].sum()),
                "model_auc": auc(data.y[mask], _positive_proba(est, X)) if len(X) else None,
                "rules_auc": auc(data.y[mask], data.rules_score[mask].astype(np.float64)),
            }
        )
    X_all = data.X[:, cols]
    return {
        "version": stored.version,
        "kind": stored.meta.get("kind"),
        "gate": stored.meta.get("gate"),
        "snapshots": per_snapshot,
        "model_auc": auc(data.y, _positive_proba(est, X_all)) if len(X_all) else None,
        "rules_auc": auc(data.y, data.rules_score.astype(np.float64)),
        "note": "snapshots inside the training range overstate the model's AUC",
    }


def result_dict(result: TrainResult) -> dict[str, Any]:
    out = asdict(result)
    out.pop("meta", None)
    return out


def after_metrics(
    session: Session,
    *,
    as_of: datetime,
    rules: RulesConfig,
    tutor_ids: list[str] | None = None,
    settings: Settings | None = None,
) -> ApplyResult:
    """The one call analytics makes after writing tutor_metrics rows at `as_of`.

    Scores churn, records alerts, and once the caller's transaction commits,
    sends the alerts to the webhook in the background.
    """
    from sqlalchemy import event

    from tutorscore.interventions.alerts import deliver_in_background, detect_alerts

    settings = settings or get_settings()
    applied = apply_churn_scores(
        session, as_of=as_of, rules=rules, settings=settings, tutor_ids=tutor_ids
    )
    found = detect_alerts(session, as_of=as_of, rules=rules, tutor_ids=tutor_ids)
    bind = session.get_bind()
    # An ORM session that owns its transaction tells us when it commits; a session
    # borrowed on a caller's connection does not: `tutorscore alerts deliver` (or the
    # next scoring pass) sends those.
    if found and settings.alert_webhook_url and isinstance(bind, Engine):
        event.listen(
            session,
            "after_commit",
            lambda _s: deliver_in_background(bind, rules=rules, settings=settings),
            once=True,
        )
    return applied
