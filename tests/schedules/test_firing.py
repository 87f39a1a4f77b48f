"""Clock schedules on a fake clock: firing, overlap, end conditions, streaks, slots, limits
(spec §2.3-2.4, acceptance 2.7.3-2.7.6, 2.7.8, 2.7.9)."""

from __future__ import annotations

import json

import pytest

from stagent_lab.errors import ScheduleError
from tests.schedules.helpers import (
    ASK_SCRIPT,
    DONE_SCRIPT,
    FAIL_SCRIPT,
    events,
    firings,
    task_row,
    task_status,
    wait_firings,
    wait_task,
    wait_until,
)


def test_5m_fires_at_each_boundary_with_its_origin(slab, clock):
    sid = slab.schedules.add("five", "Check the queue.", when="5m", script=DONE_SCRIPT)
    assert slab.schedules.get(sid).next_fire_at.isoformat() == "2026-03-02T10:05:00"
    for n in (1, 2, 3):
        clock.advance(300)
        df = wait_firings(slab, sid, n)
        assert len(df) == n
    assert [f"{t:%H:%M}" for t in df["scheduled_for"]] == ["10:05", "10:10", "10:15"]
    assert (df["status"] == "succeeded").all() and (df["missed_count"] == 0).all()
    tasks = slab.tasks().set_index("id")
    for _, f in df.iterrows():
        task = tasks.loc[f["task_id"]]
        assert task["source"] == "schedule"
        assert task["origin_id"] == f["id"]
        assert task["activity"] == "schedule_firing"
        assert task["title"] == f"five #{f['number']}"
    assert f"{slab.schedules.get(sid).next_fire_at:%H:%M}" == "10:20"
    fired = events(slab, "schedule_fired")
    assert [p["number"] for p in fired["payload"]] == [1, 2, 3]


def test_the_firing_prompt_carries_limits_and_the_previous_outcome(slab, clock):
    sid = slab.schedules.add(
        "nightly", "Review yesterday's commits.", when="5m", tz="Europe/Paris", max_turns=7,
        max_budget_usd=0.5, script=DONE_SCRIPT,
    )  # fmt: skip
    clock.advance(300)
    wait_firings(slab, sid, 1)
    clock.advance(300)
    df = wait_firings(slab, sid, 2)
    first = task_row(slab, df["task_id"][0])
    second = task_row(slab, df["task_id"][1])
    prompt = second["prompt"]
    assert prompt.startswith("Review yesterday's commits.")
    assert "Schedule: nightly" in prompt and "Firing: #2" in prompt
    assert "2026-03-02 11:10 CET (Europe/Paris)" in prompt  # the schedule's zone
    assert "7 turns, $0.50" in prompt
    assert "Previous firing (#1): succeeded" in prompt and "> all done" in prompt
    assert "Previous firing: none" in first["prompt"]
    assert second["max_turns"] == 7 and second["max_budget_usd"] == 0.5


def test_include_previous_false_leaves_it_out(slab, clock):
    sid = slab.schedules.add(
        "quiet", "Ping.", when="5m", include_previous=False, script=DONE_SCRIPT
    )
    clock.advance(300)
    df = wait_firings(slab, sid, 1)
    assert "Previous firing" not in task_row(slab, df["task_id"][0])["prompt"]


def test_skip_records_overlap_and_the_next_firing_still_happens(slab, clock):
    sid = slab.schedules.add("slow", "Long job.", when="5m", overlap="skip", script=ASK_SCRIPT)
    clock.advance(300)
    first = wait_firings(slab, sid, 1, statuses=("running",))
    wait_until(lambda: task_status(slab, first["task_id"][0]) == "waiting")
    clock.advance(300)
    df = wait_firings(slab, sid, 2, statuses=("running", "skipped"))
    assert df["status"].tolist() == ["running", "skipped"]
    assert df["reason"][1] == "overlap" and df["task_id"].isna()[1]
    assert f"{slab.schedules.get(sid).next_fire_at:%H:%M}" == "10:15"  # always advanced
    slab.decide(slab.inbox()["id"][0], "answer", message="yes")
    wait_firings(slab, sid, 1)
    clock.advance(300)
    df = wait_firings(slab, sid, 3, statuses=("running", "succeeded", "skipped"))
    assert df["status"][2] == "running"  # the previous one ended: this one runs
    assert len(events(slab, "schedule_skipped")) == 1


def test_queue_holds_one_firing_until_the_live_one_ends(slab, clock):
    sid = slab.schedules.add("queued", "Job.", when="5m", overlap="queue", script=ASK_SCRIPT)
    clock.advance(300)
    first = wait_firings(slab, sid, 1, statuses=("running",))
    wait_until(lambda: task_status(slab, first["task_id"][0]) == "waiting")
    clock.advance(300)
    wait_firings(slab, sid, 2, statuses=("running", "queued"))
    clock.advance(300)
    df = wait_firings(slab, sid, 3, statuses=("running", "queued", "skipped"))
    assert df["status"].tolist() == ["running", "queued", "skipped"]  # at most one held
    assert df["task_id"].isna().tolist() == [False, True, True]
    item = slab.inbox()["id"][0]
    slab.decide(item, "answer", message="go")
    df = wait_firings(slab, sid, 2, statuses=("succeeded", "running", "waiting"))
    wait_until(lambda: firings(slab, sid)["task_id"].notna()[1])
    df = firings(slab, sid)
    assert df["status"][1] == "running" and df["fired_at"][1] > df["finished_at"][0]


def test_allow_runs_both(slab, clock):
    sid = slab.schedules.add("both", "Job.", when="5m", overlap="allow", script=ASK_SCRIPT)
    clock.advance(300)
    first = wait_firings(slab, sid, 1, statuses=("running",))
    wait_until(lambda: task_status(slab, first["task_id"][0]) == "waiting")
    clock.advance(300)
    df = wait_firings(slab, sid, 2, statuses=("running",))
    assert df["task_id"].notna().all() and df["task_id"][0] != df["task_id"][1]


def test_replace_cancels_the_live_task_then_starts(slab, clock):
    sid = slab.schedules.add("fresh", "Job.", when="5m", overlap="replace", script=ASK_SCRIPT)
    clock.advance(300)
    first = wait_firings(slab, sid, 1, statuses=("running",))
    wait_until(lambda: task_status(slab, first["task_id"][0]) == "waiting")
    clock.advance(300)
    df = wait_firings(slab, sid, 1, statuses=("cancelled",))
    assert df["reason"][0] == "replaced"
    assert task_status(slab, df["task_id"][0]) == "cancelled"
    df = wait_firings(slab, sid, 2, statuses=("cancelled", "running"))
    assert df["status"][1] == "running"
    assert slab.schedules.get(sid).failure_streak == 0  # cancelled leaves the streak


def test_once_completes_after_one_firing(slab, clock):
    sid = slab.schedules.add("one", "Once.", when="5m", once=True, script=DONE_SCRIPT)
    clock.advance(300)
    wait_firings(slab, sid, 1)
    view = slab.schedules.get(sid)
    assert view.status == "completed" and view.next_fire_at is None
    clock.advance(900)
    assert len(firings(slab, sid)) == 1


def test_max_firings_two_completes(slab, clock):
    sid = slab.schedules.add("two", "Twice.", when="5m", max_firings=2, script=DONE_SCRIPT)
    for n in (1, 2):
        clock.advance(300)
        wait_firings(slab, sid, n)
    assert slab.schedules.get(sid).status == "completed"
    clock.advance(900)
    assert len(firings(slab, sid)) == 2
    assert len(events(slab, "schedule_completed")) == 1


def test_expires_at_passed_expires_before_firing(slab, clock):
    sid = slab.schedules.add(
        "short", "Job.", when="5m", expires_at="2026-03-02 10:07", script=DONE_SCRIPT
    )
    clock.advance(300)
    wait_firings(slab, sid, 1)
    clock.advance(120)  # 10:07: the expiry wakes the timer
    wait_until(lambda: slab.schedules.get(sid).status == "expired")
    clock.advance(600)
    assert len(firings(slab, sid)) == 1
    assert len(events(slab, "schedule_expired")) == 1


def test_at_is_a_one_shot_in_the_schedules_zone(slab, clock):
    sid = slab.schedules.add(
        "release", "Check the notes.", at="2026-03-02 12:00", tz="Europe/Paris",
        script=DONE_SCRIPT,
    )  # fmt: skip
    view = slab.schedules.get(sid)
    assert view.cron is None and view.next_fire_at.isoformat() == "2026-03-02T11:00:00"
    clock.advance(3600)
    df = wait_firings(slab, sid, 1)
    assert df["missed_count"][0] == 0
    assert slab.schedules.get(sid).status == "completed"
    with pytest.raises(ScheduleError, match="in the past"):
        slab.schedules.add("late", "x", at="2026-03-01 09:00")


def test_three_failures_pause_with_a_notice_and_an_alert_and_resume_resets(slab, clock):
    sid = slab.schedules.add("flaky", "Job.", when="5m", channels=["ops-slack"], script=FAIL_SCRIPT)
    for n in (1, 2, 3):
        clock.advance(300)
        wait_firings(slab, sid, n)
    view = slab.schedules.get(sid)
    assert view.status == "paused" and view.failure_streak == 3
    assert view.paused_reason == "3 failed firings in a row; last: the disk is on fire"
    notices = slab.inbox()
    notices = notices[(notices["kind"] == "notice") & (notices["subject"] == "schedule")]
    assert len(notices) == 1 and "3 failed firings in a row" in notices["body"][0]
    alert = events(slab, "schedule_alert")
    assert len(alert) == 1
    payload = alert["payload"][0]
    assert payload["channels"] == ["ops-slack"] and payload["channel_event"] == "schedule.alert"
    assert "auto-paused" in payload["reason"] and payload["schedule"] == "flaky"
    clock.advance(900)
    assert len(firings(slab, sid)) == 3  # paused: nothing fires
    resumed = slab.schedules.resume(sid)
    assert resumed.status == "active" and resumed.failure_streak == 0
    assert f"{resumed.next_fire_at:%H:%M}" == "10:35"  # recomputed from now (10:30)


def test_a_success_resets_the_streak(slab, clock):
    outcomes = iter([FAIL_SCRIPT, FAIL_SCRIPT, DONE_SCRIPT, FAIL_SCRIPT])

    def script(prompt, profile):
        return next(outcomes)

    sid = slab.schedules.add("mixed", "Job.", when="5m", script=script)
    for n in (1, 2, 3, 4):
        clock.advance(300)
        wait_firings(slab, sid, n)
    view = slab.schedules.get(sid)
    assert view.status == "active" and view.failure_streak == 1


def test_two_due_schedules_share_one_slot_and_neither_is_dropped(slab, clock):
    slab.set_setting("schedules.max_concurrent", 1)
    a = slab.schedules.add("a", "Job A.", when="5m", script=ASK_SCRIPT)
    b = slab.schedules.add("b", "Job B.", when="5m", script=DONE_SCRIPT)
    clock.advance(300)
    fa = wait_firings(slab, a, 1, statuses=("running",))
    fb = wait_firings(slab, b, 1, statuses=("running",))
    wait_until(lambda: task_status(slab, fa["task_id"][0]) == "waiting")
    assert task_status(slab, fb["task_id"][0]) == "queued"  # waits for the schedule slot
    slab.decide(slab.inbox()["id"][0], "answer", message="done")
    wait_firings(slab, a, 1)
    done = wait_firings(slab, b, 1)
    assert done["status"][0] == "succeeded"


def test_run_time_limit_fails_the_firing_and_counts_in_the_streak(slab, clock):
    sid = slab.schedules.add(
        "sleepy", "Job.", when="5m", max_run_s=2, script=[{"sleep": 600}, {"result": "late"}]
    )
    clock.advance(300)
    first = wait_firings(slab, sid, 1, statuses=("running",))
    wait_until(lambda: task_status(slab, first["task_id"][0]) == "running")
    clock.advance(3)
    df = wait_firings(slab, sid, 1)
    assert df["status"][0] == "failed"
    assert df["reason"][0].startswith("run time limit (2 s)")
    assert slab.schedules.get(sid).failure_streak == 1


def test_manual_fire_obeys_overlap_unless_forced_and_keeps_the_next_time(slab, clock):
    sid = slab.schedules.add("manual", "Job.", when="every hour", script=ASK_SCRIPT)
    fired = slab.schedules.fire(sid)
    assert fired.manual and fired.number == 1 and fired.status == "running"
    wait_until(lambda: task_status(slab, fired.task_id) == "waiting")
    again = slab.schedules.fire(sid)
    assert again.status == "skipped" and again.reason == "overlap"
    forced = slab.schedules.fire(sid, force=True)
    assert forced.status == "running" and forced.task_id
    assert f"{slab.schedules.get(sid).next_fire_at:%H:%M}" == "11:00"


def test_pause_stops_firing_and_resume_restarts_from_now(slab, clock):
    sid = slab.schedules.add("pausable", "Job.", when="5m", script=DONE_SCRIPT)
    slab.schedules.pause(sid, reason="maintenance")
    clock.advance(900)
    assert len(firings(slab, sid)) == 0
    view = slab.schedules.resume(sid)
    assert f"{view.next_fire_at:%H:%M}" == "10:20"
    paused = events(slab, "schedule_paused")["payload"][0]
    assert paused["reason"] == "maintenance" and paused["by"] == "operator"


def test_update_changes_timing_and_remove_stops_it(slab, clock):
    sid = slab.schedules.add("changing", "Job.", when="5m", script=DONE_SCRIPT)
    view = slab.schedules.update(sid, when="every hour")
    assert view.cron == "0 * * * *" and f"{view.next_fire_at:%H:%M}" == "11:00"
    with pytest.raises(ScheduleError, match="cannot change checklist"):
        slab.schedules.update(sid, checklist=["x"])
    clock.advance(3600)
    wait_firings(slab, sid, 1)
    slab.schedules.remove("changing")
    clock.advance(3600)
    assert sid not in slab.schedules.list()["id"].tolist()
    assert len(slab.sql("SELECT * FROM schedule_firings WHERE schedule_id = ?", [sid])) == 0
    assert len(slab.tasks()) == 1  # tasks stay


def test_definition_errors_name_the_problem(slab):
    with pytest.raises(ScheduleError, match="exactly one of when"):
        slab.schedules.add("x", "Job.")
    with pytest.raises(ScheduleError, match="exactly one of prompt"):
        slab.schedules.add("x", when="5m")
    with pytest.raises(ScheduleError, match="cannot run workflows"):
        slab.schedules.add("x", workflow="review-and-fix", when="5m")
    with pytest.raises(ScheduleError, match="unknown runtime"):
        slab.schedules.add("x", "Job.", when="5m", runtime="nope")
    with pytest.raises(Exception, match="unknown profile"):
        slab.schedules.add("x", "Job.", when="5m", profile="nobody")
    with pytest.raises(Exception, match="unknown time zone"):
        slab.schedules.add("x", "Job.", when="5m", tz="Moon/Base")
    with pytest.raises(Exception, match="overlap"):
        slab.schedules.add("x", "Job.", when="5m", overlap="sometimes")
    slab.schedules.add("x", "Job.", when="5m")
    with pytest.raises(ScheduleError, match="already exists"):
        slab.schedules.add("x", "Job.", when="1h")
    with pytest.raises(ScheduleError, match="no schedule named"):
        slab.schedules.get("y")


def test_firing_tasks_are_bound_to_the_schedules_channels(slab, clock):
    sid = slab.schedules.add(
        "bound", "Job.", when="5m", channels=["ops-slack", "audit"], script=DONE_SCRIPT
    )
    clock.advance(300)
    df = wait_firings(slab, sid, 1)
    row = slab.sql("SELECT channels FROM tasks WHERE id = ?", [df["task_id"][0]])
    assert json.loads(row["channels"][0]) == ["ops-slack", "audit"]


def test_unattended_clock_schedule_denies_instead_of_asking(slab, clock):
    sid = slab.schedules.add(
        "unattended", "Run the build.", when="5m", profile="guarded", on_approval="deny",
        script=[{"tool": "Bash", "input": {"command": "make build"}}, {"result": "ok"}],
    )  # fmt: skip
    clock.advance(300)
    df = wait_firings(slab, sid, 1)
    decisions = slab.logs(task=df["task_id"][0], event="tool_decision")
    assert decisions["payload"][0]["tier"] == "unattended"
    assert len(slab.inbox("all")) == 0
    wait_task(slab, df["task_id"][0])


def test_manual_firings_count_toward_max_firings_but_never_complete_once(slab, clock):
    one = slab.schedules.add("one-shot", "Job.", when="every hour", once=True, script=DONE_SCRIPT)
    slab.schedules.fire(one)
    wait_firings(slab, one, 1)
    assert slab.schedules.get(one).status == "active"  # the scheduled firing is still to come
    capped = slab.schedules.add("capped", "Job.", when="every hour", max_firings=1)
    slab.schedules.fire(capped, force=True)
    assert slab.schedules.get(capped).status == "completed"
    with pytest.raises(ScheduleError, match="end condition still holds"):
        slab.schedules.resume(capped)
    view = slab.schedules.update(capped, max_firings=5)
    assert view.max_firings == 5
    assert slab.schedules.resume(capped).status == "active"


def test_lifecycle_events_are_logged(slab):
    sid = slab.schedules.add("logged", "Job.", when="5m")
    slab.schedules.update(sid, max_turns=3)
    slab.schedules.remove(sid)
    names = events(slab, "schedule_added")["payload"].tolist()
    assert names[0]["schedule"] == "logged" and names[0]["kind"] == "clock"
    assert events(slab, "schedule_updated")["payload"][0]["fields"] == ["max_turns"]
    assert len(events(slab, "schedule_removed")) == 1


def test_update_checks_types_like_add_and_never_stores_secrets(slab, monkeypatch):
    from stagent_lab.errors import InvalidInput

    sid = slab.schedules.add("typed", "Job.", when="5m")
    with pytest.raises(InvalidInput, match="max_turns"):
        slab.schedules.update(sid, max_turns=0)
    with pytest.raises(InvalidInput, match="overlap"):
        slab.schedules.update(sid, overlap="sometimes")
    secret = "sk-ant-api03-" + "x" * 40
    service = slab.workspace.service
    service.redact.add({"TEST_KEY": secret})
    slab.schedules.update(sid, prompt=f"Use the key {secret} to check.")
    stored = slab.sql("SELECT prompt FROM schedules WHERE id = ?", [sid])["prompt"][0]
    assert secret not in stored and "Use the key" in stored
