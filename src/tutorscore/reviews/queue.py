"""The review queue: which session a coach should review next.

Each pick first draws a stratum with the configured shares (`[reviews]`):

- `band` (60%): a stratified random sample over judge-score bands. A band ([1, 2),
  [2, 3), [3, 4), [4, 5] by default, on the score that counts for the session) is
  drawn uniformly among the bands that still have candidates, then a session
  uniformly within it. Rare bands (very poor or excellent sessions) are therefore
  reviewed as often as common ones, and within a band every session is equally
  likely, so the agreement estimated per band is unbiased.
- `disagreement` (25%): the session whose judge versions disagree most (largest
  max − min of each version's latest score; needs two versions), ties by id.
- `first_session` (15%): a random first session (the ones the business watches most).

A stratum without candidates passes to the others (largest share first). Candidates
are evaluated sessions the coach has not reviewed; None when there is none left.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tutorscore.analytics.metrics import statement
from tutorscore.config import RulesConfig
from tutorscore.errors import UserError
from tutorscore.evaluation.queries import chosen_evaluations

STRATA = ("band", "disagreement", "first_session")
NOT_MINE = (
    "NOT EXISTS (SELECT 1 FROM reviews r WHERE r.session_id = s.session_id"
    " AND r.reviewer = :reviewer)"
)


@dataclass(frozen=True)
class NextReview:
    session_id: str
    stratum: str
    reason: str
    band: list[float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "stratum": self.stratum,
            "reason": self.reason,
            "band": self.band,
            "url": f"/sessions/{self.session_id}",
        }


def _band_case(edges: list[float]) -> tuple[str, dict[str, Any]]:
    params = {f"edge{i}": edge for i, edge in enumerate(edges)}
    whens = " ".join(f"WHEN c.quality_score < :edge{i} THEN {i}" for i in range(len(edges)))
    return f"CASE {whens} ELSE {len(edges)} END", params


def _bounds(edges: list[float], band: int) -> list[float]:
    full = [1.0, *edges, 5.0]
    return [full[band], full[band + 1]]


def _pick_band(
    db: Session, reviewer: str, rules: RulesConfig, rng: random.Random, params: dict[str, Any]
) -> NextReview | None:
    edges = sorted(rules.reviews.queue_band_edges)
    case, edge_params = _band_case(edges)
    cte = chosen_evaluations(NOT_MINE)
    all_params = {**params, **edge_params, "reviewer": reviewer}
    counts: dict[Any, Any] = dict(
        db.execute(
            statement(
                f"WITH {cte} SELECT {case} AS band, COUNT(*) FROM chosen c GROUP BY band",
                all_params,
            )
        ).all()
    )
    bands = sorted(int(b) for b, n in counts.items() if n)
    if not bands:
        return None
    band = rng.choice(bands)
    offset = rng.randrange(int(counts[band]))
    session_id = db.execute(
        statement(
            f"WITH {cte} SELECT c.session_id FROM chosen c WHERE {case} = :band"
            " ORDER BY c.session_id LIMIT 1 OFFSET :offset",
            {**all_params, "band": band, "offset": offset},
        )
    ).scalar_one()
    low, high = _bounds(edges, band)
    closing = "]" if band == len(edges) else ")"
    return NextReview(
        session_id,
        "band",
        f"stratified sample: judge score in [{low:g}, {high:g}{closing}"
        f" ({len(bands)} bands with sessions left, {counts[band]} in this one)",
        [low, high],
    )


def _pick_disagreement(db: Session, reviewer: str) -> NextReview | None:
    sql = f"""WITH latest AS (
  SELECT e.session_id, e.quality_score,
         ROW_NUMBER() OVER (
           PARTITION BY e.session_id, e.judge, e.model, e.prompt_version
           ORDER BY e.created_at DESC, e.id DESC) AS rn
  FROM session_evaluations e JOIN sessions s ON s.session_id = e.session_id
  WHERE {NOT_MINE}
)
SELECT session_id, MAX(quality_score) - MIN(quality_score) AS spread, COUNT(*) AS versions
FROM latest WHERE rn = 1
GROUP BY session_id HAVING COUNT(*) >= 2
ORDER BY spread DESC, session_id LIMIT 1"""
    row = db.execute(statement(sql, {"reviewer": reviewer})).first()
    if row is None or float(row[1]) <= 0:
        return None
    return NextReview(
        row[0],
        "disagreement",
        f"judge versions disagree most here: scores {float(row[1]):.2f} apart"
        f" across {int(row[2])} versions",
    )


def _pick_first_session(
    db: Session, reviewer: str, rng: random.Random, params: dict[str, Any]
) -> NextReview | None:
    cte = chosen_evaluations(f"s.is_first_session AND {NOT_MINE}")
    all_params = {**params, "reviewer": reviewer}
    total = int(
        db.execute(statement(f"WITH {cte} SELECT COUNT(*) FROM chosen", all_params)).scalar_one()
    )
    if not total:
        return None
    offset = rng.randrange(total)
    session_id = db.execute(
        statement(
            f"WITH {cte} SELECT session_id FROM chosen ORDER BY session_id LIMIT 1 OFFSET :offset",
            {**all_params, "offset": offset},
        )
    ).scalar_one()
    return NextReview(session_id, "first_session", f"a random first session ({total} left)")


def next_for_review(
    db: Session,
    reviewer: str,
    rules: RulesConfig,
    *,
    rng: random.Random | None = None,
    stratum: str | None = None,
) -> NextReview | None:
    """The next session for `reviewer` (never one they reviewed); None when none is left.

    `stratum` forces the first stratum tried (tests, `?stratum=` on the API). The
    score bands use the evaluation that counts (`reviews.counted`).
    """
    from tutorscore.reviews.counted import counted_params

    rng = rng or random.Random()
    cfg = rules.reviews
    shares = {
        "band": cfg.queue_band_share,
        "disagreement": cfg.queue_disagreement_share,
        "first_session": cfg.queue_first_session_share,
    }
    if stratum is not None and stratum not in STRATA:
        raise UserError(f"stratum: expected one of {', '.join(STRATA)}, got {stratum!r}")
    if stratum is None:
        total = sum(shares.values())
        draw = rng.random() * total if total > 0 else 0.0
        stratum = STRATA[0]
        for name in STRATA:
            if draw < shares[name]:
                stratum = name
                break
            draw -= shares[name]
    order = [stratum] + sorted((s for s in STRATA if s != stratum), key=lambda s: -shares[s])
    params = counted_params(db, rules)
    for name in order:
        if name == "band":
            found = _pick_band(db, reviewer, rules, rng, params)
        elif name == "disagreement":
            found = _pick_disagreement(db, reviewer)
        else:
            found = _pick_first_session(db, reviewer, rng, params)
        if found is not None:
            return found
    return None
