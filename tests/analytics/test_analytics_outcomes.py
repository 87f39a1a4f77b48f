"""outcomes / failures / decisions on the hand-made store (rates and percentiles by hand).

alpha-prof finished t1..t4 (durations 10, 20, 30, 40 s; turns 2, 4, 3, 1) and has t5 running;
beta-prof finished t6..t8 (5, 15, 25 s; turns 5, 2, 3). Percentiles interpolate linearly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stagent_lab.analytics import decisions, failures, outcomes, outcomes_sql


def by_profile(store) -> dict[str, pd.Series]:
    df = outcomes(store)
    return {row["profile"]: row for _, row in df.iterrows()}


def test_counts_and_success_rate(store):
    got = by_profile(store)
    a, b = got["alpha-prof"], got["beta-prof"]
    assert (a["tasks"], a["completed"], a["failed"], a["cancelled"], a["active"]) == (5, 2, 1, 1, 1)
    assert (b["tasks"], b["completed"], b["failed"], b["cancelled"], b["active"]) == (3, 1, 2, 0, 0)
    assert a["success_rate"] == pytest.approx(0.5)  # the running task is not counted
    assert b["success_rate"] == pytest.approx(1 / 3)


def test_duration_and_turn_percentiles(store):
    got = by_profile(store)
    a, b = got["alpha-prof"], got["beta-prof"]
    assert a["duration_p50_s"] == pytest.approx(25.0)
    assert a["duration_p95_s"] == pytest.approx(38.5)
    assert a["duration_p95_s"] == pytest.approx(np.percentile([10, 20, 30, 40], 95))
    assert a["turns_p50"] == pytest.approx(2.5)
    assert a["turns_p95"] == pytest.approx(3.85)
    assert b["duration_p50_s"] == pytest.approx(15.0)
    assert b["duration_p95_s"] == pytest.approx(24.0)
    assert b["turns_p50"] == pytest.approx(3.0)
    assert b["turns_p95"] == pytest.approx(4.8)


def test_cost_comes_from_the_ledger(store):
    got = by_profile(store)
    # alpha: t1 .15 + t2 .20 + t3 .30 (t5 unpriced); the task-less profile test is not a task.
    assert got["alpha-prof"]["cost_usd"] == pytest.approx(0.65)
    assert got["alpha-prof"]["cost_per_success_usd"] == pytest.approx(0.325)
    assert got["beta-prof"]["cost_usd"] == pytest.approx(0.07)
    assert got["beta-prof"]["cost_per_success_usd"] == pytest.approx(0.07)


def test_ordering_overall_and_other_groupings(store):
    assert outcomes(store)["profile"].tolist() == ["alpha-prof", "beta-prof"]
    overall = outcomes(store, by=None)
    assert len(overall) == 1
    assert overall["tasks"].iloc[0] == 8
    assert overall["success_rate"].iloc[0] == pytest.approx(3 / 7)
    proj = outcomes(store, by="project")
    assert proj["project"].tolist() == ["alpha", "beta"]
    two = outcomes(store, by=["project", "model"])
    assert list(two.columns[:2]) == ["project", "model"]
    days = outcomes(store, by="day")
    assert [d.day for d in days.sort_values("day")["day"]] == [1, 2, 4]
    assert days.set_index(days["day"].dt.day).loc[2, "tasks"] == 4


def test_group_with_nothing_finished_has_nan_rate(store):
    df = outcomes(store, since="2026-01-02", until="2026-01-03", by="model")
    big = df[df["model"] == "m-big"].iloc[0]
    assert big["tasks"] == 3  # t3 failed, t4 cancelled, t5 running
    assert big["success_rate"] == 0.0
    assert pd.isna(big["cost_per_success_usd"])
    store.con.execute("UPDATE tasks SET status = 'running' WHERE id IN ('t3', 't4')")
    df = outcomes(store, since="2026-01-02", until="2026-01-03", by="model")
    assert pd.isna(df[df["model"] == "m-big"]["success_rate"].iloc[0])


def test_unknown_dimension(store):
    with pytest.raises(ValueError) as err:
        outcomes(store, by="tier")
    assert "profile" in str(err.value) and "source" in str(err.value)
    sql = outcomes_sql("runtime")
    assert "runtime_id AS runtime" in sql
    assert "quantile_cont(duration_s, 0.95) AS duration_p95_s" in sql


def test_failures_grouped_by_reason_pattern(store):
    df = failures(store)
    assert df["reason"].tolist() == ["max turns reached (N)", "budget exceeded: spent $N of $N"]
    assert df["tasks"].tolist() == [2, 1]
    first = df.iloc[0]
    assert first["example"] == "max turns reached (3)"  # the latest of the two
    assert first["last_task_id"] == "t3"
    by_prof = failures(store, by="profile")
    assert sorted(zip(by_prof["profile"], by_prof["tasks"], strict=True)) == [
        ("alpha-prof", 1),
        ("beta-prof", 1),
        ("beta-prof", 1),
    ]


def test_failures_empty(empty_store):
    df = failures(empty_store)
    assert df.empty
    assert {"reason", "tasks", "example", "last_task_id"} <= set(df.columns)


def test_decisions_by_tier(store):
    df = decisions(store)
    got = {(t, b): n for t, b, n in df[["tier", "behavior", "decisions"]].itertuples(index=False)}
    assert got == {
        ("profile_auto_approve", "allow"): 2,
        ("profile_auto_deny", "deny"): 1,
        ("human", "allow"): 1,
        ("allowed_tools", "deny"): 1,
    }
    assert df.iloc[0]["tier"] == "profile_auto_approve"
    per_profile = decisions(store, by="profile")
    assert dict(zip(per_profile["profile"], per_profile["decisions"], strict=True)) == {
        "alpha-prof": 4,
        "beta-prof": 1,
    }
    with pytest.raises(ValueError, match="valid dimensions: tier, behavior, tool, profile"):
        decisions(store, by="model")
