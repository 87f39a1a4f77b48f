"""A loopback fake of the Anthropic Messages API (``POST /v1/messages``).

Streams the exact SSE event sequence the API sends: ``message_start`` (usage with input and
cache tokens), ``ping``, per content block ``content_block_start`` / ``content_block_delta``
(``thinking_delta`` + ``signature_delta``, ``text_delta``, ``input_json_delta`` with the tool
input JSON split over several partial deltas) / ``content_block_stop``, then ``message_delta``
(stop_reason, output_tokens) and ``message_stop``. Errors use the API's shape
``{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}``.

A scripted turn::

    {"text": "Let me look.",                     # or a list of pre-split deltas
     "thinking": "The user wants ...",           # optional thinking block (first)
     "tool_uses": [{"name": "Read", "input": {"file_path": "a.txt"}}],
     "usage": {"input_tokens": 120, "output_tokens": 30,
               "cache_read_input_tokens": 50, "cache_creation_input_tokens": 10},
     "stop_reason": "tool_use"}                   # default: tool_use if tools, else end_turn

The real API answers an alias with the dated snapshot it resolved to (``claude-sonnet-4-5`` →
``claude-sonnet-4-5-20250929``). ``AnthropicFake(dated_ids=True)`` does the same for every
request (a turn's own ``"model"`` still wins); by default it echoes the requested id.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes.base import FakeServer, RecordedRequest, StreamError, Turn, split_text, sse
from tests.fakes.base import text_pieces as _pieces

MESSAGES_PATH = "/v1/messages"
SNAPSHOT_DATE = "20250929"
_DATED = re.compile(r"-\d{8}$")


def dated_model(requested: str) -> str:
    """The id the API answers for ``requested``: an alias gains its snapshot date."""
    if _DATED.search(requested) or requested.endswith("-latest"):
        return requested
    return f"{requested}-{SNAPSHOT_DATE}"


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

DEFAULT_USAGE = {
    "input_tokens": 12,
    "output_tokens": 7,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


def _usage(turn: Turn) -> dict[str, int]:
    return {**DEFAULT_USAGE, **turn.get("usage", {})}


def _blocks(fake: FakeServer, turn: Turn) -> list[dict[str, Any]]:
    """The turn's content blocks as the final message holds them (thinking, text, tool_use)."""
    blocks: list[dict[str, Any]] = []
    if turn.get("thinking"):
        thinking = "".join(_pieces(turn["thinking"]))
        signature = turn.get("signature", "sig-" + fake.next_id("thinking"))
        blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
    if turn.get("text"):
        blocks.append({"type": "text", "text": "".join(_pieces(turn["text"]))})
    for use in turn.get("tool_uses", []):
        blocks.append(
            {
                "type": "tool_use",
                "id": use.get("id") or fake.next_id("toolu"),
                "name": use["name"],
                "input": use.get("input", {}),
            }
        )
    return blocks


def message_events(fake: FakeServer, turn: Turn, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of one streamed message, in wire order."""
    usage = _usage(turn)
    blocks = _blocks(fake, turn)
    stop_reason = turn.get("stop_reason") or (
        "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    )
    start_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": 1,
        "service_tier": "standard",
    }
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": turn.get("id") or fake.next_id("msg"),
                    "type": "message",
                    "role": "assistant",
                    "model": turn.get("model", model),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": piece} for piece in _pieces(turn["thinking"])
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(turn["text"])]
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in split_text(raw)]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        for delta in deltas:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class AnthropicFake(FakeServer):
    """Speaks the Messages API. Point the SDK at it with ``base_url=fake.base_url``.

    ``dated_ids=True``: answer with the dated snapshot id, as the real API does for aliases.
    """

    endpoints = (("POST", MESSAGES_PATH),)

    def __init__(self, *, dated_ids: bool = False) -> None:
        super().__init__()
        self.dated_ids = dated_ids

    def answer_model(self, request: RecordedRequest) -> str:
        requested = str((request.body or {}).get("model", "claude-fake"))
        return dated_model(requested) if self.dated_ids else requested

    def script(self, *entries: Any) -> None:
        """Queue replies for ``POST /v1/messages``: turn dicts and/or faults."""
        self.enqueue(MESSAGES_PATH, *entries)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return self.requests_to(MESSAGES_PATH)

    def stream_frames(self, turn: Turn, request: RecordedRequest) -> list[bytes]:
        model = self.answer_model(request)
        return [sse(name, data) for name, data in message_events(self, turn, model)]

    def whole_body(self, turn: Turn, request: RecordedRequest) -> dict[str, Any]:
        usage = _usage(turn)
        blocks = _blocks(self, turn)
        stop_reason = turn.get("stop_reason") or (
            "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
        )
        return {
            "id": turn.get("id") or self.next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": turn.get("model", self.answer_model(request)),
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": self.next_id("req"),
        }

    def garbage_frame(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0,\n\n'

    def error_frame(self, fault: StreamError, index: int) -> bytes:
        return sse(
            "error",
            {"type": "error", "error": {"type": fault.error_type, "message": fault.message}},
        )
