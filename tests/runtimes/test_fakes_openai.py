"""The OpenAI fake's Responses stream parses with the real SDK and validates strictly."""

from __future__ import annotations

import json

import openai
import pydantic
import pytest
from openai.types.responses import ResponseStreamEvent

from tests.fakes import OpenAIFake, cut_after, http_error, malformed

TURN = {
    "reasoning": "Look up the file first.",
    "text": "Reading it now.",
    "tool_calls": [{"name": "Read", "arguments": {"file_path": "docs/a.md"}}],
    "usage": {
        "input_tokens": 300,
        "cached_tokens": 200,
        "output_tokens": 40,
        "reasoning_tokens": 9,
    },
}
REQUEST = {"model": "gpt-5-mini", "input": "hi", "instructions": "Be brief."}


@pytest.fixture
def fake():
    with OpenAIFake() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def client(fake):
    with openai.OpenAI(base_url=fake.v1_url, api_key="k", max_retries=0) as c:
        yield c


def test_every_event_validates_and_is_numbered(fake, client):
    fake.script(TURN)
    adapter = pydantic.TypeAdapter(ResponseStreamEvent)

    events = list(client.responses.create(**REQUEST, stream=True))

    raw = [e.model_dump(mode="json", by_alias=True, exclude_unset=True) for e in events]
    for data in raw:
        adapter.validate_python(data)  # every required field present and well typed
    assert [d["sequence_number"] for d in raw] == list(range(len(raw)))
    types = [d["type"] for d in raw]
    assert types[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert types[-1] == "response.completed"
    for needed in (
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ):
        assert needed in types


def test_completed_usage_has_the_apis_shape(fake, client):
    fake.script(TURN)

    events = list(client.responses.create(**REQUEST, stream=True))

    usage = events[-1].response.usage.model_dump(exclude_none=True)
    assert usage == {
        "input_tokens": 300,
        "input_tokens_details": {"cached_tokens": 200, "cache_write_tokens": 0},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 9},
        "total_tokens": 340,
    }
    assert events[-1].response.instructions == "Be brief."


def test_sdk_stream_helper_accumulates_the_turn(fake, client):
    fake.script(TURN)
    tools = [
        {"type": "function", "name": "Read", "parameters": {"type": "object"}, "strict": False}
    ]

    with client.responses.stream(**REQUEST, tools=tools) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        response = stream.get_final_response()

    assert "".join(deltas) == "Reading it now." == response.output_text
    assert [o.type for o in response.output] == ["reasoning", "message", "function_call"]
    call = response.output[2]
    assert call.name == "Read"
    assert json.loads(call.arguments) == {"file_path": "docs/a.md"}
    assert call.call_id.startswith("call_")
    assert fake.response_requests[0].body["tools"] == tools


def test_non_stream_request_returns_a_whole_response(fake, client):
    fake.script({"text": "All in one."})

    response = client.responses.create(**REQUEST)

    assert response.output_text == "All in one."
    assert response.status == "completed"


@pytest.mark.parametrize(
    ("status", "error_class", "code"),
    [
        (401, openai.AuthenticationError, "invalid_api_key"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (503, openai.InternalServerError, "service_unavailable"),
    ],
)
def test_error_shape_maps_to_sdk_errors(fake, client, status, error_class, code):
    fake.script(http_error(status, message="nope"))

    with pytest.raises(error_class) as info:
        client.responses.create(**REQUEST)

    assert info.value.status_code == status
    assert info.value.code == code
    assert info.value.body["message"] == "nope"
    assert set(info.value.body) == {"message", "type", "param", "code"}


def test_cut_and_malformed_surface_as_connection_and_json_errors(fake, client):
    fake.script(cut_after(4, TURN), malformed(3, TURN))

    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(**REQUEST, stream=True))
    with pytest.raises(ValueError):
        list(client.responses.create(**REQUEST, stream=True))


def test_dated_ids_answer_an_alias_with_its_snapshot_as_the_api_does():
    with OpenAIFake(dated_ids=True) as fake:
        fake.script({"text": "streamed"}, {"text": "pinned"})
        with openai.OpenAI(base_url=fake.v1_url, api_key="k", max_retries=0) as client:
            events = list(client.responses.create(**REQUEST, stream=True))
            pinned = client.responses.create(**{**REQUEST, "model": "gpt-5-mini-2025-08-07"})

    assert events[-1].response.model == "gpt-5-mini-2025-08-07"
    assert pinned.model == "gpt-5-mini-2025-08-07"


def test_by_default_the_requested_id_is_echoed(fake, client):
    fake.script({"text": "ok"})
    assert client.responses.create(**REQUEST).model == REQUEST["model"]
