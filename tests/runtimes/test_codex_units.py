"""openai-codex-app-server pieces that need no codex binary, and the shared CLI process helpers.

The decision mapping, the shell unwrapping that makes Bash rules apply to Codex commands, the
usage arithmetic (cumulative totals → per-call deltas, never twice), binary discovery and the
"no orphans" process sweep are checked here directly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from ctx_double import CtxDouble

from stagent_lab.runtimes import _cli_env
from stagent_lab.runtimes.base import PermissionDecision, UsageReport
from stagent_lab.runtimes.catalog import RuntimeCatalog
from stagent_lab.runtimes.codex_app_server import (
    CodexAppServerRuntime,
    _CodexRun,
    approval_answer,
    find_codex,
    unwrap_shell,
)
from tests.fakes.cli_support import wait_until

ALLOW = PermissionDecision("allow", "human")
ALWAYS = PermissionDecision("allow", "human", always=True)
DENY = PermissionDecision("deny", "human", "no")


def test_unwrap_shell_gives_the_command_a_rule_should_judge():
    assert unwrap_shell("/bin/bash -lc 'git status && git log'") == "git status && git log"
    assert unwrap_shell("sh -c 'rm -rf build'") == "rm -rf build"
    assert unwrap_shell("git status") == "git status"
    assert unwrap_shell("/bin/bash -lc 'unterminated") == "/bin/bash -lc 'unterminated"
    assert unwrap_shell("python3 -c 'print(1)'") == "python3 -c 'print(1)'"


def test_approval_answer_maps_our_decisions_to_codexs():
    assert approval_answer([ALLOW], None) == "accept"
    assert approval_answer([ALWAYS], None) == "acceptForSession"
    assert approval_answer([ALWAYS], ["accept", "acceptForSession", "decline"]) == (
        "acceptForSession"
    )
    # Codex did not offer acceptForSession: accept once; our saved rule covers the next one.
    offered = ["accept", {"acceptWithExecpolicyAmendment": {}}, "cancel"]
    assert approval_answer([ALWAYS], offered) == "accept"
    assert approval_answer([DENY], None) == "decline"
    assert approval_answer([ALLOW, DENY], None) == "decline"  # one file denied: no patch
    assert approval_answer([ALWAYS, ALLOW], None) == "accept"
    assert approval_answer([], None) == "decline"


def test_find_codex_prefers_the_explicit_path_then_the_env_var(tmp_path, monkeypatch):
    binary = tmp_path / "codex"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert find_codex(str(binary)) == str(binary)
    assert find_codex(str(tmp_path / "missing")) is None
    monkeypatch.setenv("STAGENT_CODEX_BIN", str(binary))
    assert find_codex() == str(binary)


def test_availability_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    missing = CodexAppServerRuntime(codex_path=str(tmp_path / "nope")).availability()
    assert missing.usable is False and "not an executable file" in missing.reason

    binary = tmp_path / "codex"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    home = tmp_path / "codex-home"
    home.mkdir()
    runtime = CodexAppServerRuntime(codex_path=str(binary), codex_home=str(home))
    no_creds = runtime.availability()
    assert no_creds.usable is False and "OPENAI_API_KEY" in no_creds.reason

    (home / "config.toml").write_text('model_provider = "local"\n')
    assert runtime.availability().usable is True
    (home / "config.toml").unlink()
    (home / "auth.json").write_text("{}")
    assert runtime.availability().usable is True
    assert CodexAppServerRuntime(codex_path=str(binary), api_key="k" * 12).availability().usable


def test_catalog_row_for_codex_without_a_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("STAGENT_CODEX_BIN", str(tmp_path / "absent"))
    catalog = RuntimeCatalog({"openai-codex-app-server": {"codex_path": str(tmp_path / "x")}})
    row = next(r for r in catalog.rows() if r["runtime"] == "openai-codex-app-server")
    assert row["usable"] is False
    assert "codex_path" in row["reason"]
    assert (row["resume"], row["builtin_tools"], row["approvals"]) == (True, False, True)


# ---- usage arithmetic -------------------------------------------------------------------------


def totals(inp: int, cached: int, out: int, reasoning: int = 0) -> dict:
    return {
        "totalTokens": inp + out,
        "inputTokens": inp,
        "cachedInputTokens": cached,
        "cacheWriteInputTokens": 0,
        "outputTokens": out,
        "reasoningOutputTokens": reasoning,
    }


def usage_update(total: dict, last: dict) -> dict:
    return {
        "threadId": "t1",
        "turnId": "u1",
        "tokenUsage": {"total": total, "last": last, "modelContextWindow": 1000},
    }


def run_usage(run: _CodexRun, *updates: dict) -> list[UsageReport]:
    async def go() -> list[UsageReport]:
        out: list[UsageReport] = []
        for update in updates:
            out += await run._usage(update)  # type: ignore[arg-type]
        return out

    return asyncio.run(go())


def test_usage_reports_deltas_of_the_cumulative_totals_once_each():
    ctx = CtxDouble(model="gpt-5.1-codex")
    run = _CodexRun(CodexAppServerRuntime(), ctx)
    run.thread_id, run.model = "t1", "gpt-5.1-codex"
    first = usage_update(totals(100, 10, 20, 3), totals(100, 10, 20, 3))
    second = usage_update(totals(250, 10, 25, 3), totals(150, 0, 5))
    reports = run_usage(run, first, first, second)  # the repeated update books nothing

    assert [
        (r.input_tokens, r.cache_read_tokens, r.output_tokens, r.reasoning_tokens) for r in reports
    ] == [(90, 10, 20, 3), (150, 0, 5, 0)]
    assert ctx.turn == 2
    assert ctx.transcript["total"]["input"] == 250  # saved for a later resume


def test_a_resumed_thread_without_a_saved_baseline_books_only_the_last_call():
    ctx = CtxDouble(model="gpt-5.1-codex", resuming=True)
    run = _CodexRun(CodexAppServerRuntime(), ctx)
    run.thread_id, run.model = "t1", "gpt-5.1-codex"
    run.usage_seen = asyncio.run(run._usage_baseline("t1"))
    assert run.usage_seen is None
    # Totals include the earlier run (100 in); only the new call (300 in) is new.
    reports = run_usage(run, usage_update(totals(400, 0, 30), totals(300, 0, 20)))
    assert [(r.input_tokens, r.output_tokens) for r in reports] == [(300, 20)]


def test_a_saved_baseline_is_used_when_the_thread_matches():
    ctx = CtxDouble(
        resuming=True,
        transcript={
            "format": "codex-app-server/1",
            "thread_id": "t1",
            "total": {"input": 100, "cached": 0, "cache_write": 0, "output": 10, "reasoning": 0},
        },
    )
    run = _CodexRun(CodexAppServerRuntime(), ctx)
    run.thread_id, run.model = "t1", "m"
    run.usage_seen = asyncio.run(run._usage_baseline("t1"))
    reports = run_usage(run, usage_update(totals(400, 0, 30), totals(150, 0, 10)))
    assert [(r.input_tokens, r.output_tokens) for r in reports] == [(300, 20)]


# ---- processes ------------------------------------------------------------------------------


def test_child_env_drops_nesting_markers_and_none_values():
    env = _cli_env.child_env(
        {"OPENAI_API_KEY": None, "CODEX_HOME": "/x"},
        marker="m1",
        base={"CLAUDECODE": "1", "OPENAI_API_KEY": "old", "PATH": "/bin"},
    )
    assert env == {"PATH": "/bin", "CODEX_HOME": "/x", _cli_env.MARKER_VAR: "m1"}


def test_scrub_and_stderr_tail_hide_secrets():
    tail = _cli_env.StderrTail(lines=3)
    for line in ["one", "key=sk-secret-value-123", "three", "four"]:
        tail.add(line)
    assert tail.lines() == ["key=sk-secret-value-123", "three", "four"]
    assert tail.text(["sk-secret-value-123"]) == "key=[redacted]\nthree\nfour"


def test_stop_run_kills_the_tree_and_every_process_with_the_marker():
    marker = _cli_env.new_marker()
    env = {**os.environ, _cli_env.MARKER_VAR: marker}
    # A parent with a child, and a grandchild that detaches (re-parented once its parent ends).
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "subprocess.Popen(['sh', '-c', '(sleep 60 &) ; true'])\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        wait_until(lambda: len(_cli_env.processes_with_marker(marker)) >= 3, timeout=10)
        marked = set(_cli_env.processes_with_marker(marker))
        tree = {proc.pid, *_cli_env.descendants(proc.pid)}
        assert proc.pid in marked
        assert marked - tree  # the detached sleep is only found through the marker

        stopped = _cli_env.stop_run(proc.pid, marker, grace_s=1.0)

        assert proc.pid in stopped
        proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while _cli_env.processes_with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cli_env.processes_with_marker(marker) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
