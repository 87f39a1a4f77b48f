"""The shared fault pieces without a provider: the stall limit, the stall watch, retry bounds,
and claude-code's reconciliation of streamed usage with the CLI's totals."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from ctx_double import CtxDouble

from stagent_lab.errors import RuntimeFailure
from stagent_lab.runtimes import _retry
from stagent_lab.runtimes.base import RunContext
from stagent_lab.runtimes.claude_code import ClaudeCodeRuntime, _ClaudeRun, model_family
from stagent_lab.runtimes.faults import StallWatch, stall_limit

# ---- the stall limit --------------------------------------------------------------------------


def test_stall_limit_option_then_engine_then_default():
    assert stall_limit(SimpleNamespace(stall_timeout_s=5), {"stall_timeout_s": 2}) == 2.0
    assert stall_limit(SimpleNamespace(stall_timeout_s=5), {}) == 5.0
    assert stall_limit(SimpleNamespace(), {}) == 60.0
    assert RunContext.stall_timeout_s == 60.0  # contexts that never set it get the default


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "10", 7200])
def test_stall_limit_refuses_nonsense(bad):
    with pytest.raises(RuntimeFailure, match="stall_timeout_s must be a number of seconds"):
        stall_limit(SimpleNamespace(stall_timeout_s=bad), {})


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_retries", 50), ("retry_max_s", float("inf")), ("retry_base_s", -1)],
)
def test_retry_options_are_bounded(name, value):
    read = _retry.option_reader({name: value}, {})
    with pytest.raises(RuntimeFailure, match=f"option {name} must be a number"):
        _retry.RetryPolicy.from_options(read)


# ---- the stall watch --------------------------------------------------------------------------


def test_a_silent_provider_stalls():
    async def go():
        watch = StallWatch(0.05, "acme")
        await watch.wait(asyncio.Queue().get())

    with pytest.raises(RuntimeFailure) as info:
        asyncio.run(go())
    assert str(info.value).startswith("stream stalled: no event from acme for 0.05 s")
    assert info.value.retryable is True


def test_silence_while_held_does_not_count():
    """A tool running (or a person deciding) holds the watch; releasing it and the next event
    come together, so nothing here depends on how fast the machine is."""

    async def go():
        watch = StallWatch(0.05, "acme")
        queue: asyncio.Queue[str] = asyncio.Queue()
        watch.hold("tool-1")

        async def tool_finishes():
            await asyncio.sleep(0.5)  # ten windows of silence
            watch.release("tool-1")
            queue.put_nowait("result")

        task = asyncio.create_task(tool_finishes())
        got = await watch.wait(queue.get())
        await task
        return got, watch.held

    assert asyncio.run(go()) == ("result", False)


def test_the_first_event_gets_the_startup_allowance():
    async def go():
        watch = StallWatch(0.05, "cli", first_event_s=30)
        queue: asyncio.Queue[str] = asyncio.Queue()
        asyncio.get_running_loop().call_later(0.3, queue.put_nowait, "init")
        first = await watch.wait(queue.get())
        try:
            await watch.wait(queue.get())
        except RuntimeFailure as exc:
            return first, str(exc)
        raise AssertionError("the second wait did not stall")

    first, second = asyncio.run(go())
    assert first == "init"
    assert "for 0.05 s" in second


def test_watch_re_yields_and_ends_with_the_stream():
    async def items():
        for n in range(3):
            yield n

    async def go():
        watch = StallWatch(5, "acme")
        return [n async for n in watch.watch(items())]

    assert asyncio.run(go()) == [0, 1, 2]


# ---- claude-code usage: stream ids vs the CLI's totals ----------------------------------------


def test_model_family_strips_snapshot_suffixes():
    assert model_family("claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert model_family("claude-sonnet-4-5") == "claude-sonnet-4-5"
    assert model_family("claude-3-5-haiku-latest") == "claude-3-5-haiku"
    assert model_family("claude-sonnet-4-5[1m]") == "claude-sonnet-4-5"
    assert model_family("gpt-5-mini-2025-08-07") == "gpt-5-mini"
    assert model_family("claude-opus-4-5") != model_family("claude-sonnet-4-5")


def tokens(inp: int, out: int) -> dict[str, int]:
    return {
        "input_tokens": inp,
        "output_tokens": out,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
    }


def claude_run() -> _ClaudeRun:
    return _ClaudeRun(ClaudeCodeRuntime(), CtxDouble(), sdk=None)


def test_streamed_calls_under_a_dated_id_are_not_booked_again():
    run = claude_run()
    run._book("claude-sonnet-4-5-20250929", tokens(10, 1))
    run._book("claude-sonnet-4-5-20250929", tokens(20, 2))

    extra = run._unstreamed_usage({"claude-sonnet-4-5": tokens(30, 3)}, {})

    assert extra == []


def test_calls_the_stream_did_not_show_are_still_booked_once():
    run = claude_run()
    run._book("claude-sonnet-4-5-20250929", tokens(10, 1))
    cumulative = {
        "claude-sonnet-4-5": tokens(50, 5),  # 40/4 more than streamed: a compaction call
        "claude-haiku-4-5": tokens(7, 2),  # a sub-agent on another model, never streamed
    }
    baseline = {"claude-sonnet-4-5": tokens(0, 0)}

    extra = run._unstreamed_usage(cumulative, baseline)

    assert [(u.model, u.input_tokens, u.output_tokens) for u in extra] == [
        ("claude-sonnet-4-5-20250929", 40, 4),
        ("claude-haiku-4-5", 7, 2),
    ]


def test_never_more_than_the_totals_grew_by_whatever_the_names():
    run = claude_run()
    run._book("some-proxy-name", tokens(30, 3))  # a gateway that renames the model

    extra = run._unstreamed_usage({"claude-sonnet-4-5": tokens(30, 3)}, {})

    assert extra == []
