"""§1.9.4 delays on the engine clock: ``delayed`` with ``resume_at``, the pre-delay output
carried across, and a restart (clean close, or SIGKILL) in the middle that still resumes on time.
No test sleeps to reach a time: a FakeClock is advanced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from stagent_lab import Lab
from stagent_lab.engine.clock import FakeClock

START = datetime(2026, 3, 2, 9, 0, 0)
STEPS = [
    {"name": "Draft", "prompt": "Draft the post.", "script": [{"result": "DRAFT-42"}]},
    {"name": "Cool off", "delay": "1h"},
    {"name": "Publish", "prompt": "Publish it.", "script": [{"result": "published"}]},
]


def make(lab) -> None:
    lab.workflows.create("post", profile="tester", steps=STEPS)


def publish_prompt(lab) -> str:
    df = lab.sql("SELECT prompt FROM tasks WHERE title = 'post · Publish'")
    return df["prompt"].iloc[0]


def test_a_delay_keeps_the_previous_output_and_resumes_on_time(flab, clock, wait_until):
    make(flab)
    run = flab.workflows.run("post")
    run.wait(30, until=["delayed"])
    view = run.view()
    started = view.started_at
    assert view.resume_at is not None
    assert timedelta(minutes=59) < view.resume_at - started < timedelta(minutes=61)
    steps = run.steps().set_index("step_id")
    assert steps.loc["cool-off", "status"] == "delayed"
    delayed = run.logs().query("event == 'workflow_delayed'")["payload"].iloc[0]
    assert delayed["step_id"] == "cool-off"
    clock.advance(timedelta(minutes=59))
    assert run.status == "delayed"
    assert len(flab.tasks()) == 1
    clock.advance(timedelta(minutes=1, seconds=1))
    run.wait(30)
    assert run.status == "completed" and run.output == "published"
    prompt = publish_prompt(flab)
    assert '## Output of the previous step, "Draft"\nDRAFT-42' in prompt


def test_a_delayed_run_keeps_the_service_up_until_it_ends(flab, clock):
    service = flab.workspace.service
    assert not any("workflow" in r for r in service.live_work())
    make(flab)
    run = flab.workflows.run("post")
    run.wait(30, until=["delayed"])
    assert "1 active workflow run(s)" in service.live_work()  # no task runs, yet it must wake
    clock.advance(timedelta(minutes=61))
    run.wait(30)
    assert run.status == "completed"
    assert not any("workflow" in r for r in service.live_work())


def test_resume_ends_a_delay_at_once(flab, wait_until):
    make(flab)
    run = flab.workflows.run("post")
    run.wait(30, until=["delayed"])
    run.resume()
    assert run.wait(30).status == "completed"


def test_a_delay_that_ends_while_paused_completes_on_resume(flab, clock):
    make(flab)
    run = flab.workflows.run("post")
    run.wait(30, until=["delayed"])
    run.pause()
    assert run.status == "paused"
    clock.advance(timedelta(hours=2))
    assert run.status == "paused"
    assert len(flab.tasks()) == 1
    run.resume()
    assert run.wait(30).status == "completed"


def test_close_and_reopen_during_the_delay_resumes_on_time(home, profiles_dir):
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=FakeClock(START))
    make(lab)
    run = lab.workflows.run("post")
    run.wait(30, until=["delayed"])
    resume_at = run.view().resume_at
    lab.close()

    clock = FakeClock(START + timedelta(minutes=30))
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=clock)
    try:
        again = lab.workflows.run_handle(run.id)
        assert again.status == "delayed" and again.view().resume_at == resume_at
        clock.advance(timedelta(minutes=29))
        assert again.status == "delayed"
        clock.advance(timedelta(minutes=1, seconds=1))
        assert again.wait(30).status == "completed"
        assert "DRAFT-42" in publish_prompt(lab)
    finally:
        lab.close()


def test_an_overdue_delay_continues_at_once_after_reopen(home, profiles_dir):
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=FakeClock(START))
    make(lab)
    run = lab.workflows.run("post")
    run.wait(30, until=["delayed"])
    lab.close()
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=FakeClock(START + timedelta(hours=3)))
    try:
        assert lab.workflows.run_handle(run.id).wait(30).status == "completed"
    finally:
        lab.close()


HOLDER = """
import sys
from datetime import datetime
from stagent_lab import Lab
from stagent_lab.engine.clock import FakeClock
lab = Lab(home=sys.argv[1], profile_dirs=[sys.argv[2]], clock=FakeClock(datetime(2026, 3, 2, 9)))
lab.workflows.create("post", profile="tester", steps={steps!r})
run = lab.workflows.run("post")
run.wait(60, until=["delayed"])
lab.sql("SELECT 1")  # every change so far is committed
print(run.id, flush=True)
sys.stdin.read()  # hold the workspace until killed
"""


@pytest.mark.timeout(120)
def test_sigkill_during_the_delay_then_reopen_resumes_on_time(home, profiles_dir, tmp_path):
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(HOLDER.format(steps=STEPS)))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(home), str(profiles_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning"},
    )
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, "the holder did not start the run"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()
    assert Path(home / "stagent.duckdb").exists()
    clock = FakeClock(START + timedelta(minutes=10))
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=clock)
    try:
        run = lab.workflows.run_handle(run_id)
        assert run.status == "delayed"
        clock.advance(timedelta(minutes=49))
        assert run.status == "delayed"
        clock.advance(timedelta(minutes=1, seconds=1))
        assert run.wait(30).status == "completed"
        assert "DRAFT-42" in publish_prompt(lab)
    finally:
        lab.close()


def test_loop_waits_between_iterations(flab, clock, wait_until):
    flab.workflows.create(
        "poll",
        pattern="loop",
        loop={"max_iterations": 3, "delay_between": "30m"},
        profile="tester",
        steps=[{"name": "Check", "prompt": "Check.", "script": [{"result": "not yet"}]}],
    )
    run = flab.workflows.run("poll")
    run.wait(30, until=["delayed"])
    assert len(flab.tasks()) == 1
    clock.advance(timedelta(minutes=31))
    wait_until(lambda: len(flab.tasks()) == 2)
    run.wait(30, until=["delayed"])
    clock.advance(timedelta(minutes=31))
    assert run.wait(30).status == "completed"
    assert run.stop_reason == "max_iterations" and len(flab.tasks()) == 3
