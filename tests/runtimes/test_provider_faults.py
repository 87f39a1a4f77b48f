"""Provider faults on all five provider runtimes: a stalled stream, a refused key, dated model ids.

Each runtime runs against its loopback fake through the RunContext double, the CLI runtimes
with their real binaries. Stall tests use a 2 s limit from ``ctx.stall_timeout_s`` (what the
engine provides) and assert the reason, never the time; ``guard_s`` is hang protection only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ctx_double import CtxDouble, run_events, run_until_error

from stagent_lab.errors import RuntimeFailure
from stagent_lab.runtimes.anthropic_direct import AnthropicDirectRuntime
from stagent_lab.runtimes.base import PermissionDecision, Result, Runtime, UsageReport
from stagent_lab.runtimes.claude_code import ClaudeCodeRuntime
from stagent_lab.runtimes.codex_app_server import CodexAppServerRuntime
from stagent_lab.runtimes.ollama import OllamaRuntime
from stagent_lab.runtimes.openai_direct import OpenAIDirectRuntime
from tests.fakes import AnthropicFake, OllamaFake, OpenAIFake, http_error, stall
from tests.fakes.base import FakeServer
from tests.fakes.cli_support import (
    MESSAGES_PATH,
    RESPONSES_PATH,
    ClaudeCliFake,
    CodexCliFake,
    bash_turn,
    codex_binary,
    exec_turn,
)

KEY = "sk-test-faults-KEY-0123456789abcdef"
GUARD_S = 45  # below the old 60 s default: a run that ignores ctx.stall_timeout_s trips it
HAS_CLAUDE = ClaudeCodeRuntime().cli_path() is not None
HAS_CODEX = codex_binary() is not None
needs_claude = pytest.mark.skipif(not HAS_CLAUDE, reason="the Claude Code CLI is absent here")
needs_codex = pytest.mark.skipif(not HAS_CODEX, reason="the codex binary is absent here")


@dataclass
class Case:
    """How to run one runtime against its fake."""

    fake: Callable[..., FakeServer]  # every fake has script() for its main endpoint
    make: Callable[[Any, Path], Runtime]
    requests: Callable[[Any], list]
    stall_after: int  # stream frames sent before the stall (mid-answer, past the headers)
    profile_tools: tuple[str, ...] = ()


def _claude(fake: ClaudeCliFake, tmp: Path, **extra: Any) -> ClaudeCodeRuntime:
    return ClaudeCodeRuntime(
        base_url=fake.base_url,
        api_key=KEY,
        model="claude-sonnet-4-5",
        config_dir=str(tmp / "claude-config"),
        **extra,
    )


def _codex(fake: CodexCliFake, tmp: Path, **extra: Any) -> CodexAppServerRuntime:
    home = tmp / "codex-home"
    home.mkdir(exist_ok=True)
    return CodexAppServerRuntime(
        base_url=fake.v1_url, api_key=KEY, model="gpt-5.1-codex", codex_home=str(home), **extra
    )


CASES = {
    "anthropic-direct": Case(
        AnthropicFake,
        lambda f, _: AnthropicDirectRuntime(base_url=f.base_url, api_key=KEY),
        lambda f: f.message_requests,
        3,
    ),
    "openai-direct": Case(
        OpenAIFake,
        lambda f, _: OpenAIDirectRuntime(base_url=f.v1_url, api_key=KEY),
        lambda f: f.response_requests,
        2,
    ),
    "ollama": Case(
        OllamaFake,
        lambda f, _: OllamaRuntime(base_url=f.base_url),
        lambda f: f.chat_requests,
        1,
    ),
    "claude-code": Case(ClaudeCliFake, _claude, lambda f: f.main_requests, 3, ("Bash",)),
    "openai-codex-app-server": Case(
        CodexCliFake, _codex, lambda f: f.response_requests, 4, ("Bash",)
    ),
}
MARKS = {"claude-code": needs_claude, "openai-codex-app-server": needs_codex}
ALL_FIVE = [pytest.param(rid, marks=MARKS.get(rid, ())) for rid in CASES]


def ctx_for(case: Case, tmp_path: Path, **kw: Any) -> CtxDouble:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    ctx = CtxDouble(working_dir=work, **kw)
    ctx.profile.allowed_tools = list(case.profile_tools)
    return ctx


# ---- a stalled stream -----------------------------------------------------------------------


@pytest.mark.parametrize("runtime_id", ALL_FIVE)
def test_a_stalled_stream_fails_with_a_clear_reason(runtime_id, tmp_path):
    case = CASES[runtime_id]
    with case.fake() as fake:
        fake.script(stall(120, after_events=case.stall_after))
        ctx = ctx_for(case, tmp_path, stall_timeout_s=2)

        _, exc = run_until_error(case.make(fake, tmp_path), ctx, guard_s=GUARD_S)
        requests = case.requests(fake)

    assert isinstance(exc, RuntimeFailure), exc
    assert str(exc).startswith("stream stalled: no event from "), str(exc)
    assert "for 2 s" in str(exc)
    assert exc.retryable is True  # resuming later may work
    assert len(requests) == 1  # a stall is not retried: the limit bounds the whole call


@pytest.mark.parametrize("runtime_id", ["anthropic-direct", "openai-direct", "ollama"])
def test_the_runtime_option_wins_over_the_engine_limit(runtime_id, tmp_path):
    case = CASES[runtime_id]
    with case.fake() as fake:
        fake.script(stall(120, after_events=case.stall_after))
        ctx = ctx_for(case, tmp_path, stall_timeout_s=3000, options={"stall_timeout_s": 0.5})

        _, exc = run_until_error(case.make(fake, tmp_path), ctx, guard_s=GUARD_S)

    assert str(exc).startswith("stream stalled") and "for 0.5 s" in str(exc)


def test_a_nonsense_stall_limit_is_refused(tmp_path):
    case = CASES["ollama"]
    with case.fake() as fake:
        ctx = ctx_for(case, tmp_path, stall_timeout_s=float("inf"))
        _, exc = run_until_error(case.make(fake, tmp_path), ctx, guard_s=GUARD_S)
        assert case.requests(fake) == []
    assert isinstance(exc, RuntimeFailure)
    assert "ctx.stall_timeout_s must be a number of seconds" in str(exc)


class SlowPerson(CtxDouble):
    """Every permission takes a while to decide, as a person in the inbox would."""

    decide_s = 5.0

    async def check_permission(self, name, tool_input, call_id=None) -> PermissionDecision:
        await asyncio.sleep(self.decide_s)
        return await super().check_permission(name, tool_input, call_id)


SLOW = "python3 -c 'import time; time.sleep(5)'"


@needs_claude
def test_claude_code_a_long_tool_run_or_approval_is_not_a_stall(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with ClaudeCliFake() as fake:
        fake.script(bash_turn(SLOW), {"text": "Waited."})
        ctx = SlowPerson(working_dir=work, stall_timeout_s=3)
        ctx.profile.allowed_tools = ["Bash"]
        events = run_events(_claude(fake, tmp_path, max_retries=0), ctx)

    assert events[-1] == Result("Waited.")
    assert [(name, err) for name, _, err, _ in ctx.tool_results] == [("Bash", False)]


@needs_codex
def test_codex_a_long_command_or_approval_is_not_a_stall(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    with CodexCliFake() as fake:
        fake.script(exec_turn(SLOW), {"text": "Waited."})
        ctx = SlowPerson(working_dir=work, stall_timeout_s=3)
        ctx.profile.allowed_tools = ["Bash"]
        events = run_events(_codex(fake, tmp_path), ctx)

    assert events[-1] == Result("Waited.")
    assert [name for name, _, _ in ctx.permissions] == ["Bash"]
    assert [(name, err) for name, _, err, _ in ctx.tool_results] == [("Bash", False)]


# ---- a refused key ----------------------------------------------------------------------------


@needs_claude
@pytest.mark.parametrize("status", [401, 403])
def test_claude_code_fails_fast_on_a_refused_key(status, tmp_path):
    """Without max_retries the CLI would retry a 401 for minutes; the first retry notice
    is enough for us."""
    case = CASES["claude-code"]
    with ClaudeCliFake() as fake:
        fake.set_default("POST", MESSAGES_PATH, http_error(status, message=f"bad key {KEY}"))
        ctx = ctx_for(case, tmp_path)

        _, exc = run_until_error(_claude(fake, tmp_path), ctx, guard_s=GUARD_S)
        requests = fake.main_requests

    assert isinstance(exc, RuntimeFailure)
    assert str(exc).startswith(f"claude-code: authentication failed (HTTP {status})"), str(exc)
    assert KEY not in str(exc)
    assert exc.retryable is False
    assert len(requests) <= 3  # the CLI's own budget is 11 attempts


@needs_codex
@pytest.mark.parametrize("status", [401, 403])
def test_codex_fails_fast_on_a_refused_key(status, tmp_path):
    case = CASES["openai-codex-app-server"]
    with CodexCliFake() as fake:
        fake.set_default("POST", RESPONSES_PATH, http_error(status))
        ctx = ctx_for(case, tmp_path)

        _, exc = run_until_error(_codex(fake, tmp_path), ctx, guard_s=GUARD_S)
        requests = fake.response_requests

    assert isinstance(exc, RuntimeFailure)
    assert str(exc).startswith(f"codex: authentication failed (HTTP {status})"), str(exc)
    assert KEY not in str(exc)
    assert len(requests) < 6  # Codex alone tries 1 + 5 reconnects


# ---- dated model ids --------------------------------------------------------------------------


@pytest.mark.parametrize("runtime_id", ["anthropic-direct", "openai-direct"])
def test_direct_runtimes_book_one_row_per_call_under_the_answered_id(runtime_id, tmp_path):
    case = CASES[runtime_id]
    calls_key = "tool_uses" if runtime_id == "anthropic-direct" else "tool_calls"
    args_key = "input" if runtime_id == "anthropic-direct" else "arguments"
    tool_turn = {"text": "Reading.", calls_key: [{"name": "Read", args_key: {"file_path": "a"}}]}
    model = "claude-sonnet-4-6" if runtime_id == "anthropic-direct" else "gpt-5-mini"
    with case.fake(dated_ids=True) as fake:
        fake.script(tool_turn, tool_turn, {"text": "Done."})
        events = run_events(case.make(fake, tmp_path), ctx_for(case, tmp_path, model=model))

    usage = [e for e in events if isinstance(e, UsageReport)]
    assert len(usage) == 3
    assert {u.model for u in usage} == {f"{model}-{fake_date(runtime_id)}"}


def fake_date(runtime_id: str) -> str:
    return "20250929" if runtime_id in ("anthropic-direct", "claude-code") else "2025-08-07"


@needs_claude
def test_claude_code_books_each_call_once_when_the_api_answers_a_dated_id(tmp_path):
    """The stream names claude-sonnet-4-5-20250929, the CLI's totals claude-sonnet-4-5:
    four calls must be four rows, not five with the totals booked again."""
    case = CASES["claude-code"]
    turns = [bash_turn(f"echo {n}", input_tokens=10 * n, output_tokens=n) for n in (1, 2, 3)]
    with ClaudeCliFake(dated_ids=True) as fake:
        fake.script(*turns, {"text": "Done.", "usage": {"input_tokens": 40, "output_tokens": 4}})
        ctx = ctx_for(case, tmp_path)
        events = run_events(_claude(fake, tmp_path, max_retries=0), ctx)
        calls = len(fake.main_requests)

    usage = [e for e in events if isinstance(e, UsageReport)]
    assert calls == 4
    assert len(usage) == 4
    assert [(u.input_tokens, u.output_tokens) for u in usage] == [
        (10, 1),
        (20, 2),
        (30, 3),
        (40, 4),
    ]
    assert {u.model for u in usage} == {"claude-sonnet-4-5-20250929"}
    assert events[-1] == Result("Done.")


@needs_codex
def test_codex_books_each_call_once_when_the_api_answers_a_dated_id(tmp_path):
    case = CASES["openai-codex-app-server"]
    with CodexCliFake(dated_ids=True) as fake:
        fake.script(
            exec_turn("echo one", input_tokens=100, output_tokens=10),
            {"text": "Done.", "usage": {"input_tokens": 150, "output_tokens": 5}},
        )
        ctx = ctx_for(case, tmp_path)
        events = run_events(_codex(fake, tmp_path), ctx)
        calls = len(fake.response_requests)

    usage = [e for e in events if isinstance(e, UsageReport)]
    assert calls == len(usage) == 2
    assert [(u.input_tokens, u.output_tokens) for u in usage] == [(100, 10), (150, 5)]
