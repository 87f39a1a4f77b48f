"""The Ollama fake speaks /api/chat NDJSON and the health-check endpoints."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fakes import OllamaFake, http_error

TURN = {
    "thinking": "check the file",
    "text": "Reading it now.",
    "tool_calls": [{"name": "Read", "arguments": {"file_path": "a.txt"}}],
    "usage": {"prompt_eval_count": 61, "eval_count": 14},
}


@pytest.fixture
def fake():
    with OllamaFake(models=["llama3.2:latest", "qwen3:8b"]) as server:
        yield server
    assert server.errors == []


def chat_lines(fake: OllamaFake, **body) -> list[dict]:
    with httpx.stream("POST", fake.base_url + "/api/chat", json={"model": "llama3.2", **body}) as r:
        assert r.headers["content-type"] == "application/x-ndjson"
        return [json.loads(line) for line in r.iter_lines() if line]


def test_stream_is_ndjson_with_a_final_done_line(fake):
    fake.script(TURN)

    lines = chat_lines(fake, messages=[])

    assert all(line["model"] == "llama3.2" for line in lines)
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert "".join(line["message"]["content"] for line in lines) == "Reading it now."
    assert "".join(line["message"].get("thinking", "") for line in lines) == "check the file"
    final = lines[-1]
    assert final["done_reason"] == "stop"
    assert (final["prompt_eval_count"], final["eval_count"]) == (61, 14)
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int)


def test_tool_call_arguments_are_objects(fake):
    fake.script(TURN)

    calls = [c for line in chat_lines(fake) for c in line["message"].get("tool_calls", [])]

    assert calls == [
        {"function": {"index": 0, "name": "Read", "arguments": {"file_path": "a.txt"}}}
    ]


def test_stream_false_returns_one_object(fake):
    fake.script(TURN)

    reply = httpx.post(fake.base_url + "/api/chat", json={"model": "llama3.2", "stream": False})

    body = reply.json()
    assert body["done"] is True
    assert body["message"]["content"] == "Reading it now."
    assert body["message"]["tool_calls"][0]["function"]["arguments"] == {"file_path": "a.txt"}


def test_health_endpoints(fake):
    assert httpx.get(fake.base_url + "/api/version").json() == {"version": "0.12.6"}
    tags = httpx.get(fake.base_url + "/api/tags").json()["models"]
    assert [m["name"] for m in tags] == ["llama3.2:latest", "qwen3:8b"]
    assert tags[0]["details"]["family"] == "llama"


def test_error_shape(fake):
    fake.script(http_error(404, message='model "nope" not found, try pulling it first'))

    reply = httpx.post(fake.base_url + "/api/chat", json={"model": "nope"})

    assert reply.status_code == 404
    assert reply.json() == {"error": 'model "nope" not found, try pulling it first'}
