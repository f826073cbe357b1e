"""Read models for the dashboard pages: small SQL reads and view-model shaping.

The queries are the domain's (`analytics.queries`, `evaluation.queries`); here they
are shaped for the pages (labels, ages, flags raised since yesterday).
"""

from __future__ import annotations

import math
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from tutorscore.analytics.flags import CHURN_RISK, FILTER_NAMES, INSUFFICIENT_DATA, LABELS
from tutorscore.analytics.flags import FLAG_NAMES as FLAG_NAMES
from tutorscore.analytics.queries import (
    current_metrics,
    is_current_row,
    recent_sessions,
    session_count,
)
from tutorscore.analytics.rules import risk_level
from tutorscore.db.base import utcnow
from tutorscore.db.models import SessionEvaluation, Tutor, TutorMetrics
from tutorscore.evaluation.moves import MOVE_CODES
from tutorscore.evaluation.queries import llm_spend_today, queue_backlog

# the flags a tutor can carry and what the tutor list can filter on (analytics/flags.py)
FLAG_FILTERS = FILTER_NAMES
FLAG_LABELS = LABELS


def display_risk(item: dict[str, Any]) -> str:
    """The churn label, or "not_enough_data" where a guard hides a low label."""
    if isinstance(item.get("risk_level"), str):
        return str(item["risk_level"])
    label = str(item.get(CHURN_RISK.name) or "low")
    return risk_level(label, bool(item.get(INSUFFICIENT_DATA.name)))


def active_flags(item: dict[str, Any]) -> list[str]:
    return [f for f in FLAG_NAMES if item.get(f)]


def shape_report(item: dict[str, Any]) -> dict[str, Any]:
    out = dict(item)
    out["display_risk"] = display_risk(item)
    out["active_flags"] = active_flags(item)
    return out


def pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


_subject_cache: dict[str, tuple[float, list[str]]] = {}
_subject_lock = threading.Lock()


def subjects(engine: Engine, db: Session, *, ttl: float = 60.0) -> list[str]:
    """Every subject taught, for the filter menu (cached: it changes rarely)."""
    key = engine.url.render_as_string(hide_password=True)
    now = time.monotonic()
    with _subject_lock:
        hit = _subject_cache.get(key)
        if hit and now - hit[0] < ttl:
            return hit[1]
    found: set[str] = set()
    for (value,) in db.execute(select(Tutor.subjects)):
        found.update(str(s) for s in value or [])
    result = sorted(found)
    with _subject_lock:
        _subject_cache[key] = (now, result)
    return result


def tutor_sessions(
    db: Session, tutor_id: str, *, limit: int, offset: int, counted: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """A tutor's sessions, newest first, with the chosen evaluation's score and tags."""
    rows = recent_sessions(db, tutor_id, counted=counted, limit=limit, offset=offset)
    return rows, session_count(db, tutor_id)


_MOVE_NAMES = {code: move for move, code in MOVE_CODES.items()}


def turn_moves(evaluation: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(move, confidence) of each tutor turn, in order, from the heuristic judge's features.

    The evaluation shown may be the LLM's; the moves come from the newest heuristic
    evaluation that has them (heuristic-v2 on), else there are none.
    """
    if not evaluation:
        return []
    candidates = [evaluation, *reversed(evaluation.get("evaluations") or [])]
    for ev in candidates:
        features = ev.get("features") or {}
        codes = features.get("turn_moves")
        if ev.get("judge") == "heuristic" and isinstance(codes, str):
            conf = str(features.get("turn_move_confidence") or "").split(",")
            return [
                (_MOVE_NAMES.get(c, "generic"), conf[k] if k < len(conf) else "")
                for k, c in enumerate(codes)
            ]
    return []


def _mark(segments: list[tuple[str, bool]], quote: str) -> list[tuple[str, bool]]:
    """`segments` with the first occurrence of `quote` in each unmarked one marked."""
    new: list[tuple[str, bool]] = []
    for seg, marked in segments:
        pos = -1 if marked else seg.find(quote)
        if pos < 0:
            new.append((seg, marked))
            continue
        if pos:
            new.append((seg[:pos], False))
        new.append((quote, True))
        if seg[pos + len(quote) :]:
            new.append((seg[pos + len(quote) :], False))
    return new


def highlight_turns(
    turns: list[dict[str, Any]],
    evidence: list[dict[str, Any]],
    moves: list[tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Turns split into (text, marked) segments where the evaluation quotes them.

    Segments stay plain strings so the template escapes them; nothing is marked
    up in Python. Tutor turns carry their move (`moves`, one per tutor turn).
    """
    quotes: dict[int, list[str]] = {}
    for e in evidence:
        turn = e.get("turn")
        quote = e.get("quote")
        if isinstance(turn, int) and isinstance(quote, str) and quote.strip():
            quotes.setdefault(turn, []).append(quote.strip())
    out = []
    tutor_seen = 0
    for index, turn in enumerate(turns):
        body = str(turn.get("text", ""))
        move: tuple[str, str] | None = None
        if turn.get("speaker") == "tutor":
            if moves and tutor_seen < len(moves):
                move = moves[tutor_seen]
            tutor_seen += 1
        segments: list[tuple[str, bool]] = [(body, False)]
        for quote in quotes.get(index, []):
            segments = _mark(segments, quote)
        out.append(
            {
                "index": index,
                "speaker": "tutor" if turn.get("speaker") == "tutor" else "student",
                "segments": segments,
                "quoted": index in quotes,
                "move": move[0] if move else None,
                "move_confidence": move[1] if move else None,
            }
        )
    return out


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def backlog(db: Session) -> dict[str, Any]:
    """The overview's evaluation backlog (`evaluation.queries.queue_backlog`)."""
    queue = queue_backlog(db)
    age = queue["oldest_queued_age_s"]
    return {
        "queued": queue["queued"],
        "running": queue["running"],
        "dead": queue["dead"],
        "oldest_age": None if age is None else _age(max(0.0, age)),
    }


def evaluated_count(db: Session) -> int:
    return int(db.scalar(select(func.count(func.distinct(SessionEvaluation.session_id)))) or 0)


def llm_today(db: Session) -> dict[str, Any]:
    spend = llm_spend_today(db)
    return {
        "calls_today": spend.calls,
        "cost_today": spend.cost_usd,
        "errors_today": spend.errors,
    }


def new_flags(
    db: Session, *, since: timedelta = timedelta(days=1), limit: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """Tutors with a flag in their latest metrics that their metrics a day earlier lacked.

    "Latest" is the current row (`analytics.queries.current_metrics`); the row a day
    earlier is still the latest one at or before the cutoff (MAX(as_of)).
    """
    cutoff = utcnow() - since
    cur = aliased(TutorMetrics, name="cur")
    old = aliased(TutorMetrics, name="old")
    before = (
        select(TutorMetrics.tutor_id, func.max(TutorMetrics.as_of).label("as_of"))
        .where(TutorMetrics.as_of <= cutoff)
        .group_by(TutorMetrics.tutor_id)
        .cte("before")
    )
    raised = or_(
        *(and_(getattr(cur, f), ~func.coalesce(getattr(old, f), false())) for f in FLAG_NAMES)
    )
    query = (
        select(
            cur.tutor_id,
            Tutor.name,
            cur.churn_risk_label,
            *(getattr(cur, f).label(f) for f in FLAG_NAMES),
            *(getattr(old, f).label(f"old_{f}") for f in FLAG_NAMES),
        )
        .join(Tutor, Tutor.tutor_id == cur.tutor_id)
        .outerjoin(before, before.c.tutor_id == cur.tutor_id)
        .outerjoin(old, and_(old.tutor_id == before.c.tutor_id, old.as_of == before.c.as_of))
        .where(is_current_row(cur), cur.as_of > cutoff, raised)
        .order_by(
            case(
                (cur.churn_risk_label == "high", 0), (cur.churn_risk_label == "medium", 1), else_=2
            ),
            Tutor.name,
        )
    )
    rows: list[dict[str, Any]] = []
    total = 0
    for row in db.execute(query).mappings():
        total += 1
        if len(rows) < limit:
            rows.append(
                {
                    "tutor_id": row["tutor_id"],
                    "name": row["name"],
                    CHURN_RISK.name: row[CHURN_RISK.name],
                    "flags": [f for f in FLAG_NAMES if row[f] and not row[f"old_{f}"]],
                }
            )
    return rows, total


def risk_counts(db: Session) -> dict[str, int]:
    """Tutors per shown risk level, from each tutor's current metrics row."""
    query = current_metrics(
        TutorMetrics.churn_risk_label, TutorMetrics.insufficient_data, func.count()
    ).group_by(TutorMetrics.churn_risk_label, TutorMetrics.insufficient_data)
    counts: dict[str, int] = {}
    for label, insufficient, n in db.execute(query):
        level = risk_level(label, bool(insufficient))
        counts[level] = counts.get(level, 0) + int(n)
    return counts
