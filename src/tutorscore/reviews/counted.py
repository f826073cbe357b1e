"""Which evaluation counts for a session: the rule of `[evaluation.counted]`.

- `latest_llm` (default): the latest LLM evaluation, else the latest other one (the
  heuristic). No reviews are read.
- `best_agreement`: among judge versions with at least `min_reviewed` reviewed
  sessions, the one whose scores have the highest Spearman correlation with the
  reviewers' (ties: more sessions, then the label). Its latest evaluation of a session
  counts; sessions it has not evaluated fall back to `latest_llm`, and so does
  everything when no version qualifies.

The SQL (`evaluation.queries.chosen_evaluations`) and the Python
(`evaluation.service.get_evaluation` / `list_evaluations`) both take the choice
from here: the SQL through the bind parameters of `CountedChoice.params()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from tutorscore.config import RulesConfig
from tutorscore.reviews.agreement import JudgeVersion, compared_sessions, load, spearman

LATEST_LLM_TEXT = "the latest LLM evaluation of each session, else the heuristic one"


@dataclass(frozen=True)
class CountedChoice:
    rule: str
    version: JudgeVersion | None
    explanation: str
    spearman: float | None = None
    n: int = 0

    def params(self) -> dict[str, str]:
        """Binds of the SQL preference (an empty judge name matches no evaluation)."""
        v = self.version
        return {
            "counted_judge": v.judge if v else "",
            "counted_model": v.model if v else "",
            "counted_prompt_version": v.prompt_version if v else "",
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version.label if self.version else None,
            "spearman": self.spearman,
            "n": self.n,
            "explanation": self.explanation,
        }


LATEST_LLM = CountedChoice("latest_llm", None, f"AI scores: {LATEST_LLM_TEXT} (rule latest_llm).")


def version_scores(bind: Session | Connection) -> list[tuple[JudgeVersion, int, float | None]]:
    """(version, reviewed sessions it evaluated, Spearman with the reviewers) per version."""
    data = load(bind)
    out = []
    for version in sorted(data.judged):
        sessions = compared_sessions(data, version)
        x = np.asarray([data.judged[version][s][0] for s in sessions], dtype=float)
        y = np.asarray([data.humans[s].score for s in sessions], dtype=float)
        out.append((version, len(sessions), spearman(x, y)))
    return out


def choose_counted(bind: Session | Connection, rules: RulesConfig) -> CountedChoice:
    cfg = rules.evaluation.counted
    if cfg.rule == "latest_llm":
        return LATEST_LLM
    scores = version_scores(bind)
    eligible = [(v, n, r) for v, n, r in scores if n >= cfg.min_reviewed and r is not None]
    if not eligible:
        most = max(scores, key=lambda s: (s[1], s[0].label), default=None)
        detail = (
            f"most: {most[0].label} with {most[1]}"
            if most is not None and most[1]
            else "no reviewed session is evaluated yet"
        )
        return CountedChoice(
            cfg.rule,
            None,
            f"AI scores: {LATEST_LLM_TEXT}. The best-agreement rule needs a judge version"
            f" with at least {cfg.min_reviewed} reviewed sessions ({detail}).",
        )
    version, n, r = max(eligible, key=lambda s: (s[2], s[1], s[0].label))
    assert r is not None
    return CountedChoice(
        cfg.rule,
        version,
        f"AI scores: {version.label}, the judge version that agrees best with the coaches'"
        f" reviews (Spearman {r:.2f} on {n} reviewed sessions; at least {cfg.min_reviewed}"
        f" needed). Sessions it has not evaluated show {LATEST_LLM_TEXT}.",
        round(r, 4),
        n,
    )


def counted_params(bind: Session | Connection, rules: RulesConfig) -> dict[str, str]:
    return choose_counted(bind, rules).params()
