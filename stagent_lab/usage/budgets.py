"""Spend caps: windows in a time zone, running totals, states and the texts that explain them.

A cap covers the tasks of its scope (the whole workspace, or one runtime, profile or project)
over a window: a local day [00:00, 24:00) or a local month (the 1st 00:00 to the next 1st) in
``budget.timezone``, so a daylight-saving day lasts 23 or 25 hours. Spend is the sum of the
ledger's ``cost_usd`` over rows finished in the window (``blocked`` rows excluded; calls with
unknown pricing count $0 and are reported as ``unpriced_calls``).

The engine keeps each cap's total in memory (:class:`Tally`): loaded by SQL when the
workspace opens and when a window rolls over, raised by every usage event, so a check runs no
query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stagent_lab.schedules.cron import to_local, to_utc, zone

STATES = ("ok", "warning", "exceeded", "disabled")


def window_bounds(window: str, tz_name: str, now: datetime) -> tuple[str, datetime, datetime]:
    """(key, start, end) of the window holding ``now`` (naive UTC), e.g. ``2026-11-21``."""
    tz = zone(tz_name)
    wall = to_local(now, tz)
    if window == "day":
        start_wall = datetime(wall.year, wall.month, wall.day)
        nxt = start_wall.toordinal() + 1
        end_wall = datetime.fromordinal(nxt)
        key = f"{wall:%Y-%m-%d}"
    elif window == "month":
        start_wall = datetime(wall.year, wall.month, 1)
        end_wall = (
            datetime(wall.year + 1, 1, 1)
            if wall.month == 12
            else datetime(wall.year, wall.month + 1, 1)
        )
        key = f"{wall:%Y-%m}"
    else:
        raise ValueError(f"window must be 'day' or 'month', got {window!r}")
    return key, to_utc(start_wall, tz), to_utc(end_wall, tz)


def state_of(spent: float, limit: float, warn_ratio: float, enabled: bool) -> str:
    if not enabled:
        return "disabled"
    if spent >= limit:
        return "exceeded"
    if spent >= warn_ratio * limit:
        return "warning"
    return "ok"


def scope_label(scope: str, scope_id: str | None) -> str:
    return scope if scope == "workspace" else f"{scope} {scope_id}"


def local_time(instant: datetime, tz_name: str) -> str:
    aware = instant.replace(tzinfo=UTC).astimezone(zone(tz_name))
    return f"{aware:%Y-%m-%d %H:%M} {aware.tzname()}"


@dataclass
class Tally:
    """A cap (its row) and its spend in the window ``key``."""

    row: dict[str, Any]
    key: str = ""
    start: datetime | None = None
    end: datetime | None = None
    tz: str = "UTC"
    spent: float = 0.0
    unpriced: int = 0
    exempt: set[str] = field(default_factory=set)  # tasks allowed past it in this window

    @property
    def id(self) -> str:
        return self.row["id"]

    @property
    def limit(self) -> float:
        return float(self.row["limit_usd"])

    @property
    def state(self) -> str:
        return state_of(self.spent, self.limit, float(self.row["warn_ratio"]), self.row["enabled"])

    def covers(
        self, runtime_id: str | None, profile_id: str | None, project_id: str | None
    ) -> bool:
        scope, sid = self.row["scope"], self.row["scope_id"]
        if scope == "workspace":
            return True
        if scope == "runtime":
            return runtime_id == sid
        if scope == "profile":
            return profile_id == sid
        return project_id == sid

    def current(self, now: datetime, tz_name: str) -> bool:
        """True when ``now`` is in the loaded window (same zone)."""
        return (
            self.start is not None
            and self.end is not None
            and self.tz == tz_name
            and self.start <= now < self.end
        )

    def label(self) -> str:
        return f"{scope_label(self.row['scope'], self.row['scope_id'])} {self.row['window']}"

    def reason(self) -> str:
        """The failure/pause reason: scope, window, spend, limit and when it resets."""
        resets = local_time(self.end, self.tz) if self.end else "?"
        return (
            f"budget: {self.label()} spend ${self.spent:.2f} of ${self.limit:.2f}; resets {resets}"
        )

    def summary(self) -> dict[str, Any]:
        ratio = self.spent / self.limit if self.limit else 0.0
        return {
            "budget_id": self.id,
            "scope": self.row["scope"],
            "scope_id": self.row["scope_id"],
            "window": self.row["window"],
            "window_key": self.key,
            "spent": round(self.spent, 6),
            "limit": self.limit,
            "percent": round(100 * ratio, 1),
            "resets_at": self.end.strftime("%Y-%m-%dT%H:%M:%SZ") if self.end else None,
            "resets_local": local_time(self.end, self.tz) if self.end else None,
            "effect": self.row["on_exceed"],
            "unpriced_calls": self.unpriced,
        }

    def body(self, headline: str, tasks: list[str] | None = None) -> str:
        s = self.summary()
        lines = [
            f"{headline}: {self.label()} spend ${self.spent:.2f} of ${self.limit:.2f} "
            f"({s['percent']:g}%). Resets {s['resets_local']}.",
        ]
        if self.unpriced:
            lines.append(
                f"{self.unpriced} call(s) had no known price and count $0, so the real spend "
                "is higher."
            )
        if tasks is not None:
            effect = "paused" if self.row["on_exceed"] == "block" else "asked to continue"
            if tasks:
                lines.append(f"Tasks {effect}: {', '.join(tasks)}.")
            else:
                lines.append("No task in its scope was running.")
            if self.row["on_exceed"] == "block":
                lines.append(
                    "New tasks in its scope fail at start until the window ends. Raise the "
                    f"limit (lab.budgets.set) and resume them with "
                    f"lab.budgets.resume_paused({self.id!r})."
                )
        return "\n".join(lines)


__all__ = ["STATES", "Tally", "local_time", "scope_label", "state_of", "window_bounds"]
