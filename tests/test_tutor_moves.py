"""The tutor-move model and heuristic judge v2 on clear cases and real dialogue."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from evaluation_support import add_sessions
from tutorscore.config import HeuristicConfig, RulesConfig
from tutorscore.db.engine import transaction
from tutorscore.db.models import SessionEvaluation
from tutorscore.errors import UserError
from tutorscore.evaluation import move_training as mt
from tutorscore.evaluation.heuristic import (
    MOVE_MODEL_SHA256_PREFIX,
    PROMPT_VERSION,
    HeuristicJudge,
    evaluate_turns,
)
from tutorscore.evaluation.moves import (
    MODEL_FILE,
    MOVES,
    MoveModel,
    bundled_model,
    load_model,
    model_sha256,
    word_vectorizer,
)
from tutorscore.evaluation.service import evaluate_session, get_evaluation
from tutorscore.evaluation.uptake import uptake_score
from tutorscore.ingest.transcript_format import Turn, content_hash

DATA = mt.default_data_path()


def test_bundled_model_is_plain_json_trained_on_the_bundled_data() -> None:
    text = resources.files("tutorscore.evaluation").joinpath(MODEL_FILE).read_text("utf-8")
    payload = json.loads(text)  # JSON only: loading executes nothing
    assert payload["model_sha256"] == model_sha256(payload)
    training = payload["training"]
    assert training["data_sha256"] == mt.file_sha256(DATA)
    bridge = training["bridge"]
    assert bridge["data_sha256"] == mt.file_sha256(mt.default_bridge_path())
    assert bridge["split"] == "train"
    assert bridge["responses"] == len(mt.bridge_training_items(mt.default_bridge_path()))
    assert training["turns"] == sum(training["label_counts"].values())
    cv = training["cross_validation"]
    assert cv["grouped_by"] == "problem_id" and cv["folds"] == 5
    model = bundled_model()
    assert model is bundled_model()  # loaded once per process
    assert model.sha256 == payload["model_sha256"]


def test_a_pickle_is_refused(tmp_path: Path) -> None:
    import pickle

    bad = tmp_path / "model.json"
    bad.write_bytes(pickle.dumps({"format": "x"}))
    with pytest.raises(ValueError):
        load_model(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="format"):
        load_model(wrong)


def test_training_twice_gives_the_same_model() -> None:
    first = mt.train(DATA, bridge_data=mt.default_bridge_path(), cv=False, limit=150)
    second = mt.train(DATA, bridge_data=mt.default_bridge_path(), cv=False, limit=150)
    assert first["model_sha256"] == second["model_sha256"]
    assert first["training"]["dialogues"] == 150
    assert first["training"]["data_sha256"] == second["training"]["data_sha256"]


def test_bridge_training_never_uses_the_held_out_splits() -> None:
    items = mt.load_bridge(mt.default_bridge_path())
    used = mt.bridge_training_items(mt.default_bridge_path())
    assert used and {i.split for i in used} == {"train"}
    held_out = [i for i in items if i.split != "train" and i.asks is not None]
    assert len(held_out) > 100  # validation + test stay for benchmarks/judge_validity.py
    assert not {i.item_id for i in used} & {i.item_id for i in held_out}
    # every response is a tutor turn of its conversation, which it ends or precedes a reply
    for item in items[:50]:
        assert item.turns[item.at]["speaker"] == "tutor"
        assert item.at >= len(item.turns) - 2


def test_bridge_labels_follow_its_strategies() -> None:
    items = mt.bridge_training_items(mt.default_bridge_path())[:80]
    table = mt.bridge_table(items, bundled_model())
    assert len(table.labels) == len(items)
    for item, label in zip(items, table.labels, strict=True):
        move = MOVES[label]
        if item.strategy in mt.BRIDGE_TELLING:
            assert move == "telling"
        elif item.strategy == "simplify_question":
            assert move == "focus"
        else:
            assert move in ("focus", "probing")


def test_a_malformed_bridge_line_names_file_and_line(tmp_path: Path) -> None:
    good = mt.default_bridge_path().read_text("utf-8").splitlines()[0]
    bad = tmp_path / "bridge.jsonl"
    bad.write_text(good + "\n" + '{"c_id": "x", "c_h": []}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bridge.jsonl:2: expected a Bridge item"):
        mt.load_bridge(bad)
    with pytest.raises(UserError, match="no such file"):
        mt.load_bridge(tmp_path / "missing.jsonl")


def test_fast_inference_equals_the_sklearn_vectorizer() -> None:
    table = mt.turn_table(mt.load_mathdial(DATA)[:120])
    payload = mt.fit_payload(table.grams, table.dense, table.labels)
    model = MoveModel(payload)
    ours = model.probabilities(table.grams, table.dense)
    vec = word_vectorizer(payload["vocabulary"])
    vec.idf_ = np.asarray(payload["idf"])
    words = vec.transform(table.grams).toarray()
    dense = (table.dense - np.asarray(payload["dense_mean"])) / np.asarray(payload["dense_scale"])
    logits = np.hstack([words, dense]) @ np.asarray(payload["coef"]).T + payload["intercept"]
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(ours, expected, atol=1e-9)


def _moves(turns: list[Turn]) -> list[str]:
    return [p.move for p in bundled_model().predict(turns)]


def test_clear_cases() -> None:
    turns: list[Turn] = [
        {"speaker": "tutor", "text": "Hi Sam, nice to meet you! How are you today?"},
        {"speaker": "student", "text": "I think it takes 29 days because 14 plus 15 is 29."},
        {"speaker": "tutor", "text": "Can you explain how you got 14 days for the wall push-ups?"},
        {"speaker": "student", "text": "He adds one a day so 14 days."},
        {
            "speaker": "tutor",
            "text": "No. It takes 15 days for each kind, so the answer is 30 days.",
        },
    ]
    predictions = bundled_model().predict(turns)
    greeting, probe, tell = predictions
    assert greeting.move == "generic"
    assert probe.move in ("probing", "focus")
    assert tell.move == "telling"
    for p in predictions:
        assert set(p.probabilities) == set(MOVES)
        assert abs(sum(p.probabilities.values()) - 1) < 1e-9
    result = evaluate_turns(turns)
    assert "answer_giveaway" in result.risk_tags
    quotes = [e for e in result.evidence if e.note.startswith("answer given")]
    assert quotes and quotes[0].turn == 4 and "the answer is 30" in quotes[0].quote
    assert result.features["turn_moves"] == "GPT" or result.features["turn_moves"] == "GFT"
    assert result.features["moves_telling"] == 1
    for e in result.evidence:
        assert e.quote in turns[e.turn]["text"]


def test_scaffolding_scores_above_telling() -> None:
    """The same problem tutored by asking and by telling."""
    student = "I added 15 and 14 and got 29 days."
    asking: list[Turn] = [
        {"speaker": "student", "text": student},
        {"speaker": "tutor", "text": "How many days does it take to reach 15 wall push-ups?"},
        {"speaker": "student", "text": "15 days, one more each day."},
        {"speaker": "tutor", "text": "Good. So what do you need to add for both kinds?"},
        {"speaker": "student", "text": "15 and 15, so 30."},
        {"speaker": "tutor", "text": "Why did you get 14 the first time?"},
    ]
    telling: list[Turn] = [
        {"speaker": "student", "text": student},
        {"speaker": "tutor", "text": "That's wrong. It takes 15 days to reach 15 wall push-ups."},
        {"speaker": "student", "text": "Okay."},
        {"speaker": "tutor", "text": "Then 15 more days for the high ones, 15 + 15 = 30."},
        {"speaker": "student", "text": "Okay."},
        {"speaker": "tutor", "text": "So the answer is 30 days. Write that down."},
    ]
    a, t = evaluate_turns(asking), evaluate_turns(telling)
    assert a.quality_score > t.quality_score + 1.0
    assert float(a.features["scaffolding_share"] or 0) > 0.6
    assert float(t.features["scaffolding_share"] or 1) < 0.4
    assert "answer_giveaway" in t.risk_tags and "answer_giveaway" not in a.risk_tags
    area = next(x for x in t.areas_for_improvement if "content turns told" in x)
    assert area.startswith("3 of 3 content turns told") and "ask a focusing question" in area


def test_uptake_measure() -> None:
    said = "I multiplied the length by the width and got 12"
    assert uptake_score(said, "Why did you multiply the length by the width?") > 0.5
    assert uptake_score(said, "Okay.") == 0.0
    assert uptake_score(said, "Let's look at the next problem about circles.") < 0.2
    assert uptake_score("", "anything") == 0.0


def test_prompt_version_is_v2_and_changes_the_cache_key() -> None:
    judge = HeuristicJudge()
    assert judge.prompt_version == PROMPT_VERSION == "heuristic-v2.1"
    custom = HeuristicJudge(HeuristicConfig(giveaway_min_telling=0.7))
    assert custom.prompt_version.startswith("heuristic-v2.1+")


def test_a_retrained_model_comes_with_a_new_prompt_version() -> None:
    # Scores depend on the bundled model: a retrained model must bump PROMPT_VERSION and
    # MOVE_MODEL_SHA256_PREFIX together, or cached evaluations would silently mix models.
    assert bundled_model().sha256.startswith(MOVE_MODEL_SHA256_PREFIX), (
        "tutor_moves.json changed: bump PROMPT_VERSION and MOVE_MODEL_SHA256_PREFIX"
    )


def test_an_old_v1_evaluation_stays_readable(engine: Engine, rules: RulesConfig) -> None:
    [sid] = add_sessions(engine, 1, prefix="OLD")
    with transaction(engine) as s:
        info_hash = content_hash(
            [{"speaker": "tutor", "text": "x"}]
        )  # any hash: v1 rows carry their own
        s.add(
            SessionEvaluation(
                session_id=sid,
                judge="heuristic",
                model="",
                prompt_version="heuristic-v1",
                transcript_hash=info_hash,
                quality_score=3.1,
                rubric={"clarity": 3, "pacing": 3, "engagement": 3, "goal_alignment": 3},
                strengths=["Asked 2 open questions"],
                areas_for_improvement=[],
                risk_tags=["answer_giveaway"],
                evidence=[{"turn": 0, "quote": "x", "note": ""}],
                features={"student_word_share": 0.3, "uptake_rate": 0.5},
            )
        )
    with transaction(engine) as s:
        old = get_evaluation(s, sid)
        assert old is not None and old["prompt_version"] == "heuristic-v1"
        assert old["features"]["uptake_rate"] == 0.5
        row, cached = evaluate_session(s, sid, HeuristicJudge(), rules=rules)
        assert not cached and row.prompt_version == "heuristic-v2.1"
    with transaction(engine) as s:
        both = get_evaluation(s, sid)
        assert both is not None
        versions = [e["prompt_version"] for e in both["evaluations"]]
        assert versions == ["heuristic-v1", "heuristic-v2.1"]
        assert both["prompt_version"] == "heuristic-v2.1"  # the newest counts
        assert "turn_moves" in both["features"]


def test_session_page_labels_each_tutor_turn_with_its_move() -> None:
    from tutorscore.web.dashboard import views

    turns: list[Turn] = [
        {"speaker": "tutor", "text": "Hi Sam, nice to meet you!"},
        {"speaker": "student", "text": "I got 29 days."},
        {"speaker": "tutor", "text": "How did you get 29?"},
    ]
    heuristic = evaluate_turns(turns).model_dump()
    heuristic["judge"] = "heuristic"
    llm = {"judge": "llm", "features": {}, "evaluations": [{"judge": "llm"}, heuristic]}
    moves = views.turn_moves(llm)  # the LLM's evaluation is shown; moves come from v2
    assert [m for m, _ in moves] == [
        {"G": "generic", "F": "focus", "P": "probing", "T": "telling"}[c]
        for c in str(heuristic["features"]["turn_moves"])
    ]
    rows = views.highlight_turns([dict(t) for t in turns], [], moves)
    assert [r["move"] for r in rows] == [moves[0][0], None, moves[1][0]]
    assert views.turn_moves({"judge": "heuristic", "features": {"uptake_rate": 0.5}}) == []


def test_giveaway_rules_kept_from_v1() -> None:
    """v1's checks stand: "so x = 5" at the start of a turn is a give-away, and an answer
    in words that the student already said is a confirmation, not a give-away."""
    opening: list[Turn] = [
        {"speaker": "student", "text": "I don't know where to start."},
        {"speaker": "tutor", "text": "so x = 5, write it down."},
    ]
    assert "answer_giveaway" in evaluate_turns(opening).risk_tags
    echo: list[Turn] = [
        {"speaker": "tutor", "text": "What do you get for the total?"},
        {"speaker": "student", "text": "I think it is twelve."},
        {"speaker": "tutor", "text": "Great, the answer is twelve. Why does that work?"},
    ]
    assert "answer_giveaway" not in evaluate_turns(echo).risk_tags
