"""The engine's contract: background execution, states, cancel, limits, safety nets."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from stagent_lab import (
    Lab,
    ProfileNotFoundError,
    ResumeLimitError,
    RuntimeNotAvailableError,
    ScriptError,
    TaskStateError,
)
from stagent_lab.engine.states import TRANSITIONS, TaskStatus, check_transition

ALL = list(TaskStatus)


@pytest.mark.parametrize("cur", ALL)
@pytest.mark.parametrize("new", ALL)
def test_every_transition_is_checked(cur, new):
    if new in TRANSITIONS[cur]:
        assert check_transition(cur, new) == new
    else:
        with pytest.raises(TaskStateError, match=f"illegal transition {cur} → {new}"):
            check_transition(cur, new)


def test_submit_returns_while_long_task_runs(lab, project):
    handle = lab.submit(
        "long job",
        profile="tester",
        project=project,
        script=[{"say": "starting"}, {"sleep": 30}, {"say": "done"}],
    )
    # submit has returned; the task is still in flight on the engine thread.
    assert handle.status in ("queued", "running")
    handle.wait_for("running", timeout=60)
    assert not handle.done
    handle.cancel().wait(timeout=60)
    assert handle.status == "cancelled"
    statuses = [p["to"] for p in lab.logs(task=handle.id, event="status")["payload"]]
    assert statuses == ["queued", "running", "cancelled"]


def test_completed_run_records_result_logs_and_usage(lab, project):
    handle = lab.submit(
        "read it",
        profile="tester",
        project=project,
        script=[
            {"tool": "Read", "input": {"file_path": "README.md"}},
            {"say": "The README says it is a tiny project."},
        ],
    )
    handle.wait(timeout=60)
    assert handle.status == "completed"
    assert handle.result == "The README says it is a tiny project."
    logs = handle.logs()
    events = logs["event"].tolist()
    assert events[:3] == ["status", "status", "task_started"]
    assert "tool_request" in events and "tool_result" in events and events[-1] == "status"
    result = logs[logs.event == "tool_result"].iloc[0]["payload"]
    assert "Demo project" in result["output"]
    decision = logs[logs.event == "tool_decision"].iloc[0]["payload"]
    assert decision["tier"] == "profile_auto_approve"
    assert list(logs["seq"]) == list(range(1, len(logs) + 1))
    usage = handle.usage()
    assert len(usage) == 2  # two turns: the tool call and the final text
    assert (usage["input_tokens"] > 0).all() and (usage["output_tokens"] > 0).all()
    assert set(usage["pricing_source"]) == {"free"} and usage["cost_usd"].sum() == 0
    row = handle.info()
    assert row["turns"] == 2 and row["started_at"] is not None and row["finished_at"] is not None


def test_stream_without_result_fails_with_diagnostic(lab, project):
    handle = lab.submit(
        "x",
        profile="tester",
        project=project,
        script=[{"tool": "Glob", "input": {"pattern": "*.md"}}],
    )
    handle.wait(timeout=60)
    assert handle.status == "failed"
    assert "ended without a result after 1 turn" in handle.failure_reason


def test_max_turns_enforced(lab, project):
    handle = lab.submit(
        "x",
        profile="tester",
        project=project,
        max_turns=2,
        script=[{"say": "1"}, {"say": "2"}, {"say": "3"}],
    )
    handle.wait(timeout=60)
    assert handle.status == "failed"
    assert handle.failure_reason == "max turns reached (2)"
    assert len(handle.usage()) == 2


def test_budget_enforced_with_real_prices(lab, project):
    steps = [{"say": "word " * 400}] * 10
    handle = lab.submit(
        "x",
        profile="tester",
        project=project,
        model="claude-sonnet-4-5",
        max_budget_usd=0.01,
        script=steps,
    )
    handle.wait(timeout=60)
    assert handle.status == "failed"
    assert handle.failure_reason.startswith("budget exceeded: spent $")
    usage = handle.usage()
    assert set(usage["pricing_source"]) == {"genai-prices"}
    assert usage["cost_usd"].sum() > 0.01
    assert len(usage) < 10


def test_failing_script_step(lab, project):
    handle = lab.submit(
        "x",
        profile="tester",
        project=project,
        script="- say: trying\n- fail: upstream API returned garbage\n",
    )
    handle.wait(timeout=60)
    assert handle.status == "failed"
    assert handle.failure_reason == "upstream API returned garbage"


def test_bad_inputs_fail_at_submit_with_precise_errors(lab, project):
    with pytest.raises(ProfileNotFoundError, match=r"valid profiles: .*code-reviewer"):
        lab.submit("x", profile="nope", project=project)
    with pytest.raises(RuntimeNotAvailableError, match="unknown runtime 'warp'"):
        lab.submit("x", profile="tester", runtime="warp", project=project)
    with pytest.raises(ScriptError, match=r"step 2: needs exactly one of"):
        lab.submit("x", profile="tester", project=project, script=[{"say": "a"}, {"sya": "b"}])
    with pytest.raises(ScriptError, match="line 2"):
        lab.submit("x", profile="tester", project=project, script="- say: a\n-: : :\n  bad")
    with pytest.raises(ValueError, match="unknown project 'nowhere'"):
        lab.submit("x", profile="tester", runtime="scripted", project="nowhere")
    with pytest.raises(ValueError, match="prompt is empty"):
        lab.submit("   ", profile="tester")
    with pytest.raises(ValueError, match="max_turns"):
        lab.submit("x", profile="tester", max_turns=0)


def test_cancel_kills_running_bash_child(lab, project):
    handle = lab.submit(
        "x",
        profile="tester",
        project=project,
        script=[
            {"tool": "Bash", "input": {"command": "sleep 300 & echo $! > child.pid; wait"}},
            {"say": "never"},
        ],
    )
    pid_file = project / "child.pid"
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the Bash child never started"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    assert _alive(pid)
    handle.cancel().wait(timeout=60)
    assert handle.status == "cancelled"
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def test_concurrency_limit_queues_the_rest(tmp_path, profiles_dir, project):
    peak = 0
    running: set[str] = set()
    lock = threading.Lock()

    def watch(ev):
        nonlocal peak
        if ev["event"] != "status":
            return
        with lock:
            if '"to": "running"' in ev["payload"]:
                running.add(ev["task_id"])
            elif ev["task_id"] in running:
                running.discard(ev["task_id"])
            peak = max(peak, len(running))

    with Lab(home=tmp_path / "ws2", profile_dirs=[profiles_dir], max_concurrent=2) as lab:
        lab.subscribe(watch)
        handles = [
            lab.submit(
                f"t{i}", profile="tester", project=project, script=[{"sleep": 0.2}, {"say": "ok"}]
            )
            for i in range(6)
        ]
        for h in handles:
            h.wait(timeout=60)
        assert all(h.status == "completed" for h in handles)
    assert peak == 2


def test_resume_is_capped_and_says_so(lab, project):
    handle = lab.submit("x", profile="tester", project=project, script=[{"fail": "boom"}])
    handle.wait(timeout=60)
    for _ in range(3):
        handle.resume().wait(timeout=60)
        assert handle.status == "failed"
    with pytest.raises(ResumeLimitError, match="already resumed 3 times"):
        handle.resume()
    assert handle.info()["resume_count"] == 3


def test_resume_continues_from_last_completed_step(lab, project):
    marker = project / "go"

    def script(prompt, profile):
        yield {"say": "step one"}
        yield {"sleep": 0 if marker.exists() else 60}
        yield {"say": "step two"}

    handle = lab.submit("x", profile="tester", project=project, script=script)
    handle.wait_for("running", timeout=60)
    _wait_for_event(lab, handle.id, "assistant_text")
    handle.cancel().wait(timeout=60)
    assert handle.status == "cancelled"
    marker.write_text("ready")
    handle.resume().wait(timeout=60)
    assert handle.status == "completed" and handle.result == "step two"
    texts = [p["text"] for p in handle.logs().query("event == 'assistant_text'")["payload"]]
    assert texts == ["step one", "step two"]  # step one was replayed, not run again
    assert handle.info()["resume_count"] == 1
    assert set(handle.usage()["activity"]) == {"task_run", "task_resume"}


def _wait_for_event(lab, task_id, event, timeout=60):
    deadline = time.monotonic() + timeout
    while lab.logs(task=task_id, event=event).empty:
        assert time.monotonic() < deadline, f"no {event} event for {task_id}"
        time.sleep(0.05)


def test_illegal_control_calls(lab, project):
    handle = lab.submit("x", profile="tester", project=project, script=[{"say": "hi"}])
    handle.wait(timeout=60)
    with pytest.raises(TaskStateError, match="only active tasks can be cancelled"):
        handle.cancel()
    with pytest.raises(TaskStateError, match="only failed, cancelled or paused tasks resume"):
        handle.resume()


def test_close_pauses_running_tasks_and_they_resume(tmp_path, profiles_dir, project):
    home = tmp_path / "ws3"
    marker = project / "go"

    def script(prompt, profile):
        yield {"say": "one"}
        yield {"sleep": 0 if marker.exists() else 60}
        yield {"say": "two"}

    lab = Lab(home=home, profile_dirs=[profiles_dir])
    handle = lab.submit("x", profile="tester", project=project, script=script)
    _wait_for_event(lab, handle.id, "assistant_text")
    tid = handle.id
    lab.close()
    marker.write_text("ready")
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab2:
        h = lab2.task(tid)
        assert h.status == "paused" and h.failure_reason == "engine closed"
        # A new process no longer has the Python callable: resume says so, then takes it again.
        with pytest.raises(TaskStateError, match="pass it again"):
            h.resume()
        h.resume(script=script).wait(timeout=60)
        assert h.status == "completed" and h.result == "two"
