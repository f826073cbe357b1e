"""First-session patterns: by subject, the worst tutors, and risk tags behind failures.

A first session is a `completed` session with `is_first_session`; it failed
when the student churned after it or rated it <= poor_first_session_max_rating
(the same definition as first_session_dropout_rate). Computed straight from the
sessions at `as_of` with GROUP BY queries, so it needs no earlier analytics run.

Risk-tag lift: among evaluated first sessions, the share of failed ones carrying
a tag divided by the share of successful ones carrying it. A tag is
over-represented when lift >= first_session_tag_min_lift and it appears in at
least first_session_tag_min_failed failed sessions (a tag never seen in a
successful session has lift null, "only in failed ones").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tutorscore.analytics.flags import POOR_FIRST_SESSION
from tutorscore.analytics.metrics import (
    FIRST_SESSION,
    FIRST_SESSION_FAILED,
    IN_WINDOW,
    statement,
    window_params,
)
from tutorscore.analytics.rules import rate
from tutorscore.analytics.window import Window, iso
from tutorscore.config import RulesConfig
from tutorscore.evaluation.queries import chosen_evaluations


def _tags_sql(dialect: str) -> str:
    where = f"{IN_WINDOW} AND {FIRST_SESSION}"
    if dialect == "postgresql":
        unnest = "CROSS JOIN LATERAL jsonb_array_elements_text(fs.risk_tags) AS j(value)"
    else:
        unnest = ", json_each(fs.risk_tags) AS j"
    return f"""WITH {chosen_evaluations(where)}, fs AS (
  SELECT s.session_id AS session_id,
         CASE WHEN {FIRST_SESSION_FAILED} THEN 1 ELSE 0 END AS failed,
         c.risk_tags AS risk_tags
  FROM sessions s JOIN chosen c ON c.session_id = s.session_id
  WHERE {where}
)
SELECT fs.failed AS failed, j.value AS tag, COUNT(DISTINCT fs.session_id) AS n
FROM fs {unnest}
GROUP BY fs.failed, j.value
UNION ALL
SELECT fs.failed, NULL, COUNT(*) FROM fs GROUP BY fs.failed"""


def first_session_patterns(
    session: Session, *, as_of: datetime, rules: RulesConfig
) -> dict[str, Any]:
    """By subject: count, dropout rate and worst tutors; risk tags over-represented in failures."""
    t = rules.thresholds
    cfg = rules.analytics
    window = Window.build(as_of, cfg.window_days)
    from tutorscore.reviews.counted import counted_params

    params = {
        **window_params(window, rules),
        **counted_params(session, rules),
        "min_first": t.min_first_sessions,
    }
    where = f"{IN_WINDOW} AND {FIRST_SESSION}"
    failed = f"SUM(CASE WHEN {FIRST_SESSION_FAILED} THEN 1 ELSE 0 END)"

    subjects: dict[str, dict[str, Any]] = {}
    total_n = total_failed = 0
    by_subject_sql = f"""SELECT s.subject AS subject, COUNT(*) AS n, {failed} AS failed,
  COUNT(DISTINCT s.tutor_id) AS tutors
FROM sessions s WHERE {where} GROUP BY s.subject"""
    for row in session.execute(statement(by_subject_sql, params)).mappings():
        n, bad = int(row["n"]), int(row["failed"] or 0)
        total_n += n
        total_failed += bad
        subjects[row["subject"]] = {
            "subject": row["subject"],
            "first_sessions": n,
            "dropouts": bad,
            "dropout_rate": rate(bad, n),
            "tutors": int(row["tutors"]),
            "worst_tutors": [],
        }

    worst_sql = f"""SELECT s.subject AS subject, s.tutor_id AS tutor_id, t.name AS name,
  COUNT(*) AS n, {failed} AS failed
FROM sessions s JOIN tutors t ON t.tutor_id = s.tutor_id
WHERE {where}
GROUP BY s.subject, s.tutor_id, t.name
HAVING COUNT(*) >= :min_first"""
    candidates: dict[str, list[dict[str, Any]]] = {}
    for row in session.execute(statement(worst_sql, params)).mappings():
        n, bad = int(row["n"]), int(row["failed"] or 0)
        dropout_rate = rate(bad, n)
        candidates.setdefault(row["subject"], []).append(
            {
                "tutor_id": row["tutor_id"],
                "name": row["name"],
                "first_sessions": n,
                "dropouts": bad,
                "dropout_rate": dropout_rate,
                POOR_FIRST_SESSION.name: bool(
                    dropout_rate is not None and dropout_rate > t.poor_first_session_rate
                ),
            }
        )
    for subject, tutors in candidates.items():
        tutors.sort(key=lambda x: (-(x["dropout_rate"] or 0), -x["dropouts"], x["tutor_id"]))
        if subject in subjects:
            subjects[subject]["worst_tutors"] = tutors[: cfg.worst_tutors_per_subject]
            subjects[subject]["tutors_meeting_guard"] = len(tutors)

    dialect = session.get_bind().dialect.name
    evaluated = {0: 0, 1: 0}
    tag_counts: dict[str, dict[int, int]] = {}
    for failed_flag, tag, count in session.execute(statement(_tags_sql(dialect), params)):
        is_failed, n = int(failed_flag), int(count)
        if tag is None:
            evaluated[is_failed] = n
        else:
            tag_counts.setdefault(tag, {0: 0, 1: 0})[is_failed] = n
    tags: list[dict[str, Any]] = []
    for tag, counts in tag_counts.items():
        failed_share = rate(counts[1], evaluated[1])
        ok_share = rate(counts[0], evaluated[0])
        lift = None
        if failed_share is not None and ok_share:
            lift = round(failed_share / ok_share, 6)
        enough = counts[1] >= cfg.first_session_tag_min_failed
        over = enough and (
            (lift is not None and lift >= cfg.first_session_tag_min_lift)
            or (lift is None and bool(failed_share))
        )
        tags.append(
            {
                "tag": tag,
                "failed_with_tag": counts[1],
                "failed_evaluated": evaluated[1],
                "successful_with_tag": counts[0],
                "successful_evaluated": evaluated[0],
                "failed_share": failed_share,
                "successful_share": ok_share,
                "lift": lift,
                "over_represented": over,
            }
        )
    tags.sort(
        key=lambda x: (
            not x["over_represented"],
            -(x["lift"] if x["lift"] is not None else float("inf")),
            -x["failed_with_tag"],
            x["tag"],
        )
    )
    ordered = sorted(
        subjects.values(), key=lambda x: (-(x["dropout_rate"] or 0), -x["first_sessions"])
    )
    return {
        "as_of": iso(window.as_of),
        "window_days": window.days,
        "window": window.describe(),
        "first_sessions": total_n,
        "dropouts": total_failed,
        "dropout_rate": rate(total_failed, total_n),
        "subjects": ordered,
        "risk_tags": tags,
        "evaluated_first_sessions": {"failed": evaluated[1], "successful": evaluated[0]},
        "thresholds": {
            "poor_first_session_rate": t.poor_first_session_rate,
            "min_first_sessions": t.min_first_sessions,
            "poor_first_session_max_rating": t.poor_first_session_max_rating,
            "tag_min_lift": cfg.first_session_tag_min_lift,
            "tag_min_failed": cfg.first_session_tag_min_failed,
        },
    }
