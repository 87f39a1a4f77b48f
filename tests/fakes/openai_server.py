"""A loopback fake of the OpenAI Responses API (``POST /v1/responses``).

Streams the events the API sends, each with a ``sequence_number`` counting from 0:
``response.created``, ``response.in_progress``, then per output item
``response.output_item.added`` → (message: ``response.content_part.added``,
``response.output_text.delta``…, ``response.output_text.done``, ``response.content_part.done``;
function call: ``response.function_call_arguments.delta``…, ``.done``) →
``response.output_item.done``, and finally ``response.completed`` whose ``response.usage`` has
``input_tokens``, ``input_tokens_details.cached_tokens`` (and ``cache_write_tokens``, which
the current SDK types require), ``output_tokens``,
``output_tokens_details.reasoning_tokens`` and ``total_tokens``. Errors use
``{"error": {"message", "type", "param", "code"}}``. The Codex CLI talks to this same fake, so
field names and order follow the API.

A scripted turn::

    {"text": "Let me look.",                        # or a list of pre-split deltas
     "reasoning": "summary of the reasoning",       # optional reasoning item (first)
     "tool_calls": [{"name": "Read", "arguments": {"file_path": "a.txt"}}],
     "usage": {"input_tokens": 120, "cached_tokens": 20, "output_tokens": 30,
               "reasoning_tokens": 8}}

The real API answers an alias with the dated snapshot it resolved to (``gpt-5-mini`` →
``gpt-5-mini-2025-08-07``). ``OpenAIFake(dated_ids=True)`` does the same for every request; by
default it echoes the requested id.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from tests.fakes.base import FakeServer, RecordedRequest, StreamError, Turn, split_text, sse
from tests.fakes.base import text_pieces as _pieces

RESPONSES_PATH = "/v1/responses"
SNAPSHOT_DATE = "2025-08-07"
_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def dated_model(requested: str) -> str:
    """The id the API answers for ``requested``: an alias gains its snapshot date."""
    return requested if _DATED.search(requested) else f"{requested}-{SNAPSHOT_DATE}"


ERRORS = {  # status -> (type, code), as the API reports them
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", None),
}


def usage_object(turn: Turn) -> dict[str, Any]:
    """Turn usage → the API's nested usage object (a nested form given in the turn wins)."""
    given = dict(turn.get("usage", {}))
    if "input_tokens_details" in given:
        return given
    inp = given.get("input_tokens", 12)
    out = given.get("output_tokens", 7)
    details = {
        "cached_tokens": given.get("cached_tokens", 0),
        "cache_write_tokens": given.get("cache_write_tokens", 0),
    }
    return {
        "input_tokens": inp,
        "input_tokens_details": details,
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": given.get("reasoning_tokens", 0)},
        "total_tokens": inp + out,
    }


class OpenAIFake(FakeServer):
    """Speaks the Responses API. Point the SDK at ``base_url=fake.base_url + "/v1"``.

    ``dated_ids=True``: answer with the dated snapshot id, as the real API does for aliases.
    """

    endpoints = (("POST", RESPONSES_PATH),)

    def __init__(self, *, dated_ids: bool = False) -> None:
        super().__init__()
        self.dated_ids = dated_ids

    def script(self, *entries: Any) -> None:
        """Queue replies for ``POST /v1/responses``: turn dicts and/or faults."""
        self.enqueue(RESPONSES_PATH, *entries)

    @property
    def response_requests(self) -> list[RecordedRequest]:
        return self.requests_to(RESPONSES_PATH)

    @property
    def v1_url(self) -> str:
        return self.base_url + "/v1"

    # -- rendering --

    def _response(
        self, request: RecordedRequest, rid: str, status: str, output: list[Any], usage: Any
    ) -> dict[str, Any]:
        body = request.body if isinstance(request.body, dict) else {}
        reasoning = body.get("reasoning") or {}
        model = str(body.get("model", "gpt-fake"))
        return {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": dated_model(model) if self.dated_ids else model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_logprobs": 0,
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": {},
        }

    def _items(self, turn: Turn) -> list[dict[str, Any]]:
        """The completed output items of the turn, in output order."""
        items: list[dict[str, Any]] = []
        if turn.get("reasoning"):
            items.append(
                {
                    "id": self.next_id("rs"),
                    "type": "reasoning",
                    "summary": [{"type": "summary_text", "text": turn["reasoning"]}],
                    "encrypted_content": turn.get("encrypted_content"),
                }
            )
        if turn.get("text"):
            items.append(
                {
                    "id": self.next_id("msg"),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {
                            "type": "output_text",
                            "text": "".join(_pieces(turn["text"])),
                            "annotations": [],
                            "logprobs": [],
                        }
                    ],
                }
            )
        for call in turn.get("tool_calls", []):
            args = call.get("arguments", {})
            items.append(
                {
                    "id": self.next_id("fc"),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                    "call_id": call.get("call_id") or self.next_id("call"),
                    "name": call["name"],
                }
            )
        return items

    def response_events(self, turn: Turn, request: RecordedRequest) -> list[dict[str, Any]]:
        """The event payloads of one streamed response (``sequence_number`` filled in)."""
        rid = turn.get("id") or self.next_id("resp")
        items = self._items(turn)
        events: list[dict[str, Any]] = [
            {"type": kind, "response": self._response(request, rid, "in_progress", [], None)}
            for kind in ("response.created", "response.in_progress")
        ]
        for index, item in enumerate(items):
            base = {"output_index": index}
            if item["type"] == "message":
                text = item["content"][0]["text"]
                ids = {"item_id": item["id"], **base}
                events.append(
                    {
                        "type": "response.output_item.added",
                        **base,
                        "item": {**item, "status": "in_progress", "content": []},
                    }
                )
                empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                events.append(
                    {
                        "type": "response.content_part.added",
                        **ids,
                        "content_index": 0,
                        "part": empty_part,
                    }
                )
                for piece in _pieces(turn["text"]):
                    events.append(
                        {
                            "type": "response.output_text.delta",
                            **ids,
                            "content_index": 0,
                            "delta": piece,
                            "logprobs": [],
                        }
                    )
                events.append(
                    {
                        "type": "response.output_text.done",
                        **ids,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    }
                )
                events.append(
                    {
                        "type": "response.content_part.done",
                        **ids,
                        "content_index": 0,
                        "part": item["content"][0],
                    }
                )
            elif item["type"] == "function_call":
                ids = {"item_id": item["id"], **base}
                events.append(
                    {
                        "type": "response.output_item.added",
                        **base,
                        "item": {**item, "status": "in_progress", "arguments": ""},
                    }
                )
                for piece in split_text(item["arguments"]):
                    events.append(
                        {"type": "response.function_call_arguments.delta", **ids, "delta": piece}
                    )
                events.append(
                    {
                        "type": "response.function_call_arguments.done",
                        **ids,
                        "arguments": item["arguments"],
                    }
                )
            else:  # reasoning
                events.append(
                    {"type": "response.output_item.added", **base, "item": {**item, "summary": []}}
                )
            events.append({"type": "response.output_item.done", **base, "item": item})
        done = self._response(request, rid, "completed", items, usage_object(turn))
        events.append({"type": "response.completed", "response": done})
        for seq, event in enumerate(events):
            event["sequence_number"] = seq
        return events

    def stream_frames(self, turn: Turn, request: RecordedRequest) -> list[bytes]:
        return [sse(e["type"], e) for e in self.response_events(turn, request)]

    def whole_body(self, turn: Turn, request: RecordedRequest) -> dict[str, Any]:
        rid = turn.get("id") or self.next_id("resp")
        return self._response(request, rid, "completed", self._items(turn), usage_object(turn))

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        etype, code = ERRORS.get(status, ("server_error", None))
        return {"error": {"message": message, "type": etype, "param": None, "code": code}}

    def garbage_frame(self) -> bytes:
        return b'event: response.output_text.delta\ndata: {"type": "response.output_text\n\n'

    def error_frame(self, fault: StreamError, index: int) -> bytes:
        return sse(
            "error",
            {
                "type": "error",
                "code": fault.error_type,
                "message": fault.message,
                "param": None,
                "sequence_number": index,
            },
        )
