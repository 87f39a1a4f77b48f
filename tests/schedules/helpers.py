"""Helpers for schedule and budget tests: bounded waits and readers of firings and events.

Timers fire on the engine loop after ``clock.advance``; tests wait for the effect with
``wait_until`` (a bounded poll), never by sleeping to a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from stagent_lab import Lab
from stagent_lab.api.requests import TaskStatus

START = "2026-03-02 10:00:00"  # a Monday
DONE = ("succeeded", "failed", "cancelled", "skipped")


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        out = cond()
        if out is not None and out is not False and (not hasattr(out, "empty") or not out.empty):
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def firings(lab: Lab, sid: str | None = None):
    """Firings oldest first."""
    df = lab.schedules.firings(sid, limit=None)
    return df.sort_values("number" if sid else "fired_at").reset_index(drop=True)


def wait_firings(lab: Lab, sid: str, n: int, statuses=DONE, timeout: float = 30.0):
    """The first ``n`` firings of ``sid`` once each has a status in ``statuses``."""

    def ready():
        df = firings(lab, sid)
        if len(df) >= n and df["status"].head(n).isin(statuses).all():
            return df
        return None

    return wait_until(ready, timeout, f"{n} firing(s) of {sid} in {statuses}")


def task_status(lab: Lab, task_id: str) -> str:
    return lab.call(TaskStatus(task_id=task_id)).status


def wait_task(lab: Lab, task_id: str, statuses=("completed", "failed", "cancelled"), timeout=30):
    def ready():
        view = lab.call(TaskStatus(task_id=task_id))
        return view if view.status in statuses else None

    return wait_until(ready, timeout, f"task {task_id} in {statuses}")


def events(lab: Lab, event: str, subject: str = "schedule"):
    df = lab.logs(event=event)
    return df[df["subject"] == subject].reset_index(drop=True) if len(df) else df


def reopen(home, profiles_dir, clock) -> Lab:
    return Lab(home=home, profile_dirs=[profiles_dir], clock=clock)


DONE_SCRIPT = [{"say": "checked"}, {"result": "all done"}]
FAIL_SCRIPT = [{"fail": "the disk is on fire"}]
ASK_SCRIPT = [{"ask": "May I go on?"}, {"result": "went on"}]


def task_row(lab: Lab, task_id: str) -> dict[str, Any]:
    """The task's stored row (its prompt, limits …)."""
    df = lab.sql("SELECT * FROM tasks WHERE id = ?", [task_id])
    return df.iloc[0].to_dict()


def scheduler_of(lab: Lab) -> Any:
    """The scheduler behind an in-process Lab (a test seam)."""
    service = lab.workspace.service
    return next(f for f in service.features if f.name == "schedules").scheduler


def settle(lab: Lab, clock: Any, timeout: float = 30.0) -> None:
    """Wait until the scheduler has handled everything due at the clock's time (its timer
    is armed for later, or for nothing)."""
    sch = scheduler_of(lab)

    def idle() -> bool:
        wake = sch.next_wake()
        return wake is None or wake > clock.now()

    wait_until(idle, timeout, "the scheduler to handle what is due")


def quiesce(lab: Lab, clock: Any, timeout: float = 30.0) -> None:
    """``settle``, then wait until no task is queued or running (so the next ``advance``
    cannot hit a run-time limit by accident)."""
    settle(lab, clock, timeout)

    def no_active() -> bool:
        df = lab.sql("SELECT count(*) AS n FROM tasks WHERE status IN ('queued', 'running')")
        return int(df["n"][0]) == 0

    wait_until(no_active, timeout, "the firing tasks to finish")
