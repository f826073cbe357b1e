"""Playbook mapping, the intervention lifecycle with roles and audit, the board and tutor panel."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, select

from tutorscore.config import RulesConfig
from tutorscore.db.engine import transaction
from tutorscore.db.models import (
    AuditLog,
    Intervention,
    SessionEvaluation,
    Student,
    Tutor,
    TutoringSession,
    TutorMetrics,
)
from tutorscore.errors import Conflict, ValidationFailed
from tutorscore.interventions import playbook, service
from web_support import bearer, login

AS_OF = datetime(2026, 11, 24, tzinfo=UTC)


def _tutor_with_flags(engine: Engine, tutor_id: str = "T1", **flags: object) -> None:
    """A tutor, a metrics row at AS_OF with the given flags, and three evaluated sessions."""
    with transaction(engine) as s:
        s.add(Tutor(tutor_id=tutor_id, name="Ada", subjects=["SAT Math"]))
        s.add(Student(student_id=f"{tutor_id}-S"))
        s.flush()
        s.add(
            TutorMetrics(
                tutor_id=tutor_id,
                as_of=AS_OF,
                window_days=30,
                config_hash="x",
                reasons=[
                    {"flag": "high_rescheduler_flag", "text": "9 of 41 sessions rescheduled"},
                ],
                details={},
                is_current=True,  # the tutor's latest row, as analytics.service marks it
                **flags,
            )
        )
        for i, tags in enumerate([["answer_giveaway"], ["answer_giveaway", "rushed_pacing"], []]):
            sid = f"{tutor_id}-X{i}"
            s.add(
                TutoringSession(
                    session_id=sid,
                    tutor_id=tutor_id,
                    student_id=f"{tutor_id}-S",
                    subject="SAT Math",
                    scheduled_start_at=AS_OF - timedelta(days=i + 1),
                    status="completed",
                )
            )
            s.flush()
            s.add(
                SessionEvaluation(
                    session_id=sid,
                    judge="heuristic",
                    model="",
                    prompt_version="v1",
                    transcript_hash=f"h{i}",
                    quality_score=3.0,
                    rubric={},
                    risk_tags=tags,
                )
            )


def test_playbook_maps_flags_and_tags_to_actions(rules: RulesConfig) -> None:
    keys = playbook.flag_keys_from_metrics(
        {
            "high_rescheduler_flag": True,
            "poor_first_session_flag": False,
            "no_show_risk_label": "high",
            "churn_risk_label": "medium",
            "low_rating_flag": True,
        }
    )
    assert keys == ["high_rescheduler_flag", "no_show_risk_high", "low_rating"]
    recs = playbook.recommend(rules, [*keys, "answer_giveaway", "not_in_playbook"])
    assert [r.key for r in recs] == [*keys, "answer_giveaway"]
    by_key = {r.key: r for r in recs}
    assert (
        by_key["high_rescheduler_flag"].actions == rules.playbook["high_rescheduler_flag"].actions
    )
    assert by_key["no_show_risk_high"].source == "flag"
    assert by_key["answer_giveaway"].source == "tag"
    # every playbook entry that is not a flag is treated as a risk tag
    assert set(playbook.tag_keys(rules)) == set(rules.playbook) - playbook.FLAG_PLAYBOOK_KEYS


def test_playbook_follows_the_config(rules: RulesConfig) -> None:
    from tutorscore.config import PlaybookEntry

    custom = rules.model_copy(
        update={"playbook": {"low_rating": PlaybookEntry(title="Ratings", actions=["Call"])}}
    )
    recs = playbook.recommend(custom, ["low_rating", "high_rescheduler_flag"])
    assert [(r.key, r.actions) for r in recs] == [("low_rating", ["Call"])]


def test_tutor_recommendations_from_metrics_and_frequent_tags(
    engine: Engine, rules: RulesConfig
) -> None:
    _tutor_with_flags(engine, high_rescheduler_flag=True)
    with transaction(engine) as s:
        service.create_intervention(
            s,
            tutor_id="T1",
            type="Availability review with the tutor",
            flag="high_rescheduler_flag",
            actor="coach",
            rules=rules,
        )
    with transaction(engine) as s:
        recs = playbook.tutor_recommendations(s, "T1", rules=rules)
    keys = [r.key for r in recs]
    # answer_giveaway in 2 evaluated sessions (>= min_tag_sessions); rushed_pacing only in 1
    assert keys == ["high_rescheduler_flag", "answer_giveaway"]
    assert "9 of 41" in recs[0].evidence
    assert recs[0].open_interventions == ["Availability review with the tutor"]
    assert recs[1].evidence == "tagged in 2 of 3 evaluated sessions"


def test_lifecycle_transitions_and_audit(engine: Engine, rules: RulesConfig) -> None:
    _tutor_with_flags(engine)
    with transaction(engine) as s:
        iv = service.create_intervention(
            s, tutor_id="T1", type="Pacing coaching", actor="coach1", rules=rules
        )
        iv_id = iv.id
    with transaction(engine) as s, pytest.raises(Conflict):
        service.update_intervention(s, iv_id, actor="coach1", status="done")
    with transaction(engine) as s, pytest.raises(ValidationFailed):
        service.update_intervention(s, iv_id, actor="coach1", status="finished")
    with transaction(engine) as s:
        service.update_intervention(s, iv_id, actor="coach1", status="in_progress", owner="bo")
    with transaction(engine) as s:
        done = service.update_intervention(s, iv_id, actor="coach2", status="done")
        assert done.started_at is not None and done.completed_at is not None
    with transaction(engine) as s, pytest.raises(Conflict):
        service.update_intervention(s, iv_id, actor="coach1", status="in_progress")
    with transaction(engine) as s:
        audits = list(
            s.scalars(
                select(AuditLog).where(AuditLog.entity_type == "intervention").order_by(AuditLog.id)
            )
        )
    assert [(a.action, a.actor) for a in audits] == [
        ("intervention.create", "coach1"),
        ("intervention.update", "coach1"),
        ("intervention.update", "coach2"),
    ]
    assert audits[1].before is not None and audits[1].after is not None
    assert audits[1].before["status"] == "open" and audits[1].after["status"] == "in_progress"
    assert audits[1].after["owner"] == "bo"


def test_unknown_flag_and_tutor_are_rejected(engine: Engine, rules: RulesConfig) -> None:
    _tutor_with_flags(engine)
    from tutorscore.errors import NotFound

    with transaction(engine) as s, pytest.raises(ValidationFailed):
        service.create_intervention(s, tutor_id="T1", type="x", flag="nope", actor="c", rules=rules)
    with transaction(engine) as s, pytest.raises(NotFound):
        service.create_intervention(s, tutor_id="T404", type="x", actor="c", rules=rules)


async def test_api_lifecycle_with_roles(
    engine: Engine, rules: RulesConfig, client: httpx.AsyncClient
) -> None:
    _tutor_with_flags(engine, high_rescheduler_flag=True)
    coach = bearer(engine, "coach1", "coach")
    viewer = bearer(engine, "viewer1", "viewer")
    body = {
        "tutor_id": "T1",
        "type": "Availability review with the tutor",
        "flag": "high_rescheduler_flag",
        "owner": "coach1",
        "due_date": (date.today() - timedelta(days=2)).isoformat(),
        "notes": "talk about Tuesday slots",
    }
    r = await client.post("/api/interventions", json=body, headers=viewer)
    assert r.status_code == 403, r.text
    r = await client.post("/api/interventions", json=body, headers=coach)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == "open" and created["overdue"] is True
    iv_id = created["id"]

    r = await client.patch(f"/api/interventions/{iv_id}", json={"status": "done"}, headers=coach)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    r = await client.patch(
        f"/api/interventions/{iv_id}", json={"status": "in_progress"}, headers=viewer
    )
    assert r.status_code == 403
    r = await client.patch(
        f"/api/interventions/{iv_id}", json={"status": "in_progress"}, headers=coach
    )
    assert r.status_code == 200 and r.json()["status"] == "in_progress"
    r = await client.patch(
        f"/api/interventions/{iv_id}", json={"status": "done", "notes": None}, headers=coach
    )
    assert r.status_code == 200
    assert r.json()["status"] == "done" and r.json()["notes"] is None
    assert r.json()["overdue"] is False
    r = await client.patch(f"/api/interventions/{iv_id}", json={"bogus": 1}, headers=coach)
    assert r.status_code == 422

    r = await client.get(f"/api/interventions/{iv_id}", headers=viewer)
    assert r.status_code == 200
    assert r.json()["outcome"]["intervention_id"] == iv_id
    r = await client.get("/api/interventions/999", headers=viewer)
    assert r.status_code == 404

    with transaction(engine) as s:
        n_audit = s.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.entity_type == "intervention")
        )
    assert n_audit == 3

    r = await client.get("/api/tutors/T1/recommendations", headers=viewer)
    assert r.status_code == 200
    assert [x["key"] for x in r.json()["items"]][0] == "high_rescheduler_flag"


async def test_api_list_filters(
    engine: Engine, rules: RulesConfig, client: httpx.AsyncClient
) -> None:
    _tutor_with_flags(engine)
    _tutor_with_flags(engine, "T2")
    today = date.today()
    with transaction(engine) as s:
        a = service.create_intervention(
            s, tutor_id="T1", type="A", owner="ann", due_date=today - timedelta(days=1),
            actor="c", rules=rules,
        )  # fmt: skip
        service.create_intervention(
            s, tutor_id="T2", type="B", owner="bob", due_date=today + timedelta(days=5),
            actor="c", rules=rules,
        )  # fmt: skip
        c = service.create_intervention(
            s, tutor_id="T2", type="A", owner="ann", due_date=today - timedelta(days=9),
            actor="c", rules=rules,
        )  # fmt: skip
        service.update_intervention(s, c.id, actor="c", status="in_progress")
        service.update_intervention(s, c.id, actor="c", status="done")
    h = bearer(engine, "v", "viewer")

    async def ids(**params: str) -> list[int]:
        r = await client.get("/api/interventions", params=params, headers=h)
        assert r.status_code == 200, r.text
        return sorted(i["id"] for i in r.json()["items"])

    assert len(await ids()) == 3
    assert await ids(owner="ann") == sorted([a.id, c.id])
    assert await ids(overdue="true") == [a.id]  # done ones are never overdue
    assert await ids(status="done") == [c.id]
    assert await ids(type="A", tutor_id="T2") == [c.id]
    r = await client.get("/api/interventions", params={"status": "nope"}, headers=h)
    assert r.status_code == 422


async def test_board_and_tutor_panel(
    engine: Engine, rules: RulesConfig, client: httpx.AsyncClient
) -> None:
    _tutor_with_flags(engine, high_rescheduler_flag=True)
    csrf = await login(client, engine, "coachy", "coach")
    r = await client.post(
        "/interventions",
        data={
            "csrf_token": csrf,
            "tutor_id": "T1",
            "type": "Availability review with the tutor",
            "flag": "high_rescheduler_flag",
            "due_date": (date.today() - timedelta(days=1)).isoformat(),
        },
    )
    assert r.status_code == 303, r.text
    r = await client.get("/interventions")
    assert r.status_code == 200
    assert "Availability review with the tutor" in r.text
    assert 'class="overdue"' in r.text and "overdue</span>" in r.text
    r = await client.get("/interventions", params={"overdue": "1", "owner": "someone-else"})
    assert "No interventions match" in r.text

    with transaction(engine) as s:
        iv_id = s.scalar(select(Intervention.id))
    r = await client.post(f"/interventions/{iv_id}", data={"status": "in_progress"})
    assert r.status_code == 403  # no CSRF token
    r = await client.post(
        f"/interventions/{iv_id}", data={"status": "in_progress", "csrf_token": csrf}
    )
    assert r.status_code == 303
    r = await client.get(f"/interventions/{iv_id}")
    assert r.status_code == 200 and "in progress" in r.text
    r = await client.get("/interventions/outcomes")
    assert r.status_code == 200 and "Effect by intervention type" in r.text

    r = await client.get("/tutors/T1")
    assert r.status_code == 200, r.text
    assert 'id="recommendations"' in r.text and 'data-key="answer_giveaway"' in r.text
    assert 'id="tutor-interventions"' in r.text
    # the action already assigned is marked, the others offer a form
    assert "assigned</span>" in r.text and "Create task" in r.text


async def test_viewer_cannot_change_from_the_dashboard(
    engine: Engine, rules: RulesConfig, client: httpx.AsyncClient
) -> None:
    _tutor_with_flags(engine)
    csrf = await login(client, engine, "viewy", "viewer")
    r = await client.post(
        "/interventions", data={"csrf_token": csrf, "tutor_id": "T1", "type": "x"}
    )
    assert r.status_code == 403
    r = await client.get("/interventions")
    assert r.status_code == 200 and "Create task" not in r.text
