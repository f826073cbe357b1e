"""The review queue's strata (seeded, so every count below is deterministic), API and page.

On SQLite and Postgres.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import Engine

from tutorscore.config import RulesConfig
from tutorscore.db.base import utcnow
from tutorscore.db.engine import transaction
from tutorscore.db.models import Review, SessionEvaluation, Student, Tutor, TutoringSession
from tutorscore.reviews.queue import next_for_review
from web_support import bearer, login

RUBRIC = {"clarity": 3, "pacing": 3, "engagement": 3, "goal_alignment": 3}
# judge scores by session: band [1,2) one session, [2,3) one, [3,4) five, [4,5] one
SCORES = {"B0": 1.5, "B1": 2.5, "C1": 3.1, "C2": 3.3, "C3": 3.5, "C4": 3.7, "C5": 3.9, "B3": 4.5}


def _world(engine: Engine, *, first: str | None = None) -> None:
    now = utcnow()
    with transaction(engine) as db:
        db.add(Tutor(tutor_id="T1", name="Ada", subjects=["Math"]))
        db.add(Student(student_id="St"))
        db.flush()
        for i, (sid, score) in enumerate(SCORES.items()):
            db.add(
                TutoringSession(
                    session_id=sid, tutor_id="T1", student_id="St", subject="Math",
                    scheduled_start_at=now - timedelta(days=1, hours=i), status="completed",
                    is_first_session=sid == first,
                )
            )  # fmt: skip
            db.flush()
            db.add(
                SessionEvaluation(
                    session_id=sid, judge="heuristic", model="", prompt_version="heuristic-v1",
                    transcript_hash="h", quality_score=score, rubric=RUBRIC,
                )
            )  # fmt: skip
        db.add(
            TutoringSession(
                session_id="NOEVAL", tutor_id="T1", student_id="St", subject="Math",
                scheduled_start_at=now, status="completed",
            )
        )  # fmt: skip


def _review(engine: Engine, session_id: str, reviewer: str) -> None:
    with transaction(engine) as db:
        db.add(Review(session_id=session_id, reviewer=reviewer, quality_score=3.0, tags=[]))


def test_band_stratum_samples_bands_evenly_not_sessions(engine: Engine, rules: RulesConfig) -> None:
    _world(engine)
    rng = random.Random(1)
    with transaction(engine) as db:
        picks = [next_for_review(db, "ana", rules, rng=rng, stratum="band") for _ in range(400)]
    assert all(p is not None and p.stratum == "band" for p in picks)
    sessions = Counter(p.session_id for p in picks if p)
    bands = Counter(tuple(p.band or []) for p in picks if p)
    # each band about a quarter of the picks (a proportional sample would give the
    # one-session bands 1/8 each and [3, 4) 5/8); within [3, 4) each session about 1/5
    assert set(bands) == {(1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0)}
    assert all(80 <= n <= 120 for n in bands.values()), bands
    assert all(10 <= sessions[s] <= 30 for s in ("C1", "C2", "C3", "C4", "C5")), sessions
    assert "NOEVAL" not in sessions  # nothing to compare a review with
    assert picks[0] is not None and "judge score in [" in picks[0].reason


def test_never_a_session_the_coach_reviewed(engine: Engine, rules: RulesConfig) -> None:
    _world(engine)
    for sid in SCORES:
        if sid != "C4":
            _review(engine, sid, "ana")
    rng = random.Random(2)
    with transaction(engine) as db:
        for stratum in ("band", "disagreement", "first_session", None):
            found = next_for_review(db, "ana", rules, rng=rng, stratum=stratum)
            assert found is not None and found.session_id == "C4"
    _review(engine, "C4", "ana")
    with transaction(engine) as db:
        assert next_for_review(db, "ana", rules, rng=rng) is None
        other = next_for_review(db, "ben", rules, rng=rng)  # another coach still has work
        assert other is not None


def test_disagreement_and_first_session_strata(engine: Engine, rules: RulesConfig) -> None:
    _world(engine, first="C2")
    with transaction(engine) as db:
        for sid, score in (("C1", 3.6), ("B3", 2.5)):  # spreads 0.5 and 2.0
            db.add(
                SessionEvaluation(
                    session_id=sid, judge="llm", model="m", prompt_version="llm-v1",
                    transcript_hash="h", quality_score=score, rubric=RUBRIC,
                )
            )  # fmt: skip
    rng = random.Random(3)
    with transaction(engine) as db:
        found = next_for_review(db, "ana", rules, rng=rng, stratum="disagreement")
        assert found is not None and (found.session_id, found.stratum) == ("B3", "disagreement")
        assert (
            found.reason == "judge versions disagree most here: scores 2.00 apart across 2 versions"
        )
        first = next_for_review(db, "ana", rules, rng=rng, stratum="first_session")
        assert first is not None and (first.session_id, first.stratum) == ("C2", "first_session")
    _review(engine, "B3", "ana")
    _review(engine, "C2", "ana")
    with transaction(engine) as db:
        found = next_for_review(db, "ana", rules, rng=rng, stratum="disagreement")
        assert found is not None and (found.session_id, found.stratum) == ("C1", "disagreement")
        # no first session left: the pick falls through to another stratum
        fallback = next_for_review(db, "ana", rules, rng=rng, stratum="first_session")
        assert fallback is not None and fallback.stratum != "first_session"


def test_shares_choose_the_stratum(engine: Engine, rules: RulesConfig) -> None:
    _world(engine, first="C2")
    with transaction(engine) as db:
        db.add(
            SessionEvaluation(
                session_id="C1", judge="llm", model="m", prompt_version="llm-v1",
                transcript_hash="h", quality_score=1.0, rubric=RUBRIC,
            )
        )  # fmt: skip
    rng = random.Random(4)
    with transaction(engine) as db:
        counts = Counter(next_for_review(db, "ana", rules, rng=rng).stratum for _ in range(400))  # type: ignore[union-attr]
    # 0.6 / 0.25 / 0.15 of 400 = 240 / 100 / 60
    assert 200 <= counts["band"] <= 280 and 70 <= counts["disagreement"] <= 130, counts
    assert 35 <= counts["first_session"] <= 85, counts
    only_first = rules.model_copy(deep=True)
    only_first.reviews.queue_band_share = 0
    only_first.reviews.queue_disagreement_share = 0
    only_first.reviews.queue_first_session_share = 1
    with transaction(engine) as db:
        picked = [next_for_review(db, "ana", only_first, rng=rng) for _ in range(20)]
        assert {p.session_id if p else None for p in picked} == {"C2"}


async def test_queue_api_and_page_roles(engine: Engine, client: httpx.AsyncClient) -> None:
    _world(engine)
    viewer = bearer(engine, "viewer1", "viewer")
    coach = bearer(engine, "coach1", "coach")
    r = await client.get("/api/reviews/next", headers=viewer)
    assert r.status_code == 403
    r = await client.get("/api/reviews/next?stratum=band", headers=coach)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["session_id"] in SCORES and body["stratum"] == "band"
    assert body["url"] == f"/sessions/{body['session_id']}"
    r = await client.get("/api/reviews/next?stratum=nope", headers=coach)
    assert r.status_code == 422
    for sid in SCORES:
        _review(engine, sid, "coach1")
    r = await client.get("/api/reviews/next", headers=coach)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    await login(client, engine, "coach2", "coach")
    r = await client.get("/reviews/next")
    assert r.status_code == 303
    target = r.headers["location"]
    assert target.startswith("/sessions/") and "queue=" in target and "why=" not in target
    page = await client.get(target)
    assert 'id="queue-why"' in page.text and 'id="review-form"' in page.text
    assert "From the review queue: " in page.text and "judge score in" not in page.text
    # text from the query string is never shown: only the page's own sentence per stratum
    page = await client.get(target.split("?")[0] + "?queue=%3Cb%3Ehello")
    assert 'id="queue-why"' not in page.text and "hello" not in page.text
    overview = (await client.get("/")).text
    assert 'id="reviews-week"' in overview
    assert "reviews in the last 7 days, of 8 sessions by 1 reviewer" in " ".join(overview.split())
