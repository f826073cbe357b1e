"""How far each judge version agrees with the human reviewers.

A judge version is (judge, model, prompt_version). Over the sessions that have
both a review and an evaluation by that version (its latest one per session), with
the human score = the mean of the session's reviewers' scores:

- `n`; `spearman` (scipy: average ranks for ties) with a bootstrap 95% interval
  (`spearman_ci`: percentile interval of `resamples` resamples of the sessions, drawn
  with a seeded NumPy generator, so the same data give the same interval);
  `pearson`; `kappa`: quadratic-weighted Cohen's kappa (scikit-learn) of the scores
  rounded half up to 1-5; `mae`: mean absolute difference;
- per risk tag that reviewers used at least once on those sessions: the tag applies
  to a session when at least half of its reviewers listed it (a review not listing a
  tag says it does not apply); `support` = sessions where it applies, `precision`,
  `recall`, `f1` of the judge's `risk_tags` against that;
- `inter_reviewer` over sessions with two or more reviewers: pairs, mean absolute
  difference within a pair, Krippendorff's alpha (interval metric) and the
  quadratic-weighted kappa over every pair of reviews of a session (each pair in
  both orders, so it is symmetric).

A statistic that is undefined (fewer than two sessions, a constant score, a tag the
judge never gave) is `null`. Numbers are rounded to 4 decimals.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from tutorscore.db.models import Review, SessionEvaluation
from tutorscore.errors import UserError
from tutorscore.evaluation.judge import RISK_TAGS

DIGITS = 4
DEFAULT_SEED = 17
DEFAULT_RESAMPLES = 1000
_BLOCK = 200  # bootstrap resamples ranked at once (memory: _BLOCK x n floats per array)


@dataclass(frozen=True, order=True)
class JudgeVersion:
    judge: str
    model: str
    prompt_version: str

    @property
    def label(self) -> str:
        """`heuristic/heuristic-v1`, `llm/gpt-4o/llm-v2` (what --compare accepts)."""
        parts = (
            [self.judge, self.model, self.prompt_version]
            if self.model
            else [
                self.judge,
                self.prompt_version,
            ]
        )
        return "/".join(parts)


@dataclass
class Human:
    """A session's reviews: the scores and tag lists of its reviewers."""

    scores: list[float] = field(default_factory=list)
    tags: list[set[str]] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(self.scores) / len(self.scores)

    def applies(self, tag: str) -> bool:
        """At least half of the session's reviewers listed the tag."""
        return 2 * sum(tag in t for t in self.tags) >= len(self.tags)


@dataclass
class ReviewData:
    humans: dict[str, Human]
    # version -> session -> (score, tags) of its latest evaluation of the session
    judged: dict[JudgeVersion, dict[str, tuple[float, set[str]]]]


def load(db: Session | Connection, *, judge: str | None = None) -> ReviewData:
    """Reviews, and the judges' latest evaluation per version of each reviewed session."""
    humans: dict[str, Human] = {}
    rows = db.execute(
        select(Review.session_id, Review.quality_score, Review.tags).order_by(
            Review.session_id, Review.reviewer
        )
    )
    for session_id, score, tags in rows:
        human = humans.setdefault(session_id, Human())
        human.scores.append(float(score))
        human.tags.append(set(tags or []))
    reviewed = select(Review.session_id).distinct().scalar_subquery()
    stmt = (
        select(
            SessionEvaluation.session_id,
            SessionEvaluation.judge,
            SessionEvaluation.model,
            SessionEvaluation.prompt_version,
            SessionEvaluation.quality_score,
            SessionEvaluation.risk_tags,
        )
        .where(SessionEvaluation.session_id.in_(reviewed))
        .order_by(SessionEvaluation.created_at, SessionEvaluation.id)
    )
    if judge is not None:
        stmt = stmt.where(SessionEvaluation.judge == judge)
    judged: dict[JudgeVersion, dict[str, tuple[float, set[str]]]] = defaultdict(dict)
    for session_id, name, model, prompt_version, score, tags in db.execute(stmt):
        # later rows overwrite earlier ones: the latest evaluation per version counts
        judged[JudgeVersion(name, model or "", prompt_version)][session_id] = (
            float(score),
            set(tags or []),
        )
    return ReviewData(humans, dict(judged))


# ---------------------------------------------------------------- statistics


def _r(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), DIGITS)


def round_half_up(score: float) -> int:
    """1-5 class of a score: 2.5 -> 3, 3.49 -> 3 (not Python's round-half-even)."""
    return min(5, max(1, math.floor(score + 0.5)))


def _constant(values: np.ndarray[Any, Any]) -> bool:
    return bool(values.size == 0 or np.all(values == values[0]))


def spearman(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 2 or _constant(x) or _constant(y):
        return None
    return float(spearmanr(x, y).statistic)


def pearson(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float | None:
    from scipy.stats import pearsonr

    if len(x) < 2 or _constant(x) or _constant(y):
        return None
    return float(pearsonr(x, y).statistic)


def weighted_kappa(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Quadratic-weighted Cohen's kappa of the two score lists, rounded half up to 1-5."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) < 2:
        return None
    ra = [round_half_up(v) for v in a]
    rb = [round_half_up(v) for v in b]
    if len(set(ra) | set(rb)) < 2:  # one class only: expected disagreement 0
        return None
    return float(cohen_kappa_score(ra, rb, weights="quadratic", labels=[1, 2, 3, 4, 5]))


def _row_spearman(xs: np.ndarray[Any, Any], ys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Spearman of each row pair (NaN where a row is constant)."""
    from scipy.stats import rankdata

    rx = rankdata(xs, axis=1)
    ry = rankdata(ys, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray[Any, Any] = (rx * ry).sum(axis=1) / denominator
    out[denominator == 0] = np.nan
    return out


def bootstrap_indices(n: int, seed: int, resamples: int) -> np.ndarray[Any, Any]:
    """The resamples (rows of session positions); the same seed gives the same rows."""
    rng = np.random.default_rng(seed)
    indices: np.ndarray[Any, Any] = rng.integers(0, n, size=(resamples, n))
    return indices


def spearman_interval(
    x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], *, seed: int, resamples: int
) -> list[float | None]:
    """Percentile bootstrap 95% interval of Spearman (resamples with a constant side skipped)."""
    n = len(x)
    if n < 3 or spearman(x, y) is None:
        return [None, None]
    indices = bootstrap_indices(n, seed, resamples)
    values = np.concatenate(
        [
            _row_spearman(x[indices[i : i + _BLOCK]], y[indices[i : i + _BLOCK]])
            for i in range(0, resamples, _BLOCK)
        ]
    )
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [None, None]
    low, high = np.percentile(values, [2.5, 97.5])
    return [_r(float(low)), _r(float(high))]


def score_agreement(
    judge_scores: Sequence[float],
    human_scores: Sequence[float],
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
    interval: bool = True,
) -> dict[str, Any]:
    x = np.asarray(judge_scores, dtype=float)
    y = np.asarray(human_scores, dtype=float)
    n = len(x)
    return {
        "n": n,
        "spearman": _r(spearman(x, y)),
        "spearman_ci": spearman_interval(x, y, seed=seed, resamples=resamples)
        if interval
        else [None, None],
        "pearson": _r(pearson(x, y)),
        "kappa": _r(weighted_kappa(list(x), list(y))),
        "mae": _r(float(np.mean(np.abs(x - y)))) if n else None,
    }


def tag_agreement(
    judge_tags: Sequence[set[str]], humans: Sequence[Human]
) -> dict[str, dict[str, Any]]:
    """Per tag reviewers used at least once: support, precision, recall, F1."""
    used: set[str] = set()
    for human in humans:
        for tags in human.tags:
            used |= tags
    order = list(RISK_TAGS)
    out: dict[str, dict[str, Any]] = {}
    for tag in sorted(used, key=lambda t: (order.index(t) if t in order else len(order), t)):
        tp = fp = fn = 0
        for flagged, human in zip(judge_tags, humans, strict=True):
            truth = human.applies(tag)
            said = tag in flagged
            tp += truth and said
            fp += said and not truth
            fn += truth and not said
        out[tag] = {
            "support": tp + fn,
            "precision": _r(tp / (tp + fp)) if tp + fp else None,
            "recall": _r(tp / (tp + fn)) if tp + fn else None,
            "f1": _r(2 * tp / (2 * tp + fp + fn)) if 2 * tp + fp + fn else None,
        }
    return out


def krippendorff_alpha_interval(units: Iterable[Sequence[float]]) -> float | None:
    """Krippendorff's alpha, interval metric, for units with any number of ratings (>= 2)."""
    pairable = [list(u) for u in units if len(u) >= 2]
    values = [v for u in pairable for v in u]
    n = len(values)
    if n < 2:
        return None
    observed = sum(sum((a - b) ** 2 for a in u for b in u) / (len(u) - 1) for u in pairable) / n
    arr = np.asarray(values, dtype=float)
    expected = float(((arr[:, None] - arr[None, :]) ** 2).sum()) / (n * (n - 1))
    if expected == 0:
        return None
    return 1 - observed / expected


def inter_reviewer(humans: dict[str, Human]) -> dict[str, Any]:
    multi = [h for _, h in sorted(humans.items()) if len(h.scores) >= 2]
    pairs = [(a, b) for h in multi for a, b in combinations(h.scores, 2)]
    return {
        "sessions": len(multi),
        "reviews": sum(len(h.scores) for h in multi),
        "pairs": len(pairs),
        "mean_abs_diff": _r(sum(abs(a - b) for a, b in pairs) / len(pairs)) if pairs else None,
        "krippendorff_alpha": _r(krippendorff_alpha_interval(h.scores for h in multi)),
        # both orders of every pair, so the value does not depend on who is "first"
        "pairwise_kappa": _r(
            weighted_kappa(
                [a for a, b in pairs] + [b for a, b in pairs],
                [b for a, b in pairs] + [a for a, b in pairs],
            )
            if pairs
            else None
        ),
    }


# ---------------------------------------------------------------- reports


def _version_entry(
    version: JudgeVersion,
    sessions: Sequence[str],
    data: ReviewData,
    *,
    seed: int,
    resamples: int,
    interval: bool = True,
) -> dict[str, Any]:
    scored = data.judged[version]
    humans = [data.humans[s] for s in sessions]
    entry: dict[str, Any] = {
        "judge": version.judge,
        "model": version.model or None,
        "prompt_version": version.prompt_version,
        "label": version.label,
        **score_agreement(
            [scored[s][0] for s in sessions],
            [h.score for h in humans],
            seed=seed,
            resamples=resamples,
            interval=interval,
        ),
        "tags": tag_agreement([scored[s][1] for s in sessions], humans),
    }
    return entry


def compared_sessions(data: ReviewData, version: JudgeVersion) -> list[str]:
    return sorted(s for s in data.judged.get(version, {}) if s in data.humans)


def agreement_report(
    db: Session,
    *,
    judge: str | None = None,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """The `tutorscore agreement --format json` / `GET /api/judges/agreement` document."""
    data = load(db, judge=judge)
    judges = []
    for version in sorted(data.judged):
        sessions = compared_sessions(data, version)
        if sessions:
            judges.append(_version_entry(version, sessions, data, seed=seed, resamples=resamples))
    return {
        "judges": judges,
        "reviewed_sessions": len(data.humans),
        "reviews": sum(len(h.scores) for h in data.humans.values()),
        "inter_reviewer": inter_reviewer(data.humans),
        "bootstrap": {"seed": seed, "resamples": resamples},
    }


def resolve_version(data: ReviewData, spec: str) -> JudgeVersion:
    """A judge version from its label (`judge/prompt_version`, `judge/model/prompt_version`)
    or from a prompt_version that only one version has."""
    versions = sorted(data.judged)
    exact = [v for v in versions if v.label == spec]
    if exact:
        return exact[0]
    by_prompt = [v for v in versions if v.prompt_version == spec]
    if len(by_prompt) == 1:
        return by_prompt[0]
    known = ", ".join(v.label for v in versions) or "none (no reviewed session is evaluated)"
    if len(by_prompt) > 1:
        raise UserError(
            f"--compare: {spec!r} names several judge versions; use one of: "
            + ", ".join(v.label for v in by_prompt)
        )
    raise UserError(
        f"--compare: expected a judge version with reviews, got {spec!r}; known: {known}"
    )


def compare_versions(
    db: Session,
    a: str,
    b: str,
    *,
    seed: int = DEFAULT_SEED,
    resamples: int = DEFAULT_RESAMPLES,
) -> dict[str, Any]:
    """Two judge versions on the same reviewed sessions (both evaluated them).

    `spearman_diff` = B − A with a paired bootstrap interval (the same resampled
    sessions for both), `mae_diff` = B − A.
    """
    data = load(db)
    va, vb = resolve_version(data, a), resolve_version(data, b)
    if va == vb:
        raise UserError(f"--compare: {a!r} and {b!r} are the same judge version")
    common = sorted(set(compared_sessions(data, va)) & set(compared_sessions(data, vb)))
    entries = [_version_entry(v, common, data, seed=seed, resamples=resamples) for v in (va, vb)]
    diff_ci: list[float | None] = [None, None]
    x_a = np.asarray([data.judged[va][s][0] for s in common], dtype=float)
    x_b = np.asarray([data.judged[vb][s][0] for s in common], dtype=float)
    y = np.asarray([data.humans[s].score for s in common], dtype=float)
    sa, sb = entries[0]["spearman"], entries[1]["spearman"]
    if len(common) >= 3 and sa is not None and sb is not None:
        indices = bootstrap_indices(len(common), seed, resamples)
        diffs = np.concatenate(
            [
                _row_spearman(x_b[indices[i : i + _BLOCK]], y[indices[i : i + _BLOCK]])
                - _row_spearman(x_a[indices[i : i + _BLOCK]], y[indices[i : i + _BLOCK]])
                for i in range(0, resamples, _BLOCK)
            ]
        )
        diffs = diffs[np.isfinite(diffs)]
        if diffs.size:
            low, high = np.percentile(diffs, [2.5, 97.5])
            diff_ci = [_r(float(low)), _r(float(high))]
    return {
        "compare": {
            "a": va.label,
            "b": vb.label,
            "n": len(common),
            "spearman_diff": _r(sb - sa) if sa is not None and sb is not None else None,
            "spearman_diff_ci": diff_ci,
            "mae_diff": _r(entries[1]["mae"] - entries[0]["mae"]) if common else None,
        },
        "judges": entries,
        "bootstrap": {"seed": seed, "resamples": resamples},
    }


def scatter_points(db: Session) -> dict[str, list[tuple[str, float, float]]]:
    """Per judge version label: (session_id, judge score, human score) of each compared session."""
    data = load(db)
    out: dict[str, list[tuple[str, float, float]]] = {}
    for version in sorted(data.judged):
        sessions = compared_sessions(data, version)
        if sessions:
            out[version.label] = [
                (s, data.judged[version][s][0], data.humans[s].score) for s in sessions
            ]
    return out
