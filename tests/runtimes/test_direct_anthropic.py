"""anthropic-direct against the Messages fake, with the real anthropic SDK client."""

from __future__ import annotations

import sys

import pytest
from ctx_double import CtxDouble, Deny, profile_with, run_events, run_until_error

from stagent_lab.errors import RuntimeFailure, RuntimeNotAvailableError
from stagent_lab.runtimes.anthropic_direct import AnthropicDirectRuntime
from stagent_lab.runtimes.base import AssistantText, Notice, Result, UsageReport
from tests.fakes import AnthropicFake, cut_after, http_error, malformed, stall, stream_error

KEY = "sk-ant-test-SECRET-0123456789"
MODEL = "claude-haiku-4-5"  # not deprecated, so no SDK warning notice in most tests

TOOL_TURN = {
    "text": "Let me read it.",
    "tool_uses": [{"name": "Read", "input": {"file_path": "notes.txt"}}],
    "usage": {"input_tokens": 120, "output_tokens": 30},
}
FINAL_TURN = {"text": "The notes say hello.", "usage": {"input_tokens": 160, "output_tokens": 8}}


@pytest.fixture
def fake():
    with AnthropicFake() as server:
        yield server
    assert server.errors == []


def runtime(fake: AnthropicFake, **options) -> AnthropicDirectRuntime:
    defaults = {"base_url": fake.base_url, "api_key": KEY, "retry_base_s": 0.01}
    return AnthropicDirectRuntime(**{**defaults, **options})


def texts(events) -> str:
    return "".join(e.text for e in events if isinstance(e, AssistantText))


def notices(events) -> list[Notice]:
    return [e for e in events if isinstance(e, Notice)]


def test_multi_turn_tool_call_sends_result_back(fake):
    fake.script(TOOL_TURN, FINAL_TURN)
    ctx = CtxDouble(tools={"Read": "hello"}, model=MODEL)

    events = run_events(runtime(fake), ctx)

    assert events[-1] == Result("The notes say hello.")
    assert texts(events) == "Let me read it.The notes say hello."
    assert all(e.delta for e in events if isinstance(e, AssistantText))
    assert [(name, args) for name, args, _ in ctx.tool_calls] == [
        ("Read", {"file_path": "notes.txt"})
    ]
    first, second = (r.body for r in fake.message_requests)
    assert first["stream"] is True
    assert first["model"] == MODEL
    assert first["system"] == "You are a careful test agent."
    assert [t["name"] for t in first["tools"]] == ["Read", "Bash"]
    assert first["tools"][0]["input_schema"]["required"] == ["file_path"]
    assert first["messages"] == [{"role": "user", "content": "Summarise notes.txt"}]
    tool_use = second["messages"][1]["content"][1]
    assert tool_use == {
        "type": "tool_use",
        "id": ctx.tool_calls[0][2],
        "name": "Read",
        "input": {"file_path": "notes.txt"},
    }
    assert second["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "hello"}],
    }
    assert ctx.turn == 2
    assert ctx.saved[-1]["messages"] == second["messages"]


def test_denied_tool_message_reaches_the_model(fake):
    fake.script(
        {"tool_uses": [{"name": "Bash", "input": {"command": "rm -rf /"}}]},
        {"text": "Understood, I will not delete anything."},
    )
    ctx = CtxDouble(tools={"Bash": Deny("Denied: use `git clean -n` to preview instead")})
    ctx.model = MODEL

    events = run_events(runtime(fake), ctx)

    assert events[-1] == Result("Understood, I will not delete anything.")
    result = fake.message_requests[1].body["messages"][2]["content"][0]
    assert result["is_error"] is True
    assert result["content"] == "Denied: use `git clean -n` to preview instead"


def test_usage_reports_exact_token_numbers(fake):
    usage = {
        "input_tokens": 321,
        "output_tokens": 45,
        "cache_read_input_tokens": 1000,
        "cache_creation_input_tokens": 77,
    }
    fake.script({"text": "ok", "usage": usage})

    events = run_events(runtime(fake), CtxDouble(model=MODEL))

    assert [e for e in events if isinstance(e, UsageReport)] == [
        UsageReport(
            provider="anthropic",
            model=MODEL,
            input_tokens=321,
            output_tokens=45,
            cache_read_tokens=1000,
            cache_write_tokens=77,
        )
    ]


def test_429_honours_retry_after_then_succeeds(fake):
    fake.script(http_error(429, headers={"retry-after": "0.05"}), FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble(model=MODEL))

    assert events[-1] == Result("The notes say hello.")
    assert len(fake.message_requests) == 2
    [notice] = notices(events)
    assert notice.message.startswith("retrying anthropic call")
    assert notice.data["attempt"] == 2
    assert notice.data["status"] == 429
    assert notice.data["delay_s"] == 0.05
    assert notice.data["retry_after_s"] == 0.05


def test_retry_after_is_capped(fake):
    fake.script(http_error(429, headers={"retry-after": "3600"}), FINAL_TURN)

    events = run_events(runtime(fake, retry_after_cap_s=0.02), CtxDouble(model=MODEL))

    assert notices(events)[0].data["delay_s"] == 0.02
    assert events[-1] == Result("The notes say hello.")


@pytest.mark.parametrize("status", [500, 503, 529])
def test_server_errors_are_retried(fake, status):
    fake.script(http_error(status), FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble(model=MODEL))

    assert events[-1] == Result("The notes say hello.")
    assert len(fake.message_requests) == 2
    assert notices(events)[0].data["status"] == status


def test_overloaded_error_event_mid_stream_is_retried(fake):
    fake.script(stream_error(3, "overloaded_error", "Overloaded"), FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble(model=MODEL))

    assert events[-1] == Result("The notes say hello.")
    assert "overloaded_error" in notices(events)[0].message


def test_cut_mid_stream_restarts_the_call(fake):
    fake.script(cut_after(5, {"text": "Partial answer that gets cut"}), FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble(model=MODEL))

    assert events[-1] == Result("The notes say hello.")
    [notice] = notices(events)
    assert notice.data["reason"] == "connection dropped"
    # Text streamed before the cut stays in the log, followed by the full retry.
    assert texts(events).startswith("Partial answer")
    assert texts(events).endswith("The notes say hello.")
    assert len(fake.message_requests) == 2


def test_malformed_frame_fails_without_retry(fake):
    fake.script(malformed(3), FINAL_TURN)

    _, exc = run_until_error(runtime(fake), CtxDouble(model=MODEL))

    assert isinstance(exc, RuntimeFailure)
    assert str(exc).startswith("anthropic: malformed stream frame")
    assert len(fake.message_requests) == 1


def test_stall_fails_with_the_configured_timeout(fake):
    fake.script(stall(30, after_events=3))

    _, exc = run_until_error(runtime(fake, stall_timeout_s=0.25), CtxDouble(model=MODEL))

    assert isinstance(exc, RuntimeFailure)
    assert "stalled" in str(exc)
    assert "0.25 s" in str(exc)
    assert len(fake.message_requests) == 1


def test_401_fails_at_once_and_never_shows_the_key(fake):
    fake.script(http_error(401, message=f"invalid x-api-key {KEY}"), FINAL_TURN)

    events, exc = run_until_error(runtime(fake), CtxDouble(model=MODEL))

    assert isinstance(exc, RuntimeFailure)
    assert str(exc).startswith("anthropic: authentication failed (HTTP 401)")
    assert KEY not in str(exc)
    assert all(KEY not in repr(e) for e in events)
    assert len(fake.message_requests) == 1
    assert fake.message_requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_gives_up_after_bounded_attempts(fake):
    fake.script(*[http_error(503)] * 5)

    events, exc = run_until_error(runtime(fake, max_retries=2), CtxDouble(model=MODEL))

    assert isinstance(exc, RuntimeFailure)
    assert "gave up after 3 attempts" in str(exc)
    assert exc.retryable is True
    assert len(fake.message_requests) == 3
    assert [n.data["attempt"] for n in notices(events)] == [2, 3]


def test_resume_sends_the_saved_turns(fake):
    fake.script(TOOL_TURN, http_error(401))
    first = CtxDouble(tools={"Read": "hello"}, model=MODEL)
    _, exc = run_until_error(runtime(fake), first)
    assert isinstance(exc, RuntimeFailure)
    saved = first.transcript
    assert saved["format"] == "anthropic-messages/1"
    assert len(saved["messages"]) == 3

    fake.script(FINAL_TURN)
    resumed = CtxDouble(model=MODEL, resuming=True, transcript=saved)
    events = run_events(runtime(fake), resumed)

    assert events[-1] == Result("The notes say hello.")
    sent = fake.message_requests[-1].body["messages"]
    assert sent == saved["messages"]
    assert sent[1]["content"][1]["name"] == "Read"
    assert sent[2]["content"][0]["content"] == "hello"
    assert resumed.tool_calls == []


def test_transcript_of_another_runtime_is_refused(fake):
    ctx = CtxDouble(model=MODEL, resuming=True, transcript={"format": "ollama-chat/1"})

    _, exc = run_until_error(runtime(fake), ctx)

    assert isinstance(exc, RuntimeFailure)
    assert "ollama-chat/1" in str(exc)
    assert fake.message_requests == []


def test_extended_thinking_is_requested_and_echoed_back(fake):
    fake.script(
        {
            "thinking": "I should read the file first.",
            "text": "Reading.",
            "tool_uses": [{"name": "Read", "input": {"file_path": "a.txt"}}],
        },
        FINAL_TURN,
    )
    profile = profile_with("anthropic-direct", thinking=(True, 2048))
    ctx = CtxDouble(model=MODEL, profile=profile, tools={"Read": "A"})

    events = run_events(runtime(fake, max_tokens=1024), ctx)

    assert events[-1] == Result("The notes say hello.")
    first, second = (r.body for r in fake.message_requests)
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert first["max_tokens"] > 2048
    thinking_block = second["messages"][1]["content"][0]
    assert thinking_block["type"] == "thinking"
    assert thinking_block["thinking"] == "I should read the file first."
    assert thinking_block["signature"].startswith("sig-")
    assert "thinking" not in texts(events).lower()


def test_no_thinking_param_without_override(fake):
    fake.script(FINAL_TURN)
    run_events(runtime(fake), CtxDouble(model=MODEL))
    assert "thinking" not in fake.message_requests[0].body


def test_default_model_is_current(fake):
    fake.script(FINAL_TURN)
    events = run_events(runtime(fake), CtxDouble())
    assert fake.message_requests[0].body["model"] == "claude-sonnet-4-6"
    assert notices(events) == []


def test_sdk_deprecation_becomes_a_notice(fake):
    fake.script(FINAL_TURN)

    events = run_events(runtime(fake), CtxDouble(model="claude-sonnet-4-5"))

    assert fake.message_requests[0].body["model"] == "claude-sonnet-4-5"
    [notice] = notices(events)
    assert notice.data["category"] == "DeprecationWarning"
    assert "claude-sonnet-4-5" in notice.message


def test_profile_override_model_is_used(fake):
    fake.script(FINAL_TURN)
    ctx = CtxDouble(profile=profile_with("anthropic-direct", model="claude-opus-4-5"))

    run_events(runtime(fake), ctx)

    assert fake.message_requests[0].body["model"] == "claude-opus-4-5"


def test_max_tokens_stop_is_noticed(fake):
    fake.script({"text": "cut sh", "stop_reason": "max_tokens"})

    events = run_events(runtime(fake), CtxDouble(model=MODEL))

    assert events[-1] == Result("cut sh")
    assert notices(events)[0].data == {"stop_reason": "max_tokens"}


def test_task_options_override_runtime_options(fake):
    fake.script(FINAL_TURN)
    rt = AnthropicDirectRuntime(base_url="http://127.0.0.1:9", api_key="wrong")
    ctx = CtxDouble(model=MODEL, options={"base_url": fake.base_url, "api_key": KEY})

    assert run_events(rt, ctx)[-1] == Result("The notes say hello.")
    assert fake.message_requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_injected_client_is_used_with_sdk_retries_off(fake):
    import asyncio

    import anthropic

    fake.script(http_error(500), http_error(500), FINAL_TURN)

    async def go():
        async with anthropic.AsyncAnthropic(
            base_url=fake.base_url, api_key=KEY, max_retries=5
        ) as client:
            rt = AnthropicDirectRuntime(client=client, max_retries=1, retry_base_s=0.01)
            return [e async for e in rt.run(CtxDouble(model=MODEL))]

    with pytest.raises(RuntimeFailure, match="gave up after 2 attempts"):
        asyncio.run(go())
    assert len(fake.message_requests) == 2  # ours: 2 attempts, none from the SDK


def test_availability_reports_missing_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    missing = AnthropicDirectRuntime().availability()
    assert missing.usable is False
    assert "ANTHROPIC_API_KEY" in missing.reason

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert AnthropicDirectRuntime().availability().usable is True


def test_missing_sdk_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "anthropic", None)

    availability = AnthropicDirectRuntime(api_key=KEY).availability()
    assert availability.usable is False
    assert "stagent-lab[anthropic]" in availability.reason
    _, exc = run_until_error(AnthropicDirectRuntime(api_key=KEY), CtxDouble())
    assert isinstance(exc, RuntimeNotAvailableError)
    assert "stagent-lab[anthropic]" in str(exc)


def test_declared_identity():
    assert AnthropicDirectRuntime.id == "anthropic-direct"
    assert AnthropicDirectRuntime.provider == "anthropic"
    caps = AnthropicDirectRuntime.capabilities
    assert (caps.resume, caps.builtin_tools, caps.auth_health_check) == (True, True, True)
