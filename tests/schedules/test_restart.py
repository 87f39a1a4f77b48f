"""Restarts: catch-up after downtime (acceptance 2.7.7), the crash-safe firing order (a kill
between the firing's transaction and its task, or after both), and a schedule that keeps
firing in the service with no client attached."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

from stagent_lab import Lab
from stagent_lab.api import schedules as srq
from stagent_lab.engine.clock import FakeClock
from stagent_lab.service.core import WorkspaceService
from stagent_lab.service.local import LocalWorkspace
from tests.schedules.helpers import (
    DONE_SCRIPT,
    START,
    events,
    firings,
    reopen,
    wait_firings,
    wait_until,
)

T0 = datetime.fromisoformat(START)


def later(minutes: float) -> FakeClock:
    return FakeClock(T0 + timedelta(minutes=minutes))


def test_downtime_of_three_periods_fires_once_with_missed_count(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    lab = reopen(home, profiles_dir, FakeClock(START))
    sid = lab.schedules.add("catchup", "Job.", when="5m", script=DONE_SCRIPT)
    lab.close()
    lab = reopen(home, profiles_dir, later(16))  # 10:05, 10:10 and 10:15 passed while closed
    try:
        df = wait_firings(lab, sid, 1)
        assert len(df) == 1
        assert df["missed_count"][0] == 3 and df["status"][0] == "succeeded"
        assert f"{df['scheduled_for'][0]:%H:%M}" == "10:15"
        assert f"{lab.schedules.get(sid).next_fire_at:%H:%M}" == "10:20"
        prompt = lab.sql("SELECT prompt FROM tasks")["prompt"][0]
        assert "stands in for 3 scheduled time(s)" in prompt
    finally:
        lab.close()


def test_catch_up_skip_records_one_missed_row_and_no_task(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    lab = reopen(home, profiles_dir, FakeClock(START))
    sid = lab.schedules.add(
        "skipper", "Job.", when="5m", catch_up="skip", channels=["ops"], script=DONE_SCRIPT
    )
    lab.close()
    lab = reopen(home, profiles_dir, later(16))
    try:
        df = wait_firings(lab, sid, 1)
        assert df["status"].tolist() == ["skipped"] and df["reason"][0] == "missed"
        assert df["missed_count"][0] == 3 and df["task_id"].isna().all()
        assert len(lab.tasks()) == 0
        alert = events(lab, "schedule_alert")["payload"][0]
        assert "3 missed firing(s) skipped" in alert["reason"] and alert["channels"] == ["ops"]
    finally:
        lab.close()


def test_a_short_outage_loses_nothing_and_fires_on_time(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    lab = reopen(home, profiles_dir, FakeClock(START))
    sid = lab.schedules.add("hourly", "Job.", when="every hour", script=DONE_SCRIPT)
    lab.close()
    clock = later(30)
    lab = reopen(home, profiles_dir, clock)
    try:
        assert len(firings(lab, sid)) == 0
        clock.advance(1800)
        df = wait_firings(lab, sid, 1)
        assert df["missed_count"][0] == 0 and f"{df['scheduled_for'][0]:%H:%M}" == "11:00"
    finally:
        lab.close()


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from stagent_lab import Lab
    from stagent_lab.engine.clock import FakeClock

    home, mode = sys.argv[1], sys.argv[2]
    clock = FakeClock("2026-03-02 10:00:00")
    lab = Lab(home, clock=clock)
    lab.schedules.add("crashy", "Job.", when="5m",
                      script=[{"say": "working"}, {"result": "done"}])
    service = lab.workspace.service
    real_submit = service.submit

    def crash(request):
        if mode == "after_submit":
            real_submit(request)
            service.writer_flush()  # the task row is on disk too
        os._exit(9)  # SIGKILL-like: no close, no flush

    service.submit = crash
    clock.advance(300)
    time.sleep(30)
    sys.exit(3)
    """
)


def _crash(home, mode: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), mode],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )
    assert out.returncode == 9, out.stderr[-2000:]


def test_a_kill_between_the_firing_and_its_task_starts_it_on_reopen(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    _crash(home, "before_submit")
    clock = later(6)
    lab = reopen(home, profiles_dir, clock)
    try:
        df = wait_firings(lab, "crashy", 1)
        assert len(df) == 1 and df["status"][0] == "succeeded"  # started on reopen, not lost
        assert f"{df['scheduled_for'][0]:%H:%M}" == "10:05"
        tasks = lab.tasks()
        assert tasks["origin_id"].tolist() == [df["id"][0]]  # exactly one task
        assert f"{lab.schedules.get('crashy').next_fire_at:%H:%M}" == "10:10"
        clock.advance(240)
        df = wait_firings(lab, "crashy", 2)
        assert df["number"].tolist() == [1, 2] and len(lab.tasks()) == 2
    finally:
        lab.close()


def test_a_kill_after_the_task_started_never_fires_that_time_again(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    _crash(home, "after_submit")
    clock = later(6)
    lab = reopen(home, profiles_dir, clock)
    try:
        df = wait_firings(lab, "crashy", 1)
        assert df["status"][0] == "failed" and df["reason"][0] == "engine stopped"
        assert df["task_id"][0] == lab.tasks()["id"][0]
        assert lab.schedules.get("crashy").failure_streak == 0  # engine stopped: not counted
        clock.advance(240)
        df = wait_firings(lab, "crashy", 2)
        assert len(df) == 2 and f"{df['scheduled_for'][1]:%H:%M}" == "10:10"
        assert len(lab.tasks()) == 2
    finally:
        lab.close()


def test_a_clean_close_during_a_firing_ends_it_as_engine_stopped(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    clock = FakeClock(START)
    lab = reopen(home, profiles_dir, clock)
    sid = lab.schedules.add("long", "Job.", when="5m", script=[{"ask": "go?"}, {"result": "x"}])
    clock.advance(300)
    wait_firings(lab, sid, 1, statuses=("running",))
    wait_until(lambda: len(lab.inbox()) == 1)
    lab.close()
    lab = reopen(home, profiles_dir, later(7))
    try:
        df = firings(lab, sid)
        assert df["status"][0] == "failed" and df["reason"][0] == "engine stopped"
        assert lab.schedules.get(sid).failure_streak == 0
    finally:
        lab.close()


class ClientOnly(LocalWorkspace):
    """A client of a service it does not own: closing it disconnects, like a notebook of the
    workspace service closing; the service runs on."""

    def close(self) -> None:
        pass


def test_a_schedule_keeps_firing_after_every_client_closed(tmp_path, profiles_dir):
    clock = FakeClock(START)
    service = WorkspaceService(tmp_path / "ws", profile_dirs=[profiles_dir], clock=clock)
    try:
        lab = Lab(workspace=ClientOnly(service))
        sid = lab.schedules.add("unattended", "Job.", when="5m", script=DONE_SCRIPT)
        lab.close()  # the notebook goes away
        for n in (1, 2):
            clock.advance(300)

            def fired(n=n):
                service.fresh()
                df = service.handle(srq.ListFirings(schedule=sid)).to_pandas()
                done = df[df["status"] == "succeeded"]
                return len(done) >= n

            wait_until(fired, what=f"firing {n} in the service")
    finally:
        service.close()


def test_a_held_firing_starts_on_reopen(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    clock = FakeClock(START)
    lab = reopen(home, profiles_dir, clock)
    sid = lab.schedules.add(
        "held", "Job.", when="5m", overlap="queue", script=[{"ask": "go?"}, {"result": "x"}]
    )
    clock.advance(300)
    wait_firings(lab, sid, 1, statuses=("running",))
    wait_until(lambda: len(lab.inbox()) == 1)
    clock.advance(300)
    wait_firings(lab, sid, 2, statuses=("running", "queued"))
    lab.close()
    lab = reopen(home, profiles_dir, later(11))
    try:
        df = wait_firings(lab, sid, 2, statuses=("failed", "running"))
        assert df["reason"][0] == "engine stopped"
        wait_until(lambda: firings(lab, sid)["task_id"].notna()[1])
        assert len(lab.tasks()) == 2
    finally:
        lab.close()


def test_active_schedules_are_a_reason_to_keep_the_service_up(slab):
    feature = next(f for f in slab.workspace.service.features if f.name == "schedules")
    assert feature.keep_alive() is None
    sid = slab.schedules.add("keeper", "Job.", when="hourly")
    assert feature.keep_alive() == "1 active schedule(s)"
    slab.schedules.pause(sid)
    assert feature.keep_alive() is None
