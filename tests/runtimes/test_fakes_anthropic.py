"""The Anthropic fake's bytes parse with the real SDK and validate against its event types."""

from __future__ import annotations

import json

import anthropic
import httpx2
import pydantic
import pytest
from anthropic.types import RawMessageStreamEvent

from tests.fakes import AnthropicFake, cut_after, http_error, malformed, stream_error

TURN = {
    "thinking": "The user wants the file.",
    "text": "Reading it now.",
    "tool_uses": [{"name": "Read", "input": {"file_path": "docs/a.md", "limit": [1, 20]}}],
    "usage": {
        "input_tokens": 210,
        "output_tokens": 33,
        "cache_read_input_tokens": 900,
        "cache_creation_input_tokens": 12,
    },
}
REQUEST = {
    "model": "claude-haiku-4-5",
    "max_tokens": 256,
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture
def fake():
    with AnthropicFake() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def client(fake):
    with anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0) as c:
        yield c


def raw_events(fake: AnthropicFake) -> list:
    with httpx2.Client() as http:
        response = http.post(fake.base_url + "/v1/messages", json={**REQUEST, "stream": True})
    assert response.headers["content-type"] == "text/event-stream"
    return list(anthropic.Stream.raw_events(response))


def test_event_sequence_is_the_apis(fake):
    fake.script(TURN)

    names = [e.event for e in raw_events(fake)]

    block = ["content_block_start", "content_block_delta"]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names[2:4] == block  # thinking block first
    assert names.count("content_block_start") == names.count("content_block_stop") == 3


def test_every_event_validates_against_the_sdk_types(fake):
    fake.script(TURN)
    adapter = pydantic.TypeAdapter(RawMessageStreamEvent)

    events = [e for e in raw_events(fake) if e.event != "ping"]

    for event in events:
        data = event.json()
        assert data["type"] == event.event
        adapter.validate_python(data)  # raises on any missing or mistyped field
    start = events[0].json()["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"]) == (210, 900)
    assert start["cache_creation_input_tokens"] == 12
    assert events[-2].json()["usage"] == {"output_tokens": 33}


def test_tool_input_is_split_over_several_partial_json_deltas(fake):
    fake.script(TURN)

    deltas = [
        e.json()["delta"]["partial_json"]
        for e in raw_events(fake)
        if e.event == "content_block_delta" and e.json()["delta"]["type"] == "input_json_delta"
    ]

    assert len([d for d in deltas if d]) >= 2
    assert json.loads("".join(deltas)) == {"file_path": "docs/a.md", "limit": [1, 20]}


def test_sdk_stream_helper_accumulates_the_turn(fake, client):
    fake.script(TURN)

    with client.messages.stream(**REQUEST) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()

    assert text == "Reading it now."
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "The user wants the file."
    assert message.content[0].signature
    assert message.content[2].input == {"file_path": "docs/a.md", "limit": [1, 20]}
    assert message.stop_reason == "tool_use"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (210, 33)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (900, 12)


def test_non_stream_request_returns_a_whole_message(fake, client):
    fake.script({"text": "All in one.", "usage": {"input_tokens": 5, "output_tokens": 3}})

    message = client.messages.create(**REQUEST)

    assert message.content[0].text == "All in one."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 3)
    assert fake.message_requests[0].body["messages"] == REQUEST["messages"]


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (401, anthropic.AuthenticationError, "authentication_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_shape_maps_to_sdk_errors(fake, client, status, error_class, error_type):
    fake.script(http_error(status, headers={"retry-after": "3"}))

    with pytest.raises(error_class) as info:
        client.messages.create(**REQUEST)

    assert info.value.status_code == status
    assert info.value.type == error_type
    assert info.value.body["type"] == "error"
    assert info.value.response.headers["retry-after"] == "3"


def test_in_stream_error_event_raises_with_its_type(fake, client):
    fake.script(stream_error(2, "overloaded_error", "Overloaded"))

    with pytest.raises(anthropic.APIStatusError) as info, client.messages.stream(**REQUEST) as s:
        s.until_done()

    assert info.value.type == "overloaded_error"


def test_cut_and_malformed_surface_as_transport_and_json_errors(fake, client):
    fake.script(cut_after(4, TURN), malformed(2, TURN))

    with pytest.raises(httpx2.TransportError), client.messages.stream(**REQUEST) as s:
        s.until_done()
    with pytest.raises(ValueError), client.messages.stream(**REQUEST) as s:
        s.until_done()


def test_dated_ids_answer_an_alias_with_its_snapshot_as_the_api_does():
    with AnthropicFake(dated_ids=True) as fake:
        fake.script({"text": "streamed"}, {"text": "whole"}, {"text": "pinned"})
        with anthropic.Anthropic(base_url=fake.base_url, api_key="k", max_retries=0) as client:
            with client.messages.stream(**REQUEST) as stream:
                streamed = stream.get_final_message().model
            whole = client.messages.create(**REQUEST).model
            pinned = client.messages.create(**{**REQUEST, "model": "claude-haiku-4-5-20251001"})

    assert streamed == whole == "claude-haiku-4-5-20250929"
    assert pinned.model == "claude-haiku-4-5-20251001"  # a dated id is answered as it is


def test_by_default_the_requested_id_is_echoed(fake, client):
    fake.script({"text": "ok"})
    assert client.messages.create(**REQUEST).model == REQUEST["model"]
