"""claude-code end to end: the real Claude Code CLI (bundled in claude-agent-sdk) against the
loopback Messages fake, governed by the engine's cascade and inbox.

Every test runs the CLI with its own config folder (CLAUDE_CONFIG_DIR) under tmp_path, the
per-test HOME from conftest, and telemetry and non-essential traffic switched off, so the only
network traffic is to the fake on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from stagent_lab import Lab
from stagent_lab.runtimes.claude_code import ClaudeCodeRuntime
from tests.fakes import http_error
from tests.fakes.cli_support import (
    MESSAGES_PATH,
    ClaudeCliFake,
    bash_turn,
    request_text,
    run_markers,
    run_processes,
    wait_until,
    write_cli_profile,
)

CLI = ClaudeCodeRuntime().cli_path()
pytestmark = pytest.mark.skipif(
    CLI is None,
    reason="the Claude Code CLI is absent: claude-agent-sdk has no bundled binary for this "
    "platform and `claude` is not on PATH",
)

KEY = "sk-ant-test-KEY-abcdef0123456789"
MODEL = "claude-sonnet-4-5"
WAIT = 60


@pytest.fixture
def fake():
    with ClaudeCliFake() as server:
        yield server
    assert server.errors == []


@pytest.fixture
def cc_lab(tmp_path, fake):
    profiles = tmp_path / "profiles"
    write_cli_profile(
        profiles,
        "cc-guarded",
        "claude-code",
        tools=["Read", "Glob", "Bash", "Write"],
        approve=["Glob"],
        deny=["Bash(command:rm *)"],
    )
    write_cli_profile(
        profiles,
        "cc-auto",
        "claude-code",
        tools=["Read", "Glob", "Bash", "Write", "Edit"],
        approve=["Read", "Glob", "Bash", "Write", "Edit"],
    )
    options = {
        "claude-code": {
            "base_url": fake.base_url,
            "api_key": KEY,
            "model": MODEL,
            "config_dir": str(tmp_path / "claude-config"),
            "max_retries": 0,
        }
    }
    lab = Lab(home=tmp_path / "ws", profile_dirs=[profiles], runtime_options=options)
    try:
        yield lab
    finally:
        lab.close()


def final(text: str = "All done.", **usage: int) -> dict:
    turn: dict = {"text": text}
    if usage:
        turn["usage"] = usage
    return turn


def decisions(lab: Lab, task_id: str) -> list[tuple[str, str, str]]:
    logs = lab.logs(task=task_id, event="tool_decision")
    return [
        (r["tool_name"], r["payload"]["behavior"], r["payload"]["tier"]) for _, r in logs.iterrows()
    ]


def tool_results(lab: Lab, task_id: str) -> list[dict]:
    return [
        dict(r["payload"], tool=r["tool_name"])
        for _, r in lab.logs(task=task_id, event="tool_result").iterrows()
    ]


# ---- approvals ----------------------------------------------------------------------------


def test_command_waits_for_approval_then_really_runs(cc_lab, fake, project):
    fake.script(bash_turn("echo approved > proof.txt"), final("Wrote proof.txt."))
    handle = cc_lab.submit("Write proof.txt", profile="cc-guarded", project=project)

    items = cc_lab.wait_inbox(WAIT, task=handle.id)
    assert handle.info()["status"] == "waiting"
    item = items.iloc[0]
    assert (item["kind"], item["tool_name"]) == ("permission", "Bash")
    assert item["tool_input"]["command"] == "echo approved > proof.txt"
    assert not (project / "proof.txt").exists()  # nothing ran before the decision

    cc_lab.decide(item["id"], "allow")
    handle.wait(WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert handle.result == "Wrote proof.txt."
    assert (project / "proof.txt").read_text() == "approved\n"
    assert decisions(cc_lab, handle.id) == [("Bash", "allow", "human")]
    results = tool_results(cc_lab, handle.id)
    assert [(r["tool"], r["is_error"]) for r in results] == [("Bash", False)]
    # The CLI sent the tool result back to the model in the next call.
    assert len(fake.main_requests) == 2
    last_user = fake.main_requests[1].body["messages"][-1]["content"]
    assert any(b.get("type") == "tool_result" for b in last_user)
    session = handle.info()["session_id"]
    assert session and len(session) == 36  # the CLI's session UUID, stored for resume


def test_denied_command_never_runs_and_the_agent_reads_the_message(cc_lab, fake, project):
    fake.script(bash_turn("touch should-not-exist.txt"), final("Understood, I will not."))
    handle = cc_lab.submit("Touch a file", profile="cc-guarded", project=project)
    item = cc_lab.wait_inbox(WAIT, task=handle.id).iloc[0]

    cc_lab.decide(item["id"], "deny", "Do not create files; list them with Glob instead.")
    handle.wait(WAIT)

    assert handle.status == "completed"
    assert not (project / "should-not-exist.txt").exists()
    assert decisions(cc_lab, handle.id) == [("Bash", "deny", "human")]
    results = fake.main_requests[1].body["messages"][-1]["content"]
    denied = [b for b in results if b.get("type") == "tool_result"]
    assert denied and denied[0]["is_error"] is True
    assert "list them with Glob instead" in json.dumps(denied[0]["content"])


def test_always_allow_saves_a_rule_and_the_next_identical_request_skips_the_inbox(
    cc_lab, fake, project
):
    # (A rule never covers a redirection into a file, so the command writes through touch.)
    cmd = "touch seen.txt"
    fake.script(bash_turn(cmd), bash_turn(cmd, text="Once more."), final("Touched twice."))
    handle = cc_lab.submit("Log twice", profile="cc-guarded", project=project)
    item = cc_lab.wait_inbox(WAIT, task=handle.id).iloc[0]

    outcome = cc_lab.decide(item["id"], "always")
    handle.wait(WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert (project / "seen.txt").exists()
    assert [(r["tool"], r["is_error"]) for r in tool_results(cc_lab, handle.id)] == [
        ("Bash", False),
        ("Bash", False),
    ]
    all_items = cc_lab.inbox("all")
    assert list(all_items[all_items["task_id"] == handle.id]["id"]) == [item["id"]]
    assert decisions(cc_lab, handle.id) == [("Bash", "allow", "human"), ("Bash", "allow", "rule")]
    assert outcome["rule"] in set(cc_lab.rules()["rule"])


def test_reads_go_through_the_cascade_too(cc_lab, fake, project):
    """Claude Code would read files in its working folder without asking; our hook makes it
    ask, so a profile that does not auto-approve Read sees the request in the inbox."""
    fake.script(
        {
            "text": "Reading.",
            "tool_uses": [{"name": "Read", "input": {"file_path": str(project / "README.md")}}],
        },
        final("Could not read it."),
    )
    handle = cc_lab.submit("Read the readme", profile="cc-guarded", project=project)
    item = cc_lab.wait_inbox(WAIT, task=handle.id).iloc[0]
    assert item["tool_name"] == "Read"
    assert item["tool_input"]["file_path"] == str(project / "README.md")

    cc_lab.decide(item["id"], "deny", "Not now.")
    handle.wait(WAIT)
    assert handle.status == "completed"
    sent = request_text(fake.main_requests[1])
    assert "Not now." in sent and "A tiny project for tests" not in sent


def test_profile_auto_deny_is_answered_without_the_inbox(cc_lab, fake, project):
    (project / "keep.txt").write_text("keep")
    fake.script(bash_turn("rm keep.txt"), final("I left it."))
    handle = cc_lab.run("Remove keep.txt", profile="cc-guarded", project=project, timeout=WAIT)

    assert handle.status == "completed"
    assert (project / "keep.txt").exists()
    assert decisions(cc_lab, handle.id) == [("Bash", "deny", "profile_auto_deny")]
    assert cc_lab.inbox("all").empty
    assert "Denied by profile cc-guarded policy" in request_text(fake.main_requests[1])


# ---- usage ----------------------------------------------------------------------------------


def test_usage_rows_carry_each_calls_exact_tokens(cc_lab, fake, project):
    fake.script(
        bash_turn(
            "echo hi",
            input_tokens=100,
            output_tokens=20,
            cache_read_input_tokens=30,
            cache_creation_input_tokens=5,
        ),
        final("Said hi.", input_tokens=50, output_tokens=5),
    )
    handle = cc_lab.run("Say hi", profile="cc-auto", project=project, timeout=WAIT)
    assert handle.status == "completed", handle.info()["failure_reason"]

    usage = cc_lab.usage()
    rows = usage[usage["task_id"] == handle.id]
    got = sorted(
        (r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens)
        for r in rows.itertuples()
    )
    assert got == [(50, 5, 0, 0), (100, 20, 30, 5)]
    assert set(rows["provider"]) == {"anthropic"}
    assert set(rows["model"]) == {MODEL}
    assert set(rows["runtime_id"]) == {"claude-code"}
    notice = next(
        r["payload"]
        for _, r in cc_lab.logs(task=handle.id, event="notice").iterrows()
        if r["payload"]["message"] == "claude-code finished"
    )
    # The CLI's own cost for the session equals what the ledger priced, call by call.
    assert math.isclose(rows["cost_usd"].sum(), notice["session_total_cost_usd"], rel_tol=1e-6)


# ---- cancel and resume ----------------------------------------------------------------------


def test_cancel_mid_command_stops_the_cli_and_everything_it_started(cc_lab, fake, project):
    # (Claude Code refuses a plain `sleep 30 && …` as wasteful; a Python sleep it runs.)
    slow = 'python3 -c \'import time; time.sleep(30); open("late.txt", "w").write("x")\''
    fake.script(bash_turn(slow), final("unreachable"))
    handle = cc_lab.submit("Wait a while", profile="cc-auto", project=project)
    running = wait_until(
        lambda: {p: c for p, c in run_processes().items() if "time.sleep(30)" in c},
        timeout=WAIT,
    )
    markers = run_markers()
    started = run_processes(markers)
    assert len(started) >= 2  # the CLI and the shell running the command

    handle.cancel()
    handle.wait(WAIT)

    assert handle.status == "cancelled"
    wait_until(lambda: not run_processes(markers), timeout=10)
    assert not (set(running) & set(run_processes(markers)))
    assert not (project / "late.txt").exists()


def test_resume_continues_the_same_session_and_books_only_new_calls(cc_lab, fake, project):
    fake.script(
        bash_turn(
            "echo one > first.txt",
            text="The code word is PLUM.",
            input_tokens=100,
            output_tokens=10,
        ),
        final("Resumed; the code word was PLUM.", input_tokens=300, output_tokens=20),
    )
    handle = cc_lab.submit("Remember PLUM", profile="cc-auto", project=project, max_turns=1)
    handle.wait(WAIT)
    assert handle.status == "failed"
    assert "max turns" in handle.info()["failure_reason"]
    session = handle.info()["session_id"]
    assert session

    handle.resume()
    handle.wait_for("completed", "failed", "cancelled", timeout=WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert handle.result == "Resumed; the code word was PLUM."
    assert handle.info()["session_id"] == session
    resumed = fake.main_requests[-1].body["messages"]
    assistant_texts = [
        b.get("text")
        for m in resumed
        if m["role"] == "assistant"
        for b in m["content"]
        if isinstance(b, dict)
    ]
    assert "The code word is PLUM." in assistant_texts  # the fake sees the earlier turn
    usage = cc_lab.usage()
    rows = usage[usage["task_id"] == handle.id]
    assert sorted(zip(rows["input_tokens"], rows["output_tokens"], strict=True)) == [
        (100, 10),
        (300, 20),
    ]
    assert list(rows.sort_values("started_at")["activity"]) == ["task_run", "task_resume"]


# ---- failures -------------------------------------------------------------------------------


def test_provider_error_fails_the_task_with_the_reason_and_no_key(cc_lab, fake, project):
    fake.set_default("POST", MESSAGES_PATH, http_error(401, message="invalid x-api-key"))
    handle = cc_lab.run("Anything", profile="cc-auto", project=project, timeout=WAIT)

    assert handle.status == "failed"
    reason = handle.info()["failure_reason"]
    assert "claude-code" in reason and ("401" in reason or "invalid x-api-key" in reason)
    assert KEY not in reason


def test_a_killed_cli_fails_the_task_instead_of_hanging(cc_lab, fake, project):
    fake.script(bash_turn("echo never"), final("unreachable"))
    handle = cc_lab.submit("Run something", profile="cc-guarded", project=project)
    cc_lab.wait_inbox(WAIT, task=handle.id)
    import os
    import signal

    for pid, cmd in run_processes().items():
        if Path(cmd.split(" ")[0]).name == "claude":
            os.kill(pid, signal.SIGKILL)
    handle.wait(WAIT)

    assert handle.status == "failed"
    assert "claude-code" in handle.info()["failure_reason"]


# ---- profile features -----------------------------------------------------------------------


def test_profile_smoke_tests_run_on_claude_code_and_are_stored(tmp_path, fake):
    profiles = tmp_path / "profiles"
    write_cli_profile(
        profiles,
        "cc-smoke",
        "claude-code",
        tools=["Read"],
        approve=["Read"],
        extra='tests:\n  - task: "say hello"\n    expectedKeywords: [hello]\n',
    )
    options = {
        "claude-code": {
            "base_url": fake.base_url,
            "api_key": KEY,
            "model": MODEL,
            "config_dir": str(tmp_path / "cfg"),
        }
    }
    fake.script(final("Hello from the fake!"))
    with Lab(home=tmp_path / "ws", profile_dirs=[profiles], runtime_options=options) as lab:
        df = lab.test_profile("cc-smoke", runtime="claude-code", timeout=WAIT)
        stored = lab.sql("SELECT runtime_id, passed FROM profile_test_runs")

    assert list(df["passed"]) == [True]
    assert list(zip(stored["runtime_id"], stored["passed"], strict=True)) == [("claude-code", True)]


def test_skill_md_is_the_system_prompt_and_tools_follow_the_profile(cc_lab, fake, project):
    fake.script(final("ok"))
    handle = cc_lab.run("Hello", profile="cc-guarded", project=project, timeout=WAIT)
    assert handle.status == "completed"

    body = fake.main_requests[0].body
    system = json.dumps(body["system"])
    assert "You are a careful test agent." in system
    offered = sorted(t["name"] for t in body.get("tools", []))
    assert offered == ["Bash", "Glob", "Read", "Write"]
    assert body["model"] == MODEL
    assert body["messages"][0]["role"] == "user"


MCP_SERVER = r"""
import json, sys

def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    msg = json.loads(line)
    method, rid = msg.get("method"), msg.get("id")
    if rid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"],
            "capabilities": {"tools": {}}, "serverInfo": {"name": "notes", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [{
            "name": "lookup", "description": "Look a note up by key.",
            "inputSchema": {"type": "object", "properties": {"key": {"type": "string"}},
                            "required": ["key"]}}]}})
    elif method == "tools/call":
        key = msg["params"]["arguments"]["key"]
        send({"jsonrpc": "2.0", "id": rid, "result": {
            "content": [{"type": "text", "text": f"note[{key}] = blue"}], "isError": False}})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": method}})
"""


def test_profile_mcp_servers_are_passed_through_and_their_tools_governed(tmp_path, fake, project):
    import sys

    server = tmp_path / "notes_server.py"
    server.write_text(MCP_SERVER)
    profiles = tmp_path / "profiles"
    mcp = json.dumps({"notes": {"command": sys.executable, "args": [str(server)]}})
    write_cli_profile(
        profiles,
        "cc-mcp",
        "claude-code",
        tools=["Read", "mcp__notes__lookup"],
        approve=["mcp__notes__lookup"],
        extra=f"mcpServers: {mcp}\n",
    )
    fake.script(
        {
            "text": "Looking it up.",
            "tool_uses": [{"name": "mcp__notes__lookup", "input": {"key": "sky"}}],
        },
        final("The sky note says blue."),
    )
    options = {
        "claude-code": {
            "base_url": fake.base_url,
            "api_key": KEY,
            "model": MODEL,
            "config_dir": str(tmp_path / "cfg"),
            "max_retries": 0,
        }
    }
    with Lab(home=tmp_path / "ws", profile_dirs=[profiles], runtime_options=options) as lab:
        handle = lab.run(
            "What does the sky note say?", profile="cc-mcp", project=project, timeout=WAIT
        )
        ready = next(
            p
            for p in lab.logs(task=handle.id, event="notice")["payload"]
            if p["message"] == "claude-code session ready"
        )
        results = tool_results(lab, handle.id)
        tiers = decisions(lab, handle.id)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert {"name": "notes", "status": "connected"} in ready["mcp_servers"]
    assert "mcp__notes__lookup" in ready["tools"]
    assert tiers == [("mcp__notes__lookup", "allow", "profile_auto_approve")]
    assert [(r["tool"], r["output"]) for r in results] == [
        ("mcp__notes__lookup", "note[sky] = blue")
    ]
    offered = {t["name"] for t in fake.main_requests[0].body["tools"]}
    assert "mcp__notes__lookup" in offered
