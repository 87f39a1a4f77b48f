"""What a firing submits: the task of a clock schedule and the evaluation of a heartbeat, with
the limits stated in their prompts equal to the limits they run with."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.api.requests import REQUESTS, SubmitTask, build
from stagent_lab.errors import ScheduleError
from stagent_lab.schedules.prompts import evaluation_prompt, firing_prompt, local_stamp
from stagent_lab.schedules.state import LiveFiring, Sched
from stagent_lab.store import schedules as repo

if TYPE_CHECKING:
    from stagent_lab.schedules.scheduler import Scheduler


def script_of(s: Sched) -> Any:
    if s.script is not None:
        return s.script
    return (s.row.get("options") or {}).get("script")


def project_name(sch: Scheduler, s: Sched) -> str | None:
    pid = s.row.get("project_id")
    if not pid:
        return None
    from stagent_lab.store import projects as projects_repo

    found = projects_repo.by_id(sch.service.reader(), pid)
    if found is None:
        raise ScheduleError(f"the project of schedule {s.name!r} no longer exists")
    return found["name"]


def limits(sch: Scheduler, s: Sched, prompt: str, profile: str | None) -> tuple[str, int]:
    """(profile id, turn limit) a firing task runs with (stated in its prompt)."""
    service, row = sch.service, s.row
    if profile is None:
        profile = service.handle(build(REQUESTS["classify"], text=prompt))["profile_id"]
    prof = service.profiles.get(profile)
    runtime = row.get("runtime_id") or ("scripted" if script_of(s) is not None else None)
    turns = row.get("max_turns") or (prof.max_turns_for(runtime) if runtime else prof.max_turns)
    return prof.id, int(turns)


def common(sch: Scheduler, s: Sched) -> dict[str, Any]:
    settings = sch.service.settings
    return {
        "runtime": s.row.get("runtime_id"),
        "model": s.row.get("model"),
        "project": project_name(sch, s),
        "script": script_of(s),
        "pool": "schedule",
        "timeout_s": s.row.get("max_run_s") or settings.value("schedules.max_run_s"),
        "channels": list(s.row.get("channels") or []),
    }


def task_request(sch: Scheduler, s: Sched, lf: LiveFiring, now: datetime) -> Any:
    row = s.row
    profile, turns = limits(sch, s, row["prompt"], row.get("profile_id"))
    budget = row.get("max_budget_usd") or sch.service.default_task_budget()
    prompt = firing_prompt(
        row["prompt"],
        name=row["name"],
        number=lf.number,
        scheduled_local=local_stamp(lf.scheduled_for, s.timing.tz),
        missed_count=lf.missed,
        max_turns=turns,
        budget=budget,
        previous=previous(sch, s),
        include_previous=bool(row["include_previous"]),
    )
    return build(
        SubmitTask,
        prompt=prompt,
        profile=profile,
        max_turns=turns,
        max_budget_usd=budget,
        title=f"{row['name']} #{lf.number}",
        source="schedule",
        origin_id=lf.id,
        activity="schedule_firing",
        unattended=row["on_approval"] == "deny",
        **common(sch, s),
    )


def evaluation_request(sch: Scheduler, s: Sched, lf: LiveFiring, now: datetime) -> Any:
    row, settings = s.row, sch.service.settings
    profile = row.get("profile_id") or settings.value("heartbeat.profile")
    turns = int(row.get("max_turns") or settings.value("heartbeat.max_turns"))
    budget = capped(row, row.get("eval_budget_usd"))
    last_at = row.get("last_action_at")
    prompt = evaluation_prompt(
        name=row["name"],
        now_local=local_stamp(now, s.timing.tz),
        checklist=row["checklist"],
        last_action_local=local_stamp(last_at, s.timing.tz) if last_at else None,
        last_action_items=row.get("last_action_items"),
        max_turns=turns,
        budget=budget,
    )
    return build(
        SubmitTask,
        prompt=prompt,
        profile=profile,
        max_turns=turns,
        max_budget_usd=budget,
        title=f"{row['name']} · check #{lf.number}",
        source="heartbeat",
        origin_id=lf.id,
        activity="heartbeat",
        unattended=row["on_approval"] == "deny",
        **common(sch, s),
    )


def remaining_of(row: dict[str, Any]) -> float | None:
    daily = row.get("daily_budget_usd")
    if not daily:
        return None
    return float(daily) - float(row.get("spent_today_usd") or 0.0)


def capped(row: dict[str, Any], cap: float | None) -> float | None:
    """A heartbeat task's budget: ``cap``, no more than what is left of the day's budget."""
    remaining = remaining_of(row)
    if remaining is None:
        return cap
    remaining = max(remaining, 0.0001)  # a positive cap: the task stops after one call
    return min(cap, remaining) if cap else remaining


def previous(sch: Scheduler, s: Sched) -> dict[str, Any] | None:
    """The last finished firing (status and the start of its outcome), loaded once."""
    if not s.previous_loaded:
        found = repo.last_finished(sch.service.reader(), s.id)
        if found is not None:
            s.previous = {
                "number": found["number"],
                "status": found["status"] + (f" ({found['reason']})" if found["reason"] else ""),
                "excerpt": found.get("result_excerpt") or "",
            }
        s.previous_loaded = True
    return s.previous


__all__ = [
    "capped",
    "common",
    "evaluation_request",
    "limits",
    "previous",
    "project_name",
    "remaining_of",
    "script_of",
    "task_request",
]
