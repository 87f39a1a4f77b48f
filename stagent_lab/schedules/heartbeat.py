"""A heartbeat's verdict and what follows it, and its spend of the day (engine thread).

The first matching row decides (recorded in the firing's ``action``): nothing needs action
(``suppressed``); an action task of this heartbeat is live (``action_running``); the same items
within the cooldown (``cooldown``); no budget left today (``budget_exhausted``, a notice);
``action_mode="notify"`` (``notify``, a notice); otherwise an action task (``task``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagent_lab.api.requests import SubmitTask, build
from stagent_lab.schedules import submit
from stagent_lab.schedules.prompts import action_prompt
from stagent_lab.schedules.state import Ended, LiveFiring, Sched
from stagent_lab.schedules.verdict import Verdict, read_verdict
from stagent_lab.store import schedules as repo

if TYPE_CHECKING:
    from stagent_lab.engine.task import TaskState
    from stagent_lab.schedules.scheduler import Scheduler

LIVE = ("queued", "running", "waiting", "paused")


def outcome(
    sch: Scheduler, s: Sched, lf: LiveFiring, ended: Ended, firing: dict[str, Any], now: datetime
) -> bool:
    """Fill ``firing`` from the evaluation's verdict; True when an action task was started."""
    verdict = read_verdict(ended.result, s.row["checklist"])
    if verdict is None:
        firing.update(
            status="failed",
            reason="invalid_verdict",
            verdict={"invalid": True, "raw": (ended.result or "")[:4000]},
        )
        return False
    firing.update(status="succeeded", reason=None, verdict=verdict.as_json())
    sch._log(
        s,
        "heartbeat_verdict",
        number=lf.number,
        firing_id=lf.id,
        action_needed=verdict.action_needed,
        items={i["id"]: i["status"] for i in verdict.items},
        summary=verdict.summary,
    )
    if verdict.corrected:
        sch._log(
            s,
            "notice",
            firing_id=lf.id,
            message=(
                "the verdict's action_needed disagreed with its items; the items win "
                f"(action_needed={verdict.action_needed})"
            ),
        )
    action, task_id = _act(sch, s, lf, verdict, ended.task_id, now)
    firing.update(action=action, action_task_id=task_id)
    return task_id is not None


def _act(
    sch: Scheduler, s: Sched, lf: LiveFiring, verdict: Verdict, eval_task: str | None, now: datetime
) -> tuple[str, str | None]:
    service, row = sch.service, s.row
    fid = lf.id
    if not verdict.action_needed:
        count = int(row["suppression_count"] or 0) + 1
        sch.save(s, {"suppression_count": count})
        sch._log(
            s,
            "heartbeat_suppressed",
            firing_id=fid,
            reason="no item needs action",
            suppression_count=count,
        )
        if row["notify_ok"]:
            _heartbeat_event(sch, s, lf, "heartbeat_ok", "suppressed", None, verdict, routed=True)
        return "suppressed", None
    items = verdict.action_items
    ids = sorted(i["id"] for i in items)
    if s.action_task is not None and sch.task_status(s.action_task) in (
        "queued",
        "running",
        "waiting",
        "paused",
    ):
        _heartbeat_event(sch, s, lf, "heartbeat_action", "action_running", s.action_task, verdict)
        return "action_running", None
    last_at, cooldown = row.get("last_action_at"), float(row["cooldown_s"] or 0)
    if (
        cooldown
        and last_at is not None
        and now - last_at < timedelta(seconds=cooldown)
        and sorted(row.get("last_action_items") or []) == ids
    ):
        _heartbeat_event(sch, s, lf, "heartbeat_action", "cooldown", None, verdict)
        return "cooldown", None
    remaining = submit.remaining_of(row)
    if remaining is not None and remaining <= 0:
        _notice(sch, s, lf, verdict, "needs action, but its daily budget is spent")
        _heartbeat_event(
            sch, s, lf, "heartbeat_action", "budget_exhausted", None, verdict, routed=True
        )
        return "budget_exhausted", None
    if row["action_mode"] == "notify":
        _notice(sch, s, lf, verdict, "needs action")
        _heartbeat_event(sch, s, lf, "heartbeat_action", "notify", None, verdict, routed=True)
        return "notify", None
    budget = submit.capped(row, row.get("action_budget_usd") or service.default_task_budget())
    prompt = action_prompt(
        name=row["name"],
        number=lf.number,
        items=items,
        checklist=row["checklist"],
        summary=verdict.summary,
        extra=row.get("action_prompt"),
    )
    common = submit.common(sch, s)
    try:
        view = service.submit(
            build(
                SubmitTask,
                prompt=prompt,
                profile=row.get("action_profile_id"),
                max_budget_usd=budget,
                title=f"{row['name']} · action #{lf.number}",
                source="heartbeat",
                origin_id=fid,
                parent_task_id=eval_task,
                activity="heartbeat_action",
                unattended=False,
                **common,
            )
        )
    except Exception as exc:
        _notice(sch, s, lf, verdict, f"needs action, but the action task could not start ({exc})")
        _heartbeat_event(sch, s, lf, "heartbeat_action", "notify", None, verdict, routed=True)
        return "notify", None
    s.action_task = view.id
    sch.save(
        s,
        {"last_action_at": now, "last_action_items": ids, "suppression_count": 0},
    )
    _heartbeat_event(sch, s, lf, "heartbeat_action", "task", view.id, verdict, routed=True)
    return "task", view.id


def _heartbeat_event(
    sch: Scheduler,
    s: Sched,
    lf: LiveFiring,
    event: str,
    action: str,
    task_id: str | None,
    verdict: Verdict,
    *,
    routed: bool = False,
) -> None:
    checklist = {c["id"]: c for c in s.row["checklist"]}
    items = [
        {
            "id": i["id"],
            "priority": checklist.get(i["id"], {}).get("priority", "medium"),
            "summary": i.get("summary", ""),
            "action": i.get("action"),
        }
        for i in (verdict.action_items if verdict.action_needed else verdict.items)
    ]
    payload: dict[str, Any] = {
        "heartbeat": s.name,
        "number": lf.number,
        "firing_id": lf.id,
        "action": action,
        "action_task_id": task_id,
        "summary": verdict.summary,
        "items": items,
    }
    if routed:
        payload.update(
            channels=list(s.row.get("channels") or []), channel_event=event.replace("_", ".", 1)
        )
    sch._log(s, event, **payload)


def _notice(sch: Scheduler, s: Sched, lf: LiveFiring, verdict: Verdict, what: str) -> None:
    lines = [f"Heartbeat {s.name} (check #{lf.number}) {what}."]
    if verdict.summary:
        lines.append(verdict.summary)
    for item in verdict.action_items:
        text = f"- {item['id']}: {item.get('summary') or ''}"
        if item.get("action"):
            text += f" (suggested: {item['action']})"
        lines.append(text)
    sch.service.create_inbox_item(
        "notice", subject="schedule", subject_id=s.id, body="\n".join(lines)
    )


# ---- daily budget --------------------------------------------------------------------------


def roll_day(sch: Scheduler, s: Sched, now: datetime, fields: dict[str, Any]) -> None:
    today = sch.today(s, now)
    if s.row.get("spent_day") != today:
        s.row.update(spent_day=today, spent_today_usd=0.0)
        fields.update(spent_day=today, spent_today_usd=0.0)


def account(sch: Scheduler, st: TaskState, row: dict[str, Any]) -> None:
    """Usage hook: a heartbeat task's call joins its heartbeat's spend of the day."""
    if st.source != "heartbeat" or not st.origin_id:
        return
    s = _sched_of_origin(sch, st.origin_id)
    if s is None:
        return
    now = sch.service.clock.now()
    fields: dict[str, Any] = {}
    roll_day(sch, s, now, fields)
    spent = float(s.row.get("spent_today_usd") or 0.0) + float(row.get("cost_usd") or 0.0)
    fields["spent_today_usd"] = spent
    sch.save(s, fields)


def _sched_of_origin(sch: Scheduler, fid: str) -> Sched | None:
    sid = sch.origins.get(fid)
    if sid is None:
        found = repo.firing_of_origin(sch.service.reader(), fid)
        sid = found[0] if found else None
    return sch.scheds.get(sid) if sid else None


__all__ = ["account", "outcome", "roll_day"]
