"""claude-code pieces that need no engine: availability, tool mapping, the permission door.

The permission-door test still runs the real CLI (it is the CLI that must run the edited
input), but through a small RunContext double instead of a Lab.
"""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from ctx_double import CtxDouble

from stagent_lab.profiles.model import Profile
from stagent_lab.runtimes.base import PermissionDecision, Result, SessionStarted, UsageReport
from stagent_lab.runtimes.catalog import RuntimeCatalog
from stagent_lab.runtimes.claude_code import ClaudeCodeRuntime, bundled_cli, cli_tools
from tests.fakes.cli_support import ClaudeCliFake, bash_turn

KEY = "sk-ant-test-KEY-abcdef0123456789"


def test_cli_tools_offers_the_clis_tools_and_names_ours_that_it_lacks():
    offered, missing = cli_tools(["Read", "Bash", "Memory", "WebSearch", "mcp__notes__x"])
    assert offered == ["Read", "Bash", "WebSearch"]
    assert missing == ["Memory"]
    assert cli_tools(None) == ([], [])


def test_availability_needs_a_credential(monkeypatch):
    if bundled_cli() is None and ClaudeCodeRuntime().cli_path() is None:
        pytest.skip("no Claude Code CLI here; the credential check comes after the binary")
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    missing = ClaudeCodeRuntime().availability()
    assert missing.usable is False
    assert "ANTHROPIC_API_KEY" in missing.reason

    assert ClaudeCodeRuntime(api_key=KEY).availability().usable is True
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "token-from-env-123456")
    assert ClaudeCodeRuntime().availability().usable is True


def test_availability_names_a_bad_cli_path(tmp_path):
    not_exec = tmp_path / "claude"
    not_exec.write_text("#!/bin/sh\n")
    avail = ClaudeCodeRuntime(cli_path=str(not_exec), api_key=KEY).availability()
    assert avail.usable is False
    assert "is not an executable file" in avail.reason

    not_exec.chmod(not_exec.stat().st_mode | stat.S_IXUSR)
    assert ClaudeCodeRuntime(cli_path=str(not_exec), api_key=KEY).availability().usable is True


def test_catalog_row_says_why_claude_code_is_not_usable(monkeypatch, tmp_path):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    catalog = RuntimeCatalog({"claude-code": {"cli_path": str(tmp_path / "nope")}})
    row = next(r for r in catalog.rows() if r["runtime"] == "claude-code")
    assert row["usable"] is False
    assert "cli_path" in row["reason"]
    assert (row["resume"], row["mcp_servers"], row["builtin_tools"]) == (True, True, False)


# ---- the permission door, with the real CLI ---------------------------------------------------


class GovernedCtx(CtxDouble):
    """A RunContext double whose cascade is a function; records what the CLI reports."""

    def __init__(self, decide, **kw) -> None:
        super().__init__(**kw)
        self.decide = decide
        self.asked: list[tuple[str, dict, str | None]] = []
        self.results: list[tuple[str, str, bool, str | None]] = []

    async def check_permission(self, name, tool_input, call_id=None):
        self.asked.append((name, tool_input, call_id))
        return self.decide(name, tool_input)

    def log_tool_result(self, name, output, is_error=False, call_id=None):
        self.results.append((name, output, is_error, call_id))


def bash_profile() -> Profile:
    return Profile.from_data(
        {
            "id": "door",
            "name": "Door",
            "allowedTools": ["Bash"],
            "supportedRuntimes": ["claude-code"],
        },
        skill_md="You run commands.",
    )


needs_cli = pytest.mark.skipif(
    ClaudeCodeRuntime().cli_path() is None, reason="the Claude Code CLI is absent here"
)


@needs_cli
def test_an_allow_with_edited_input_runs_the_edited_command(tmp_path):
    work = tmp_path / "work"
    work.mkdir()

    def decide(name, tool_input):
        edited = dict(tool_input, command="echo edited > out.txt")
        return PermissionDecision("allow", "human", updated_input=edited)

    with ClaudeCliFake() as fake:
        fake.script(
            bash_turn("echo original > out.txt", input_tokens=40, output_tokens=4),
            {"text": "Done.", "usage": {"input_tokens": 60, "output_tokens": 2}},
        )
        ctx = GovernedCtx(
            decide, prompt="Write out.txt", profile=bash_profile(), model="claude-sonnet-4-5"
        )
        ctx.working_dir = work
        runtime = ClaudeCodeRuntime(
            base_url=fake.base_url, api_key=KEY, config_dir=str(tmp_path / "cfg"), max_retries=0
        )
        events = asyncio.run(_collect(runtime, ctx))

    assert (work / "out.txt").read_text() == "edited\n"
    assert [(n, i["command"]) for n, i, _ in ctx.asked] == [("Bash", "echo original > out.txt")]
    assert [(n, err) for n, _, err, _ in ctx.results] == [("Bash", False)]
    assert ctx.results[0][3] == ctx.asked[0][2]  # the tool result names the same call
    assert events[-1] == Result("Done.")
    assert isinstance(events[0], SessionStarted) or any(
        isinstance(e, SessionStarted) for e in events
    )
    usage = [(e.input_tokens, e.output_tokens) for e in events if isinstance(e, UsageReport)]
    assert usage == [(40, 4), (60, 2)]


async def _collect(runtime, ctx):
    return [event async for event in runtime.run(ctx)]


@needs_cli
def test_the_cli_gets_its_config_dir_and_no_settings_files(tmp_path):
    """A project's .claude/settings.json must not pre-allow tools behind our back."""
    work = tmp_path / "work"
    (work / ".claude").mkdir(parents=True)
    (work / ".claude" / "settings.json").write_text('{"permissions": {"allow": ["Bash"]}}')
    asked = []

    def decide(name, tool_input):
        asked.append(name)
        return PermissionDecision("deny", "human", "no")

    with ClaudeCliFake() as fake:
        fake.script(bash_turn("echo hi"), {"text": "ok"})
        ctx = GovernedCtx(decide, profile=bash_profile(), model="claude-sonnet-4-5")
        ctx.working_dir = work
        config = tmp_path / "cfg"
        runtime = ClaudeCodeRuntime(
            base_url=fake.base_url, api_key=KEY, config_dir=str(config), max_retries=0
        )
        asyncio.run(_collect(runtime, ctx))

    assert asked == ["Bash"]  # the project's allow rule did not skip our cascade
    sessions = list(Path(config).glob("projects/*/*.jsonl"))
    assert len(sessions) == 1  # the session landed in our config dir, not in ~/.claude
    assert not (Path(os.environ["HOME"]) / ".claude" / "projects").exists()
