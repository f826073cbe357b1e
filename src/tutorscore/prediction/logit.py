"""A logistic regression whose whole state is a few arrays (stored as JSON, never pickled).

Preprocessing, fitted on the training rows only:

1. a 0/1 *missing* indicator for every column that had a missing value in training
   (so "no rating in the last 14 days" stays visible to the model instead of being
   erased by imputation), then the column's training median in place of NaN;
2. log1p of non-negative count and day columns (heavy tails);
3. clipping to the training 1st-99th percentiles (one odd tutor does not set the
   scale; 0/1 flags are left alone);
4. standardisation (training mean and standard deviation).

The model is scikit-learn's LogisticRegression (lbfgs, L2 penalty C, balanced class
weights by default); `Platt` maps its log-odds to calibrated probabilities. Both
export to and load from plain dicts; prediction is numpy only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

Array = np.ndarray[Any, Any]
CLIP_QUANTILES = (0.01, 0.99)


class WindowedLogit(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """Missing indicators + median imputation + log/clip/standardise + logistic regression."""

    def __init__(
        self,
        C: float = 1.0,
        log_columns: tuple[int, ...] = (),
        class_weight: str | None = "balanced",
        max_iter: int = 2000,
    ) -> None:
        self.C = C
        self.log_columns = log_columns
        self.class_weight = class_weight
        self.max_iter = max_iter

    # -- preprocessing ------------------------------------------------------------
    def _prepare(self, X: Array, *, fitting: bool) -> Array:
        X = np.array(X, dtype=np.float64, copy=True)
        if fitting:
            missing = np.isnan(X)
            self.n_features_in_ = X.shape[1]
            self.empty_ = missing.all(axis=0)
            self.indicator_ = np.flatnonzero(missing.any(axis=0) & ~self.empty_)
            with np.errstate(all="ignore"):
                med = np.nanmedian(np.where(self.empty_, 0.0, X), axis=0)
            self.median_ = np.where(np.isnan(med), 0.0, med)
        miss = np.isnan(X[:, self.indicator_]).astype(np.float64)
        X = np.where(np.isnan(X), self.median_, X)
        X[:, self.empty_] = 0.0
        logs = list(self.log_columns)
        if logs:
            X[:, logs] = np.log1p(np.maximum(X[:, logs], 0.0))
        if fitting:
            # 0/1 flags are never clipped (a rare flag would be erased)
            binary = np.all((X == 0) | (X == 1), axis=0)
            self.low_ = np.where(binary, 0.0, np.quantile(X, CLIP_QUANTILES[0], axis=0))
            self.high_ = np.where(binary, 1.0, np.quantile(X, CLIP_QUANTILES[1], axis=0))
        X = np.clip(X, self.low_, self.high_)
        Z = np.hstack([X, miss])
        if fitting:
            self.mean_ = Z.mean(axis=0)
            scale = Z.std(axis=0)
            self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        return np.asarray((Z - self.mean_) / self.scale_, dtype=np.float64)

    def fit(self, X: Array, y: Array) -> WindowedLogit:
        Z = self._prepare(X, fitting=True)
        model = LogisticRegression(C=self.C, class_weight=self.class_weight, max_iter=self.max_iter)
        model.fit(Z, np.asarray(y))
        self.classes_ = model.classes_
        self.coef_ = np.asarray(model.coef_[0], dtype=np.float64)
        self.intercept_ = float(model.intercept_[0])
        return self

    def standardised(self, X: Array) -> Array:
        return self._prepare(X, fitting=False)

    def decision_function(self, X: Array) -> Array:
        return np.asarray(self.standardised(X) @ self.coef_ + self.intercept_, dtype=np.float64)

    def predict_proba(self, X: Array) -> Array:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def contributions(self, X: Array) -> Array:
        """Push of each input column on the log-odds: coefficient x standardised value,
        with a column's missing indicator added to the column itself."""
        terms = self.standardised(X) * self.coef_
        n = self.n_features_in_
        out = terms[:, :n].copy()
        for k, j in enumerate(self.indicator_):
            out[:, j] += terms[:, n + k]
        return np.asarray(out, dtype=np.float64)

    # -- plain-data export ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "C": self.C,
            "class_weight": self.class_weight,
            "log_columns": [int(j) for j in self.log_columns],
            "n_features": int(self.n_features_in_),
            "empty": [bool(v) for v in self.empty_],
            "indicator": [int(j) for j in self.indicator_],
            "median": _floats(self.median_),
            "low": _floats(self.low_),
            "high": _floats(self.high_),
            "mean": _floats(self.mean_),
            "scale": _floats(self.scale_),
            "coef": _floats(self.coef_),
            "intercept": float(self.intercept_),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowedLogit:
        model = cls(
            C=float(data["C"]),
            log_columns=tuple(int(j) for j in data["log_columns"]),
            class_weight=data.get("class_weight"),
        )
        model.n_features_in_ = int(data["n_features"])
        model.empty_ = np.array(data["empty"], dtype=bool)
        model.indicator_ = np.array(data["indicator"], dtype=np.int64)
        for name in ("median", "low", "high", "mean", "scale", "coef"):
            setattr(model, f"{name}_", np.array(data[name], dtype=np.float64))
        model.intercept_ = float(data["intercept"])
        model.classes_ = np.array([0, 1])
        return model


def _floats(values: Array) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64)]


def logit(p: Array) -> Array:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)), dtype=np.float64)


class Platt:
    """p = 1 / (1 + exp(-(a * s + b))) on a model's log-odds s, fitted on held-out folds.

    With a > 0 it is strictly increasing, so the ranking (AUC) is unchanged.
    """

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        self.a, self.b = a, b

    @classmethod
    def fit(cls, scores: Array, y: Array) -> Platt:
        s = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
        y = np.asarray(y)
        if len(np.unique(y)) < 2:
            return cls()
        # nearly unpenalised; Platt's targets keep it finite on separable folds
        n1, n0 = int(y.sum()), int(len(y) - y.sum())
        target = np.where(y == 1, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
        w = np.concatenate([target, 1 - target])
        X2 = np.vstack([s, s])
        y2 = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
        model = LogisticRegression(C=1e4, max_iter=1000).fit(X2, y2, sample_weight=w)
        a, b = float(model.coef_[0][0]), float(model.intercept_[0])
        if not a > 0:  # a useless or inverted model: keep its order, flatten to the base rate
            rate = (n1 + 1) / (len(y) + 2)
            return cls(1e-6, math.log(rate / (1 - rate)))
        return cls(a, b)

    def __call__(self, scores: Array) -> Array:
        z = self.a * np.asarray(scores, dtype=np.float64) + self.b
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Platt:
        if not data:
            return cls()
        return cls(float(data["a"]), float(data["b"]))


def reliability_table(y: Array, p: Array, bins: int = 10) -> list[dict[str, Any]]:
    """Predicted-probability deciles (equal-count bins in predicted order) with the
    mean predicted probability and the observed rate in each."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(y) == 0:
        return []
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, len(order)))
    out = []
    for k, idx in enumerate(groups):
        if not len(idx):
            continue
        out.append(
            {
                "bin": k + 1,
                "rows": int(len(idx)),
                "predicted_low": float(p[idx].min()),
                "predicted_high": float(p[idx].max()),
                "mean_predicted": float(p[idx].mean()),
                "observed_rate": float(y[idx].mean()),
                "positives": int(y[idx].sum()),
            }
        )
    return out


def brier(y: Array, p: Array) -> float | None:
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0:
        return None
    return float(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2))
