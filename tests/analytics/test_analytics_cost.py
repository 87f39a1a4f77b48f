"""cost_by / cost_over_time on the hand-made store in conftest.py (sums worked out by hand)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from stagent_lab.analytics import cost_by, cost_by_sql, cost_over_time


def rows(df: pd.DataFrame, *cols: str) -> list[tuple]:
    return [tuple(r) for r in df[list(cols)].itertuples(index=False)]


def test_total_without_dims(store):
    df = cost_by(store)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["cost_usd"] == pytest.approx(1.22)
    assert row["calls"] == 9
    assert row["tasks"] == 7  # t1 t2 t3 t5 t6 t7 t8; the profile test has no task
    assert row["input_tokens"] == 2570
    assert row["output_tokens"] == 257
    assert row["cache_read_tokens"] == 50
    assert row["unpriced_calls"] == 1


def test_by_profile_sorted_by_cost(store):
    df = cost_by(store, "profile")
    assert list(df.columns[:1]) == ["profile"]
    assert df["profile"].tolist() == ["alpha-prof", "beta-prof"]
    assert df["cost_usd"].tolist() == pytest.approx([1.15, 0.07])
    assert df["calls"].tolist() == [6, 3]
    assert df["tasks"].tolist() == [4, 3]
    assert df["unpriced_calls"].tolist() == [1, 0]


def test_by_profile_and_day_orders_days_first(store):
    df = cost_by(store, "profile", "day")
    got = [(p, d.date(), round(c, 6)) for p, d, c in rows(df, "profile", "day", "cost_usd")]
    assert got == [
        ("alpha-prof", dt.date(2026, 1, 1), 0.35),
        ("beta-prof", dt.date(2026, 1, 1), 0.01),
        ("alpha-prof", dt.date(2026, 1, 2), 0.30),  # the unpriced call counts as 0
        ("beta-prof", dt.date(2026, 1, 2), 0.02),
        ("alpha-prof", dt.date(2026, 1, 4), 0.50),
        ("beta-prof", dt.date(2026, 1, 4), 0.04),
    ]


def test_by_project_uses_names_and_keeps_rows_without_project(store):
    df = cost_by(store, "project")
    got = {(None if pd.isna(p) else p): round(c, 6) for p, c in rows(df, "project", "cost_usd")}
    assert got == {"alpha": 0.65, None: 0.50, "beta": 0.07}


def test_by_model_runtime_activity(store):
    assert rows(cost_by(store, "model"), "model", "calls") == [("m-big", 6), ("m-small", 3)]
    assert rows(cost_by(store, "runtime"), "runtime", "calls") == [("scripted", 9)]
    act = cost_by(store, "activity")
    assert act["activity"].tolist() == ["task_run", "profile_test"]
    assert act["cost_usd"].tolist() == pytest.approx([0.72, 0.50])


def test_since_inclusive_until_exclusive(store):
    df = cost_by(store, "profile", since="2026-01-02", until=dt.date(2026, 1, 4))
    assert rows(df, "profile") == [("alpha-prof",), ("beta-prof",)]
    assert df["cost_usd"].tolist() == pytest.approx([0.30, 0.02])
    assert df["calls"].tolist() == [2, 1]
    only_last = cost_by(store, since=pd.Timestamp("2026-01-04"))
    assert only_last["cost_usd"].iloc[0] == pytest.approx(0.54)


def test_timezone_aware_bound_is_converted_to_utc(store):
    # 2026-01-02 09:00 at UTC+01:00 is 08:00 UTC: still before the 10:00 calls of that day.
    tz = dt.timezone(dt.timedelta(hours=1))
    df = cost_by(store, since=dt.datetime(2026, 1, 2, 9, 0, tzinfo=tz), until="2026-01-03")
    assert df["cost_usd"].iloc[0] == pytest.approx(0.32)


def test_unknown_dimension_lists_valid_ones(store):
    with pytest.raises(ValueError) as err:
        cost_by(store, "profile", "colour")
    msg = str(err.value)
    assert "'colour'" in msg
    for dim in ("profile", "runtime", "model", "project", "day"):
        assert dim in msg


def test_injection_text_is_not_a_dimension(store):
    with pytest.raises(ValueError, match="unknown dimension"):
        cost_by(store, "profile_id; DROP TABLE tasks")
    assert len(store.query_df("SELECT * FROM tasks")) == 8


def test_repeated_dimension_and_bad_bounds(store):
    with pytest.raises(ValueError, match="twice"):
        cost_by(store, "day", "day")
    with pytest.raises(ValueError, match="since"):
        cost_by(store, since="not a date")
    with pytest.raises(ValueError, match="before"):
        cost_by(store, since="2026-01-03", until="2026-01-02")


def test_empty_store(empty_store):
    total = cost_by(empty_store)
    assert total["cost_usd"].tolist() == [0.0]
    assert total["calls"].tolist() == [0]
    assert cost_by(empty_store, "profile").empty
    assert cost_over_time(empty_store).empty


def test_sql_is_inspectable():
    sql = cost_by_sql("profile", "day")
    assert "u.profile_id AS profile" in sql
    assert "date_trunc('day', u.started_at)" in sql
    assert "FROM usage_ledger u LEFT JOIN projects p" in sql


def test_cost_over_time_fills_gaps_with_zero(store):
    df = cost_over_time(store, "day")
    assert list(df.columns) == ["period", "cost_usd"]
    assert [p.date() for p in df["period"]] == [
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 2),
        dt.date(2026, 1, 3),
        dt.date(2026, 1, 4),
    ]
    assert df["cost_usd"].tolist() == pytest.approx([0.36, 0.32, 0.0, 0.54])


def test_cost_over_time_by_profile_has_every_period_for_every_group(store):
    df = cost_over_time(store, "day", by="profile")
    assert len(df) == 8
    beta = df[df["profile"] == "beta-prof"]["cost_usd"].tolist()
    assert beta == pytest.approx([0.01, 0.02, 0.0, 0.04])


def test_cost_over_time_window_and_freqs(store):
    df = cost_over_time(store, "day", since="2025-12-30", until="2026-01-06")
    assert len(df) == 7  # Dec 30 .. Jan 5, widened to the window
    assert df["cost_usd"].sum() == pytest.approx(1.22)  # the window holds every call
    weekly = cost_over_time(store, "week")
    # 2026-01-01 is a Thursday: Jan 1, 2 fall in the week of Dec 29, Jan 4 (Sunday) too.
    assert [p.date() for p in weekly["period"]] == [dt.date(2025, 12, 29)]
    assert weekly["cost_usd"].tolist() == pytest.approx([1.22])
    with pytest.raises(ValueError, match="freq"):
        cost_over_time(store, "fortnight")
    with pytest.raises(ValueError, match="unknown dimension"):
        cost_over_time(store, by="day")
