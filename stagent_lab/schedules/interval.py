"""What a schedule's ``when`` text means: an English phrase, a shorthand or a cron expression.

The text is trimmed, its whitespace collapsed and matched without regard to case. Parsers run
in order (English phrase, shorthand, cron); the first that recognises the text decides, and
text none recognises raises :class:`IntervalError` with an example of each form. The English
phrases are deliberately few (docs/schedules.md lists exactly these):

================================================  =================================
phrase                                            cron
================================================  =================================
every minute / every hour                         ``* * * * *`` / ``0 * * * *``
every N minutes (1-59) / every N hours (1-23)     ``*/N * * * *`` / ``0 */N * * *``
hourly / daily / weekly / monthly                 ``0 * * * *`` / ``0 9 * * *`` /
                                                  ``0 9 * * 1`` / ``0 9 1 * *``
every day at T / daily at T / at T                ``M H * * *``
every weekday at T / weekdays at T                ``M H * * 1-5``
every weekend at T / weekends at T                ``M H * * 0,6``
every D[, D ... and D] at T / on Ds at T          ``M H * * d1,d2``
every month on the Nth at T                       ``M H N * *``
on the first of every month at T                  ``M H 1 * *``
================================================  =================================

``T`` is ``9am``, ``9 am``, ``9:30pm``, ``12am`` (00:00), ``12pm`` (12:00), ``noon``,
``midnight`` or 24-hour ``HH:MM``; a bare ``9`` is refused as ambiguous.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stagent_lab.errors import IntervalError
from stagent_lab.schedules.cron import Cron, compile_cron

EXAMPLES = (
    "Examples: an English phrase ('every weekday at 9am', 'every 30 minutes', 'daily at "
    "18:30'), a shorthand ('15m', '2h', '1d', '1w') or a 5-field cron expression "
    "('0 9 * * 1-5')."
)

DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_DAY_NUMBER = {name: i for i, name in enumerate(DAY_NAMES)} | {
    name[:3]: i for i, name in enumerate(DAY_NAMES)
}
_DAY_WORD = r"(?:sun|mon|tue|wed|thu|fri|sat)[a-z]*"
_TIME = r"(?P<time>.+?)"


@dataclass(frozen=True)
class Interval:
    """A parsed ``when``: its cron, how it was written, and what to tell the operator."""

    text: str
    cron: Cron
    form: str  # english | shorthand | cron
    warnings: tuple[str, ...] = field(default=())


def normalize(text: str) -> str:
    return " ".join(str(text).split()).lower()


def parse_interval(text: str) -> Interval:
    """The cron of ``text`` (IntervalError naming the problem and giving examples)."""
    if not isinstance(text, str) or not text.strip():
        raise IntervalError(f"'when' is empty. {EXAMPLES}")
    if len(text) > 200:
        raise IntervalError(f"'when' is too long ({len(text)} characters, at most 200)")
    norm = normalize(text)
    _refuse_known_traps(norm)
    cron_text = english(norm)
    form = "english"
    if cron_text is None:
        cron_text = shorthand(norm)
        form = "shorthand"
    if cron_text is None:
        if not _looks_like_cron(norm):
            raise IntervalError(f"{text.strip()!r} is not a schedule this parser knows. {EXAMPLES}")
        cron_text = norm
        form = "cron"
    try:
        cron = compile_cron(cron_text)
    except IntervalError as exc:
        if form != "cron":
            raise
        raise IntervalError(f"{exc} {EXAMPLES}") from None
    return Interval(text=" ".join(text.split()), cron=cron, form=form)


# ---- refusals with a hint ------------------------------------------------------------------

_ZONE_WORDS = re.compile(
    r"(\butc\b|\bgmt\b|\b[a-z]+/[a-z_]+\b|\b(?:est|edt|cst|cdt|mst|mdt|pst|pdt|akst|akdt|hst|"
    r"ast|adt|nst|ndt|cet|cest|eet|eest|wet|west|bst|ist|jst|kst|aest|aedt|acst|nzst|nzdt|msk|"
    r"hkt|sgt)\b|[+-]\d{2}:?\d{2}\b|\btime ?zone\b|\b(?:in|at) [a-z]+ time\b|"
    r"(?:\d|am|pm|noon|midnight) in [a-z])"
)


def _refuse_known_traps(norm: str) -> None:
    if norm.startswith("every other") or " every other " in f" {norm} ":
        raise IntervalError(
            f"{norm!r}: 'every other ...' cannot be written as one cron expression. Use a "
            "shorthand such as '2d' (days 1, 3, 5 ... of each month), or two schedules. " + EXAMPLES
        )
    if "business hours" in norm or "working hours" in norm or "office hours" in norm:
        raise IntervalError(
            f"{norm!r}: give the rhythm here and the hours separately: a heartbeat takes "
            "active_hours=('09:00', '17:00') and active_days=['mon', ..., 'fri']. " + EXAMPLES
        )
    if _ZONE_WORDS.search(norm):
        raise IntervalError(
            f"{norm!r} names a time zone; write the time alone and pass the zone as tz= "
            "(an IANA name such as 'Europe/Paris'). " + EXAMPLES
        )


# ---- English phrases -----------------------------------------------------------------------

_FIXED = {
    "every minute": "* * * * *",
    "every hour": "0 * * * *",
    "hourly": "0 * * * *",
    "daily": "0 9 * * *",
    "weekly": "0 9 * * 1",
    "monthly": "0 9 1 * *",
}


def english(norm: str) -> str | None:
    """The cron of an English phrase, None when ``norm`` is not one (IntervalError when it is
    one with a bad part, such as 'every 90 minutes' or 'at 9')."""
    if norm in _FIXED:
        return _FIXED[norm]
    m = re.fullmatch(r"every (\d+) (minute|minutes|hour|hours)", norm)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if unit.startswith("minute"):
            if not 1 <= n <= 59:
                raise IntervalError(
                    f"{norm!r}: every N minutes takes N from 1 to 59; {n} minutes does not "
                    "divide an hour into a cron pattern (try 'every 2 hours', or a cron "
                    "expression). " + EXAMPLES
                )
            return "* * * * *" if n == 1 else f"*/{n} * * * *"
        if not 1 <= n <= 23:
            raise IntervalError(
                f"{norm!r}: every N hours takes N from 1 to 23 (for days, use 'daily at T' "
                "or a shorthand such as '2d'). " + EXAMPLES
            )
        return "0 * * * *" if n == 1 else f"0 */{n} * * *"
    m = re.fullmatch(rf"(?:every day at|daily at|at) {_TIME}", norm)
    if m:
        hh, mm = parse_time(m.group("time"))
        return f"{mm} {hh} * * *"
    m = re.fullmatch(rf"(?:every weekday|weekdays) at {_TIME}", norm)
    if m:
        hh, mm = parse_time(m.group("time"))
        return f"{mm} {hh} * * 1-5"
    m = re.fullmatch(rf"(?:every weekend|weekends) at {_TIME}", norm)
    if m:
        hh, mm = parse_time(m.group("time"))
        return f"{mm} {hh} * * 0,6"
    m = re.fullmatch(rf"every month on the (\d{{1,2}})(?:st|nd|rd|th)? at {_TIME}", norm)
    if m:
        day = int(m.group(1))
        if not 1 <= day <= 31:
            raise IntervalError(f"{norm!r}: the day of the month is 1 to 31. " + EXAMPLES)
        hh, mm = parse_time(m.group("time"))
        return f"{mm} {hh} {day} * *"
    m = re.fullmatch(rf"on the first of every month at {_TIME}", norm)
    if m:
        hh, mm = parse_time(m.group("time"))
        return f"{mm} {hh} 1 * *"
    days = rf"{_DAY_WORD}(?:(?:, ?| and | ){_DAY_WORD})*"
    m = re.fullmatch(rf"(?:every|on) (?P<days>{days}) at {_TIME}", norm)
    if m:
        numbers = day_numbers(m.group("days"), plural=norm.startswith("on "))
        hh, mm = parse_time(m.group("time"))
        return f"{mm} {hh} * * {','.join(str(d) for d in numbers)}"
    return None


def day_numbers(text: str, *, plural: bool) -> list[int]:
    """``monday, wed and fri`` → [1, 3, 5]; ``on mondays`` takes plural names too."""
    out: set[int] = set()
    for word in re.split(r", ?| and | ", text):
        if not word:
            continue
        key = word
        if key not in _DAY_NUMBER and plural and key.endswith("s"):
            key = key[:-1]
        if key not in _DAY_NUMBER:
            raise IntervalError(
                f"{word!r} is not a day name (use monday ... sunday or mon ... sun). " + EXAMPLES
            )
        out.add(_DAY_NUMBER[key])
    return sorted(out)


def parse_time(text: str) -> tuple[int, int]:
    """(hour, minute) of ``9am``, ``9 am``, ``9:30pm``, ``12am``, ``noon``, ``midnight``,
    ``18:30``; a bare number is refused as ambiguous."""
    t = text.strip()
    if t == "noon":
        return 12, 0
    if t == "midnight":
        return 0, 0
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))? ?(am|pm)", t)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2) or 0)
        if not 1 <= hour <= 12 or minute > 59:
            raise IntervalError(f"{text!r} is not a time: use 1-12 with am/pm, e.g. '9:30am'")
        pm = m.group(3).startswith("p")
        hour = hour % 12 + (12 if pm else 0)
        return hour, minute
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", t)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise IntervalError(f"{text!r} is not a 24-hour time (00:00 to 23:59)")
        return hour, minute
    if re.fullmatch(r"\d{1,4}", t):
        raise IntervalError(
            f"{text!r} is ambiguous: write '9am', '9pm' or a 24-hour time such as '09:00'"
        )
    raise IntervalError(
        f"{text!r} is not a time: use '9am', '9:30pm', 'noon', 'midnight' or '18:30'. " + EXAMPLES
    )


# ---- shorthand -----------------------------------------------------------------------------

_SHORTHAND = re.compile(
    r"(\d+) ?(m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks)"
)


def shorthand(norm: str) -> str | None:
    m = _SHORTHAND.fullmatch(norm)
    if m is None:
        return None
    n, unit = int(m.group(1)), m.group(2)[0]
    bounds = {"m": 59, "h": 23, "d": 31, "w": 1}
    names = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if not 1 <= n <= bounds[unit]:
        hint = " (a weekly shorthand is 1w only)" if unit == "w" else ""
        raise IntervalError(f"{norm!r}: {names[unit]} take 1 to {bounds[unit]}{hint}. " + EXAMPLES)
    if unit == "m":
        return "* * * * *" if n == 1 else f"*/{n} * * * *"
    if unit == "h":
        return "0 * * * *" if n == 1 else f"0 */{n} * * *"
    if unit == "d":
        return "0 9 * * *" if n == 1 else f"0 9 */{n} * *"
    return "0 9 * * 1"


# ---- cron ----------------------------------------------------------------------------------

_CRON_CHARS = re.compile(r"[0-9a-z*/,\-?#@ ]+")


def _looks_like_cron(norm: str) -> bool:
    if norm.startswith("@"):
        return True
    if not _CRON_CHARS.fullmatch(norm):
        return False
    parts = norm.split(" ")
    return len(parts) >= 5 or any(c in norm for c in "*/,")


__all__ = [
    "DAY_NAMES",
    "EXAMPLES",
    "Interval",
    "day_numbers",
    "english",
    "normalize",
    "parse_interval",
    "parse_time",
    "shorthand",
]
