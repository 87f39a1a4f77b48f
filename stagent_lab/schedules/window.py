"""A heartbeat's active hours and days, and the next firing inside them.

``active_start``/``active_end`` are wall times (``HH:MM``) in the schedule's zone; start < end
means [start, end), start > end wraps past midnight (22:00-06:00: the part after midnight
belongs to the day the window opened, so ``active_days=["fri"]`` covers Friday 22:00 to
Saturday 06:00); start = end is refused. ``active_days`` alone (no hours) means whole days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from stagent_lab.errors import ScheduleError
from stagent_lab.schedules.cron import Cron, to_local, to_utc

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # Python's weekday() order
_TICK = timedelta(microseconds=1)


def parse_hhmm(text: object, what: str) -> time:
    if not isinstance(text, str) or not re.fullmatch(r"\d{1,2}:\d{2}", text.strip()):
        raise ScheduleError(f"{what} must be a time 'HH:MM' (24-hour), got {text!r}")
    hour, minute = (int(p) for p in text.strip().split(":"))
    if hour > 23 or minute > 59:
        raise ScheduleError(f"{what} must be a time from 00:00 to 23:59, got {text!r}")
    return time(hour, minute)


def parse_days(days: object) -> tuple[str, ...] | None:
    if days is None:
        return None
    if isinstance(days, str):
        days = [d for d in re.split(r"[,\s]+", days) if d]
    if not isinstance(days, list | tuple) or not days:
        raise ScheduleError(
            f"active_days must be a non-empty list of {', '.join(DAYS)}, got {days!r}"
        )
    out = []
    for d in days:
        key = str(d).strip().lower()[:3]
        if key not in DAYS or len(str(d).strip()) < 3:
            raise ScheduleError(f"active_days: {d!r} is not one of {', '.join(DAYS)}")
        if key not in out:
            out.append(key)
    return tuple(sorted(out, key=DAYS.index))


@dataclass(frozen=True)
class ActiveWindow:
    start: time | None = None
    end: time | None = None
    days: tuple[str, ...] | None = None

    @classmethod
    def build(cls, start: str | None, end: str | None, days: object = None) -> ActiveWindow:
        if (start is None) != (end is None):
            raise ScheduleError("active_hours needs both a start and an end ('08:00', '18:00')")
        s = parse_hhmm(start, "active_hours start") if start is not None else None
        e = parse_hhmm(end, "active_hours end") if end is not None else None
        if s is not None and s == e:
            raise ScheduleError(
                f"active_hours start and end are both {start}: give a window (start < end, or "
                "start > end to wrap past midnight), or no active_hours for all day"
            )
        return cls(s, e, parse_days(days))

    @property
    def always(self) -> bool:
        return self.start is None and self.days is None

    def _day_ok(self, d: datetime) -> bool:
        return self.days is None or DAYS[d.weekday()] in self.days

    def contains(self, wall: datetime) -> bool:
        if self.always:
            return True
        if self.start is None or self.end is None:
            return self._day_ok(wall)
        t = wall.time()
        if self.start < self.end:
            return self.start <= t < self.end and self._day_ok(wall)
        if t >= self.start:
            return self._day_ok(wall)
        if t < self.end:
            return self._day_ok(wall - timedelta(days=1))
        return False

    def next_open(self, wall: datetime) -> datetime | None:
        """The first wall time after ``wall`` at which the window opens (8 days searched)."""
        start = self.start or time(0, 0)
        day = datetime(wall.year, wall.month, wall.day)
        for i in range(9):
            d = day + timedelta(days=i)
            candidate = datetime.combine(d.date(), start)
            if candidate > wall and self._day_ok(candidate):
                return candidate
        return None

    def describe(self) -> str:
        parts = []
        if self.start is not None and self.end is not None:
            parts.append(f"{self.start:%H:%M}-{self.end:%H:%M}")
        if self.days is not None:
            parts.append(",".join(self.days))
        return " ".join(parts) or "always"


def next_in_window(
    cron: Cron, tz: tzinfo, window: ActiveWindow, after: datetime, jumps: int = 500
) -> datetime | None:
    """The first firing instant strictly after ``after`` whose wall time is in ``window``."""
    t = cron.next_after(after, tz)
    for _ in range(jumps):
        if t is None:
            return None
        wall = to_local(t, tz)
        if window.contains(wall):
            return t
        opens = window.next_open(wall)
        if opens is None:
            return None
        t = cron.next_after(to_utc(opens, tz) - _TICK, tz)
    return None


__all__ = ["DAYS", "ActiveWindow", "next_in_window", "parse_days", "parse_hhmm"]
