"""Read models for the dashboard pages: small SQL reads and view-model shaping.

Metric SQL lives in tutorscore.analytics; here are only listings (a tutor's
sessions, one session with its transcript) and operational counts (queue, LLM
spend) that the pages show beside the analytics reports.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from tutorscore.analytics.flags import CHURN_RISK, FILTER_NAMES, INSUFFICIENT_DATA, LABELS
from tutorscore.analytics.flags import FLAG_NAMES as FLAG_NAMES
from tutorscore.analytics.metrics import chosen_evaluations_cte, statement
from tutorscore.analytics.rules import risk_level
from tutorscore.db.base import JSONType, UTCDateTime, utcnow
from tutorscore.db.models import Job, LLMCall, SessionEvaluation, Tutor
from tutorscore.evaluation.moves import MOVE_CODES

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
    total = db.scalar(
        text("SELECT COUNT(*) FROM sessions WHERE tutor_id = :tid"), {"tid": tutor_id}
    )
    sql = text(
        f"""WITH page AS (
  SELECT * FROM sessions WHERE tutor_id = :tid
  ORDER BY scheduled_start_at DESC, session_id LIMIT :limit OFFSET :offset
), {chosen_evaluations_cte("s.session_id IN (SELECT session_id FROM page)")}
SELECT p.session_id, p.scheduled_start_at, p.subject, p.status, p.student_id,
       p.is_first_session, p.student_rating, p.duration_minutes,
       c.quality_score, c.risk_tags, (t.session_id IS NOT NULL) AS has_transcript
FROM page p
LEFT JOIN chosen c ON c.session_id = p.session_id
LEFT JOIN session_transcripts t ON t.session_id = p.session_id
ORDER BY p.scheduled_start_at DESC, p.session_id"""
    ).columns(scheduled_start_at=UTCDateTime(), risk_tags=JSONType)
    params = {"tid": tutor_id, "limit": limit, "offset": offset, **counted}
    rows = db.execute(sql, params).mappings()
    out = []
    for row in rows:
        item = dict(row)
        item["is_first_session"] = bool(item["is_first_session"])
        item["has_transcript"] = bool(item["has_transcript"])
        out.append(item)
    return out, int(total or 0)


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
            segments = new
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
    rows = dict(
        db.execute(
            select(Job.status, func.count()).where(Job.kind == "evaluate").group_by(Job.status)
        ).all()
    )
    oldest = db.scalar(
        select(func.min(Job.created_at)).where(Job.kind == "evaluate", Job.status == "queued")
    )
    age = None
    if oldest is not None:
        age = _age(max(0.0, (utcnow() - oldest).total_seconds()))
    return {
        "queued": int(rows.get("queued", 0)),
        "running": int(rows.get("running", 0)),
        "dead": int(rows.get("dead", 0)),
        "oldest_age": age,
    }


def evaluated_count(db: Session) -> int:
    return int(db.scalar(select(func.count(func.distinct(SessionEvaluation.session_id)))) or 0)


def llm_today(db: Session) -> dict[str, Any]:
    now = utcnow()
    midnight = datetime.combine(now.date(), dtime(0), tzinfo=UTC)
    row = db.execute(
        select(func.count(), func.coalesce(func.sum(LLMCall.cost_usd), 0.0)).where(
            LLMCall.created_at >= midnight
        )
    ).first()
    errors = db.scalar(
        select(func.count()).where(LLMCall.created_at >= midnight, LLMCall.status != "ok")
    )
    return {
        "calls_today": int(row[0]) if row else 0,
        "cost_today": float(row[1]) if row else 0.0,
        "errors_today": int(errors or 0),
    }


def _current(db: Session, alias: str) -> str:
    """`alias` is a tutor's latest metrics row, written as the partial index
    ix_tutor_metrics_current's predicate so both backends can use it."""
    if db.get_bind().dialect.name == "postgresql":
        return f"{alias}.is_current"
    return f"{alias}.is_current = 1"


def new_flags(
    db: Session, *, since: timedelta = timedelta(days=1), limit: int = 20
) -> tuple[list[dict[str, Any]], int]:
    """Tutors with a flag in their latest metrics that their metrics a day earlier lacked.

    "Latest" is the `is_current` row (maintained by analytics.service); the row a day
    earlier is still the latest one at or before the cutoff (MAX(as_of)).
    """
    cutoff = utcnow() - since
    flag_cols = ", ".join(f"cur.{f} AS {f}, old.{f} AS old_{f}" for f in FLAG_NAMES)
    raised = " OR ".join(f"(cur.{f} AND NOT COALESCE(old.{f}, FALSE))" for f in FLAG_NAMES)
    sql = statement(
        f"""WITH before AS (
  SELECT tutor_id, MAX(as_of) AS as_of FROM tutor_metrics WHERE as_of <= :cutoff GROUP BY tutor_id
)
SELECT cur.tutor_id AS tutor_id, t.name AS name, cur.churn_risk_label AS churn_risk_label,
       cur.as_of AS as_of, {flag_cols}
FROM tutor_metrics cur
JOIN tutors t ON t.tutor_id = cur.tutor_id
LEFT JOIN before b ON b.tutor_id = cur.tutor_id
LEFT JOIN tutor_metrics old ON old.tutor_id = b.tutor_id AND old.as_of = b.as_of
WHERE {_current(db, "cur")} AND cur.as_of > :cutoff AND ({raised})
ORDER BY CASE cur.churn_risk_label WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
         t.name""",
        {"cutoff": cutoff},
    )
    rows: list[dict[str, Any]] = []
    total = 0
    for row in db.execute(sql).mappings():
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
    """Tutors per shown risk level, from each tutor's latest (`is_current`) metrics row."""
    sql = text(
        f"""SELECT m.churn_risk_label, m.insufficient_data, COUNT(*)
FROM tutor_metrics m WHERE {_current(db, "m")}
GROUP BY m.churn_risk_label, m.insufficient_data"""
    )
    counts: dict[str, int] = {}
    for label, insufficient, n in db.execute(sql):
        level = risk_level(label, bool(insufficient))
        counts[level] = counts.get(level, 0) + int(n)
    return counts
