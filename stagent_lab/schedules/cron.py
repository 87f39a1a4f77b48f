"""Cron in a time zone: when a 5-field expression fires next, as a UTC instant.

croniter validates and expands the expression once (:func:`compile_cron`); the next firing is
then found by a small field-by-field search over local wall times (a few microseconds, where
croniter's own iterator costs a hundred or more), so a thousand schedules re-arm cheaply.
Expressions with croniter's special forms (``L``, ``W``, ``#``) are iterated by croniter itself.

Wall times become instants with the zone's rules (``zoneinfo``), and daylight-saving changes
follow one rule: a wall time that does not exist (the spring-forward gap) fires once, at the
first instant after the gap; one that occurs twice (the fall-back fold) fires once, at its first
occurrence. Every instant here is a naive UTC ``datetime`` (the store's convention).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from stagent_lab.errors import IntervalError

_SEARCH_YEARS = 6  # an expression that matches nothing in this long never fires
_ZONES: dict[str, tzinfo] = {}
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


def zone(name: str) -> tzinfo:
    """The IANA zone ``name``; an unknown name is an error, never a silent fallback. UTC's
    names give ``datetime.UTC`` (no conversion work)."""
    if name in _UTC_NAMES:
        return UTC
    tz = _ZONES.get(name)
    if tz is not None:
        return tz
    if not isinstance(name, str) or not name.strip() or name.strip() != name:
        raise IntervalError(f"time zone must be an IANA name such as 'Europe/Paris', got {name!r}")
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise IntervalError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC', 'Europe/Paris' or "
            "'America/New_York'"
        ) from None
    _ZONES[name] = tz
    return tz


# ---- wall time <-> instant --------------------------------------------------------------


def to_local(instant: datetime, tz: tzinfo) -> datetime:
    """The naive wall time in ``tz`` of a naive UTC instant."""
    if tz is UTC:
        return instant
    return tz.fromutc(instant.replace(tzinfo=tz)).replace(tzinfo=None)


def to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """The instant of a naive wall time in ``tz``: its first occurrence when it occurs twice,
    the first instant after the gap when it does not exist."""
    if tz is UTC:
        return wall
    first = tz.utcoffset(wall.replace(tzinfo=tz))
    second = tz.utcoffset(wall.replace(tzinfo=tz, fold=1))
    if first is None or second is None:
        raise ValueError(f"zone {tz} gives no UTC offset for {wall}")
    if first >= second:  # unambiguous, or a fold (fold=0 is the first occurrence)
        return wall - first
    return _gap_end(wall, tz)  # fold=0 before fold=1 in offset order: a gap


def _gap_end(wall: datetime, tz: tzinfo) -> datetime:
    """The first instant whose wall time is past ``wall`` (which falls in a gap)."""
    lo = wall - timedelta(hours=27)  # as UTC: before the gap whatever the offset
    hi = wall + timedelta(hours=27)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if to_local(mid, tz) > wall:
            hi = mid
        else:
            lo = mid
    return hi


# ---- compiled expressions ---------------------------------------------------------------


@dataclass(frozen=True)
class Cron:
    """A validated 5-field expression, expanded into the values each field allows."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]  # day of month
    months: tuple[int, ...]
    weekdays: tuple[int, ...]  # 0 = Sunday
    day_star: bool
    weekday_star: bool
    special: bool  # L / W / # forms: croniter iterates

    def matches_day(self, d: datetime) -> bool:
        dom = d.day in self._day_set
        dow = (d.isoweekday() % 7) in self._weekday_set
        if self.day_star and self.weekday_star:
            return True
        if self.day_star:
            return dow
        if self.weekday_star:
            return dom
        return dom or dow  # both restricted: either may match (standard cron)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_day_set", frozenset(self.days))
        object.__setattr__(self, "_weekday_set", frozenset(self.weekdays))
        object.__setattr__(self, "_month_set", frozenset(self.months))
        object.__setattr__(self, "_hour_set", frozenset(self.hours))
        object.__setattr__(self, "_minute_set", frozenset(self.minutes))
        # Days from each weekday (0 = Sunday) to the next allowed one (0 when it is allowed).
        gaps = tuple(min(((w - wd) % 7 for w in self.weekdays), default=0) for wd in range(7))
        object.__setattr__(self, "_weekday_gap", gaps)

    # ---- the next matching wall time ----------------------------------------------------

    def next_wall(self, after: datetime) -> datetime | None:
        """The first wall time strictly after ``after`` that matches (None: never again).

        Field by field on integers: the month, then the first matching day of it (jumping
        straight to the next allowed day of the month or weekday), the hour, the minute.
        """
        if self.special:
            return self._next_wall_croniter(after)
        y, mo, d, h, mi = after.year, after.month, after.day, after.hour, after.minute + 1
        if mi == 60:
            mi, h = 0, h + 1
        limit = y + _SEARCH_YEARS
        months, hours, minutes = self.months, self.hours, self.minutes
        month_set, hour_set, minute_set = self._month_set, self._hour_set, self._minute_set
        while y <= limit:
            if h == 24:
                d, h, mi = d + 1, 0, 0
            dim = _days_in(y, mo)
            if mo not in month_set or d > dim:
                i = bisect.bisect_right(months, mo)
                if i < len(months):
                    mo = months[i]
                else:
                    y, mo = y + 1, months[0]
                d, h, mi = 1, 0, 0
                continue
            nd = self._next_day(y, mo, d, dim)
            if nd is None:
                d = dim + 1  # past the month: the next allowed month
                continue
            if nd != d:
                d, h, mi = nd, 0, 0
            if h not in hour_set:
                i = bisect.bisect_left(hours, h)
                if i == len(hours):
                    d, h, mi = d + 1, 0, 0
                    continue
                h, mi = hours[i], 0
            if mi not in minute_set:
                i = bisect.bisect_left(minutes, mi)
                if i == len(minutes):
                    h, mi = h + 1, 0
                    continue
                mi = minutes[i]
            return datetime(y, mo, d, h, mi)
        return None

    def _next_day(self, y: int, mo: int, d: int, dim: int) -> int | None:
        """The first day >= ``d`` of this month that matches, or None."""
        if self.day_star and self.weekday_star:
            return d
        by_day = by_weekday = None
        if not self.day_star:
            i = bisect.bisect_left(self.days, d)
            if i < len(self.days) and self.days[i] <= dim:
                by_day = self.days[i]
        if not self.weekday_star:
            weekday = (_weekday(y, mo, d) + 1) % 7  # 0 = Sunday
            nd = d + self._weekday_gap[weekday]
            if nd <= dim:
                by_weekday = nd
        if self.day_star:
            return by_weekday
        if self.weekday_star:
            return by_day
        found = [x for x in (by_day, by_weekday) if x is not None]  # either may match
        return min(found) if found else None

    def _next_wall_croniter(self, after: datetime) -> datetime | None:
        try:
            out = croniter(self.text, after.replace(second=0, microsecond=0)).get_next(datetime)
        except Exception:  # croniter gives up on expressions that never match
            return None
        if out.year > after.year + _SEARCH_YEARS:
            return None
        return out

    # ---- instants ------------------------------------------------------------------------

    def next_after(self, instant: datetime, tz: tzinfo) -> datetime | None:
        """The first firing instant (naive UTC) strictly after ``instant``."""
        wall = to_local(instant, tz)
        while True:
            nxt = self.next_wall(wall)
            if nxt is None:
                return None
            at = to_utc(nxt, tz)
            if at > instant:
                return at
            wall = nxt  # a fold's second pass or a gap already fired: keep looking

    def times(self, after: datetime, tz: tzinfo, n: int) -> list[datetime]:
        out: list[datetime] = []
        t = after
        for _ in range(n):
            nxt = self.next_after(t, tz)
            if nxt is None:
                break
            out.append(nxt)
            t = nxt
        return out

    def count_between(self, first: datetime, last: datetime, tz: tzinfo, cap: int = 100_000) -> int:
        """How many firing instants lie in [first, last] (``first`` itself a firing time)."""
        if first > last:
            return 0
        count, t = 1, first
        while count < cap:
            nxt = self.next_after(t, tz)
            if nxt is None or nxt > last:
                break
            count += 1
            t = nxt
        return count


_SPECIAL_DAY = re.compile(r"[lw]", re.IGNORECASE)


def compile_cron(text: str) -> Cron:
    """Validate a 5-field cron expression with croniter and expand it (IntervalError if bad)."""
    expr = " ".join(str(text).split())
    fields = expr.split(" ") if expr else []
    if expr.startswith("@"):
        raise IntervalError(
            f"{expr!r}: cron macros are not accepted; write the 5 fields (e.g. '0 9 * * *') or "
            "an English phrase such as 'daily' or 'hourly'"
        )
    if len(fields) != 5:
        extra = " (a seconds or year field is not accepted)" if len(fields) > 5 else ""
        raise IntervalError(
            f"{expr!r}: a cron expression has exactly 5 fields (minute hour day-of-month month "
            f"day-of-week){extra}, e.g. '0 9 * * 1-5'"
        )
    try:
        expanded, nth = croniter.expand(expr)
    except Exception as exc:
        raise IntervalError(f"{expr!r} is not a valid cron expression: {exc}") from None
    minute, hour, dom, month, dow = expanded
    special = bool(nth) or bool(_SPECIAL_DAY.search(fields[2]))
    for values in expanded:
        if any(not isinstance(v, int) and v != "*" for v in values):
            special = True

    def ints(values: list[object], lo: int, hi: int) -> tuple[int, ...]:
        if values == ["*"]:
            return tuple(range(lo, hi + 1))
        return tuple(sorted({int(v) % 7 if hi == 6 else int(v) for v in values if _is_int(v)}))

    cron = Cron(
        text=expr,
        minutes=ints(minute, 0, 59),
        hours=ints(hour, 0, 23),
        days=ints(dom, 1, 31),
        months=ints(month, 1, 12),
        weekdays=ints(dow, 0, 6),
        day_star=dom == ["*"],
        weekday_star=dow == ["*"],
        special=special,
    )
    possible = any(_month_has_day(m, d) for m in cron.months for d in cron.days)
    if not special and cron.weekday_star and not possible:
        raise IntervalError(f"{expr!r} never fires: none of those months has that day")
    return cron


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return _MONTH_DAYS[month - 1]


def _weekday(year: int, month: int, day: int) -> int:
    """Monday = 0 (``date.weekday``)."""
    return date(year, month, day).weekday()


def _month_has_day(month: int, day: int) -> bool:
    return day <= _MONTH_DAYS[month - 1]


__all__ = ["Cron", "compile_cron", "to_local", "to_utc", "zone"]
