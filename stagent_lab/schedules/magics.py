"""``%stagent schedules …``: schedules and firings as DataFrames, control, and the preview.

%stagent schedules                      schedules (next firing, streak, last outcome)
%stagent schedules firings [ID]         firing history, newest first
%stagent schedules pause|resume|fire|remove ID [--force]
%stagent schedules parse TEXT [--tz TZ] cron, description, the next 3 times, warnings
"""

from __future__ import annotations

from typing import Any

from stagent_lab.notebook.options import OptionError

USAGE = (
    "usage: %stagent schedules [list | firings [ID] | pause ID | resume ID | fire ID [--force] "
    "| remove ID | parse TEXT [--tz TZ]]"
)
LIST_COLUMNS = [
    "name", "kind", "status", "when_text", "timezone", "next_fire_at", "failure_streak",
    "failure_streak_limit", "last_outcome", "firing_count", "id",
]  # fmt: skip
FIRING_COLUMNS = [
    "schedule", "number", "scheduled_for", "fired_at", "status", "reason", "missed_count",
    "action", "task_id", "workflow_run_id", "cost_usd",
]  # fmt: skip


def _bad(message: str) -> OptionError:
    return OptionError(f"{message}\n{USAGE}")


def _one_id(sub: str, rest: list[str]) -> str:
    if len(rest) != 1:
        raise _bad(f"schedules {sub} takes one schedule name or id")
    return rest[0]


def handle(lab: Any, args: list[str]) -> Any:
    sub, rest = (args[0], list(args[1:])) if args else ("list", [])
    if sub == "list":
        if rest:
            raise _bad("schedules list takes no arguments")
        df = lab.schedules.list()
        return df[[c for c in LIST_COLUMNS if c in df.columns]]
    if sub == "firings":
        if len(rest) > 1:
            raise _bad("schedules firings takes at most one schedule")
        df = lab.schedules.firings(rest[0] if rest else None)
        return df[[c for c in FIRING_COLUMNS if c in df.columns]]
    if sub in ("pause", "resume", "remove"):
        target = _one_id(sub, rest)
        if sub == "remove":
            lab.schedules.remove(target)
            print(f"stagent: schedule {target} removed")
            return None
        view = getattr(lab.schedules, sub)(target)
        nxt = view.next_fire_local or "no next firing"
        print(f"stagent: schedule {view.name} is {view.status} (next: {nxt})")
        return None
    if sub == "fire":
        force = "--force" in rest
        target = _one_id(sub, [a for a in rest if a != "--force"])
        firing = lab.schedules.fire(target, force=force)
        what = firing.task_id or firing.workflow_run_id or firing.reason or ""
        print(f"stagent: firing #{firing.number} {firing.status} {what}".rstrip())
        return None
    if sub == "parse":
        return _parse(lab, rest)
    raise _bad(f"unknown schedules command {sub!r}")


def _parse(lab: Any, rest: list[str]) -> Any:
    import pandas as pd

    tz = None
    words: list[str] = []
    i = 0
    while i < len(rest):
        if rest[i] == "--tz":
            if i + 1 >= len(rest):
                raise _bad("--tz needs a zone such as Europe/Paris")
            tz = rest[i + 1]
            i += 2
            continue
        words.append(rest[i])
        i += 1
    if not words:
        raise _bad(
            "schedules parse needs the text, e.g. %stagent schedules parse every weekday at 9am"
        )
    out = lab.schedules.parse(" ".join(words), tz=tz)
    print(f"{out['cron']}  —  {out['description']} ({out['timezone']})")
    for warning in out["warnings"]:
        print(f"warning: {warning}")
    return pd.DataFrame(out["next"])


__all__ = ["USAGE", "handle"]
