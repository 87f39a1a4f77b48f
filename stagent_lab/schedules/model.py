"""Checking a schedule or heartbeat definition and turning it into its ``schedules`` row.

``build_row`` takes the fields of ``lab.schedules.add`` / ``add_heartbeat`` (or a stored row
merged with ``update`` changes), checks every one against the workspace (profiles, runtimes,
projects, the zone, the interval, active hours) and returns the row plus the warnings to show.
Nothing here touches the engine: the caller runs it on the engine thread and writes the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from stagent_lab.api.requests import REQUESTS
from stagent_lab.errors import IntervalError, ScheduleError
from stagent_lab.schedules.cron import Cron, compile_cron, to_local, to_utc, zone
from stagent_lab.schedules.describe import warnings_for
from stagent_lab.schedules.interval import parse_interval
from stagent_lab.schedules.verdict import load_checklist
from stagent_lab.schedules.window import ActiveWindow, next_in_window

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService

COMMON_FIELDS = (
    "name", "when", "at", "tz", "profile", "runtime", "model", "project", "max_turns",
    "max_budget_usd", "max_run_s", "once", "max_firings", "expires_at", "overlap", "catch_up",
    "on_approval", "failure_streak_limit", "channels", "script",
)  # fmt: skip
CLOCK_FIELDS = (*COMMON_FIELDS, "prompt", "workflow", "include_previous")
HEARTBEAT_FIELDS = (
    *COMMON_FIELDS, "checklist", "active_hours", "active_days", "daily_budget_usd",
    "eval_budget_usd", "action_mode", "action_prompt", "action_profile", "action_budget_usd",
    "notify_ok", "cooldown_s",
)  # fmt: skip
TIMING = frozenset({"when", "at", "tz", "active_hours", "active_days"})
DEFAULT_EVAL_BUDGET = 0.25


@dataclass
class Timing:
    """How a schedule finds its next firing (kept in memory by the scheduler)."""

    cron: Cron | None
    tz: tzinfo
    window: ActiveWindow

    def next_after(self, instant: datetime) -> datetime | None:
        if self.cron is None:
            return None
        if self.window.always:
            return self.cron.next_after(instant, self.tz)
        return next_in_window(self.cron, self.tz, self.window, instant)


def timing_of(row: dict[str, Any]) -> Timing:
    cron = compile_cron(row["cron"]) if row.get("cron") else None
    window = ActiveWindow.build(
        row.get("active_start"), row.get("active_end"), row.get("active_days")
    )
    return Timing(cron, zone(row["timezone"]), window)


def parse_instant(value: Any, tz: tzinfo, what: str) -> datetime:
    """A local datetime (naive = in ``tz``; aware = converted) or text, as naive UTC."""
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"{what} must be a date and time such as '2026-12-01 09:00', got {value!r}"
            ) from None
        if len(text) <= 10:
            raise ScheduleError(f"{what} needs a time of day too, e.g. '{text} 09:00'")
    if not isinstance(value, datetime):
        raise ScheduleError(f"{what} must be a datetime or text such as '2026-12-01 09:00'")
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return to_utc(value.replace(second=value.second, microsecond=0), tz)


def input_form(row: dict[str, Any]) -> dict[str, Any]:
    """The add/add_heartbeat fields a stored row was made from (for update)."""
    data: dict[str, Any] = {
        "name": row["name"],
        "when": row["when_text"] if row.get("cron") else None,
        "at": row["at_local"],
        "tz": row["timezone"],
        "profile": row["profile_id"],
        "runtime": row["runtime_id"],
        "model": row["model"],
        "max_turns": row["max_turns"],
        "max_budget_usd": row["max_budget_usd"],
        "max_run_s": row["max_run_s"],
        "once": row["once"],
        "max_firings": row["max_firings"],
        "expires_at": None,
        "overlap": row["overlap"],
        "catch_up": row["catch_up"],
        "on_approval": row["on_approval"],
        "failure_streak_limit": row["failure_streak_limit"],
        "channels": list(row.get("channels") or []),
        "script": (row.get("options") or {}).get("script"),
    }
    if row["kind"] == "clock":
        data.update(
            prompt=row["prompt"],
            workflow=row["workflow_id"],
            include_previous=row["include_previous"],
        )
    else:
        hours = (row["active_start"], row["active_end"]) if row.get("active_start") else None
        data.update(
            checklist=row["checklist"],
            active_hours=hours,
            active_days=row.get("active_days"),
            daily_budget_usd=row["daily_budget_usd"],
            eval_budget_usd=row["eval_budget_usd"],
            action_mode=row["action_mode"],
            action_prompt=row["action_prompt"],
            action_profile=row["action_profile_id"],
            action_budget_usd=row["action_budget_usd"],
            notify_ok=row["notify_ok"],
            cooldown_s=row["cooldown_s"],
        )
    return data


def build_row(
    service: WorkspaceService,
    kind: str,
    data: dict[str, Any],
    now: datetime,
    *,
    existing: dict[str, Any] | None = None,
    changed: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], list[str], Any]:
    """(row fields, warnings, in-memory script) for a definition. Every problem raises."""
    from stagent_lab.store import schedules as repo

    settings = service.settings
    name = str(data.get("name") or "").strip()
    if not name:
        raise ScheduleError("name is required (1 to 120 characters)")
    if len(name) > 120:
        raise ScheduleError(f"name is {len(name)} characters; at most 120")
    if repo.name_taken(service.reader(), name, existing["id"] if existing else None):
        raise ScheduleError(f"a schedule named {name!r} already exists; pick another name")
    tz_name = data.get("tz") or settings.value("schedules.default_timezone")
    tz = zone(tz_name)
    when, at = data.get("when"), data.get("at")
    if (when is None) == (at is None):
        raise ScheduleError(
            "give exactly one of when= (an English phrase, shorthand or cron) and at= (a "
            "one-shot local date and time)"
        )
    if kind == "heartbeat" and at is not None:
        raise ScheduleError("a heartbeat runs on a recurring when=, not a one-shot at=")
    row: dict[str, Any] = {"name": name, "kind": kind, "timezone": tz_name}
    warnings: list[str] = []
    cron: Cron | None = None
    if when is not None:
        interval = parse_interval(when)
        cron = interval.cron
        row.update(when_text=interval.text, cron=cron.text, at_local=None)
        warnings += warnings_for(cron, tz, now)
    else:
        instant = parse_instant(at, tz, "at")
        if instant <= now and (existing is None or "at" in changed):
            raise ScheduleError(
                f"at={at!s} is in the past ({to_local(instant, tz):%Y-%m-%d %H:%M} {tz_name}); "
                "give a future time"
            )
        row.update(
            when_text=f"at {to_local(instant, tz):%Y-%m-%d %H:%M}",
            cron=None,
            at_local=f"{to_local(instant, tz):%Y-%m-%d %H:%M:%S}",
        )
    if kind == "clock":
        _clock_fields(service, data, row)
    else:
        _heartbeat_fields(service, data, row)
    _common_fields(service, data, row, tz, now, existing, changed)
    window = ActiveWindow.build(
        row.get("active_start"), row.get("active_end"), row.get("active_days")
    )
    timing = Timing(cron, tz, window)
    if cron is not None:
        nxt = timing.next_after(now)
        if nxt is None:
            if not window.always:
                raise ScheduleError(
                    f"no time of {row['when_text']!r} ({cron.text}) falls inside the active "
                    f"hours {window.describe()}; widen the hours or change when="
                )
            raise ScheduleError(f"{row['when_text']!r} ({cron.text}) never fires")
        next_fire = nxt
    else:
        next_fire = parse_instant(at, tz, "at")
    if existing is None or changed & TIMING or existing.get("next_fire_at") is None:
        row["next_fire_at"] = next_fire
    script = data.get("script")
    row["options"] = {}
    memory_script = None
    if script is not None:
        if callable(script):
            memory_script = script
            row["options"] = {"script": None, "script_in_memory": True}
        else:
            try:
                json.dumps(script)
            except (TypeError, ValueError):
                raise ScheduleError(
                    "script must be JSON (steps or YAML text) or a callable"
                ) from None
            from stagent_lab.runtimes.scripted import load_script

            load_script(script)
            row["options"] = {"script": script}
    return row, warnings, memory_script


def _clock_fields(service: WorkspaceService, data: dict[str, Any], row: dict[str, Any]) -> None:
    prompt, workflow = data.get("prompt"), data.get("workflow")
    if (prompt is None) == (workflow is None):
        raise ScheduleError("a clock schedule runs exactly one of prompt= (a task) and workflow=")
    if prompt is not None and not str(prompt).strip():
        raise ScheduleError("prompt is empty: give the text of the task each firing runs")
    if workflow is not None:
        if "run_workflow" not in REQUESTS:
            raise ScheduleError(
                "this workspace cannot run workflows (the workflows feature is not installed), "
                f"so a schedule cannot start workflow {workflow!r}"
            )
        if data.get("overlap") == "replace":
            raise ScheduleError(
                "overlap='replace' cancels a firing's task, which a workflow schedule does not "
                "have; use skip, queue or allow (cancel a run from its own controls)"
            )
    row.update(
        prompt=prompt,
        workflow_id=str(workflow).strip() if workflow is not None else None,
        include_previous=bool(data.get("include_previous", True)),
    )


def _heartbeat_fields(service: WorkspaceService, data: dict[str, Any], row: dict[str, Any]) -> None:
    if data.get("checklist") is None:
        raise ScheduleError("a heartbeat needs a checklist (1 to 50 items)")
    row["checklist"] = load_checklist(data["checklist"])
    hours = data.get("active_hours")
    if hours is not None and (not isinstance(hours, list | tuple) or len(hours) != 2):
        raise ScheduleError("active_hours is a pair ('08:00', '18:00')")
    start, end = (hours[0], hours[1]) if hours is not None else (None, None)
    window = ActiveWindow.build(start, end, data.get("active_days"))
    action_profile = data.get("action_profile")
    if action_profile is not None:
        service.profiles.get(action_profile)
    mode = data.get("action_mode") or "task"
    if mode not in ("task", "notify"):
        raise ScheduleError(f"action_mode must be 'task' or 'notify', got {mode!r}")
    cooldown = float(data.get("cooldown_s") or 0)
    if cooldown < 0:
        raise ScheduleError("cooldown_s must be 0 or more seconds")
    row.update(
        active_start=f"{window.start:%H:%M}" if window.start else None,
        active_end=f"{window.end:%H:%M}" if window.end else None,
        active_days=list(window.days) if window.days else None,
        daily_budget_usd=_positive(data.get("daily_budget_usd"), "daily_budget_usd"),
        eval_budget_usd=_positive(data.get("eval_budget_usd"), "eval_budget_usd")
        or DEFAULT_EVAL_BUDGET,
        action_mode=mode,
        action_prompt=data.get("action_prompt"),
        action_profile_id=action_profile,
        action_budget_usd=_positive(data.get("action_budget_usd"), "action_budget_usd"),
        notify_ok=bool(data.get("notify_ok")),
        cooldown_s=cooldown,
    )


def _common_fields(
    service: WorkspaceService,
    data: dict[str, Any],
    row: dict[str, Any],
    tz: tzinfo,
    now: datetime,
    existing: dict[str, Any] | None,
    changed: frozenset[str],
) -> None:
    kind = row["kind"]
    profile = data.get("profile")
    if profile is not None:
        service.profiles.get(profile)  # ProfileNotFoundError lists the valid ones
    runtime = data.get("runtime")
    if runtime is not None and runtime not in service.catalog.ids():
        raise ScheduleError(
            f"unknown runtime {runtime!r}; known runtimes: {', '.join(service.catalog.ids())}"
        )
    if existing is not None and "project" not in changed:
        project_id = existing.get("project_id")
    elif data.get("project") is not None:
        project_id = service.resolve_project(str(data["project"]))[0]
    else:
        project_id = None
    overlap = data.get("overlap") or "skip"
    catch_up = data.get("catch_up") or "once"
    on_approval = data.get("on_approval") or ("deny" if kind == "heartbeat" else "wait")
    for value, what, valid in (
        (overlap, "overlap", ("skip", "queue", "allow", "replace")),
        (catch_up, "catch_up", ("once", "skip")),
        (on_approval, "on_approval", ("wait", "deny")),
    ):
        if value not in valid:
            raise ScheduleError(f"{what} must be one of {', '.join(valid)}, got {value!r}")
    limit = data.get("failure_streak_limit")
    if limit is None:
        limit = service.settings.value("schedules.failure_streak_limit")
    if existing is not None and "expires_at" not in changed:
        expires = existing.get("expires_at")
    elif data.get("expires_at") is not None:
        expires = parse_instant(data["expires_at"], tz, "expires_at")
        if expires <= now:
            raise ScheduleError(f"expires_at={data['expires_at']!s} is in the past")
    else:
        expires = None
    max_firings = data.get("max_firings")
    if max_firings is not None and (isinstance(max_firings, bool) or int(max_firings) < 1):
        raise ScheduleError("max_firings must be a positive integer")
    channels = data.get("channels") or []
    if not isinstance(channels, list | tuple) or not all(isinstance(c, str) for c in channels):
        raise ScheduleError("channels is a list of channel names or ids")
    row.update(
        profile_id=profile,
        runtime_id=runtime,
        model=data.get("model"),
        project_id=project_id,
        max_turns=data.get("max_turns"),
        max_budget_usd=_positive(data.get("max_budget_usd"), "max_budget_usd"),
        max_run_s=_positive(data.get("max_run_s"), "max_run_s"),
        once=bool(data.get("once")) or data.get("at") is not None,
        max_firings=int(max_firings) if max_firings is not None else None,
        expires_at=expires,
        overlap=overlap,
        catch_up=catch_up,
        on_approval=on_approval,
        failure_streak_limit=int(limit),
        channels=list(dict.fromkeys(channels)),
    )


def _positive(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ScheduleError(f"{what} must be a positive number, got {value!r}")
    if value != value or value == float("inf"):
        raise ScheduleError(f"{what} must be finite")
    return float(value)


def check_fields(kind: str, changes: dict[str, Any]) -> None:
    valid = CLOCK_FIELDS if kind == "clock" else HEARTBEAT_FIELDS
    unknown = sorted(set(changes) - set(valid))
    if unknown:
        raise ScheduleError(
            f"cannot change {', '.join(unknown)} of a {kind} schedule; valid fields: "
            + ", ".join(valid)
        )


def local_text(instant: datetime | None, tz: tzinfo) -> str | None:
    if instant is None:
        return None
    aware = instant.replace(tzinfo=UTC).astimezone(tz)
    return f"{aware:%Y-%m-%d %H:%M} {aware.tzname()}"


def next_local_midnight(instant: datetime, tz: tzinfo) -> datetime:
    wall = to_local(instant, tz)
    day = datetime(wall.year, wall.month, wall.day) + timedelta(days=1)
    return to_utc(day, tz)


def local_day(instant: datetime, tz: tzinfo) -> Any:
    return to_local(instant, tz).date()


__all__ = [
    "CLOCK_FIELDS",
    "HEARTBEAT_FIELDS",
    "IntervalError",
    "Timing",
    "build_row",
    "check_fields",
    "input_form",
    "local_day",
    "local_text",
    "next_local_midnight",
    "parse_instant",
    "timing_of",
]
