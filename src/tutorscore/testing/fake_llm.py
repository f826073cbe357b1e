"""A fake OpenAI-compatible server for tests, benchmarks and offline demos.

    python -m tutorscore.testing.fake_llm --port 9999 --rpm 300 --tpm 1000000 \\
        --latency-ms 400 --latency-max-ms 1200 --error-rate 0.02 --malformed-rate 0.01

POST /v1/chat/completions answers with a structured evaluation computed from the
transcript in the prompt (deterministic: the same transcript gives the same
answer). Its evidence quotes are verbatim turn text, except that some answers
carry deliberately wrong quotes (cited in the wrong turn, or paraphrased) so the
judge's verifier has something to catch. It enforces requests and tokens per
minute over a sliding window like a provider does, counting each request's
tokens the way OpenAI's limiter does (characters of all message contents / 4,
plus max_tokens): 429 with Retry-After and x-ratelimit-* headers (sent on every
answer). Latency is fixed, or uniform between --latency-ms and --latency-max-ms.
It injects 500s and malformed JSON at the given rates, and it implements enough
of the batch interface (files, batches, file content) for the batch path.

Test helpers: GET /_stats (counters), POST /_control (change rates at run time,
or script the next responses: `{"script": [{"status": 429, "retry_after": 1}]}`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from tutorscore.evaluation.prompts import parse_transcript
from tutorscore.ingest.transcript_format import Turn

WINDOW_S = 60.0
_CHECKS = re.compile(
    r"make sense|does that|can you explain|in your own words|what do you think|why do you|"
    r"how did you|walk me through|what would happen|are you following",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")


@dataclass
class FakeConfig:
    rpm: int = 500
    tpm: int = 2_000_000
    latency_ms: float = 0.0
    latency_max_ms: float = 0.0  # > latency_ms: uniform between the two
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    batch_delay_s: float = 0.5
    seed: int = 0


@dataclass
class FakeState:
    config: FakeConfig
    rng: random.Random
    log: deque[tuple[float, int]] = field(default_factory=deque)
    counters: Counter[str] = field(default_factory=Counter)
    script: deque[dict[str, Any]] = field(default_factory=deque)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent_prompts: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    in_flight: int = 0
    first_accepted: float | None = None
    last_accepted: float | None = None
    max_window_requests: int = 0
    max_window_tokens: int = 0

    def window(self, now: float) -> tuple[int, int]:
        while self.log and self.log[0][0] <= now - WINDOW_S:
            self.log.popleft()
        return len(self.log), sum(t for _, t in self.log)

    def latency_s(self) -> float:
        low, high = self.config.latency_ms, self.config.latency_max_ms
        return (self.rng.uniform(low, high) if high > low else low) / 1000

    def headers(self, now: float) -> dict[str, str]:
        requests, tokens = self.window(now)
        oldest = self.log[0][0] if self.log else now - WINDOW_S
        reset = max(0.0, oldest + WINDOW_S - now)
        return {
            "x-ratelimit-limit-requests": str(self.config.rpm),
            "x-ratelimit-limit-tokens": str(self.config.tpm),
            "x-ratelimit-remaining-requests": str(max(0, self.config.rpm - requests)),
            "x-ratelimit-remaining-tokens": str(max(0, self.config.tpm - tokens)),
            "x-ratelimit-reset-requests": f"{reset:.3f}s",
            "x-ratelimit-reset-tokens": f"{reset:.3f}s",
        }

    def wait_for_room(self, tokens: int, now: float) -> float:
        """Seconds until a request of `tokens` fits the window (0 when it fits now)."""
        requests, used = self.window(now)
        if requests + 1 <= self.config.rpm and used + tokens <= self.config.tpm:
            return 0.0
        for t, entry_tokens in self.log:
            requests -= 1
            used -= entry_tokens
            if requests + 1 <= self.config.rpm and used + tokens <= self.config.tpm:
                return t + WINDOW_S - now
        return WINDOW_S


def _words(text: str) -> int:
    return len(text.split())


def _first_sentence(text: str) -> str:
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0).strip()
        if len(sentence) >= 3:
            return sentence
    return text.strip()


def _evidence(turns: list[Turn], quoted: list[int], digest: int) -> list[dict[str, Any]]:
    """A quote from each of the `quoted` turns, and by the digest some wrong ones."""
    evidence: list[dict[str, Any]] = []
    for i in quoted:
        text = turns[i]["text"]
        if text.strip() and all(e["turn"] != i for e in evidence):
            evidence.append({"turn": i, "quote": _first_sentence(text), "note": "as said"})
    if evidence and digest % 3 == 0 and len(turns) > 1:
        # deliberately wrong: a real quote attributed to the next turn
        item = evidence[0]
        wrong_turn = (item["turn"] + 1) % len(turns)
        if item["quote"] not in turns[wrong_turn]["text"]:
            evidence.append({"turn": wrong_turn, "quote": item["quote"], "note": "misattributed"})
    if evidence and digest % 5 == 0:
        # deliberately wrong: a paraphrase that is in no turn
        evidence.append(
            {
                "turn": evidence[0]["turn"],
                "quote": "Basically, " + evidence[0]["quote"].lower(),
                "note": "paraphrased",
            }
        )
    return evidence


def evaluate_transcript(turns: list[Turn]) -> dict[str, Any]:
    """A deterministic evaluation in the judge's output schema, with some wrong quotes."""
    digest = int(hashlib.sha256(json.dumps(turns, sort_keys=True).encode()).hexdigest(), 16)
    tutor = [i for i, t in enumerate(turns) if t["speaker"] == "tutor"]
    student = [i for i, t in enumerate(turns) if t["speaker"] == "student"]
    tutor_words = sum(_words(turns[i]["text"]) for i in tutor)
    student_words = sum(_words(turns[i]["text"]) for i in student)
    share = student_words / max(1, tutor_words + student_words)
    checks = [i for i in tutor if _CHECKS.search(turns[i]["text"])]
    questions = [i for i in tutor if "?" in turns[i]["text"]]
    avg_tutor_turn = tutor_words / max(1, len(tutor))
    opening = " ".join(turns[i]["text"].lower() for i in tutor[:2])
    engagement = max(1, min(5, 1 + round(share / 0.45 * 4)))
    clarity = max(1, min(5, 3 + (1 if checks else -1) + (1 if len(questions) >= 3 else 0)))
    pacing = max(1, min(5, 5 - int(avg_tutor_turn // 30)))
    goal = 4 if ("today" in opening or "goal" in opening) else 2
    rubric = {
        "clarity": clarity,
        "pacing": pacing,
        "engagement": engagement,
        "goal_alignment": goal,
    }
    risk_tags = [
        tag
        for tag, on in (
            ("low_student_talk_ratio", share < 0.2),
            ("no_check_for_understanding", not checks),
            ("excellent_engagement", share > 0.45),
            ("long_monologue", avg_tutor_turn > 60),
        )
        if on
    ]
    evidence = _evidence(turns, (checks[:2] or questions[:2]) + student[:1] + tutor[:1], digest)
    strengths = []
    areas = []
    if checks:
        strengths.append(f"Checked for understanding {len(checks)} time(s)")
    else:
        areas.append("Ask the student to explain the idea back before moving on")
    if share >= 0.3:
        strengths.append(f"The student did {share:.0%} of the talking")
    else:
        areas.append(f"The tutor spoke {1 - share:.0%} of the words; let the student work")
    quality = round(sum(rubric.values()) / 4, 1)
    return {
        "quality_score": quality,
        "rubric": rubric,
        "strengths": strengths,
        "areas_for_improvement": areas,
        "risk_tags": risk_tags,
        "evidence": evidence,
    }


def _prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """`usage.prompt_tokens`: stands in for the tokenizer's count (a little above chars / 4)."""
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + 4 * len(messages)


def limiter_tokens(body: dict[str, Any]) -> int:
    """What the rate limit counts for a request, as OpenAI's limiter estimates it before
    tokenizing: characters of all message contents / 4 (rounded up), plus the output
    allowance whether it is used or not."""
    chars = sum(len(str(m.get("content") or "")) for m in body.get("messages", []))
    max_out = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
    return math.ceil(chars / 4) + max_out


def _completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt_tokens = _prompt_tokens(body.get("messages", []))
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _content_for(body: dict[str, Any], malformed: bool, rng: random.Random) -> str:
    messages = body.get("messages", [])
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    evaluation = evaluate_transcript(parse_transcript(str(user.get("content", ""))))
    content = json.dumps(evaluation, ensure_ascii=False)
    if malformed:
        if rng.random() < 0.5:
            return content[: max(1, len(content) // 2)]  # truncated JSON
        evaluation["rubric"]["clarity"] = 9  # out of range: fails validation
        return json.dumps(evaluation)
    return content


def _error(status: int, message: str, kind: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": kind}},
        status_code=status,
        headers=headers,
    )


def _rate_limit(state: FakeState, scripted: dict[str, Any], tokens: int, now: float) -> float:
    """Seconds the caller must wait (a scripted 429, or the rpm/tpm window is full); 0: go."""
    status = int(scripted.get("status", 0))
    wait = float(scripted.get("retry_after", 1.0)) if status == 429 else 0.0
    return wait or state.wait_for_room(tokens, now)


def _accept(state: FakeState, now: float, tokens: int) -> None:
    """Count an accepted request into the window and the maxima."""
    state.log.append((now, tokens))
    state.first_accepted = state.first_accepted or now
    state.last_accepted = now
    state.max_window_requests = max(state.max_window_requests, len(state.log))
    state.max_window_tokens = max(state.max_window_tokens, state.window(now)[1])


async def _chat(state: FakeState, body: dict[str, Any]) -> Response:
    """POST /v1/chat/completions: rate limits, latency, injected errors, then a judgement."""
    config = state.config
    now = time.monotonic()
    state.counters["requests"] += 1
    state.recent_prompts.append(json.dumps(body.get("messages", [])[-1:], ensure_ascii=False))
    tokens = limiter_tokens(body)
    scripted = state.script.popleft() if state.script else {}
    status = int(scripted.get("status", 0))
    wait = _rate_limit(state, scripted, tokens, now)
    if wait > 0:
        state.counters["http_429"] += 1
        headers = state.headers(now)
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(int(wait * 1000))
        return _error(429, "Rate limit reached; retry later.", "rate_limit_exceeded", headers)
    _accept(state, now, tokens)
    headers = state.headers(now)
    state.in_flight += 1
    state.counters["max_in_flight"] = max(state.counters["max_in_flight"], state.in_flight)
    try:
        latency = state.latency_s()
        if latency:
            await asyncio.sleep(latency)
    finally:
        state.in_flight -= 1
    if status >= 400 or (not status and state.rng.random() < config.error_rate):
        code = status or 500
        state.counters[f"http_{code}"] += 1
        kind = "server_error" if code >= 500 else "invalid_request_error"
        return _error(code, f"Injected HTTP {code}.", kind, headers)
    malformed = bool(scripted.get("malformed")) or (
        not scripted and state.rng.random() < config.malformed_rate
    )
    if malformed:
        state.counters["malformed"] += 1
    state.counters["ok"] += 1
    content = _content_for(body, malformed, state.rng)
    return JSONResponse(_completion(body, content), headers=headers)


def _batch_line(state: FakeState, item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """One output line of a batch for one input line, and whether it succeeded."""
    request_id = f"req_{uuid.uuid4().hex[:16]}"
    if state.rng.random() < state.config.error_rate:
        failed = {
            "status_code": 500,
            "request_id": request_id,
            "body": {"error": {"message": "server error", "type": "server_error"}},
        }
        return {"id": request_id, "custom_id": item["custom_id"], "response": failed,
                "error": None}, False  # fmt: skip
    malformed = state.rng.random() < state.config.malformed_rate
    content = _content_for(item["body"], malformed, state.rng)
    response = {
        "status_code": 200,
        "request_id": request_id,
        "body": _completion(item["body"], content),
    }
    return {"id": request_id, "custom_id": item["custom_id"], "response": response,
            "error": None}, True  # fmt: skip


def _stored_file(state: FakeState, file_id: str, data: bytes, filename: str, purpose: str) -> None:
    state.files[file_id] = {
        "id": file_id,
        "object": "file",
        "bytes": len(data),
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "_content": data,
    }


async def _run_batch(state: FakeState, batch_id: str) -> None:
    await asyncio.sleep(state.config.batch_delay_s)
    batch = state.batches[batch_id]
    lines = state.files[batch["input_file_id"]]["_content"].decode().splitlines()
    out, done, failed = [], 0, 0
    for line in lines:
        if not line.strip():
            continue
        result, ok = _batch_line(state, json.loads(line))
        out.append(result)
        done, failed = (done + 1, failed) if ok else (done, failed + 1)
    output_id = f"file-{uuid.uuid4().hex[:24]}"
    data = "\n".join(json.dumps(o) for o in out).encode()
    _stored_file(state, output_id, data, f"{batch_id}_output.jsonl", "batch_output")
    batch.update(
        status="completed",
        output_file_id=output_id,
        completed_at=int(time.time()),
        request_counts={"total": done + failed, "completed": done, "failed": failed},
    )


def _new_batch(state: FakeState, body: dict[str, Any]) -> dict[str, Any]:
    batch_id = f"batch_{uuid.uuid4().hex[:24]}"
    state.batches[batch_id] = {
        "id": batch_id,
        "object": "batch",
        "endpoint": body.get("endpoint", "/v1/chat/completions"),
        "input_file_id": body["input_file_id"],
        "completion_window": body.get("completion_window", "24h"),
        "status": "in_progress",
        "created_at": int(time.time()),
        "output_file_id": None,
        "error_file_id": None,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": body.get("metadata"),
    }
    state.counters["batches"] += 1
    task = asyncio.create_task(_run_batch(state, batch_id))
    state.batches[batch_id]["_task"] = task
    return {k: v for k, v in state.batches[batch_id].items() if not k.startswith("_")}


def _file_content(state: FakeState, file_id: str) -> Response:
    item = state.files.get(file_id)
    if item is None:
        return _error(404, f"No such file: {file_id}", "not_found", {})
    return PlainTextResponse(item["_content"].decode(), media_type="application/jsonl")


def _batch_view(state: FakeState, batch_id: str) -> Response:
    batch = state.batches.get(batch_id)
    if batch is None:
        return _error(404, f"No such batch: {batch_id}", "not_found", {})
    return JSONResponse({k: v for k, v in batch.items() if not k.startswith("_")})


def _stats(state: FakeState) -> dict[str, Any]:
    requests, tokens = state.window(time.monotonic())
    span = (
        state.last_accepted - state.first_accepted
        if state.first_accepted is not None and state.last_accepted is not None
        else 0.0
    )
    return {
        **state.counters,
        "window_requests": requests,
        "window_tokens": tokens,
        "max_window_requests": state.max_window_requests,
        "max_window_tokens": state.max_window_tokens,
        "accepted_span_s": span,
    }


_CONTROLLED = (
    "rpm", "tpm", "latency_ms", "latency_max_ms", "error_rate", "malformed_rate", "batch_delay_s",
)  # fmt: skip


def _control(state: FakeState, body: dict[str, Any]) -> None:
    """POST /_control: change the config, queue scripted answers, or reset the counters."""
    config = state.config
    for key in _CONTROLLED:
        if key in body:
            setattr(config, key, type(getattr(config, key))(body[key]))
    if "script" in body:
        state.script.extend(body["script"])
    if body.get("reset"):
        state.counters.clear()
        state.log.clear()
        state.script.clear()
        state.recent_prompts.clear()
        state.first_accepted = state.last_accepted = None
        state.max_window_requests = 0
        state.max_window_tokens = 0


def create_app(config: FakeConfig) -> FastAPI:
    state = FakeState(config=config, rng=random.Random(config.seed))
    app = FastAPI(title="fake OpenAI-compatible server")
    app.state.fake = state

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _chat(state, await request.json())

    @app.post("/v1/files")
    async def upload_file(file: UploadFile, request: Request) -> dict[str, Any]:
        form = await request.form()
        data = await file.read()
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        filename = file.filename or "upload.jsonl"
        _stored_file(state, file_id, data, filename, str(form.get("purpose", "batch")))
        state.counters["files"] += 1
        return {k: v for k, v in state.files[file_id].items() if not k.startswith("_")}

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str) -> Response:
        return _file_content(state, file_id)

    @app.post("/v1/batches")
    async def create_batch(request: Request) -> dict[str, Any]:
        body = await request.json()
        if body.get("input_file_id") not in state.files:
            return _error(400, "unknown input_file_id", "invalid_request_error", {})  # type: ignore[return-value]
        return _new_batch(state, body)

    @app.get("/v1/batches/{batch_id}")
    async def get_batch(batch_id: str) -> Response:
        return _batch_view(state, batch_id)

    @app.get("/_stats")
    async def stats() -> dict[str, Any]:
        return _stats(state)

    @app.get("/_requests")
    async def recent_requests() -> list[str]:
        return list(state.recent_prompts)

    @app.post("/_control")
    async def control(request: Request) -> dict[str, Any]:
        _control(state, await request.json())
        return {"ok": True}

    return app


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class FakeServerProcess:
    """A fake server running as a child process; `stop()` ends it by its PID."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.root_url}/_stats", timeout=5).json()
        return result

    def recent_prompts(self) -> list[str]:
        result: list[str] = httpx.get(f"{self.root_url}/_requests", timeout=5).json()
        return result

    def control(self, **changes: Any) -> None:
        httpx.post(f"{self.root_url}/_control", json=changes, timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_fake_server(*, port: int | None = None, **options: Any) -> FakeServerProcess:
    """Start `python -m tutorscore.testing.fake_llm` on a free port and wait until it answers."""
    port = port or free_port()
    args = [sys.executable, "-m", "tutorscore.testing.fake_llm", "--port", str(port)]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    server = FakeServerProcess(process, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"fake LLM server exited with status {process.returncode}")
        try:
            server.stats()
            return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("fake LLM server did not start within 30 s")


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    parser.add_argument("--rpm", type=int, default=500)
    parser.add_argument("--tpm", type=int, default=2_000_000)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="(minimum) latency")
    parser.add_argument(
        "--latency-max-ms", type=float, default=0.0, help="uniform latency up to this"
    )
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--malformed-rate", type=float, default=0.0)
    parser.add_argument("--batch-delay-s", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = FakeConfig(
        rpm=args.rpm,
        tpm=args.tpm,
        latency_ms=args.latency_ms,
        latency_max_ms=args.latency_max_ms,
        error_rate=args.error_rate,
        malformed_rate=args.malformed_rate,
        batch_delay_s=args.batch_delay_s,
        seed=args.seed,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
