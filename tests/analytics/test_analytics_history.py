"""simulate_history runs real scripted tasks and back-dates every row onto the simulated days."""

from __future__ import annotations

import datetime as dt

import pytest

from stagent_lab.analytics import simulate_history

EXPECTED_REASONS = (
    "max turns reached",
    "upstream source unavailable",
    "budget exceeded",
    "budget exhausted",
)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from stagent_lab import Lab

    lab = Lab(home=tmp_path_factory.mktemp("sim-ws"))
    try:
        history = simulate_history(lab, days=3, tasks_per_day=6, seed=3, end="2026-03-10")
        yield lab, history
    finally:
        lab.close()


def test_every_task_ran_and_landed_on_its_day(simulated):
    _, history = simulated
    assert len(history) == 18
    days = sorted(history["day"].map(lambda d: d.date()).unique())
    assert days == [dt.date(2026, 3, 8), dt.date(2026, 3, 9), dt.date(2026, 3, 10)]
    assert history.groupby("day").size().tolist() == [6, 6, 6]
    assert set(history["status"]) <= {"completed", "failed", "cancelled"}
    hours = history["started_at"].dt.hour
    assert hours.min() >= 8 and hours.max() < 19
    assert (history["duration_s"] > 0).all()
    for reason in history.loc[history["status"] == "failed", "failure_reason"]:
        assert reason.startswith(EXPECTED_REASONS), reason


def test_all_rows_moved_together(simulated):
    lab, history = simulated
    ids = history["task_id"].tolist()
    marks = ",".join("?" * len(ids))
    # The final status row is written a moment after finished_at; stretched, that moment
    # can reach a few seconds, so allow a minute. Rows left behind would be days away.
    bad_logs = lab.sql(
        f"SELECT count(*) AS n FROM agent_logs l JOIN tasks t ON t.id = l.task_id "
        f"WHERE l.task_id IN ({marks}) "
        f"AND (l.ts < t.started_at OR l.ts > t.finished_at + INTERVAL 1 minute)",
        ids,
    )["n"].iloc[0]
    assert bad_logs == 0
    bad_usage = lab.sql(
        f"SELECT count(*) AS n FROM usage_ledger u JOIN tasks t ON t.id = u.task_id "
        f"WHERE u.task_id IN ({marks}) AND (u.started_at < t.started_at "
        f"OR u.started_at > t.finished_at)",
        ids,
    )["n"].iloc[0]
    assert bad_usage == 0
    nothing_today = lab.sql(
        f"SELECT count(*) AS n FROM tasks WHERE id IN ({marks}) AND created_at >= ?",
        [*ids, dt.datetime(2026, 3, 11)],
    )["n"].iloc[0]
    assert nothing_today == 0


def test_costs_are_priced_and_match_the_ledger(simulated):
    lab, history = simulated
    usage = lab.usage()
    assert set(usage["pricing_source"]) == {"genai-prices"}
    assert usage["cost_usd"].notna().all()
    assert set(usage["model"]) <= {"claude-sonnet-4-5", "claude-haiku-4-5", "gpt-5-mini"}
    assert history["cost_usd"].sum() == pytest.approx(usage["cost_usd"].sum())
    by_day = lab.cost_by("day")
    assert len(by_day) == 3
    assert by_day["cost_usd"].sum() == pytest.approx(usage["cost_usd"].sum())
    out = lab.outcomes(by=None)
    assert out["tasks"].iloc[0] == 18


def test_same_seed_same_plan(simulated, tmp_path):
    from stagent_lab import Lab

    _, history = simulated
    with Lab(home=tmp_path / "again") as lab2:
        again = simulate_history(lab2, days=3, tasks_per_day=6, seed=3, end="2026-03-10")
    cols = ["scenario", "profile_id", "model", "status", "started_at"]
    assert again[cols].equals(history[cols])


def test_bad_arguments(lab):
    with pytest.raises(ValueError, match="at least 1"):
        simulate_history(lab, days=0)
    with pytest.raises(ValueError, match="time_scale"):
        simulate_history(lab, days=1, time_scale=0)
    assert lab.tasks().empty
