"""The playbook: the coaching actions each flag or risk tag calls for (kept in the TOML config)."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Executable, String, and_, bindparam, case, cast, func, select, true
from sqlalchemy.orm import Session

from tutorscore.analytics.flags import PLAYBOOK_FLAGS
from tutorscore.config import RulesConfig
from tutorscore.db.base import UTCDateTime
from tutorscore.db.models import Intervention, SessionEvaluation, TutoringSession, TutorMetrics

# tutor_metrics column -> (value that raises it, playbook key), in recommendation order
FLAG_KEYS: tuple[tuple[str, Any, str], ...] = tuple(
    (str(f.column), f.raised, f.playbook_key) for f in PLAYBOOK_FLAGS
)
FLAG_PLAYBOOK_KEYS = frozenset(key for _, _, key in FLAG_KEYS) | {"first_session_failed"}


def tag_keys(rules: RulesConfig) -> list[str]:
    """Playbook keys that are evaluation risk tags rather than tutor flags."""
    return sorted(k for k in rules.playbook if k not in FLAG_PLAYBOOK_KEYS)


@dataclass
class Recommendation:
    key: str
    title: str
    actions: list[str]
    source: str  # flag | tag
    evidence: str
    open_interventions: list[str] = field(default_factory=list)  # action types already assigned

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def flag_keys_from_metrics(metrics: dict[str, Any]) -> list[str]:
    """Playbook keys raised by one tutor_metrics row (or report item)."""
    return [key for column, value, key in FLAG_KEYS if metrics.get(column) == value]


def recommend(
    rules: RulesConfig, keys: list[str], evidence: dict[str, str] | None = None
) -> list[Recommendation]:
    """Playbook entries for the given flag and tag keys in order; unknown keys are skipped."""
    evidence = evidence or {}
    out = []
    for key in keys:
        entry = rules.playbook.get(key)
        if entry is None:
            continue
        source = "flag" if key in FLAG_PLAYBOOK_KEYS else "tag"
        out.append(
            Recommendation(key, entry.title, list(entry.actions), source, evidence.get(key, ""))
        )
    return out


def tag_counts(
    session: Session, tutor_id: str, *, start: datetime, end: datetime, rules: RulesConfig
) -> tuple[dict[str, int], int]:
    """How many of the tutor's evaluated sessions in (start, end] carry each playbook tag."""
    tags = tuple(tag_keys(rules))
    row = session.execute(
        _tag_counts_statement(tags), {"tutor_id": tutor_id, "start": start, "end": end}
    ).one()
    return {t: int(getattr(row, t) or 0) for t in tags}, int(row.evaluated or 0)


@functools.lru_cache(maxsize=16)
def _tag_counts_statement(tags: tuple[str, ...]) -> Executable:
    """The tag-count query for a set of tags, built once (the tutor page runs it per view)."""
    ev = SessionEvaluation
    s = TutoringSession
    cols = [
        func.count(
            func.distinct(
                case((cast(ev.risk_tags, String).contains(f'"{t}"', autoescape=True), s.session_id))
            )
        ).label(t)
        for t in tags
    ]
    return (
        select(func.count(func.distinct(s.session_id)).label("evaluated"), *cols)
        .select_from(s)
        .join(ev, ev.session_id == s.session_id)
        .where(
            and_(
                s.tutor_id == bindparam("tutor_id"),
                s.scheduled_start_at > bindparam("start", type_=UTCDateTime()),
                s.scheduled_start_at <= bindparam("end", type_=UTCDateTime()),
            )
        )
    )


def tutor_recommendations(
    session: Session, tutor_id: str, *, rules: RulesConfig, as_of: datetime | None = None
) -> list[Recommendation]:
    """Recommendations for a tutor from their latest metrics (at or before `as_of`) and tags."""
    # only the columns used here (not the heavy `details` JSON); the latest row is the
    # `is_current` one (kept by analytics.service), else, for rows written some other
    # way, the one with the greatest as_of (at or before `as_of` when given)
    columns = [getattr(TutorMetrics, c) for c, _, _ in FLAG_KEYS]
    query = select(
        TutorMetrics.reasons, TutorMetrics.as_of, TutorMetrics.window_days, *columns
    ).where(TutorMetrics.tutor_id == tutor_id)
    metrics = None
    if as_of is None:
        metrics = session.execute(query.where(TutorMetrics.is_current == true())).first()
    else:
        query = query.where(TutorMetrics.as_of <= as_of)
    if metrics is None:
        metrics = session.execute(query.order_by(TutorMetrics.as_of.desc()).limit(1)).first()
    keys: list[str] = []
    evidence: dict[str, str] = {}
    if metrics is not None:
        row = {c: getattr(metrics, c) for c, _, _ in FLAG_KEYS}
        keys = flag_keys_from_metrics(row)
        texts: dict[str, list[str]] = {}
        for reason in metrics.reasons or []:
            texts.setdefault(str(reason.get("flag")), []).append(str(reason.get("text", "")))
        for column, _, key in FLAG_KEYS:
            if key in keys:
                evidence[key] = " ".join(t for t in texts.get(column, []) if t)
        end = metrics.as_of
        start = end - timedelta(days=metrics.window_days)
        counts, evaluated = tag_counts(session, tutor_id, start=start, end=end, rules=rules)
        min_sessions = rules.interventions.min_tag_sessions
        for tag, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            if n >= min_sessions:
                keys.append(tag)
                evidence[tag] = f"tagged in {n} of {evaluated} evaluated sessions"
    recs = recommend(rules, keys, evidence)
    open_rows = session.execute(
        select(Intervention.flag, Intervention.type).where(
            Intervention.tutor_id == tutor_id, Intervention.status != "done"
        )
    ).all()
    for rec in recs:
        rec.open_interventions = sorted({t for f, t in open_rows if f == rec.key})
    return recs
