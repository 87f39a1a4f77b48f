"""openai-codex-app-server end to end: the real ``codex`` binary (npm @openai/codex, installed
by ``make npm``) against the loopback Responses fake, governed by the engine's cascade.

Each test gives Codex its own CODEX_HOME under tmp_path and a ``stagent`` model provider
(``base_url`` = the fake, ``wire_api = "responses"``); plugins, apps and update checks are off,
so the only network traffic is to the fake on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal

import pytest

from stagent_lab import Lab
from tests.fakes import stall
from tests.fakes.cli_support import (
    RESPONSES_PATH,
    CodexCliFake,
    codex_binary,
    exec_turn,
    patch_turn,
    request_text,
    run_markers,
    run_processes,
    wait_until,
    write_cli_profile,
)

CODEX = codex_binary()
pytestmark = pytest.mark.skipif(
    CODEX is None,
    reason="the codex binary is absent: run `make npm` (npm ci installs @openai/codex into "
    "node_modules), set STAGENT_CODEX_BIN, or put `codex` on PATH",
)

KEY = "sk-openai-test-KEY-0123456789abcdef"
MODEL = "gpt-5.1-codex"
RUNTIME = "openai-codex-app-server"
WAIT = 60
READ_ONLY = f"runtimeOverrides:\n  {RUNTIME}:\n    options: {{sandbox: read-only}}\n"


@pytest.fixture
def fake():
    with CodexCliFake() as server:
        yield server
    assert server.errors == []


def codex_options(tmp_path, fake, **extra) -> dict:
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    return {
        RUNTIME: {
            "base_url": fake.v1_url,
            "api_key": KEY,
            "model": MODEL,
            "codex_home": str(home),
            **extra,
        }
    }


@pytest.fixture
def cx_lab(tmp_path, fake):
    profiles = tmp_path / "profiles"
    write_cli_profile(
        profiles,
        "cx-guarded",
        RUNTIME,
        tools=["Read", "Bash", "Write", "Edit"],
        approve=["Read"],
        deny=["Bash(command:rm *)"],
    )
    write_cli_profile(
        profiles,
        "cx-auto",
        RUNTIME,
        tools=["Read", "Bash", "Write", "Edit"],
        approve=["Read", "Bash", "Write", "Edit"],
    )
    write_cli_profile(
        profiles,
        "cx-readonly",
        RUNTIME,
        tools=["Read", "Write", "Edit"],
        approve=["Read"],
        extra=READ_ONLY,
    )
    lab = Lab(
        home=tmp_path / "ws", profile_dirs=[profiles], runtime_options=codex_options(tmp_path, fake)
    )
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


def outputs_sent(fake: CodexCliFake, index: int) -> list[str]:
    """The function_call_output texts in the index-th model request."""
    body = fake.response_requests[index].body or {}
    return [
        str(i.get("output"))
        for i in body.get("input", [])
        if i.get("type") == "function_call_output"
    ]


# ---- approvals ------------------------------------------------------------------------------


def test_command_waits_for_approval_then_really_runs(cx_lab, fake, project):
    fake.script(exec_turn("echo approved > proof.txt"), final("Wrote proof.txt."))
    handle = cx_lab.submit("Write proof.txt", profile="cx-guarded", project=project)

    item = cx_lab.wait_inbox(WAIT, task=handle.id).iloc[0]
    assert handle.info()["status"] == "waiting"
    assert (item["kind"], item["tool_name"]) == ("permission", "Bash")
    assert item["tool_input"]["command"] == "echo approved > proof.txt"  # shell wrapper gone
    assert "bash" in item["tool_input"]["raw_command"]
    assert not (project / "proof.txt").exists()

    cx_lab.decide(item["id"], "allow")
    handle.wait(WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert handle.result == "Wrote proof.txt."
    assert (project / "proof.txt").read_text() == "approved\n"
    assert decisions(cx_lab, handle.id) == [("Bash", "allow", "human")]
    assert [(r["tool"], r["is_error"]) for r in tool_results(cx_lab, handle.id)] == [
        ("Bash", False)
    ]
    thread = handle.info()["session_id"]
    assert thread and len(thread) == 36  # Codex's thread id, stored for resume


def test_denied_command_never_runs_and_the_agent_reads_the_message(cx_lab, fake, project):
    fake.script(exec_turn("touch should-not-exist.txt"), final("Understood."))
    handle = cx_lab.submit("Touch a file", profile="cx-guarded", project=project)
    item = cx_lab.wait_inbox(WAIT, task=handle.id).iloc[0]

    cx_lab.decide(item["id"], "deny", "Do not create files; describe the change instead.")
    handle.wait(WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert not (project / "should-not-exist.txt").exists()
    assert decisions(cx_lab, handle.id) == [("Bash", "deny", "human")]
    follow_up = request_text(fake.response_requests[1])
    assert "describe the change instead" in follow_up
    results = tool_results(cx_lab, handle.id)
    assert results[0]["is_error"] is True and "declined" in results[0]["output"]


def test_always_allow_answers_for_the_session_and_skips_the_inbox_next_time(cx_lab, fake, project):
    cmd = "touch seen.txt"
    fake.script(exec_turn(cmd), exec_turn(cmd, text="Once more."), final("Touched twice."))
    handle = cx_lab.submit("Touch twice", profile="cx-guarded", project=project)
    item = cx_lab.wait_inbox(WAIT, task=handle.id).iloc[0]

    outcome = cx_lab.decide(item["id"], "always")
    handle.wait(WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert (project / "seen.txt").exists()
    items = cx_lab.inbox("all")
    assert list(items[items["task_id"] == handle.id]["id"]) == [item["id"]]
    assert outcome["rule"] in set(cx_lab.rules()["rule"])
    # Codex remembered acceptForSession (no second approval request), or asked and our saved
    # rule answered: either way no human was needed, and both commands ran.
    assert decisions(cx_lab, handle.id)[0] == ("Bash", "allow", "human")
    assert all(d[2] == "rule" for d in decisions(cx_lab, handle.id)[1:])
    results = tool_results(cx_lab, handle.id)
    assert [(r["tool"], r["is_error"]) for r in results] == [("Bash", False), ("Bash", False)]


def test_file_change_approval_is_checked_per_file(cx_lab, fake, project):
    """In a read-only sandbox (set by the profile) a patch needs approval, per file."""
    fake.script(patch_turn("notes.txt", "hello"), final("Added notes.txt."))
    handle = cx_lab.submit("Add notes", profile="cx-readonly", project=project)
    item = cx_lab.wait_inbox(WAIT, task=handle.id).iloc[0]
    assert item["tool_name"] == "Write"  # a new file
    assert item["tool_input"]["file_path"] == str(project / "notes.txt")

    cx_lab.decide(item["id"], "allow")
    handle.wait(WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert (project / "notes.txt").read_text() == "hello\n"
    assert tool_results(cx_lab, handle.id)[-1]["tool"] == "Edit"


# ---- usage ----------------------------------------------------------------------------------


def test_usage_rows_carry_each_calls_exact_tokens(cx_lab, fake, project):
    fake.script(
        exec_turn(
            "echo hi", input_tokens=100, cached_tokens=10, output_tokens=20, reasoning_tokens=3
        ),
        final("Said hi.", input_tokens=150, output_tokens=5),
    )
    handle = cx_lab.run("Say hi", profile="cx-auto", project=project, timeout=WAIT)
    assert handle.status == "completed", handle.info()["failure_reason"]

    usage = cx_lab.usage()
    rows = usage[usage["task_id"] == handle.id]
    got = sorted(
        (r.input_tokens, r.cache_read_tokens, r.output_tokens, r.reasoning_tokens)
        for r in rows.itertuples()
    )
    assert got == [(90, 10, 20, 3), (150, 0, 5, 0)]
    assert set(rows["provider"]) == {"openai"}
    assert set(rows["model"]) == {MODEL}
    assert set(rows["runtime_id"]) == {RUNTIME}


# ---- cancel, resume, failures -----------------------------------------------------------------


def test_cancel_mid_turn_interrupts_and_leaves_no_process(cx_lab, fake, project):
    fake.script(stall(30, after_events=4))
    handle = cx_lab.submit("Think for a long time", profile="cx-auto", project=project)
    wait_until(lambda: len(fake.response_requests) == 1, timeout=WAIT)
    markers = run_markers()
    assert any("app-server" in cmd for cmd in run_processes(markers).values())

    handle.cancel()
    handle.wait(WAIT)

    assert handle.status == "cancelled"
    wait_until(lambda: not run_processes(markers), timeout=10)


def test_cancel_while_a_command_runs_kills_the_command_too(cx_lab, fake, project):
    slow = "python3 -c 'import time; time.sleep(30)' && touch late.txt"
    fake.script(exec_turn(slow), final("unreachable"))
    handle = cx_lab.submit("Wait a while", profile="cx-auto", project=project)
    wait_until(lambda: any("time.sleep(30)" in c for c in run_processes().values()), timeout=WAIT)
    markers = run_markers()
    assert len(run_processes(markers)) >= 2  # the server and the command's processes

    handle.cancel()
    handle.wait(WAIT)

    assert handle.status == "cancelled"
    wait_until(lambda: not run_processes(markers), timeout=10)
    assert not (project / "late.txt").exists()


def test_resume_continues_the_thread_and_books_only_new_calls(cx_lab, fake, project):
    fake.script(
        exec_turn("echo one", text="The code word is PLUM.", input_tokens=100, output_tokens=10),
        stall(30, after_events=3),
    )
    handle = cx_lab.submit("Remember PLUM", profile="cx-auto", project=project)
    wait_until(lambda: len(fake.response_requests) == 2, timeout=WAIT)
    handle.cancel()
    handle.wait(WAIT)
    assert handle.status == "cancelled"
    thread = handle.info()["session_id"]
    assert thread

    fake.script(final("Resumed; the code word was PLUM.", input_tokens=300, output_tokens=20))
    handle.resume()
    handle.wait_for("completed", "failed", "cancelled", timeout=WAIT)

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert handle.result == "Resumed; the code word was PLUM."
    assert handle.info()["session_id"] == thread
    resumed = request_text(fake.response_requests[-1])
    assert "The code word is PLUM." in resumed  # the fake sees the earlier turn
    assert "Remember PLUM" in resumed
    usage = cx_lab.usage()
    rows = usage[usage["task_id"] == handle.id]
    assert sorted(zip(rows["input_tokens"], rows["output_tokens"], strict=True)) == [
        (100, 10),
        (300, 20),
    ]


def test_a_dead_server_fails_the_task_instead_of_hanging(cx_lab, fake, project):
    fake.script(exec_turn("echo never"), final("unreachable"))
    handle = cx_lab.submit("Run something", profile="cx-guarded", project=project)
    cx_lab.wait_inbox(WAIT, task=handle.id)
    for pid, cmd in run_processes().items():
        if "app-server" in cmd:
            os.kill(pid, signal.SIGKILL)
    handle.wait(WAIT)

    assert handle.status == "failed"
    reason = handle.info()["failure_reason"]
    assert "codex" in reason and ("exited" in reason or "closed" in reason)
    assert KEY not in reason


def test_provider_error_fails_the_task_with_the_reason(tmp_path, fake, project):
    from tests.fakes import http_error

    fake.set_default("POST", RESPONSES_PATH, http_error(400, message="model is not supported"))
    profiles = tmp_path / "profiles"
    write_cli_profile(profiles, "cx-auto", RUNTIME, tools=["Bash"], approve=["Bash"])
    options = codex_options(
        tmp_path,
        fake,
        config={
            "model_providers.stagent.request_max_retries": 0,
            "model_providers.stagent.stream_max_retries": 0,
        },
    )
    with Lab(home=tmp_path / "ws", profile_dirs=[profiles], runtime_options=options) as lab:
        handle = lab.run("Anything", profile="cx-auto", project=project, timeout=WAIT)
        reason = handle.info()["failure_reason"]

    assert handle.status == "failed"
    assert "model is not supported" in reason


# ---- transports and instructions -------------------------------------------------------------


def test_websocket_transport_runs_a_task(tmp_path, fake, project):
    profiles = tmp_path / "profiles"
    write_cli_profile(profiles, "cx-auto", RUNTIME, tools=["Bash"], approve=["Bash"])
    fake.script(exec_turn("echo over-ws > ws.txt"), final("Done over websocket."))
    options = codex_options(tmp_path, fake, transport="websocket")
    with Lab(home=tmp_path / "ws", profile_dirs=[profiles], runtime_options=options) as lab:
        handle = lab.run("Use the websocket", profile="cx-auto", project=project, timeout=WAIT)
        notices = [p["message"] for p in lab.logs(task=handle.id, event="notice")["payload"]]

    assert handle.status == "completed", handle.info()["failure_reason"]
    assert handle.result == "Done over websocket."
    assert (project / "ws.txt").read_text() == "over-ws\n"
    assert "codex thread ready" in notices


def test_skill_md_reaches_the_model_and_the_sandbox_follows_the_profile(cx_lab, fake, project):
    fake.script(final("ok"))
    handle = cx_lab.run("Hello", profile="cx-guarded", project=project, timeout=WAIT)
    assert handle.status == "completed", handle.info()["failure_reason"]

    body = fake.response_requests[0].body
    assert body["model"] == MODEL
    assert "You are a careful test agent." in request_text(fake.response_requests[0])
    ready = next(
        p
        for p in cx_lab.logs(task=handle.id, event="notice")["payload"]
        if p["message"] == "codex thread ready"
    )
    assert ready["sandbox"] == "workspace-write"  # the profile may Write/Edit
    assert ready["approval_policy"] == "on-request"
    assert fake.response_requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_profile_smoke_tests_run_on_codex_and_are_stored(tmp_path, fake):
    profiles = tmp_path / "profiles"
    write_cli_profile(
        profiles,
        "cx-smoke",
        RUNTIME,
        tools=["Read"],
        approve=["Read"],
        extra='tests:\n  - task: "say hello"\n    expectedKeywords: [hello]\n',
    )
    fake.script(final("Hello from Codex's fake!"))
    options = codex_options(tmp_path, fake)
    with Lab(home=tmp_path / "ws", profile_dirs=[profiles], runtime_options=options) as lab:
        df = lab.test_profile("cx-smoke", runtime=RUNTIME, timeout=WAIT)
        stored = lab.sql("SELECT runtime_id, passed FROM profile_test_runs")

    assert list(df["passed"]) == [True]
    assert list(zip(stored["runtime_id"], stored["passed"], strict=True)) == [(RUNTIME, True)]
