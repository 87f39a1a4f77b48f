"""ollama runtime against the /api/chat NDJSON fake, over real httpx."""

from __future__ import annotations

import pytest
from ctx_double import CtxDouble, Deny, profile_with, run_events, run_until_error

from stagent_lab.errors import LimitExceeded, RuntimeFailure
from stagent_lab.runtimes.base import AssistantText, Availability, Notice, Result, UsageReport
from stagent_lab.runtimes.ollama import OllamaRuntime, normalize_host
from tests.fakes import OllamaFake, cut_after, http_error, malformed, stall, stream_error

TOOL_TURN = {
    "text": "Let me read it.",
    "tool_calls": [{"name": "Read", "arguments": {"file_path": "notes.txt"}}],
}
FINAL_TURN = {"text": "The notes say hello."}


@pytest.fixture
def fake():
    with OllamaFake() as server:
        yield server
    assert server.errors == []


def runtime(fake: OllamaFake, **options) -> OllamaRuntime:
    return OllamaRuntime(**{"base_url": fake.base_url, "retry_base_s": 0.01, **options})


def texts(events) -> str:
    return "".join(e.text for e in events if isinstance(e, AssistantText))


def notices(events) -> list[Notice]:
    return [e for e in events if isinstance(e, Notice)]


def test_multi_turn_tool_call_sends_result_back(fake):
    fake.script(TOOL_TURN, FINAL_TURN)
    ctx = CtxDouble(tools={"Read": "hello"})

    events = run_events(runtime(fake), ctx)

    assert events[-1] == Result("The notes say hello.")
    assert texts(events) == "Let me read it.The notes say hello."
    assert ctx.tool_calls == [("Read", {"file_path": "notes.txt"}, "call_1_0")]
    first, second = (r.body for r in fake.chat_requests)
    assert first["model"] == "llama3.2"
    assert first["stream"] is True
    assert first["messages"] == [
        {"role": "system", "content": "You are a careful test agent."},
        {"role": "user", "content": "Summarise notes.txt"},
    ]
    assert first["tools"][0] == {
        "type": "function",
        "function": {
            "name": "Read",
            "description": "Read a file in the working directory.",
            "parameters": ctx.specs[0]["input_schema"],
        },
    }
    assistant, tool = second["messages"][2:]
    assert assistant["tool_calls"][0]["function"]["arguments"] == {"file_path": "notes.txt"}
    assert tool == {"role": "tool", "tool_name": "Read", "content": "hello"}
    # The system prompt is sent each call but not saved: it may change on resume.
    assert ctx.saved[-1]["messages"] == second["messages"][1:]


def test_denied_tool_message_reaches_the_model(fake):
    fake.script(
        {"tool_calls": [{"name": "Bash", "arguments": {"command": "shutdown now"}}]},
        {"text": "OK, I will not."},
    )
    ctx = CtxDouble(tools={"Bash": Deny("Denied: no power management from agents")})

    events = run_events(runtime(fake), ctx)

    assert events[-1] == Result("OK, I will not.")
    tool = fake.chat_requests[1].body["messages"][-1]
    assert tool["content"] == "Error: Denied: no power management from agents"


def test_usage_is_free_and_exact(fake):
    fake.script({"text": "ok", "usage": {"prompt_eval_count": 412, "eval_count": 57}})

    events = run_events(runtime(fake), CtxDouble())

    assert [e for e in events if isinstance(e, UsageReport)] == [
        UsageReport(
            provider="ollama", model="llama3.2", input_tokens=412, output_tokens=57, cost_usd=0.0
        )
    ]


def test_429_honours_retry_after_then_succeeds(fake):
    fake.script(http_error(429, headers={"retry-after": "0.05"}), FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble())

    assert events[-1] == Result("The notes say hello.")
    [notice] = notices(events)
    assert notice.data["delay_s"] == 0.05
    assert notice.data["attempt"] == 2
    assert len(fake.chat_requests) == 2


def test_500_then_success(fake):
    fake.script(http_error(500, message="llama runner process has terminated"), FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble())

    assert events[-1] == Result("The notes say hello.")
    assert "llama runner process has terminated" in notices(events)[0].message


def test_cut_mid_stream_restarts_the_call(fake):
    fake.script(cut_after(2, {"text": "Partial answer that gets cut"}), FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble())

    assert events[-1] == Result("The notes say hello.")
    assert notices(events)[0].data["reason"] == "connection dropped"
    assert texts(events).startswith("Partial")


def test_error_line_mid_stream_fails(fake):
    fake.script(stream_error(1, message="model requires more system memory"))

    _, exc = run_until_error(runtime(fake), CtxDouble())

    assert isinstance(exc, RuntimeFailure)
    assert str(exc) == "ollama: model error: model requires more system memory"


def test_malformed_line_fails_without_retry(fake):
    fake.script(malformed(1), FINAL_TURN)

    _, exc = run_until_error(runtime(fake), CtxDouble())

    assert isinstance(exc, RuntimeFailure)
    assert str(exc).startswith("ollama: malformed stream frame")
    assert len(fake.chat_requests) == 1


def test_stall_fails_with_the_configured_timeout(fake):
    fake.script(stall(30, after_events=1))

    _, exc = run_until_error(runtime(fake, stall_timeout_s=0.25), CtxDouble())

    assert isinstance(exc, RuntimeFailure)
    assert "stalled" in str(exc)
    assert "0.25 s" in str(exc)


def test_401_fails_at_once_and_never_shows_the_key(fake):
    key = "ollama-key-SECRET-42"
    fake.script(http_error(401, message=f"unauthorized key {key}"), FINAL_TURN)

    _, exc = run_until_error(runtime(fake, api_key=key), CtxDouble())

    assert isinstance(exc, RuntimeFailure)
    assert str(exc).startswith("ollama: authentication failed (HTTP 401)")
    assert key not in str(exc)
    assert len(fake.chat_requests) == 1
    assert fake.chat_requests[0].headers["authorization"] == f"Bearer {key}"


def test_resume_sends_the_saved_turns(fake):
    fake.script(TOOL_TURN, http_error(401))
    first = CtxDouble(tools={"Read": "hello"})
    run_until_error(runtime(fake), first)
    saved = first.transcript
    assert saved["format"] == "ollama-chat/1"

    fake.script(FINAL_TURN)
    events = run_events(runtime(fake), CtxDouble(resuming=True, transcript=saved))

    assert events[-1] == Result("The notes say hello.")
    sent = fake.chat_requests[-1].body["messages"]
    assert sent[1:] == saved["messages"]
    assert sent[-1] == {"role": "tool", "tool_name": "Read", "content": "hello"}


def test_thinking_override_sets_think(fake):
    fake.script(
        {"thinking": "plan first", **TOOL_TURN},
        FINAL_TURN,
    )
    profile = profile_with("ollama", thinking=(True, None), model="qwen3:8b")

    run_events(runtime(fake), CtxDouble(profile=profile, tools={"Read": "x"}))

    first, second = (r.body for r in fake.chat_requests)
    assert first["think"] is True
    assert first["model"] == "qwen3:8b"
    assert second["messages"][2]["thinking"] == "plan first"


def test_connection_refused_is_retried_then_fails():
    rt = OllamaRuntime(base_url="127.0.0.1:9", max_retries=1, retry_base_s=0.01)

    events, exc = run_until_error(rt, CtxDouble())

    assert isinstance(exc, RuntimeFailure)
    assert "cannot reach Ollama" in str(exc)
    assert "gave up after 2 attempts" in str(exc)
    assert notices(events)[0].data["reason"] == "connection refused"


def test_availability_uses_api_version(fake):
    available = runtime(fake).availability()
    assert available.usable is True
    assert "0.12.6" in available.reason
    assert fake.requests_to("/api/version", method="GET")

    down = OllamaRuntime(base_url="http://127.0.0.1:9").availability()
    assert down.usable is False
    assert "no Ollama server" in down.reason


def test_availability_reports_http_errors(fake):
    fake.enqueue("/api/version", http_error(500), method="GET")
    assert runtime(fake).availability() == Availability(
        False, f"Ollama at {fake.base_url} answered HTTP 500"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "http://127.0.0.1:11434"),
        ("", "http://127.0.0.1:11434"),
        ("0.0.0.0", "http://127.0.0.1:11434"),
        ("gpu-box:8080", "http://gpu-box:8080"),
        ("https://ollama.example.com", "https://ollama.example.com:443"),
        ("http://10.0.0.5:11434/", "http://10.0.0.5:11434"),
    ],
)
def test_normalize_host(value, expected):
    assert normalize_host(value) == expected


def test_ollama_host_env_is_honoured(fake, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", fake.base_url.removeprefix("http://"))
    fake.script(FINAL_TURN)

    assert run_events(OllamaRuntime(), CtxDouble())[-1] == Result("The notes say hello.")


def test_declared_identity():
    assert (OllamaRuntime.id, OllamaRuntime.provider) == ("ollama", "ollama")
    assert OllamaRuntime.default_model == "llama3.2"
    caps = OllamaRuntime.capabilities
    assert (caps.resume, caps.builtin_tools, caps.auth_health_check) == (True, True, True)


def test_model_precedence(fake):
    fake.script(FINAL_TURN, FINAL_TURN, FINAL_TURN)
    profile = profile_with("ollama", model="qwen3:8b")

    run_events(runtime(fake, model="mistral"), CtxDouble())
    run_events(runtime(fake, model="mistral"), CtxDouble(profile=profile))
    run_events(runtime(fake, model="mistral"), CtxDouble(profile=profile, model="phi4"))

    assert [r.body["model"] for r in fake.chat_requests] == ["mistral", "qwen3:8b", "phi4"]


def test_turn_limit_stops_the_loop_after_saving(fake):
    fake.script(TOOL_TURN, FINAL_TURN)
    ctx = CtxDouble(tools={"Read": "hello"}, max_turns=1)

    _, exc = run_until_error(runtime(fake), ctx)

    assert isinstance(exc, LimitExceeded)
    assert len(fake.chat_requests) == 1
    assert ctx.transcript["messages"][-1]["role"] == "tool"  # the finished turn is resumable
