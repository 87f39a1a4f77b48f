"""How firings end: outcomes, failure streaks, heartbeat verdicts and actions, daily budgets,
alerts, and the reconciliation of open firings when the workspace opens (engine thread).

* A firing ends with its task (``succeeded``/``failed``/``cancelled``), or with its workflow
  run. ``succeeded`` resets the failure streak; ``failed`` adds one (whatever the reason);
  ``cancelled`` and ``engine stopped`` leave it. At the limit the schedule pauses, with a
  ``notice`` item and a ``schedule_alert`` event for its channels.
* A heartbeat's evaluation ends with a verdict: nothing needs action (``suppressed``), an
  action task already running (``action_running``), the same items within the cooldown
  (``cooldown``), no budget left (``budget_exhausted``, a notice), ``notify`` (a notice) or an
  action task. An unreadable verdict fails the firing (``invalid_verdict``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.schedules import heartbeat
from stagent_lab.schedules.state import Ended, LiveFiring, Sched
from stagent_lab.store import schedules as repo

if TYPE_CHECKING:
    from stagent_lab.engine.task import TaskState
    from stagent_lab.schedules.scheduler import Scheduler

ENGINE_STOPPED = "engine stopped"
EXCERPT = 500
ROUTED = ("task", "notify", "budget_exhausted")  # heartbeat actions delivered to channels


# ---- ending a firing -----------------------------------------------------------------------


def on_finish(sch: Scheduler, st: TaskState) -> None:
    """Finish hook: a task of a firing stopped."""
    if st.source not in ("schedule", "heartbeat") or not st.origin_id:
        return
    sid = sch.origins.get(st.origin_id)
    s = sch.scheds.get(sid) if sid else None
    if s is None:
        return
    status, reason = str(st.status), st.failure_reason
    if status == "paused":
        if reason != "engine closed":
            return  # paused (budget, operator): still live
        status, reason = "failed", ENGINE_STOPPED
    ended = Ended(status, st.result, reason, float(st.cost_usd), int(st.turns), st.id)
    if st.activity == "heartbeat_action":
        action_ended(sch, s, st.origin_id, ended)
        return
    lf = s.live.get(st.origin_id)
    if lf is not None and lf.task_id == st.id:
        close(sch, s, lf, ended)


def close(sch: Scheduler, s: Sched, lf: LiveFiring, ended: Ended) -> None:
    """Record a firing's outcome, update the streak, start a held firing."""
    service, row = sch.service, s.row
    now = service.clock.now()
    s.live.pop(lf.id, None)
    firing: dict[str, Any] = {
        "cost_usd": ended.cost,
        "turns": ended.turns,
        "finished_at": now,
        "task_id": lf.task_id,
        "workflow_run_id": lf.run_id,
    }
    keep_origin = False
    if ended.status == "completed" and s.heartbeat:
        keep_origin = heartbeat.outcome(sch, s, lf, ended, firing, now)
    elif ended.status == "completed":
        firing.update(status="succeeded", reason=None)
    elif ended.status == "cancelled":
        replaced = lf.id in sch.replaced
        sch.replaced.discard(lf.id)
        firing.update(status="cancelled", reason="replaced" if replaced else ended.reason)
    else:
        firing.update(status="failed", reason=ended.reason or "failed")
    status, reason = firing["status"], firing.get("reason")
    excerpt = (ended.result if status == "succeeded" else reason) or ""
    firing["result_excerpt"] = excerpt[:EXCERPT]
    fields: dict[str, Any] = {"last_outcome": status + (f": {reason}" if reason else "")}
    streak = int(row["failure_streak"] or 0)
    if status == "succeeded":
        streak = 0
    elif status == "failed" and reason != ENGINE_STOPPED:
        streak += 1
    fields["failure_streak"] = streak
    limit = int(row["failure_streak_limit"] or 0)
    pause = limit > 0 and streak >= limit and row["status"] == "active" and status == "failed"
    if pause:
        fields.update(
            status="paused", paused_reason=f"{streak} failed firings in a row; last: {reason}"
        )
    row.update(fields)
    s.previous = {"number": lf.number, "status": status, "excerpt": excerpt[:EXCERPT]}
    s.previous_loaded = True
    fid, sid = lf.id, s.id
    fields["updated_at"] = now
    stored_firing, stored_fields = sch.scrub(firing), sch.scrub(fields)

    def write(con: Any) -> None:
        repo.update_firing(con, fid, stored_firing)
        repo.update_schedule(con, sid, stored_fields)

    service.writer_defer(write, "firing outcome", ended.task_id)
    if not keep_origin:
        sch.origins.pop(lf.id, None)
    sch._log(
        s,
        "schedule_firing_finished",
        number=lf.number,
        firing_id=lf.id,
        status=status,
        reason=reason,
        cost_usd=ended.cost,
        task_id=ended.task_id,
        workflow_run_id=lf.run_id,
    )
    if pause:
        body = (
            f"Schedule {s.name} paused after {row['paused_reason']}. Fix the cause, then "
            f"resume it: lab.schedules.resume({s.name!r})."
        )
        service.create_inbox_item("notice", subject="schedule", subject_id=s.id, body=body)
        alert(sch, s, f"auto-paused: {row['paused_reason']}")
        sch._log(s, "schedule_paused", by="scheduler", reason=row["paused_reason"])
        sch._push(s)
    if s.held is not None and not sch.stopping and not any(sch.is_live(f) for f in s.live.values()):
        held, s.held = s.held, None
        sch.start_firing(s, held)


def action_ended(sch: Scheduler, s: Sched, fid: str, ended: Ended) -> None:
    if s.action_task == ended.task_id:
        s.action_task = None
    cost = ended.cost
    sch.service.writer_defer(
        lambda con: repo.add_firing_cost(con, fid, cost), "action cost", ended.task_id
    )
    if fid not in {f.id for f in s.live.values()}:
        sch.origins.pop(fid, None)
    sch._log(
        s,
        "heartbeat_action_finished",
        firing_id=fid,
        action_task_id=ended.task_id,
        status=ended.status,
        reason=ended.reason,
    )


def run_ended(sch: Scheduler, run_id: str, event: str, payload: Any) -> None:
    """A workflow run a firing started has ended."""
    fid = sch.runs.pop(run_id, None)
    sid = sch.origins.get(fid) if fid else None
    s = sch.scheds.get(sid) if sid else None
    if s is None or fid is None:
        return
    lf = s.live.get(fid)
    if lf is None:
        return
    data = _payload(payload)
    status = {"workflow_completed": "completed", "workflow_failed": "failed"}.get(
        event, "cancelled"
    )
    reason = data.get("error") or data.get("stop_reason") if status != "completed" else None
    ended = Ended(status, data.get("output"), reason, float(data.get("cost_usd") or 0.0), 0)
    close(sch, s, lf, ended)


def _payload(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict):
        return payload
    try:
        out = json.loads(payload) if isinstance(payload, str) else {}
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def budget_alert(
    sch: Scheduler, s: Sched, now: datetime, reason: str, fields: dict[str, Any]
) -> None:
    """One notice and one ``schedule_alert`` per schedule per local day for budget skips."""
    today = sch.today(s, now)
    if s.row.get("budget_alert_day") == today:
        return
    sch.save(s, {"budget_alert_day": today})
    sch.service.create_inbox_item(
        "notice", subject="schedule", subject_id=s.id, body=f"Schedule {s.name}: {reason}."
    )
    alert(sch, s, reason)


def alert(sch: Scheduler, s: Sched, reason: str) -> None:
    """``schedule_alert`` for the schedule's channels (§4.4: schedule, reason, next fire)."""
    nxt = s.row.get("next_fire_at")
    sch._log(
        s,
        "schedule_alert",
        reason=reason,
        status=s.row["status"],
        next_fire_at=nxt,
        next_fire_local=sch.local(s, nxt),
        channels=list(s.row.get("channels") or []),
        channel_event="schedule.alert",
    )


# ---- reopening -----------------------------------------------------------------------------


def reconcile(sch: Scheduler) -> None:
    """Open firings after a restart: finish those whose work ended, keep the live ones, start
    those the crash left without a task, and start held firings that can run now."""
    service = sch.service
    con = service.reader()
    to_start: list[tuple[Sched, LiveFiring]] = []
    for f in repo.open_firings(con):
        s = sch.scheds.get(f["schedule_id"])
        if s is None:
            continue
        lf = LiveFiring(
            f["id"], f["number"], f["scheduled_for"], f["task_id"], f["workflow_run_id"],
            missed=int(f["missed_count"] or 0),
        )  # fmt: skip
        if f["status"] == "queued":
            s.held = lf
            continue
        if f.get("action_task_id"):
            action = repo.task_outcome(con, f["action_task_id"])
            if action and action["status"] == "paused":
                s.action_task = action["id"]
                sch.origins[lf.id] = s.id
        if s.row.get("workflow_id"):
            _reconcile_run(sch, s, lf, to_start)
            continue
        activity = "heartbeat" if s.heartbeat else "schedule_firing"
        task = (
            repo.task_outcome(con, lf.task_id)
            if lf.task_id
            else repo.task_of_origin(con, lf.id, activity)
        )
        if task is None:
            to_start.append((s, lf))
            continue
        lf.task_id = task["id"]
        s.live[lf.id] = lf
        sch.origins[lf.id] = s.id
        status, reason = task["status"], task["failure_reason"]
        if status in ("queued", "running", "waiting"):
            continue
        if status == "paused" and reason != "engine closed":
            continue
        if status == "paused" or (status == "failed" and reason == ENGINE_STOPPED):
            status, reason = "failed", ENGINE_STOPPED
        ended = Ended(
            status, task["result"], reason, float(task["cost_usd"] or 0), int(task["turns"] or 0),
            task["id"],
        )  # fmt: skip
        close(sch, s, lf, ended)
    for s in sch.scheds.values():
        if s.held is not None and not any(sch.is_live(f) for f in s.live.values()):
            held, s.held = s.held, None
            sch.start_firing(s, held)
    for s, lf in to_start:
        sch.start_firing(s, lf)


def _reconcile_run(
    sch: Scheduler, s: Sched, lf: LiveFiring, to_start: list[tuple[Sched, LiveFiring]]
) -> None:
    con = sch.service.reader()
    run = (
        repo.workflow_run_outcome(con, lf.run_id)
        if lf.run_id
        else repo.workflow_run_of_trigger(con, lf.id)
    )
    if run is None:
        if lf.run_id is None:
            to_start.append((s, lf))
        return
    lf.run_id = run["id"]
    s.live[lf.id] = lf
    sch.origins[lf.id] = s.id
    if run["status"] in ("completed", "failed", "cancelled"):
        ended = Ended(
            run["status"],
            run.get("output"),
            run.get("failure_reason") or run.get("stop_reason"),
            float(run.get("cost_usd") or 0.0),
            0,
        )
        close(sch, s, lf, ended)
    else:
        sch.runs[lf.run_id] = lf.id


__all__ = [
    "ENGINE_STOPPED",
    "action_ended",
    "alert",
    "budget_alert",
    "close",
    "on_finish",
    "reconcile",
    "run_ended",
]
