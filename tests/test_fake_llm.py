"""The fake OpenAI-compatible server: deterministic evaluations, limits, injected failures."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError

from llm_support import TRANSCRIPT
from tutorscore.evaluation.prompts import LLMEvaluation, build_messages, parse_transcript
from tutorscore.ingest.transcript_format import Turn
from tutorscore.testing.fake_llm import FakeServerProcess, evaluate_transcript, start_fake_server


def _body(turns: list[Turn] = TRANSCRIPT) -> dict[str, object]:
    return {"model": "gpt-4o", "messages": build_messages(turns), "max_completion_tokens": 700}


def _post(server: FakeServerProcess, body: dict[str, object] | None = None) -> httpx.Response:
    return httpx.post(f"{server.base_url}/chat/completions", json=body or _body(), timeout=10)


def test_prompt_round_trip() -> None:
    assert parse_transcript(build_messages(TRANSCRIPT)[1]["content"]) == [
        {"speaker": t["speaker"], "text": t["text"]} for t in TRANSCRIPT
    ]


def test_evaluation_is_deterministic_and_valid() -> None:
    first = evaluate_transcript(TRANSCRIPT)
    assert first == evaluate_transcript(list(TRANSCRIPT))
    LLMEvaluation.model_validate(first)


def test_quotes_are_verbatim_except_the_deliberate_ones() -> None:
    wrong = 0
    for i in range(40):
        turns: list[Turn] = [
            {"speaker": "tutor", "text": f"Problem {i}: what do you think comes first?"},
            {"speaker": "student", "text": f"Maybe subtract {i}. Then divide."},
        ]
        for item in evaluate_transcript(turns)["evidence"]:
            if item["note"] in ("misattributed", "paraphrased"):
                wrong += 1
                assert item["quote"] not in turns[item["turn"]]["text"]
            else:
                assert item["quote"] in turns[item["turn"]]["text"]
    assert 0 < wrong < 40  # a few, not all


def test_answers_like_an_openai_endpoint(fake: FakeServerProcess) -> None:
    r = _post(fake)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    content = json.loads(body["choices"][0]["message"]["content"])
    assert content == evaluate_transcript(TRANSCRIPT)
    assert body["usage"]["prompt_tokens"] > 0 and body["usage"]["completion_tokens"] > 0
    assert r.headers["x-ratelimit-remaining-requests"] == str(10_000 - 1)
    assert r.headers["x-ratelimit-reset-requests"].endswith("s")


def test_requests_per_minute_are_enforced_with_retry_after(fake: FakeServerProcess) -> None:
    fake.control(rpm=2)
    assert [_post(fake).status_code for _ in range(2)] == [200, 200]
    refused = _post(fake)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert 0 < int(refused.headers["retry-after-ms"]) <= 60_000
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert fake.stats()["http_429"] == 1


def test_tokens_per_minute_are_enforced(fake: FakeServerProcess) -> None:
    fake.control(tpm=3000)  # one request of this prompt (~1,900 tokens with the allowance)
    assert _post(fake).status_code == 200
    refused = _post(fake)
    assert refused.status_code == 429
    assert int(refused.headers["x-ratelimit-remaining-tokens"]) < 1900


def test_injected_errors_and_malformed_answers(fake: FakeServerProcess) -> None:
    fake.control(error_rate=1.0)
    r = _post(fake)
    assert r.status_code == 500 and "x-ratelimit-remaining-requests" in r.headers
    fake.control(error_rate=0.0, malformed_rate=1.0)
    for _ in range(4):
        content = _post(fake).json()["choices"][0]["message"]["content"]
        with pytest.raises(ValidationError):
            LLMEvaluation.model_validate_json(content)
    assert fake.stats()["malformed"] == 4


def test_scripted_responses(fake: FakeServerProcess) -> None:
    fake.control(script=[{"status": 429, "retry_after": 2.5}, {"status": 503}])
    first, second, third = _post(fake), _post(fake), _post(fake)
    assert (first.status_code, first.headers["retry-after-ms"]) == (429, "2500")
    assert second.status_code == 503
    assert third.status_code == 200


def test_batch_interface_errors(fake: FakeServerProcess) -> None:
    assert httpx.get(f"{fake.base_url}/batches/nope", timeout=5).status_code == 404
    assert httpx.get(f"{fake.base_url}/files/nope/content", timeout=5).status_code == 404
    r = httpx.post(f"{fake.base_url}/batches", json={"input_file_id": "nope"}, timeout=5)
    assert r.status_code == 400


@pytest.fixture
def latency_server() -> Iterator[FakeServerProcess]:
    server = start_fake_server(latency_ms=300, rpm=50)
    try:
        yield server
    finally:
        server.stop()
    assert server.process.poll() is not None  # stopped by its PID


def test_command_line_options(latency_server: FakeServerProcess) -> None:
    r = _post(latency_server)
    assert r.status_code == 200
    assert r.elapsed.total_seconds() >= 0.3
    assert r.headers["x-ratelimit-limit-requests"] == "50"
