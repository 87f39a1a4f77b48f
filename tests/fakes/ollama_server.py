"""A loopback fake of the Ollama HTTP API.

``POST /api/chat`` streams NDJSON (one JSON object per line): message chunks
``{"model", "created_at", "message": {"role": "assistant", "content": "..."}, "done": false}``,
optional ``message.thinking`` chunks, a chunk whose ``message.tool_calls`` holds objects
``{"function": {"index", "name", "arguments": {...}}}`` (arguments is an object, not a JSON
string), and a final line with ``done: true``, ``done_reason``, ``prompt_eval_count``,
``eval_count`` and the durations in nanoseconds. With ``"stream": false`` the whole reply is one
JSON object. ``GET /api/version`` and ``GET /api/tags`` answer health checks. Errors are
``{"error": "message"}``.

A scripted turn::

    {"text": "Let me look.", "thinking": "optional",
     "tool_calls": [{"name": "Read", "arguments": {"file_path": "a.txt"}}],
     "usage": {"prompt_eval_count": 40, "eval_count": 12}, "done_reason": "stop"}
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.base import FakeServer, RecordedRequest, StreamError, Turn
from tests.fakes.base import text_pieces as _pieces

CHAT_PATH = "/api/chat"
VERSION = "0.12.6"
CREATED_AT = "2025-10-01T12:00:00.000000Z"


class OllamaFake(FakeServer):
    """Speaks Ollama's /api/chat, /api/version and /api/tags. ``base_url`` is the host URL."""

    endpoints = (("POST", CHAT_PATH),)

    stream_content_type = "application/x-ndjson"

    def __init__(self, models: list[str] | None = None) -> None:
        super().__init__()
        names = models if models is not None else ["llama3.2:latest"]
        self.set_default("GET", "/api/version", {"json": {"version": VERSION}})
        self.set_default("GET", "/api/tags", {"json": {"models": [_tag(n) for n in names]}})

    def script(self, *entries: Any) -> None:
        """Queue replies for ``POST /api/chat``: turn dicts and/or faults."""
        self.enqueue(CHAT_PATH, *entries)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self.requests_to(CHAT_PATH)

    def wants_stream(self, request: RecordedRequest) -> bool:
        if request.path != CHAT_PATH:
            return False
        body = request.body if isinstance(request.body, dict) else {}
        return body.get("stream", True) is not False  # Ollama streams unless told not to

    def chunks(self, turn: Turn, request: RecordedRequest) -> list[dict[str, Any]]:
        model = (request.body or {}).get("model", "llama3.2")
        head = {"model": model, "created_at": CREATED_AT}
        out: list[dict[str, Any]] = []
        for piece in _pieces(turn.get("thinking")):
            msg = {"role": "assistant", "content": "", "thinking": piece}
            out.append({**head, "message": msg, "done": False})
        for piece in _pieces(turn.get("text")):
            out.append({**head, "message": {"role": "assistant", "content": piece}, "done": False})
        calls = _tool_calls(turn)
        if calls:
            msg = {"role": "assistant", "content": "", "tool_calls": calls}
            out.append({**head, "message": msg, "done": False})
        out.append({**head, "message": {"role": "assistant", "content": ""}, **_final(turn)})
        return out

    def stream_frames(self, turn: Turn, request: RecordedRequest) -> list[bytes]:
        return [json.dumps(c).encode() + b"\n" for c in self.chunks(turn, request)]

    def whole_body(self, turn: Turn, request: RecordedRequest) -> Any:
        if "json" in turn:  # static JSON replies (health checks)
            return turn["json"]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(_pieces(turn.get("text"))),
        }
        if turn.get("thinking"):
            message["thinking"] = "".join(_pieces(turn["thinking"]))
        calls = _tool_calls(turn)
        if calls:
            message["tool_calls"] = calls
        model = (request.body or {}).get("model", "llama3.2")
        return {"model": model, "created_at": CREATED_AT, "message": message, **_final(turn)}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": message}

    def garbage_frame(self) -> bytes:
        return b'{"model": "llama3.2", "message": {"content": \n'

    def error_frame(self, fault: StreamError, index: int) -> bytes:
        return json.dumps({"error": fault.message}).encode() + b"\n"


def _tool_calls(turn: Turn) -> list[dict[str, Any]]:
    calls = []
    for i, call in enumerate(turn.get("tool_calls", [])):
        fn = {"index": i, "name": call["name"], "arguments": call.get("arguments", {})}
        entry: dict[str, Any] = {"function": fn}
        if call.get("id"):
            entry["id"] = call["id"]
        calls.append(entry)
    return calls


def _final(turn: Turn) -> dict[str, Any]:
    usage = turn.get("usage", {})
    prompt = usage.get("prompt_eval_count", usage.get("input_tokens", 26))
    evals = usage.get("eval_count", usage.get("output_tokens", 9))
    return {
        "done": True,
        "done_reason": turn.get("done_reason", "stop"),
        "total_duration": 1_250_000_000,
        "load_duration": 50_000_000,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 200_000_000,
        "eval_count": evals,
        "eval_duration": 900_000_000,
    }


def _tag(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": CREATED_AT,
        "size": 2_019_393_189,
        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }
