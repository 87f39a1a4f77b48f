"""Parsing `when` (spec §2.2, acceptance 2.7.1) and the DST rule of the next firing (2.7.2)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from stagent_lab.errors import IntervalError
from stagent_lab.schedules.cron import compile_cron, to_local, to_utc, zone
from stagent_lab.schedules.describe import preview
from stagent_lab.schedules.interval import parse_interval

PHRASES = [
    ("every minute", "* * * * *"),
    ("every hour", "0 * * * *"),
    ("every 1 minute", "* * * * *"),
    ("every 30 minutes", "*/30 * * * *"),
    ("every 59 minutes", "*/59 * * * *"),
    ("every 2 hours", "0 */2 * * *"),
    ("every 23 hours", "0 */23 * * *"),
    ("hourly", "0 * * * *"),
    ("daily", "0 9 * * *"),
    ("weekly", "0 9 * * 1"),
    ("monthly", "0 9 1 * *"),
    ("every day at 9am", "0 9 * * *"),
    ("daily at 18:30", "30 18 * * *"),
    ("at 9 am", "0 9 * * *"),
    ("at 9:30pm", "30 21 * * *"),
    ("at 12am", "0 0 * * *"),
    ("at 12pm", "0 12 * * *"),
    ("at noon", "0 12 * * *"),
    ("at midnight", "0 0 * * *"),
    ("every weekday at 9am", "0 9 * * 1-5"),
    ("weekdays at 7:15", "15 7 * * 1-5"),
    ("every weekend at 10am", "0 10 * * 0,6"),
    ("weekends at 10am", "0 10 * * 0,6"),
    ("every monday at 8am", "0 8 * * 1"),
    ("every mon, wed and fri at 5:30pm", "30 17 * * 1,3,5"),
    ("every tuesday and thursday at 09:00", "0 9 * * 2,4"),
    ("on mondays at noon", "0 12 * * 1"),
    ("on saturdays and sundays at 8am", "0 8 * * 0,6"),
    ("every month on the 15th at 8am", "0 8 15 * *"),
    ("every month on the 1st at midnight", "0 0 1 * *"),
    ("every month on the 15 at 8am", "0 8 15 * *"),
    ("on monday at 9am", "0 9 * * 1"),
    ("every sun at 7pm", "0 19 * * 0"),
    ("on the first of every month at 9am", "0 9 1 * *"),
    ("  Every   WEEKDAY at 9AM ", "0 9 * * 1-5"),
]


@pytest.mark.parametrize(("text", "cron"), PHRASES)
def test_each_english_phrase_gives_its_cron(text, cron):
    interval = parse_interval(text)
    assert interval.cron.text == cron
    assert interval.form == "english"


SHORTHANDS = [
    ("1m", "* * * * *"),
    ("5m", "*/5 * * * *"),
    ("15 mins", "*/15 * * * *"),
    ("59minutes", "*/59 * * * *"),
    ("1h", "0 * * * *"),
    ("2h", "0 */2 * * *"),
    ("6 hrs", "0 */6 * * *"),
    ("1d", "0 9 * * *"),
    ("3 days", "0 9 */3 * *"),
    ("1w", "0 9 * * 1"),
    ("1 week", "0 9 * * 1"),
]


@pytest.mark.parametrize(("text", "cron"), SHORTHANDS)
def test_each_shorthand_gives_its_cron(text, cron):
    interval = parse_interval(text)
    assert (interval.cron.text, interval.form) == (cron, "shorthand")


@pytest.mark.parametrize(
    "text", ["0m", "60m", "24h", "0h", "32d", "2w", "0w"], ids=lambda t: t.replace(" ", "_")
)
def test_shorthands_out_of_bounds_are_refused(text):
    with pytest.raises(IntervalError, match="take 1 to"):
        parse_interval(text)


def test_cron_is_validated_and_kept():
    assert parse_interval("0 9 * * mon-fri").cron.weekdays == (1, 2, 3, 4, 5)
    assert parse_interval("*/7 * * * *").form == "cron"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 0 9 * * *", "exactly 5 fields"),
        ("* * * *", "exactly 5 fields"),
        ("61 * * * *", "not a valid cron"),
        ("@daily", "macros"),
        ("0 0 31 2 *", "never fires"),
    ],
)
def test_bad_cron_is_refused(text, match):
    with pytest.raises(IntervalError, match=match):
        parse_interval(text)


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("every other day at 9am", "every other"),
        ("every other monday", "every other"),
        ("every 90 minutes", "1 to 59"),
        ("every 24 hours", "1 to 23"),
        ("during business hours", "active_hours"),
        ("every day at 9am UTC", "tz="),
        ("every weekday at 9am Europe/Paris", "tz="),
        ("at 9am EST", "tz="),
        ("daily at 9am in london", "tz="),
        ("at 9", "ambiguous"),
        ("every day at 9", "ambiguous"),
        ("at 13pm", "not a time"),
        ("at 25:00", "24-hour"),
        ("every mondy at 9am", "not a day name"),
        ("tomorrow morning", "not a schedule"),
        ("", "empty"),
    ],
)
def test_refused_phrases_say_why_and_give_examples(text, hint):
    with pytest.raises(IntervalError, match=hint) as info:
        parse_interval(text)
    message = str(info.value)
    if text and "ambiguous" not in hint and "not a" not in hint and "24-hour" not in hint:
        assert "every weekday at 9am" in message and "15m" in message and "0 9 * * 1-5" in message


def test_no_match_error_lists_an_example_of_each_form():
    with pytest.raises(IntervalError) as info:
        parse_interval("whenever you like")
    text = str(info.value)
    assert "'every weekday at 9am'" in text  # English
    assert "'15m'" in text  # shorthand
    assert "'0 9 * * 1-5'" in text  # cron


def test_weekday_9am_in_paris_is_8_or_7_utc_by_date():
    winter = preview("every weekday at 9am", "Europe/Paris", datetime(2026, 3, 2))
    assert winter["cron"] == "0 9 * * 1-5"
    assert winter["next"][0] == {
        "utc": "2026-03-02T08:00:00Z",
        "local": "2026-03-02T09:00:00+01:00",
    }
    summer = preview("every weekday at 9am", "Europe/Paris", datetime(2026, 6, 1))
    assert summer["next"][0]["utc"] == "2026-06-01T07:00:00Z"
    assert len(summer["next"]) == 3
    assert summer["description"] == "every weekday (Monday to Friday) at 09:00"


def test_preview_warns_about_uneven_steps_and_dst():
    warn = preview("*/7 * * * *", "UTC", datetime(2026, 3, 2))["warnings"]
    assert any("uneven at the hour" in w for w in warn)
    dst = preview("30 2 * * *", "America/New_York", datetime(2026, 3, 1))["warnings"]
    assert any("does not exist on 2026-03-08" in w for w in dst)
    fold = preview("30 1 * * *", "America/New_York", datetime(2026, 3, 1))["warnings"]
    assert any("occurs twice on 2026-11-01" in w for w in fold)
    assert preview("0 12 * * *", "America/New_York", datetime(2026, 3, 1))["warnings"] == []


def test_unknown_zone_is_an_error_not_a_fallback():
    with pytest.raises(IntervalError, match="unknown time zone"):
        preview("daily", "Mars/Olympus_Mons", datetime(2026, 3, 2))
    with pytest.raises(IntervalError, match="unknown time zone"):
        zone("EST5EDT_nope")


# ---- DST (acceptance 2.7.2) ------------------------------------------------------------------

NY = "America/New_York"


def _local_days(cron: str, tz: str, start: datetime, days: int) -> dict[str, list[str]]:
    c, z = compile_cron(cron), zone(tz)
    out: dict[str, list[str]] = {}
    t = start
    end = start + timedelta(days=days)
    while True:
        t = c.next_after(t, z)
        if t is None or t >= end:
            return out
        local = to_local(t, z)
        out.setdefault(f"{local:%Y-%m-%d}", []).append(f"{local:%H:%M}")


def test_spring_forward_gap_fires_once_after_the_gap():
    days = _local_days("30 2 * * *", NY, datetime(2026, 3, 6), 5)
    assert days["2026-03-08"] == ["03:00"]  # 02:30 does not exist: the first instant after
    assert days["2026-03-07"] == ["02:30"] and days["2026-03-09"] == ["02:30"]
    assert sum(len(v) for v in days.values()) == 5


def test_fall_back_fold_fires_once_at_the_first_occurrence():
    days = _local_days("30 2 * * *", NY, datetime(2026, 10, 30), 4)
    assert days["2026-11-01"] == ["02:30"]
    fold = _local_days("30 1 * * *", NY, datetime(2026, 10, 30), 4)
    assert fold["2026-11-01"] == ["01:30"]
    first = compile_cron("30 1 * * *").next_after(datetime(2026, 11, 1, 0), zone(NY))
    assert first == datetime(2026, 11, 1, 5, 30)  # 01:30 EDT, not 01:30 EST (06:30 UTC)


def test_every_minute_over_a_fold_never_repeats_a_wall_time():
    c, z = compile_cron("*/15 * * * *"), zone(NY)
    times = c.times(datetime(2026, 11, 1, 4, 0), z, 12)
    walls = [f"{to_local(t, z):%H:%M}" for t in times]
    assert walls == sorted(walls) and len(set(walls)) == len(walls)
    assert all(b > a for a, b in itertools.pairwise(times))


def test_wall_time_mapping_rules():
    z = zone(NY)
    assert to_utc(datetime(2026, 3, 8, 2, 30), z) == datetime(2026, 3, 8, 7, 0)  # gap end
    assert to_utc(datetime(2026, 11, 1, 1, 30), z) == datetime(2026, 11, 1, 5, 30)  # first
    assert to_utc(datetime(2026, 7, 1, 12, 0), z) == datetime(2026, 7, 1, 16, 0)


# ---- the fast search agrees with croniter -------------------------------------------------

FIELD = st.one_of(
    st.just("*"),
    st.integers(0, 5).map(str),
    st.integers(2, 9).map(lambda n: f"*/{n}"),
    st.tuples(st.integers(0, 3), st.integers(4, 6)).map(lambda t: f"{t[0]}-{t[1]}"),
)
DAYFIELD = st.one_of(st.just("*"), st.integers(1, 28).map(str), st.just("1,15"), st.just("*/3"))
DOWFIELD = st.one_of(st.just("*"), st.just("1-5"), st.integers(0, 6).map(str), st.just("0,6"))


@settings(max_examples=150, deadline=None)
@given(
    minute=FIELD,
    hour=st.one_of(st.just("*"), st.integers(0, 23).map(str), st.just("*/6"), st.just("9-17")),
    dom=DAYFIELD,
    month=st.one_of(st.just("*"), st.integers(1, 12).map(str), st.just("1-6")),
    dow=DOWFIELD,
    start=st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31)),
)
def test_next_wall_matches_croniter(minute, hour, dom, month, dow, start):
    expr = f"{minute} {hour} {dom} {month} {dow}"
    ours = compile_cron(expr)
    assert not ours.special
    want = croniter(expr, start.replace(second=0, microsecond=0)).get_next(datetime)
    assert ours.next_wall(start) == want
