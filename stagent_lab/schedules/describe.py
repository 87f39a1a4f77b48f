"""Saying what a cron expression does, in words, and what might surprise its author.

``preview(text, tz, now)`` is what ``lab.schedules.parse`` returns: the cron, a description,
the zone, the next three firings (UTC and local) and warnings — uneven steps (``*/7`` jumps
from :56 to :00), day steps that restart each month, day-of-month and day-of-week both
restricted (either matches), and wall times the zone's daylight-saving changes skip or repeat.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Any

from stagent_lab.schedules.cron import Cron, zone
from stagent_lab.schedules.interval import DAY_NAMES, Interval, parse_interval

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _step(values: tuple[int, ...], lo: int, hi: int) -> int | None:
    """N when ``values`` is lo, lo+N, lo+2N ... up to hi (a ``*/N`` field)."""
    if len(values) < 2 or values[0] != lo:
        return None
    n = values[1] - values[0]
    expected = tuple(range(lo, hi + 1, n))
    return n if values == expected else None


def _full(values: tuple[int, ...], lo: int, hi: int) -> bool:
    return values == tuple(range(lo, hi + 1))


def _days_phrase(cron: Cron) -> str:
    if cron.weekday_star:
        if cron.day_star:
            return "every day"
        step = _step(cron.days, 1, 31)
        if step:
            return f"every {step} days (days 1, {1 + step}, {1 + 2 * step} … of each month)"
        return "on day " + _join([str(d) for d in cron.days]) + " of the month"
    weekdays = cron.weekdays
    if weekdays == (1, 2, 3, 4, 5):
        named = "every weekday (Monday to Friday)"
    elif weekdays == (0, 6):
        named = "every Saturday and Sunday"
    else:
        named = "every " + _join([DAY_NAMES[d].capitalize() for d in weekdays])
    if cron.day_star:
        return named
    return f"on day {_join([str(d) for d in cron.days])} of the month or {named}"


def describe(cron: Cron) -> str:
    """A sentence for a cron expression (croniter's special forms are described as cron)."""
    if cron.special:
        return f"at the times of the cron expression '{cron.text}'"
    minutes, hours = cron.minutes, cron.hours
    months = (
        "" if _full(cron.months, 1, 12) else (" in " + _join([_MONTHS[m - 1] for m in cron.months]))
    )
    days = _days_phrase(cron)
    every_day = days == "every day"
    if _full(minutes, 0, 59) and _full(hours, 0, 23):
        text = "every minute"
        return text + ("" if every_day else f", {days}") + months
    step = _step(minutes, 0, 59)
    if step and _full(hours, 0, 23):
        text = f"every {step} minutes"
        return text + ("" if every_day else f", {days}") + months
    if len(minutes) == 1 and _full(hours, 0, 23):
        text = "every hour, on the hour" if minutes[0] == 0 else f"every hour at :{minutes[0]:02d}"
        return text + ("" if every_day else f", {days}") + months
    hstep = _step(hours, 0, 23)
    if len(minutes) == 1 and hstep:
        text = f"every {hstep} hours, " + (
            "on the hour" if minutes[0] == 0 else f"at :{minutes[0]:02d}"
        )
        return text + ("" if every_day else f", {days}") + months
    times = [_clock(h, m) for h in hours for m in minutes]
    if len(times) <= 6:
        at = "at " + _join(times)
    else:
        at = (
            "at minute " + _join([str(m) for m in minutes])
            + " of hour " + _join([str(h) for h in hours])
        )  # fmt: skip
    return f"{days} {at}{months}"


def warnings_for(cron: Cron, tz: tzinfo, now: datetime) -> list[str]:
    """What might surprise the author of ``cron`` in zone ``tz``."""
    out: list[str] = []
    if cron.special:
        return out
    mstep = _step(cron.minutes, 0, 59)
    if mstep and 60 % mstep:
        last = cron.minutes[-1]
        out.append(
            f"every {mstep} minutes restarts at each hour: the spacing is uneven at the hour "
            f"(:{last:02d} then :00, {60 - last} minutes apart)"
        )
    hstep = _step(cron.hours, 0, 23)
    if hstep and 24 % hstep:
        last = cron.hours[-1]
        out.append(
            f"every {hstep} hours restarts at midnight: the spacing is uneven there "
            f"({last:02d}:00 then 00:00, {24 - last} hours apart)"
        )
    dstep = _step(cron.days, 1, 31)
    if cron.weekday_star and dstep and dstep > 1:
        out.append(
            f"every {dstep} days restarts on the 1st of each month, so the gap at the turn of a "
            "month can be shorter"
        )
    if not cron.day_star and not cron.weekday_star:
        out.append(
            "day-of-month and day-of-week are both restricted: a day matching either fires "
            "(standard cron)"
        )
    out += _dst_warnings(cron, tz, now)
    return out


def _dst_warnings(cron: Cron, tz: tzinfo, now: datetime) -> list[str]:
    """Wall times of ``cron`` that a daylight-saving change in the next year skips or repeats."""
    out: list[str] = []
    day = timedelta(days=1)
    t = now.replace(minute=0, second=0, microsecond=0)
    prev = _offset(tz, t)
    for _ in range(370):
        nxt = t + day
        off = _offset(tz, nxt)
        if off != prev and off is not None and prev is not None:
            change = _transition(tz, t, nxt)
            a, b = change + prev, change + off  # the wall clock just before and after
            lo, hi = min(a, b), max(a, b)
            hits = []
            for date in sorted({lo.date(), hi.date()}):
                for h in cron.hours:
                    for m in cron.minutes:
                        w = datetime(date.year, date.month, date.day, h, m)
                        if lo <= w < hi and cron.matches_day(w):
                            hits.append(w)
            if hits:
                times = _join([f"{w:%H:%M}" for w in hits[:4]]) + (" …" if len(hits) > 4 else "")
                one = len(hits) == 1
                if b > a:
                    verb = "does not exist" if one else "do not exist"
                    out.append(
                        f"{times} {verb} on {lo:%Y-%m-%d} (clocks go forward): "
                        f"{'it fires' if one else 'they fire'} once, at {hi:%H:%M}"
                    )
                else:
                    verb = "occurs" if one else "occur"
                    out.append(
                        f"{times} {verb} twice on {lo:%Y-%m-%d} (clocks go back): each fires "
                        "once, at its first occurrence"
                    )
        prev, t = off, nxt
    return out


def _offset(tz: tzinfo, instant: datetime) -> timedelta | None:
    from datetime import UTC

    return instant.replace(tzinfo=UTC).astimezone(tz).utcoffset()


def _transition(tz: tzinfo, lo: datetime, hi: datetime) -> datetime:
    """The first instant in (lo, hi] with the offset of ``hi`` (to the second)."""
    target = _offset(tz, hi)
    while hi - lo > timedelta(seconds=1):
        mid = (lo + (hi - lo) / 2).replace(microsecond=0)
        if _offset(tz, mid) == target:
            hi = mid
        else:
            lo = mid
    return hi


def preview(text: str, tz_name: str, now: datetime, count: int = 3) -> dict[str, Any]:
    """``{cron, description, timezone, next: [{utc, local}], warnings}`` for ``text`` in
    ``tz_name`` (IntervalError when either is not valid)."""
    tz = zone(tz_name)
    interval: Interval = parse_interval(text)
    cron = interval.cron
    times = cron.times(now, tz, count)
    return {
        "text": interval.text,
        "form": interval.form,
        "cron": cron.text,
        "description": describe(cron),
        "timezone": tz_name,
        "next": [
            {
                "utc": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "local": t.replace(tzinfo=_utc()).astimezone(tz).isoformat(),
            }
            for t in times
        ],
        "warnings": warnings_for(cron, tz, now),
    }


def _utc() -> tzinfo:
    from datetime import UTC

    return UTC


__all__ = ["describe", "preview", "warnings_for"]
