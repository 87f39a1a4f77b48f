"""§1.9.14 restart: the owner dies (or closes) mid-step and the workspace is reopened. With
``workflows.resume_on_open`` the interrupted child resumes and the run completes; without it the
run waits, paused with reason ``engine stopped``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from stagent_lab import Lab

ASKS = [{"tool": "Bash", "input": {"command": "echo checked"}}, {"result": "checked"}]
STEPS = [
    {"name": "Prepare", "prompt": "Prepare.", "profile": "tester", "script": [{"result": "ready"}]},
    {"name": "Check", "prompt": "Check.", "profile": "guarded", "script": ASKS},
    {"name": "Report", "prompt": "Report.", "profile": "tester", "script": [{"result": "report"}]},
]

HOLDER = """
import sys
from stagent_lab import Lab
lab = Lab(home=sys.argv[1], profile_dirs=[sys.argv[2]])
if len(sys.argv) > 3:
    lab.set_setting("workflows.resume_on_open", sys.argv[3])
lab.workflows.create("ops", steps={steps!r})
run = lab.workflows.run("ops")
lab.wait_inbox(60)  # the Check step's child asks for Bash: it is mid-step now
lab.sql("SELECT 1")
print(run.id, flush=True)
sys.stdin.read()
"""


def kill_mid_step(home, profiles_dir, tmp_path, *extra: str) -> str:
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(HOLDER.format(steps=STEPS)))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(home), str(profiles_dir), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = proc.stdout.readline().strip()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()
    assert run_id, "the holder did not get mid-step"
    return run_id


@pytest.mark.timeout(120)
def test_sigkill_mid_step_then_reopen_resumes_the_child_and_completes(home, profiles_dir, tmp_path):
    run_id = kill_mid_step(home, profiles_dir, tmp_path)
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    try:
        run = lab.workflows.run_handle(run_id)
        check = run.steps().set_index("step_id").loc["check"]
        task = lab.task(check["task_id"])
        assert task.view().resume_count == 1  # the orphan sweep failed it; the run resumed it
        items = lab.wait_inbox(30)
        assert items["task_id"].tolist() == [check["task_id"]]
        lab.decide(items["id"].iloc[0], "allow")
        assert run.wait(60).status == "completed" and run.output == "report"
        assert run.steps()["attempt"].max() == 1  # the same step run, the same child task
    finally:
        lab.close()


@pytest.mark.timeout(120)
def test_without_resume_on_open_the_run_pauses_until_resumed(home, profiles_dir, tmp_path):
    run_id = kill_mid_step(home, profiles_dir, tmp_path, "false")
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    try:
        run = lab.workflows.run_handle(run_id)
        view = run.view()
        assert view.status == "paused" and view.stop_reason == "engine stopped"
        task_id = run.steps().set_index("step_id").loc["check", "task_id"]
        assert lab.task(task_id).status == "failed"
        run.resume()
        items = lab.wait_inbox(30)
        lab.decide(items["id"].iloc[0], "allow")
        assert run.wait(60).status == "completed"
    finally:
        lab.close()


def test_close_mid_step_then_reopen_resumes_the_paused_child(home, profiles_dir, wait_until):
    slow = [{"say": "working"}, {"sleep": 1.0}, {"result": "slow done"}]
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    lab.workflows.create(
        "ops", profile="tester",
        steps=[{"name": "Slow", "prompt": "S.", "script": slow},
               {"name": "After", "prompt": "A.", "script": [{"result": "after"}]}],
    )  # fmt: skip
    run = lab.workflows.run("ops")
    wait_until(lambda: lab.sql("SELECT count(*) AS n FROM agent_logs WHERE event = "
                               "'assistant_text'")["n"].iloc[0] == 1)  # fmt: skip
    task_id = run.steps().set_index("step_id").loc["slow", "task_id"]
    lab.close()  # running children become paused (engine closed)

    lab = Lab(home=home, profile_dirs=[profiles_dir])
    try:
        again = lab.workflows.run_handle(run.id)
        assert again.wait(60).status == "completed" and again.output == "after"
        assert lab.task(task_id).view().resume_count == 1
    finally:
        lab.close()
