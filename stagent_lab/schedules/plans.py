"""Deciding a firing: expiry, catch-up, a heartbeat's daily budget, spend caps and overlap.

Each decision is a :class:`Plan`: the firing row and schedule changes to write in one
transaction, and what to do once they committed (start the task, cancel a replaced one, log,
alert). The scheduler commits the plans of one timer tick together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagent_lab.api.requests import REQUESTS, build
from stagent_lab.engine.task import new_id
from stagent_lab.errors import InvalidInput
from stagent_lab.schedules import heartbeat, outcomes, submit
from stagent_lab.schedules.model import next_local_midnight
from stagent_lab.schedules.state import LiveFiring, Sched

if TYPE_CHECKING:
    from stagent_lab.schedules.scheduler import Scheduler

LATE = timedelta(seconds=60)  # later than this is a missed firing (catch-up)
_TICK = timedelta(microseconds=1)


@dataclass
class Plan:
    """What one firing decision writes, then does once the write committed."""

    sched: Sched
    fields: dict[str, Any] = field(default_factory=dict)  # schedule row changes
    firing: dict[str, Any] | None = None  # the firing row to insert
    start: LiveFiring | None = None
    cancel: list[LiveFiring] = field(default_factory=list)  # overlap=replace
    after: list[Any] = field(default_factory=list)  # callables run after the commit


def due(sch: Scheduler, s: Sched, now: datetime) -> Plan | None:
    row = s.row
    if row["status"] != "active":
        return None
    if row.get("expires_at") and row["expires_at"] <= now:
        plan = Plan(s, {"status": "expired", "next_fire_at": None})
        plan.after.append(lambda: sch._log(s, "schedule_expired", expires_at=row["expires_at"]))
        return plan
    scheduled = row.get("next_fire_at")
    if scheduled is None or scheduled > now:
        return None
    missed, slot = 0, scheduled
    if now - scheduled > LATE:
        if s.timing.cron is not None:
            missed, slot = _missed(s, scheduled, now)
        else:
            missed = 1
    plan = Plan(s, {"next_fire_at": s.timing.next_after(now)})
    if missed and row["catch_up"] == "skip":
        _skip(sch, plan, now, slot, "missed", missed)
        reason = f"{missed} missed firing(s) skipped (catch_up='skip')"
        plan.after.append(lambda: outcomes.alert(sch, s, reason))
    else:
        fire(sch, plan, now, slot, missed, manual=False, force=False)
    if row["once"] or s.timing.cron is None:
        plan.fields.update(status="completed", next_fire_at=None)
        plan.after.append(lambda: sch._log(s, "schedule_completed", reason="once"))
    return plan


def _missed(s: Sched, first: datetime, now: datetime) -> tuple[int, datetime]:
    """(cron times in [first, now], the last of them)."""
    count, last = 1, first
    while count < 100_000:
        nxt = s.timing.next_after(last)
        if nxt is None or nxt > now:
            break
        count, last = count + 1, nxt
    return count, last


def fire(
    sch: Scheduler,
    plan: Plan,
    now: datetime,
    scheduled_for: datetime,
    missed: int,
    *,
    manual: bool,
    force: bool,
) -> None:
    s, row = plan.sched, plan.sched.row
    if s.heartbeat:
        heartbeat.roll_day(sch, s, now, plan.fields)
        daily = row.get("daily_budget_usd")
        if daily and float(row["spent_today_usd"] or 0) >= daily:
            _skip(sch, plan, now, scheduled_for, "daily_budget", missed, manual)
            if not manual:
                nxt = s.timing.next_after(next_local_midnight(now, s.timing.tz) - _TICK)
                plan.fields["next_fire_at"] = nxt
            reason = (
                f"daily budget spent (${float(row['spent_today_usd']):.2f} of ${daily:.2f}); "
                "no check until tomorrow"
            )
            plan.after.append(lambda: outcomes.budget_alert(sch, s, now, reason, plan.fields))
            return
    blocking = _blocking_caps(sch, s)
    if blocking:
        _skip(sch, plan, now, scheduled_for, "budget_cap", missed, manual)
        reason = f"skipped: {blocking[0]['reason']}"
        plan.after.append(lambda: outcomes.budget_alert(sch, s, now, reason, plan.fields))
        return
    live = [f for f in s.live.values() if sch.is_live(f)]
    status = "running"
    if live and not force:
        policy = row["overlap"]
        if policy == "skip" or (policy == "queue" and s.held is not None):
            _skip(sch, plan, now, scheduled_for, "overlap", missed, manual)
            return
        if policy == "queue":
            status = "queued"
        elif policy == "replace":
            plan.cancel = live
    s.number += 1
    firing = {
        "id": new_id(),
        "schedule_id": s.id,
        "number": s.number,
        "scheduled_for": scheduled_for,
        "fired_at": now if status == "running" else None,
        "status": status,
        "missed_count": missed,
        "manual": manual,
    }
    plan.firing = firing
    lf = LiveFiring(firing["id"], s.number, scheduled_for, missed=missed)
    if status == "queued":
        s.held = lf
        plan.after.append(lambda: sch._log(s, "schedule_queued", number=lf.number, firing_id=lf.id))
    else:
        plan.start = lf
    count = int(row["firing_count"] or 0) + 1
    plan.fields.update(firing_count=count, last_fired_at=now)
    if row.get("max_firings") and count >= int(row["max_firings"]):
        plan.fields.update(status="completed", next_fire_at=None)
        plan.after.append(lambda: sch._log(s, "schedule_completed", reason="max_firings"))


def _skip(
    sch: Scheduler,
    plan: Plan,
    now: datetime,
    scheduled_for: datetime,
    reason: str,
    missed: int = 0,
    manual: bool = False,
) -> None:
    s = plan.sched
    s.number += 1
    number = s.number
    plan.firing = {
        "id": new_id(),
        "schedule_id": s.id,
        "number": number,
        "scheduled_for": scheduled_for,
        "fired_at": now,
        "status": "skipped",
        "reason": reason,
        "missed_count": missed,
        "finished_at": now,
        "manual": manual,
    }
    fid = plan.firing["id"]
    plan.after.append(
        lambda: sch._log(s, "schedule_skipped", reason=reason, number=number, firing_id=fid)
    )


def _blocking_caps(sch: Scheduler, s: Sched) -> list[dict[str, Any]]:
    cls = REQUESTS.get("check_budgets")
    if cls is None:
        return []
    row = s.row
    runtime = row.get("runtime_id") or ("scripted" if submit.script_of(s) is not None else None)
    profile = row.get("profile_id")
    if profile is None and s.heartbeat:
        profile = sch.service.settings.value("heartbeat.profile")
    try:
        return list(
            sch.service.handle(
                build(cls, runtime=runtime, profile=profile, project_id=row.get("project_id"))
            )
        )
    except InvalidInput:
        return []


__all__ = ["LATE", "Plan", "due", "fire"]
