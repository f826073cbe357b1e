"""The plain churn baseline the shipped model is measured against (benchmark only).

Nine windowed features per (tutor, snapshot), computed here straight from the
sessions table with numpy, independently of `tutorscore.prediction.features`:
sessions in the last 14 days, in the 14 before, and their log ratio; the tutor
reschedule rate over 30 and over 14 days; the rating in the last 14 days and
its change against the 14 before; tenure under 90 days; no completed session
in 30 days. Missing values get the plain treatment (no rating: the overall mean
rating; no sessions: rate 0, change 0). A standardised logistic regression on
these is the baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from tutorscore.db.models import Tutor, TutoringSession
from tutorscore.prediction.churn import Dataset

BASELINE_FEATURES = (
    "sessions_14d",
    "sessions_prev_14d",
    "sessions_14d_log_ratio",
    "reschedule_rate_30d",
    "reschedule_rate_14d",
    "rating_14d",
    "rating_change_14d",
    "tenure_under_90d",
    "no_session_30d",
)
DAY = 86400.0


def baseline_features(session: Session, data: Dataset) -> np.ndarray[Any, Any]:
    """One row per row of `data` (same tutor and snapshot), BASELINE_FEATURES columns."""
    s = TutoringSession
    rows = session.execute(
        select(s.tutor_id, s.scheduled_start_at, s.status, s.reschedule_initiator, s.student_rating)
    ).all()
    hires = {row[0]: row[1] for row in session.execute(select(Tutor.tutor_id, Tutor.hire_date))}
    index = {t: i for i, t in enumerate(sorted({r[0] for r in rows} | set(data.tutor_ids)))}
    tutor = np.array([index[r[0]] for r in rows], dtype=np.int64)
    at = np.array([r[1].timestamp() / DAY for r in rows], dtype=np.float64)
    status = np.array([r[2] for r in rows], dtype=object)
    counted = np.isin(status, ("completed", "no_show", "rescheduled"))
    completed = status == "completed"
    tutor_resched = (status == "rescheduled") & np.array([r[3] == "tutor" for r in rows])
    rating = np.array([np.nan if r[4] is None else float(r[4]) for r in rows])
    rated = completed & ~np.isnan(rating)
    mean_rating = float(np.nanmean(rating[rated])) if rated.any() else 4.0
    first_seen = np.full(len(index), np.inf)
    np.minimum.at(first_seen, tutor, at)

    out = np.zeros((len(data.y), len(BASELINE_FEATURES)))
    n = len(index)
    for k, as_of in enumerate(data.as_ofs):
        rows_k = np.flatnonzero(data.snapshot == k)
        if not len(rows_k):
            continue
        t = as_of.timestamp() / DAY
        age = t - at

        def per_tutor(
            mask: np.ndarray[Any, Any], weights: np.ndarray[Any, Any] | None = None
        ) -> Any:
            return np.bincount(tutor[mask], weights=None if weights is None else weights[mask],
                               minlength=n)  # fmt: skip

        w14 = (age >= 0) & (age < 14)
        w28 = (age >= 14) & (age < 28)
        w30 = (age >= 0) & (age < 30)
        s14 = per_tutor(w14 & counted)
        s28 = per_tutor(w28 & counted)
        s30 = per_tutor(w30 & counted)
        r14 = per_tutor(w14 & tutor_resched)
        r30 = per_tutor(w30 & tutor_resched)
        n14, sum14 = per_tutor(w14 & rated), per_tutor(w14 & rated, np.nan_to_num(rating))
        n28, sum28 = per_tutor(w28 & rated), per_tutor(w28 & rated, np.nan_to_num(rating))
        c30 = per_tutor(w30 & completed)
        with np.errstate(invalid="ignore", divide="ignore"):
            rating14 = np.where(n14 > 0, sum14 / np.maximum(n14, 1), mean_rating)
            rating28 = np.where(n28 > 0, sum28 / np.maximum(n28, 1), mean_rating)
            change = np.where((n14 > 0) & (n28 > 0), rating14 - rating28, 0.0)
        ids = [index[data.tutor_ids[i]] for i in rows_k]
        tenure = np.array(
            [
                t - (hires[data.tutor_ids[i]].toordinal() - 719163)
                if hires.get(data.tutor_ids[i]) is not None
                else t - first_seen[index[data.tutor_ids[i]]]
                for i in rows_k
            ]
        )
        out[rows_k] = np.column_stack(
            [
                s14[ids],
                s28[ids],
                np.log((s14[ids] + 1) / (s28[ids] + 1)),
                np.where(s30[ids] > 0, r30[ids] / np.maximum(s30[ids], 1), 0.0),
                np.where(s14[ids] > 0, r14[ids] / np.maximum(s14[ids], 1), 0.0),
                rating14[ids],
                change[ids],
                (tenure < 90).astype(float),
                (c30[ids] == 0).astype(float),
            ]
        )
    return out
