"""Spend caps (spec §3, acceptance 3.3.1-3.3.10)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from stagent_lab import Lab, SettingError
from stagent_lab.engine.clock import FakeClock
from stagent_lab.errors import BudgetError
from stagent_lab.usage.budgets import window_bounds
from tests.budgets.conftest import MODEL, PROMPT
from tests.schedules.helpers import events, task_status, wait_firings, wait_task, wait_until

PACED = [{"say": "step"}, {"sleep": 0.05}] * 40  # many calls, interleaved with a neighbour


def notices(lab: Lab, subject: str = "budget"):
    df = lab.inbox("all")
    return df[(df["kind"] == "notice") & (df["subject"] == subject)].reset_index(drop=True)


def spend_sql(lab: Lab, start: str, end: str, where: str = "") -> float:
    q = (
        "SELECT coalesce(sum(cost_usd), 0) AS s FROM usage_ledger WHERE status <> 'blocked' "
        f"AND finished_at >= ? AND finished_at < ? {where}"
    )
    return float(lab.sql(q, [start, end])["s"][0])


def test_default_task_cap_and_zero_removes_it(blab):
    task = blab.submit("hi", script=[{"result": "ok"}])
    assert task.view().max_budget_usd == 2.0
    assert blab.sql("SELECT max_budget_usd FROM tasks")["max_budget_usd"][0] == 2.0
    explicit = blab.submit("hi", max_budget_usd=0.5, script=[{"result": "ok"}])
    blab.set_setting("budget.task_default_usd", 0)
    free = blab.submit("hi", script=[{"result": "ok"}])
    rows = blab.sql("SELECT id, max_budget_usd FROM tasks").set_index("id")["max_budget_usd"]
    assert rows[explicit.id] == 0.5 and rows.isna()[free.id]


def test_warning_fires_once_per_window_however_many_calls_follow(blab, clock, call_cost):
    bid = blab.budgets.set("workspace", window="month", limit_usd=call_cost * 10)
    task = blab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "x"}] * 8)
    wait_task(blab, task.id)  # 1 + 8 calls: 90 % of the cap, past the 80 % mark
    status = blab.budgets.status().set_index("id").loc[bid]
    assert status["state"] == "warning" and status["ratio"] == pytest.approx(0.9, rel=1e-3)
    assert len(notices(blab)) == 1
    warnings = events(blab, "budget_warning", subject="budget")
    assert len(warnings) == 1
    payload = warnings["payload"][0]
    assert payload["channel_event"] == "budget.warning" and payload["channels"] == []
    assert payload["window"] == "month" and payload["resets_at"] == "2026-04-01T00:00:00Z"
    assert (
        "90%" in notices(blab)["body"][0]
        and "Resets 2026-04-01 00:00 UTC" in notices(blab)["body"][0]
    )
    assert blab.sql("SELECT warned_window FROM budgets")["warned_window"][0] == "2026-03"


def test_exceeded_mid_run_pauses_both_tasks_after_their_current_call(blab, call_cost):
    limit = call_cost * 6.5
    bid = blab.budgets.set("workspace", window="month", limit_usd=limit)
    a = blab.submit(PROMPT, profile="tester", model=MODEL, script=PACED)
    b = blab.submit(PROMPT, profile="tester", model=MODEL, script=PACED)
    for t in (a, b):
        wait_task(blab, t.id, statuses=("paused", "completed", "failed"))
    for t in (a, b):
        view = blab.task(t.id).view()
        assert view.status == "paused"
        assert view.failure_reason.startswith("budget: workspace month spend $")
        assert view.failure_reason.endswith("resets 2026-04-01 00:00 UTC")
    total = float(blab.usage()["cost_usd"].sum())
    assert limit <= total <= limit + 2 * call_cost * 1.01  # one overshooting call per task
    exceeded = notices(blab)
    body = exceeded[exceeded["body"].str.startswith("Spend cap exceeded")]["body"].iloc[0]
    assert a.id in body and b.id in body and "resume_paused" in body
    ev = events(blab, "budget_exceeded", subject="budget")["payload"][0]
    assert sorted(ev["paused_tasks"]) == sorted([a.id, b.id]) and ev["effect"] == "block"
    assert blab.budgets.status().set_index("id").loc[bid]["state"] == "exceeded"


def test_a_task_starting_under_an_exceeded_cap_fails_with_a_blocked_row(blab, call_cost):
    blab.budgets.set("workspace", window="month", limit_usd=call_cost * 0.5)
    late = blab.submit("Another job.", profile="tester", script=[{"result": "ok"}])
    wait_task(blab, late.id)
    view = blab.task(late.id).view()
    assert view.status == "failed"
    assert view.failure_reason.startswith("budget: workspace month spend $")
    assert "resets 2026-04-01 00:00 UTC" in view.failure_reason
    blocked = blab.sql("SELECT * FROM usage_ledger WHERE status = 'blocked'")
    assert blocked["task_id"].tolist() == [late.id] and blocked["cost_usd"][0] == 0
    assert blocked["input_tokens"][0] == 0
    assert len(blab.logs(task=late.id, event="budget_blocked")) == 1


def test_ask_waits_on_a_budget_item_allow_completes_deny_fails(blab, call_cost):
    bid = blab.budgets.set("workspace", window="month", limit_usd=call_cost * 0.5, on_exceed="ask")
    first = blab.submit("Job one.", profile="tester", script=[{"result": "one"}])
    item = blab.wait_inbox(timeout=30, task=first.id)
    assert item["kind"][0] == "budget" and "Spend cap reached" in item["body"][0]
    assert task_status(blab, first.id) == "waiting"
    blab.decide(item["id"][0], "allow")
    assert wait_task(blab, first.id).status == "completed"
    assert len(blab.logs(task=first.id, event="budget_override")) == 1
    second = blab.submit("Job two.", profile="tester", script=[{"result": "two"}])
    item = blab.wait_inbox(timeout=30, task=second.id)
    blab.decide(item["id"][0], "deny", message="not this month")
    done = wait_task(blab, second.id)
    assert done.status == "failed" and done.failure_reason.startswith("budget: workspace month")
    assert bid in blab.budgets.status()["id"].tolist()


def test_scoped_caps_affect_only_their_scope(blab, tmp_path, call_cost):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    blab.add_project("alpha", tmp_path / "a")
    blab.add_project("beta", tmp_path / "b")
    blab.budgets.set("profile", "guarded", window="day", limit_usd=0.01)
    blab.budgets.set("project", "alpha", window="day", limit_usd=0.01)
    blab.budgets.set("runtime", "anthropic-direct", window="day", limit_usd=0.01)
    spend = [
        blab.submit(PROMPT, profile="guarded", project="beta", model=MODEL, script=[{"say": "x"}]),
        blab.submit(PROMPT, profile="tester", project="alpha", model=MODEL, script=[{"say": "x"}]),
    ]
    for t in spend:  # each call goes past its cap: the task pauses after it
        assert wait_task(blab, t.id, statuses=("paused",)).status == "paused"
    status = blab.budgets.status().set_index("scope")
    assert status.loc["profile", "state"] == "exceeded"
    assert status.loc["project", "state"] == "exceeded"
    assert status.loc["runtime", "spent_usd"] == 0  # no task ran on that runtime
    runs = {
        "guarded-beta": blab.submit(
            "x", profile="guarded", project="beta", script=[{"result": "1"}]
        ),
        "tester-alpha": blab.submit(
            "x", profile="tester", project="alpha", script=[{"result": "2"}]
        ),
        "tester-beta": blab.submit("x", profile="tester", project="beta", script=[{"result": "3"}]),
    }
    out = {k: wait_task(blab, t.id).status for k, t in runs.items()}
    assert out == {"guarded-beta": "failed", "tester-alpha": "failed", "tester-beta": "completed"}


def test_day_windows_follow_budget_timezone():
    ny = "America/New_York"
    late = window_bounds("day", ny, datetime(2026, 3, 3, 4, 30))  # 23:30 on the 2nd in NY
    early = window_bounds("day", ny, datetime(2026, 3, 3, 5, 30))  # 00:30 on the 3rd
    assert (late[0], early[0]) == ("2026-03-02", "2026-03-03")
    spring = window_bounds("day", ny, datetime(2026, 3, 8, 12, 0))
    fall = window_bounds("day", ny, datetime(2026, 11, 1, 12, 0))
    assert spring[2] - spring[1] == timedelta(hours=23)
    assert fall[2] - fall[1] == timedelta(hours=25)
    month = window_bounds("month", "Europe/Paris", datetime(2026, 3, 15))
    assert month == ("2026-03", datetime(2026, 2, 28, 23, 0), datetime(2026, 3, 31, 22, 0))


def test_spend_before_local_midnight_does_not_count_the_next_day(tmp_path, profiles_dir):
    clock = FakeClock("2026-03-03 04:30:00")  # 23:30 in New York
    lab = Lab(home=tmp_path / "ws", profile_dirs=[profiles_dir], clock=clock)
    try:
        lab.set_setting("budget.timezone", "America/New_York")
        bid = lab.budgets.set("workspace", window="day", limit_usd=5)
        wait_task(lab, lab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "x"}]).id)
        before = lab.budgets.status().set_index("id").loc[bid]
        assert before["window_key"] == "2026-03-02" and before["spent_usd"] > 0
        clock.advance(3600)  # 00:30 local: a new day
        after = lab.budgets.status().set_index("id").loc[bid]
        assert after["window_key"] == "2026-03-03" and after["spent_usd"] == 0
        assert f"{after['resets_at']:%Y-%m-%d %H:%M}" == "2026-03-04 05:00"
    finally:
        lab.close()


def test_raising_the_limit_clears_the_marker_and_resume_paused_resumes(blab, call_cost):
    bid = blab.budgets.set("workspace", window="month", limit_usd=call_cost * 3.5)
    t = blab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "x"}] * 6)
    assert wait_task(blab, t.id, statuses=("paused",)).status == "paused"
    with pytest.raises(BudgetError, match="still exceeded"):
        blab.budgets.resume_paused(bid)
    markers = blab.sql("SELECT warned_window, exceeded_window FROM budgets").iloc[0]
    assert markers["warned_window"] == "2026-03" and markers["exceeded_window"] == "2026-03"
    blab.budgets.set("workspace", window="month", limit_usd=call_cost * 100)
    markers = blab.sql("SELECT warned_window, exceeded_window FROM budgets").iloc[0]
    assert markers.isna().all()
    assert blab.budgets.resume_paused(bid[:6]) == [t.id]
    assert wait_task(blab, t.id).status == "completed"


def test_budget_settings_are_typed_and_monthly_usd_points_to_budgets(blab):
    with pytest.raises(BudgetError, match=r'lab\.budgets\.set\(scope="workspace", window="month"'):
        blab.set_setting("budget.monthly_usd", 10)
    with pytest.raises(SettingError, match=r"budget\.task_default_usd"):
        blab.set_setting("budget.weekly_usd", 10)
    with pytest.raises(SettingError):
        blab.set_setting("budget.warn_ratio", 1)
    with pytest.raises(SettingError, match="unknown time zone"):
        blab.set_setting("budget.timezone", "Nowhere/Land")
    with pytest.raises(BudgetError, match="needs scope_id"):
        blab.budgets.set("runtime", window="day", limit_usd=1)
    with pytest.raises(Exception, match="limit_usd"):
        blab.budgets.set("workspace", window="day", limit_usd=0)
    with pytest.raises(Exception, match="window"):
        blab.budgets.set("workspace", window="week", limit_usd=1)


def test_a_firing_under_an_exceeded_cap_is_skipped_without_a_task(blab, clock, call_cost):
    blab.budgets.set("workspace", window="month", limit_usd=call_cost * 0.5)
    sid = blab.schedules.add("capped", "Job.", when="5m", script=[{"result": "ok"}])
    clock.advance(300)
    df = wait_firings(blab, sid, 1)
    assert df["status"][0] == "skipped" and df["reason"][0] == "budget_cap"
    assert df["task_id"].isna()[0] and len(blab.tasks()) == 1  # only the probe
    alert = events(blab, "schedule_alert")["payload"][0]
    assert alert["reason"].startswith("skipped: budget: workspace month")


def test_reopen_mid_month_status_equals_a_fresh_sql_sum(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=FakeClock("2026-03-15 12:00:00"))
    bid = lab.budgets.set("workspace", window="month", limit_usd=100)
    for _ in range(3):
        wait_task(lab, lab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "x"}]).id)
    wait_task(lab, lab.submit("y", model="mystery-model-9", script=[{"say": "y"}]).id)
    lab.close()
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=FakeClock("2026-03-20 08:00:00"))
    try:
        row = lab.budgets.status().set_index("id").loc[bid]
        assert row["spent_usd"] == pytest.approx(spend_sql(lab, "2026-03-01", "2026-04-01"))
        assert row["spent_usd"] > 0 and row["unpriced_calls"] == 1
    finally:
        lab.close()


def test_disable_enable_remove_and_prefix_ids(blab, call_cost):
    bid = blab.budgets.set("workspace", window="month", limit_usd=call_cost * 0.5)
    blab.budgets.disable(bid[:5])
    assert blab.budgets.status()["state"][0] == "disabled"
    ok = blab.submit("x", profile="tester", script=[{"result": "ok"}])
    assert wait_task(blab, ok.id).status == "completed"
    blab.budgets.enable(bid)
    assert blab.budgets.status()["state"][0] == "exceeded"
    blab.budgets.remove(bid)
    assert len(blab.budgets.status()) == 0
    with pytest.raises(BudgetError, match="no budget"):
        blab.budgets.disable(bid)
    wait_until(lambda: True)


def test_a_jump_past_the_limit_sends_only_the_exceeded_alert(blab, call_cost):
    blab.budgets.set("workspace", window="month", limit_usd=call_cost * 1.5)
    task = blab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "x"}] * 3)
    wait_task(blab, task.id, statuses=("paused",))
    assert len(events(blab, "budget_warning", subject="budget")) == 0
    assert len(events(blab, "budget_exceeded", subject="budget")) == 1
    assert len(notices(blab)) == 1


def test_ask_during_a_run_waits_on_a_budget_item(blab, call_cost):
    blab.budgets.set("workspace", window="month", limit_usd=call_cost * 2.5, on_exceed="ask")
    task = blab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "x"}] * 4)
    item = blab.wait_inbox(timeout=30, task=task.id)
    assert item["kind"][0] == "budget" and task_status(blab, task.id) == "waiting"
    assert blab.usage(task.id)["cost_usd"].count() == 2  # stopped after the crossing call
    blab.decide(item["id"][0], "allow")
    assert wait_task(blab, task.id).status == "completed"
    assert (blab.inbox("all")["kind"] == "budget").sum() == 1  # exempt: asked once


def test_a_task_waiting_for_a_person_is_paused_at_once(blab, call_cost):
    blab.budgets.set("workspace", window="month", limit_usd=call_cost * 3.5)
    waiter = blab.submit("Wait for me.", profile="tester", script=[{"ask": "ok?"}, {"result": "y"}])
    wait_until(lambda: task_status(blab, waiter.id) == "waiting")
    spender = blab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "x"}] * 5)
    wait_task(blab, spender.id, statuses=("paused",))
    done = wait_task(blab, waiter.id, statuses=("paused",))
    assert done.status == "paused"
    assert blab.task(waiter.id).view().failure_reason.startswith("budget: workspace month")
    assert len(blab.logs(task=waiter.id, event="budget_paused")) == 1


def test_a_blocked_task_checks_again_when_resumed(blab, call_cost):
    bid = blab.budgets.set("workspace", window="month", limit_usd=call_cost * 0.5)
    task = blab.submit("x", profile="tester", script=[{"result": "ok"}])
    assert wait_task(blab, task.id).status == "failed"
    blab.task(task.id).resume()
    assert wait_task(blab, task.id).status == "failed"  # still exceeded
    assert len(blab.sql("SELECT * FROM usage_ledger WHERE status = 'blocked'")) == 2
    blab.budgets.disable(bid)
    blab.task(task.id).resume()
    assert wait_task(blab, task.id).status == "completed"


def test_one_budget_cap_alert_per_schedule_per_day(blab, clock, call_cost):
    blab.budgets.set("workspace", window="month", limit_usd=call_cost * 0.5)
    sid = blab.schedules.add("capped", "Job.", when="5m", script=[{"result": "ok"}])
    for n in (1, 2, 3):
        clock.advance(300)
        wait_firings(blab, sid, n)
    assert len(events(blab, "schedule_alert")) == 1
    assert len(notices(blab, subject="schedule")) == 1


def test_notices_say_when_calls_had_no_price(blab):
    blab.budgets.set("workspace", window="day", limit_usd=0.0001)
    task = blab.submit("x", profile="tester", model="mystery-model-9", script=[{"say": "y"}] * 2)
    wait_task(blab, task.id)
    assert blab.budgets.status()["unpriced_calls"][0] == 2
    assert blab.budgets.status()["state"][0] == "ok"  # they count $0
