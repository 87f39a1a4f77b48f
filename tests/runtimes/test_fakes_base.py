"""The shared fake server: recording, scripting per endpoint, faults, bounded shutdown."""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.fakes import OllamaFake, http_error, stall
from tests.fakes.base import split_text, text_pieces


@pytest.fixture
def fake():
    with OllamaFake() as server:
        yield server
    assert server.errors == []


def test_records_method_path_query_headers_and_json_body(fake):
    fake.script({"text": "hi"})

    httpx.post(
        fake.base_url + "/api/chat?trace=1",
        json={"model": "m", "stream": False, "messages": []},
        headers={"X-Probe": "yes"},
    )

    [request] = fake.requests
    assert (request.method, request.path, request.query) == ("POST", "/api/chat", "trace=1")
    assert request.headers["x-probe"] == "yes"
    assert request.body == {"model": "m", "stream": False, "messages": []}
    assert request.raw.startswith(b"{")


def test_replies_are_played_in_order_per_endpoint(fake):
    fake.script({"text": "one"}, http_error(503), {"text": "three"})
    assert fake.pending("/api/chat") == 3

    body = {"model": "m", "stream": False}
    replies = [httpx.post(fake.base_url + "/api/chat", json=body) for _ in range(3)]

    assert [r.status_code for r in replies] == [200, 503, 200]
    assert replies[0].json()["message"]["content"] == "one"
    assert replies[1].json() == {"error": "Service Unavailable"}
    assert replies[2].json()["message"]["content"] == "three"
    assert fake.pending("/api/chat") == 0


def test_exhausted_script_and_unknown_endpoint_answer_clearly(fake):
    exhausted = httpx.post(fake.base_url + "/api/chat", json={"stream": False})
    unknown = httpx.post(fake.base_url + "/api/nothing", json={})

    assert exhausted.status_code == 400
    assert "no scripted reply left for POST /api/chat" in exhausted.json()["error"]
    assert unknown.status_code == 404
    assert "unknown endpoint" in unknown.json()["error"]


def test_defaults_answer_when_the_queue_is_empty(fake):
    assert httpx.get(fake.base_url + "/api/version").json() == {"version": "0.12.6"}
    fake.enqueue("/api/version", {"json": {"version": "9.9.9"}}, method="GET")
    assert httpx.get(fake.base_url + "/api/version").json() == {"version": "9.9.9"}
    assert httpx.get(fake.base_url + "/api/version").json() == {"version": "0.12.6"}


def test_callable_turn_sees_the_request(fake):
    fake.script(lambda req: {"text": f"you sent {len(req.body['messages'])} messages"})

    reply = httpx.post(
        fake.base_url + "/api/chat",
        json={"stream": False, "messages": [{"role": "user", "content": "a"}] * 2},
    )

    assert reply.json()["message"]["content"] == "you sent 2 messages"


def test_http_error_headers_are_sent(fake):
    fake.script(http_error(429, headers={"retry-after": "7"}))

    reply = httpx.post(fake.base_url + "/api/chat", json={"stream": False})

    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "7"


def test_close_ends_a_stall_so_nothing_hangs():
    server = OllamaFake().start()
    server.script(stall(60, after_events=1))
    outcome: list[object] = []

    def read_stream() -> None:
        try:
            with httpx.stream(
                "POST", server.base_url + "/api/chat", json={}, timeout=30
            ) as response:
                outcome.extend(response.iter_lines())
        except httpx.HTTPError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read_stream)
    reader.start()
    while not server.requests:  # wait until the stall has begun
        reader.join(0.01)
    server.close()
    reader.join(10)

    assert not reader.is_alive()
    assert isinstance(outcome[-1], httpx.RemoteProtocolError)  # cut, not a clean end
    assert '"done": false' in str(outcome[0])


def test_split_text_makes_several_non_empty_pieces():
    assert split_text("abcdefgh") == ["abc", "def", "gh"]
    assert split_text("ab") == ["a", "b"]
    assert split_text("") == []
    assert text_pieces(["x", "yz"]) == ["x", "yz"]
    assert "".join(text_pieces("The notes say hello.")) == "The notes say hello."
