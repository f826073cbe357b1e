"""No-show risk as a trained model, gated against today's formula on a time-ordered backtest.

Every session in a window (t, t + days] is described from the history up to t
only (the same `no_show_history_days` the formula reads): the formula's own
log-odds and smoothed tutor / student rates, the pair's record, how often the
tutor caused a no-show or rescheduled, the student's reschedules and
cancellations, whether the session replaces a rescheduled one and how long that
chain is, the booking lead time, the hour bucket and the weekday. A
`WindowedLogit` (missing indicators, balanced class weights, C chosen on earlier
windows) learns the outcome (no_show vs completed).

Training windows end at as_of, as_of - days, ...; the latest is held out and
predicted by models fitted on earlier windows only. The model is *used* only if
its held-out AUC beats the formula's on the same sessions; otherwise the formula
keeps deciding. Probabilities are Platt-calibrated on the out-of-window
predictions. Stored as JSON (`no-show-<version>.model.json`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, Integer, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from tutorscore.config import RulesConfig, Settings, get_settings
from tutorscore.db.engine import transaction
from tutorscore.db.models import TutoringSession
from tutorscore.errors import UserError
from tutorscore.prediction.logit import Platt, WindowedLogit, brier, reliability_table
from tutorscore.prediction.model_store import StoredModel, load_model, new_version, save_model
from tutorscore.prediction.no_show import HOUR_BUCKETS, NoShowRisk, _hour_bucket, formula_risks

Array = np.ndarray[Any, Any]
PREFIX = "no-show-"
C_GRID = (0.01, 0.1, 1.0)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MAX_CHAIN = 10


@dataclass(frozen=True)
class Feature:
    name: str
    label: str
    kind: str  # count | rate | days | flag | logit


FEATURES: tuple[Feature, ...] = (
    Feature("formula_log_odds", "today's formula", "logit"),
    Feature("tutor_sessions", "tutor's sessions in the history", "count"),
    Feature("tutor_no_show_rate", "tutor's no-show rate (smoothed)", "rate"),
    Feature("tutor_caused_no_show_rate", "no-shows caused by the tutor", "rate"),
    Feature("tutor_reschedule_rate", "tutor's reschedule rate", "rate"),
    Feature("student_sessions", "student's sessions in the history", "count"),
    Feature("student_no_show_rate", "student's no-show rate (smoothed)", "rate"),
    Feature("student_reschedules", "reschedules asked by the student", "count"),
    Feature("student_cancellations", "student's cancellations", "count"),
    Feature("new_student", "student with no history", "flag"),
    Feature("pair_sessions", "sessions of this tutor and student", "count"),
    Feature("pair_no_show_rate", "no-show rate of this tutor and student", "rate"),
    Feature("is_replacement", "replaces a rescheduled session", "flag"),
    Feature("reschedule_chain", "reschedules in a row before this session", "count"),
    Feature("lead_days", "booked ahead", "days"),
    *(Feature(f"hour_{name}", f"in the {name}", "flag") for _, _, name in HOUR_BUCKETS),
    *(Feature(f"weekday_{d.lower()}", f"on a {d}", "flag") for d in WEEKDAYS),
)
NAMES = [f.name for f in FEATURES]
LOG_COLUMNS = tuple(i for i, f in enumerate(FEATURES) if f.kind in ("count", "days"))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _rate(x: int, n: int) -> float:
    return x / n if n else math.nan


def session_features(
    session: Session, risks: list[NoShowRisk], *, as_of: datetime, rules: RulesConfig, days: float
) -> Array:
    """One row per risk (the formula already scored them from the history up to as_of)."""
    s = TutoringSession
    cfg = rules.prediction
    since = as_of - timedelta(days=cfg.no_show_history_days)
    in_history = and_(s.scheduled_start_at > since, s.scheduled_start_at <= as_of)
    due = s.status.in_(("completed", "no_show"))
    tutor_ns = and_(s.status == "no_show", or_(s.no_show_by == "tutor", s.no_show_by.is_(None)))
    counted = s.status.in_(("completed", "no_show", "rescheduled"))
    tutor_resched = and_(s.status == "rescheduled", s.reschedule_initiator == "tutor")
    student_resched = and_(s.status == "rescheduled", s.reschedule_initiator == "student")

    def n(cond: Any) -> Any:
        return func.sum(cast(cond, Integer))

    tutors = {r.tutor_id for r in risks}
    students = {r.student_id for r in risks}
    tutor_rows = {
        row[0]: (int(row[1] or 0), int(row[2] or 0), int(row[3] or 0), int(row[4] or 0))
        for row in session.execute(
            select(s.tutor_id, n(due), n(and_(due, tutor_ns)), n(counted), n(tutor_resched))
            .where(in_history, s.tutor_id.in_(tutors))
            .group_by(s.tutor_id)
        )
    }
    student_rows = {
        row[0]: (int(row[1] or 0), int(row[2] or 0))
        for row in session.execute(
            select(s.student_id, n(student_resched), n(s.status == "cancelled"))
            .where(in_history, s.student_id.in_(students))
            .group_by(s.student_id)
        )
    }
    pair_rows = {
        (row[0], row[1]): (int(row[2] or 0), int(row[3] or 0))
        for row in session.execute(
            select(s.tutor_id, s.student_id, n(due), n(and_(due, s.status == "no_show")))
            .where(in_history, s.tutor_id.in_(tutors))
            .group_by(s.tutor_id, s.student_id)
        )
    }
    # reschedule chains: session -> the session it replaced, over history and window
    links: dict[str, str | None] = {
        row[0]: row[1]
        for row in session.execute(
            select(s.session_id, s.rescheduled_from_session_id).where(
                s.rescheduled_from_session_id.is_not(None),
                s.scheduled_start_at > since,
                s.scheduled_start_at <= as_of + timedelta(days=days),
            )
        )
    }

    X = np.full((len(risks), len(NAMES)), np.nan)
    col = {name: i for i, name in enumerate(NAMES)}
    for i, r in enumerate(risks):
        comps = {c.name: c for c in r.components}
        t_due, t_caused, t_counted, t_resched = tutor_rows.get(r.tutor_id, (0, 0, 0, 0))
        s_resched, s_cancel = student_rows.get(r.student_id, (0, 0))
        p_due, p_ns = pair_rows.get((r.tutor_id, r.student_id), (0, 0))
        chain, at = 0, r.rescheduled_from
        while at is not None and chain < MAX_CHAIN:
            chain += 1
            at = links.get(at)
        row = {
            "formula_log_odds": _logit(r.formula_probability),
            "tutor_sessions": float(comps["tutor"].sessions),
            "tutor_no_show_rate": comps["tutor"].smoothed_rate,
            "tutor_caused_no_show_rate": _rate(t_caused, t_due),
            "tutor_reschedule_rate": _rate(t_resched, t_counted),
            "student_sessions": float(comps["student"].sessions),
            "student_no_show_rate": comps["student"].smoothed_rate,
            "student_reschedules": float(s_resched),
            "student_cancellations": float(s_cancel),
            "new_student": 1.0 if comps["student"].sessions == 0 else 0.0,
            "pair_sessions": float(p_due),
            "pair_no_show_rate": _rate(p_ns, p_due),
            "is_replacement": 1.0 if r.rescheduled_from else 0.0,
            "reschedule_chain": float(chain),
            "lead_days": math.nan if r.lead_days is None or r.lead_days < 0 else float(r.lead_days),
        }
        for name, value in row.items():
            X[i, col[name]] = value
        for _, _, bucket in HOUR_BUCKETS:
            X[i, col[f"hour_{bucket}"]] = 1.0 if _hour_bucket(r.hour) == bucket else 0.0
        weekday = r.scheduled_start_at.astimezone(UTC).weekday()
        for k, d in enumerate(WEEKDAYS):
            X[i, col[f"weekday_{d.lower()}"]] = 1.0 if k == weekday else 0.0
    return X


@dataclass
class Window:
    as_of: datetime
    risks: list[NoShowRisk]
    X: Array
    y: Array


def build_windows(
    session: Session, *, as_of: datetime, rules: RulesConfig, days: float, windows: int
) -> list[Window]:
    """Backtest windows (t, t + days] ending at as_of, oldest first; features from <= t."""
    first = session.scalar(select(func.min(TutoringSession.scheduled_start_at)))
    out = []
    for k in range(windows, 0, -1):
        t = as_of - timedelta(days=k * days)
        if first is None or t <= first:
            continue
        risks = formula_risks(
            session, as_of=t, rules=rules, days=days, statuses=("completed", "no_show")
        )
        if not risks:
            continue
        X = session_features(session, risks, as_of=t, rules=rules, days=days)
        y = np.array([1 if r.status == "no_show" else 0 for r in risks], dtype=np.int64)
        out.append(Window(t, risks, X, y))
    return out


def _auc(y: Array, score: Array) -> float | None:
    from tutorscore.prediction.churn import auc

    return auc(y, score)


def _fit(C: float, X: Array, y: Array) -> WindowedLogit:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(1):
        return WindowedLogit(C=C, log_columns=LOG_COLUMNS).fit(X, y)


@dataclass
class NoShowTrainResult:
    version: str
    chosen_c: float
    cv_auc: dict[str, float | None]
    heldout_window: str
    heldout_sessions: int
    heldout_no_shows: int
    model_auc: float | None
    formula_auc: float | None
    model_brier: float | None
    formula_brier: float | None
    gate_passed: bool
    gate_reason: str
    windows: list[str]
    reliability: list[dict[str, Any]]


def train_no_show_model(
    engine: Engine,
    *,
    as_of: datetime,
    rules: RulesConfig,
    settings: Settings | None = None,
    days: float = 7.0,
    windows: int = 6,
) -> NoShowTrainResult:
    """Backtest windows -> C by earlier windows -> held-out latest window -> gate -> store."""
    from tutorscore.prediction.churn import database_identity, gate

    settings = settings or get_settings()
    with transaction(engine) as session:
        data = build_windows(session, as_of=as_of, rules=rules, days=days, windows=windows)
    usable = [w for w in data if len(np.unique(w.y)) == 2]
    if len(usable) < 2 or usable[-1] is not data[-1]:
        raise UserError(
            f"cannot train the no-show model: {len(usable)} of {len(data)} windows of "
            f"{days:g} days before {as_of.isoformat()} have both no-shows and completed "
            "sessions; it needs the latest one and at least one earlier (try --days or "
            "--windows)"
        )
    held = data[-1]
    earlier = data[:-1]

    def stack(ws: list[Window]) -> tuple[Array, Array]:
        return np.vstack([w.X for w in ws]), np.concatenate([w.y for w in ws])

    cv: dict[str, list[float]] = {f"C={c:g}": [] for c in C_GRID}
    oof_scores: dict[float, list[Array]] = {c: [] for c in C_GRID}
    oof_y: list[Array] = []
    for k in range(max(1, len(earlier) - 2), len(earlier)):
        Xtr, ytr = stack(earlier[:k])
        if len(np.unique(ytr)) < 2 or len(np.unique(earlier[k].y)) < 2:
            continue
        oof_y.append(earlier[k].y)
        for c in C_GRID:
            score = _fit(c, Xtr, ytr).decision_function(earlier[k].X)
            oof_scores[c].append(score)
            value = _auc(earlier[k].y, score)
            if value is not None:
                cv[f"C={c:g}"].append(value)
    cv_mean = {k: (float(np.mean(v)) if v else None) for k, v in cv.items()}
    scored = {c: cv_mean[f"C={c:g}"] for c in C_GRID if cv_mean[f"C={c:g}"] is not None}
    chosen = max(scored, key=lambda c: scored[c] or 0.0) if scored else C_GRID[1]

    Xtr, ytr = stack(earlier)
    cv_s = np.concatenate(oof_scores[chosen]) if oof_y else np.empty(0)
    cv_y = np.concatenate(oof_y) if oof_y else np.empty(0)
    train_model = _fit(chosen, Xtr, ytr)
    held_score = train_model.decision_function(held.X)
    if not len(cv_y):
        # one earlier window only: no out-of-window predictions to calibrate on, so the
        # training window's own (in-sample, slightly optimistic) predictions are used
        cv_s, cv_y = train_model.decision_function(Xtr), ytr
    checked = Platt.fit(cv_s, cv_y)
    held_p = checked(held_score)
    formula_p = np.array([r.formula_probability for r in held.risks])
    model_auc = _auc(held.y, held_score)
    formula_auc = _auc(held.y, formula_p)
    passed, reason = gate(model_auc, formula_auc)
    reason = reason.replace("the rules'", "the formula's")
    calibration = Platt.fit(np.concatenate([cv_s, held_score]), np.concatenate([cv_y, held.y]))
    Xall, yall = stack(data)
    final = _fit(chosen, Xall, yall)
    version = new_version(settings.data_dir, prefix=PREFIX)
    held_end = held.as_of + timedelta(days=days)
    result = NoShowTrainResult(
        version=version,
        chosen_c=chosen,
        cv_auc=cv_mean,
        heldout_window=f"({held.as_of.isoformat()}, {held_end.isoformat()}]",
        heldout_sessions=len(held.y),
        heldout_no_shows=int(held.y.sum()),
        model_auc=model_auc,
        formula_auc=formula_auc,
        model_brier=brier(held.y, held_p),
        formula_brier=brier(held.y, formula_p),
        gate_passed=passed,
        gate_reason=reason,
        windows=[w.as_of.isoformat() for w in data],
        reliability=reliability_table(held.y, held_p),
    )
    meta = {
        "kind": "no_show_logistic_regression",
        "trained_at": datetime.now(UTC).isoformat(),
        "as_of": as_of.isoformat(),
        "window_days": days,
        "features": NAMES,
        "metrics": {
            "cv_auc": cv_mean,
            "heldout_model_auc": model_auc,
            "heldout_formula_auc": formula_auc,
            "heldout_model_brier": result.model_brier,
            "heldout_formula_brier": result.formula_brier,
            "heldout_sessions": result.heldout_sessions,
            "heldout_no_shows": result.heldout_no_shows,
        },
        "heldout_window": result.heldout_window,
        "windows": result.windows,
        "reliability": result.reliability,
        "calibration": calibration.to_dict(),
        "gate": {"passed": passed, "reason": reason},
        "database": database_identity(engine),
    }
    payload = {
        "kind": meta["kind"],
        "feature_names": NAMES,
        "model": final.to_dict(),
        "calibration": calibration.to_dict(),
    }
    save_model(settings.data_dir, version, payload, meta, prefix=PREFIX)
    return result


def load_no_show_model(settings: Settings | None = None) -> StoredModel | None:
    return load_model((settings or get_settings()).data_dir, prefix=PREFIX)


def apply_model(
    session: Session,
    risks: list[NoShowRisk],
    *,
    as_of: datetime,
    rules: RulesConfig,
    days: float,
    settings: Settings | None = None,
) -> bool:
    """Replace the formula's probability with the model's when a stored model passed its
    gate on this database; add its top factors. Returns whether it did."""
    from tutorscore.prediction.churn import database_identity

    stored = load_no_show_model(settings)
    if stored is None or not stored.gate_passed:
        return False
    if stored.meta.get("database") != database_identity(session):
        return False
    if stored.payload.get("feature_names") != NAMES:
        return False  # features changed since training: retrain; the formula decides
    model = stored.payload.get("_loaded")
    if not isinstance(model, tuple):
        model = (
            WindowedLogit.from_dict(stored.payload["model"]),
            Platt.from_dict(stored.payload.get("calibration")),
        )
        stored.payload["_loaded"] = model
    logit_model, calibration = model
    X = session_features(session, risks, as_of=as_of, rules=rules, days=days)
    proba = calibration(logit_model.decision_function(X))
    contrib = logit_model.contributions(X)
    for i, r in enumerate(risks):
        r.probability = float(proba[i])
        r.source = "model"
        r.factors = top_factors(X[i], contrib[i])
    return True


def _show(feature: Feature, value: float) -> str:
    if math.isnan(value):
        return "unknown"
    if feature.kind == "rate":
        return f"{value:.0%}"
    if feature.kind == "days":
        return f"{value:.1f} days"
    if feature.kind == "count":
        return f"{value:.0f}"
    if feature.kind == "logit":
        return f"{1 / (1 + math.exp(-value)):.1%}"
    return "yes" if value >= 0.5 else "no"


def top_factors(x: Array, contrib: Array, top: int = 3) -> list[dict[str, Any]]:
    """The features pushing this session's no-show log-odds up the most."""
    out = []
    for j in np.argsort(-contrib)[:top]:
        if contrib[j] <= 0:
            break
        f = FEATURES[int(j)]
        shown = _show(f, float(x[j]))
        out.append(
            {
                "feature": f.name,
                "label": f.label,
                "value": None if math.isnan(float(x[j])) else float(x[j]),
                "display": shown,
                "contribution": round(float(contrib[j]), 4),
                "text": f"{f.label}: {shown} ({contrib[j]:+.2f})",
            }
        )
    return out


def no_show_model_status(settings: Settings | None = None) -> dict[str, Any]:
    stored = load_no_show_model(settings)
    if stored is None:
        return {"used": False, "version": None, "reason": "no no-show model trained; formula"}
    return {
        "used": stored.gate_passed,
        "version": stored.version,
        "reason": stored.meta.get("gate", {}).get("reason", ""),
        "metrics": stored.meta.get("metrics", {}),
        "heldout_window": stored.meta.get("heldout_window"),
        "reliability": stored.meta.get("reliability", []),
        "trained_at": stored.meta.get("trained_at"),
    }
