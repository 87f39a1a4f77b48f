"""Heartbeats on a fake clock (spec §2.5-2.6, acceptance 2.7.10-2.7.15)."""

from __future__ import annotations

import json

import pytest

from stagent_lab.errors import ScheduleError
from stagent_lab.schedules.verdict import extract_json, load_checklist, read_verdict
from tests.schedules.helpers import (
    events,
    firings,
    quiesce,
    task_row,
    task_status,
    wait_firings,
    wait_task,
    wait_until,
)

CHECKLIST = [
    "Any failed task in the last hour?",
    {"id": "disk", "text": "Is /data over 90 % full?", "priority": "high"},
]
PRICED = "claude-sonnet-4-5"


def verdict(**statuses: str) -> str:
    items = [
        {"id": k.replace("_", "-"), "status": v, "summary": f"{k} is {v}", "action": "clean up"}
        for k, v in statuses.items()
    ]
    needed = any(v == "action_needed" for v in statuses.values())
    return json.dumps({"action_needed": needed, "summary": "checked", "items": items})


def heartbeat_script(answers, *, action=None, hold_eval=False):
    """Evaluations answer with the next verdict text; action tasks run ``action``."""
    queue = list(answers)

    def script(prompt, profile):
        if prompt.startswith("## Heartbeat check"):
            steps = [{"ask": "hold"}] if hold_eval else []
            return [*steps, {"say": queue.pop(0) if len(queue) > 1 else queue[0]}]
        return action or [{"say": "fixed it"}, {"result": "fixed"}]

    return script


# ---- verdicts (unit) -----------------------------------------------------------------------

ITEMS = load_checklist(CHECKLIST)


def test_checklist_strings_get_ids_and_medium_priority():
    assert ITEMS == [
        {"id": "item-1", "text": "Any failed task in the last hour?", "priority": "medium"},
        {"id": "disk", "text": "Is /data over 90 % full?", "priority": "high"},
    ]


@pytest.mark.parametrize(
    ("checklist", "match"),
    [
        ([], "empty"),
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], "used twice"),
        ([{"id": "a", "text": ""}], r"\[0\]\.text"),
        ([{"id": "a", "text": "x", "priority": "urgent"}], "priority"),
        ([{"id": "a", "text": "x", "owner": "me"}], "unknown field"),
        ("- a\n- [b", "line 2"),
        (["x"] * 51, "at most 50"),
    ],
)
def test_bad_checklists_are_refused_with_the_item_and_field(checklist, match):
    with pytest.raises(ScheduleError, match=match):
        load_checklist(checklist)


def test_checklist_from_yaml_text_and_file(tmp_path):
    text = "- id: disk\n  text: Disk space?\n  priority: low\n- Backups ran?\n"
    assert load_checklist(text)[0] == {"id": "disk", "text": "Disk space?", "priority": "low"}
    path = tmp_path / "checks.yaml"
    path.write_text(text)
    assert load_checklist(str(path))[1]["id"] == "item-2"


def test_verdict_is_read_whole_fenced_or_balanced():
    whole = verdict(item_1="ok", disk="ok")
    assert extract_json(whole)["summary"] == "checked"
    fenced = f"Here you go:\n```json\n{whole}\n```\nbye"
    assert extract_json(fenced)["summary"] == "checked"
    prose = 'I looked around. {"note": "not it"} Then: ' + whole + " Done."
    assert extract_json(prose)["summary"] == "checked"
    assert extract_json("nothing here {not json}") is None


def test_verdict_drops_unknown_ids_and_fills_missing_items_as_skipped():
    raw = json.dumps(
        {
            "action_needed": False,
            "summary": "s" * 5000,
            "items": [
                {"id": "ghost", "status": "action_needed", "summary": "?"},
                {"id": "disk", "status": "ok", "summary": "fine"},
            ],
        }
    )
    v = read_verdict(raw, ITEMS)
    assert [(i["id"], i["status"]) for i in v.items] == [("item-1", "skipped"), ("disk", "ok")]
    assert len(v.summary) == 1000 and not v.action_needed and not v.corrected


def test_items_win_over_a_contradicting_action_needed():
    raw = json.dumps(
        {
            "action_needed": False,
            "summary": "",
            "items": [{"id": "disk", "status": "action_needed"}],
        }
    )
    v = read_verdict(raw, ITEMS)
    assert v.action_needed and v.corrected and [i["id"] for i in v.action_items] == ["disk"]


@pytest.mark.parametrize(
    "text", ["", "All good!", '{"summary": "no flag"}', '{"action_needed": "yes", "items": []}']
)
def test_unreadable_verdicts_are_none(text):
    assert read_verdict(text, ITEMS) is None


# ---- heartbeats (acceptance) -----------------------------------------------------------------


def test_ok_verdict_is_suppressed_and_counted(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "ops-watch", CHECKLIST, when="every 30 minutes",
        script=heartbeat_script([verdict(item_1="ok", disk="ok")]),
    )  # fmt: skip
    for n in (1, 2):
        clock.advance(1800)
        wait_firings(slab, sid, n)
    df = firings(slab, sid)
    assert df["status"].tolist() == ["succeeded", "succeeded"]
    assert df["action"].tolist() == ["suppressed", "suppressed"]
    assert df["action_task_id"].isna().all()
    assert slab.schedules.get(sid).suppression_count == 2
    tasks = slab.tasks()
    assert len(tasks) == 2 and (tasks["activity"] == "heartbeat").all()
    assert (tasks["source"] == "heartbeat").all()
    assert tasks["origin_id"].tolist() == df["id"].tolist()
    assert len(events(slab, "heartbeat_suppressed")) == 2
    assert len(events(slab, "heartbeat_ok")) == 0  # notify_ok is off


def test_evaluation_prompt_holds_the_checklist_and_the_schema(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "ops-watch", CHECKLIST, when="every 30 minutes", tz="Europe/Paris",
        script=heartbeat_script([verdict(item_1="ok", disk="ok")]),
    )  # fmt: skip
    clock.advance(1800)
    df = wait_firings(slab, sid, 1)
    row = task_row(slab, df["task_id"][0])
    prompt = row["prompt"]
    assert "- id: disk (priority high): Is /data over 90 % full?" in prompt
    assert "- id: item-1 (priority medium): Any failed task" in prompt
    assert "Current time: 2026-03-02 11:30 CET (Europe/Paris)" in prompt
    assert '"action_needed": true | false' in prompt and "exactly one JSON object" in prompt
    assert "## Last action taken\nnone yet" in prompt
    assert row["profile_id"] == "general" and row["max_turns"] == 8  # heartbeat.* settings
    assert row["unattended"]  # on_approval=deny


def test_notify_ok_delivers_heartbeat_ok(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "ok-news", CHECKLIST, when="every 30 minutes", notify_ok=True, channels=["ops"],
        script=heartbeat_script([verdict(item_1="ok", disk="ok")]),
    )  # fmt: skip
    clock.advance(1800)
    wait_firings(slab, sid, 1)
    ok = events(slab, "heartbeat_ok")
    assert len(ok) == 1
    assert ok["payload"][0]["channels"] == ["ops"]
    assert ok["payload"][0]["channel_event"] == "heartbeat.ok"


def test_action_verdict_starts_an_action_task_then_action_running(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "fixer", CHECKLIST, when="every 30 minutes", channels=["ops"], action_prompt="Be careful.",
        script=heartbeat_script(
            [verdict(item_1="ok", disk="action_needed")],
            action=[{"ask": "may I delete?"}, {"result": "deleted"}],
        ),
    )  # fmt: skip
    clock.advance(1800)
    df = wait_firings(slab, sid, 1)
    assert df["action"][0] == "task"
    eval_task, action_task = df["task_id"][0], df["action_task_id"][0]
    action = task_row(slab, action_task)
    assert action["parent_task_id"] == eval_task
    assert action["activity"] == "heartbeat_action" and action["source"] == "heartbeat"
    assert action["origin_id"] == df["id"][0] and action["title"] == "fixer · action #1"
    assert "- id: disk (priority high)" in action["prompt"]
    assert "Suggested action: clean up" in action["prompt"] and "Be careful." in action["prompt"]
    assert json.loads(action["channels"]) == ["ops"]
    assert not action["unattended"]  # action tasks wait for approvals
    event = events(slab, "heartbeat_action")["payload"][0]
    assert event["action"] == "task" and event["action_task_id"] == action_task
    assert event["channel_event"] == "heartbeat.action" and event["items"][0]["id"] == "disk"
    view = slab.schedules.get(sid)
    assert view.last_action_items == ["disk"] and view.suppression_count == 0
    wait_until(lambda: task_status(slab, action_task) == "waiting")
    clock.advance(1800)
    df = wait_firings(slab, sid, 2)
    assert df["action"][1] == "action_running" and df["action_task_id"].isna()[1]
    assert len(slab.tasks()) == 3  # two evaluations, one action


def test_cooldown_skips_the_same_items(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "cool", CHECKLIST, when="every 30 minutes", cooldown_s=3600,
        script=heartbeat_script([verdict(item_1="ok", disk="action_needed")]),
    )  # fmt: skip
    clock.advance(1800)
    first = wait_firings(slab, sid, 1)
    wait_task(slab, first["action_task_id"][0])
    clock.advance(1800)
    df = wait_firings(slab, sid, 2)
    assert df["action"].tolist() == ["task", "cooldown"]


def test_notify_mode_makes_a_notice_and_no_task(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "tell", CHECKLIST, when="every 30 minutes", action_mode="notify",
        script=heartbeat_script([verdict(item_1="action_needed", disk="ok")]),
    )  # fmt: skip
    clock.advance(1800)
    df = wait_firings(slab, sid, 1)
    assert df["action"][0] == "notify" and len(slab.tasks()) == 1
    notice = slab.inbox()
    assert notice["kind"].tolist() == ["notice"] and "item-1" in notice["body"][0]


def test_bad_verdict_fails_the_firing_without_action_and_counts(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "confused", ["Anything odd?"], when="every 30 minutes",
        script=heartbeat_script(["I think everything is probably fine."]),
    )  # fmt: skip
    clock.advance(1800)
    df = wait_firings(slab, sid, 1)
    assert df["status"][0] == "failed" and df["reason"][0] == "invalid_verdict"
    assert df["action"].isna()[0] and len(slab.tasks()) == 1
    raw = json.loads(df["verdict"][0])
    assert raw["invalid"] and raw["raw"] == "I think everything is probably fine."
    assert slab.schedules.get(sid).failure_streak == 1


def test_active_hours_leave_no_rows_outside_the_window(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "office", CHECKLIST, when="every hour", active_hours=("08:00", "18:00"),
        script=heartbeat_script([verdict(item_1="ok", disk="ok")]),
    )  # fmt: skip
    for _ in range(24):  # 10:00 Monday -> 10:00 Tuesday, one hour at a time
        clock.advance(3600)
        quiesce(slab, clock)
    df = wait_firings(slab, sid, 7 + 3)
    hours = [t.hour for t in df["scheduled_for"]]
    assert hours == [11, 12, 13, 14, 15, 16, 17, 8, 9, 10]  # Monday 11-17, Tuesday 8-10
    assert (df["missed_count"] == 0).all()
    view = slab.schedules.get(sid)
    assert view.next_fire_at.hour == 11


def test_a_cron_with_no_time_in_the_window_is_refused(slab):
    with pytest.raises(ScheduleError, match="falls inside the active hours"):
        slab.schedules.add_heartbeat(
            "never", CHECKLIST, when="0 3 * * *", active_hours=("08:00", "18:00")
        )
    with pytest.raises(ScheduleError, match="both 08:00"):
        slab.schedules.add_heartbeat("x", CHECKLIST, when="hourly", active_hours=("08:00", "08:00"))
    with pytest.raises(ScheduleError, match="checklist is empty"):
        slab.schedules.add_heartbeat("x", [], when="hourly")


def test_active_days_and_a_window_past_midnight(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "night", CHECKLIST, when="every hour", active_hours=("22:00", "02:00"),
        active_days=["mon"], script=heartbeat_script([verdict(item_1="ok", disk="ok")]),
    )  # fmt: skip
    view = slab.schedules.get(sid)
    assert f"{view.next_fire_at:%a %H:%M}" == "Mon 22:00"
    assert view.active_days == ["mon"]


def test_daily_budget_accumulates_then_skips_until_the_next_local_day(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "thrifty", CHECKLIST, when="every hour", model=PRICED, daily_budget_usd=1.0,
        channels=["ops"], script=heartbeat_script([verdict(item_1="ok", disk="ok")]),
    )  # fmt: skip
    clock.advance(3600)
    df = wait_firings(slab, sid, 1)
    spent = slab.schedules.get(sid).spent_today_usd
    ledger = slab.sql("SELECT sum(cost_usd) AS c FROM usage_ledger")["c"][0]
    assert spent > 0 and spent == pytest.approx(ledger)
    assert task_row(slab, df["task_id"][0])["max_budget_usd"] == 0.25  # min(eval, remaining)
    slab.schedules.update(sid, daily_budget_usd=spent * 1.5)
    clock.advance(3600)
    df = wait_firings(slab, sid, 2)
    assert task_row(slab, df["task_id"][1])["max_budget_usd"] == pytest.approx(spent * 0.5)
    assert df["status"][1] == "failed"  # its one call went past what was left: it stopped
    assert slab.schedules.get(sid).spent_today_usd >= spent * 1.5
    clock.advance(3600)
    df = wait_firings(slab, sid, 3)
    assert df["status"][2] == "skipped" and df["reason"][2] == "daily_budget"
    view = slab.schedules.get(sid)
    assert f"{view.next_fire_at:%Y-%m-%d %H:%M}" == "2026-03-03 00:00"  # the next local day
    notices = slab.inbox()
    assert len(notices[notices["subject"] == "schedule"]) == 1
    assert events(slab, "schedule_alert")["payload"][0]["channels"] == ["ops"]
    clock.advance(3 * 3600)  # 16:00: still the same day: nothing more
    assert len(firings(slab, sid)) == 3
    clock.advance(8 * 3600)  # past midnight: the day's spend resets and it runs again
    df = wait_firings(slab, sid, 4)
    assert df["status"][3] == "succeeded"
    assert slab.schedules.get(sid).spent_today_usd < spent * 1.5


def test_action_needed_with_no_budget_left_creates_a_notice(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "broke", CHECKLIST, when="every hour", model=PRICED, daily_budget_usd=1.0,
        overlap="allow", on_approval="wait", action_mode="notify",
        script=heartbeat_script([verdict(disk="action_needed")], hold_eval=True),
    )  # fmt: skip
    probe = slab.schedules.fire(sid)
    wait_until(lambda: len(slab.inbox()) == 1)
    slab.decide(slab.inbox()["id"][0], "answer", message="go")
    wait_firings(slab, sid, 1)
    cost = slab.schedules.get(sid).spent_today_usd
    assert probe.number == 1 and cost > 0
    slab.schedules.update(sid, daily_budget_usd=cost * 2.5)  # room for 1.5 more checks
    a, b = slab.schedules.fire(sid), slab.schedules.fire(sid)
    assert a.status == b.status == "running"
    wait_until(lambda: len(slab.inbox().query("kind == 'question'")) == 2)
    for item in slab.inbox().query("kind == 'question'")["id"]:
        slab.decide(item, "answer", message="go")
        wait_until(lambda item=item: item not in slab.inbox()["id"].tolist())
    df = wait_firings(slab, sid, 3)
    assert sorted(df["action"].tolist()) == ["budget_exhausted", "notify", "notify"]
    exhausted = events(slab, "heartbeat_action")
    exhausted = exhausted[[p["action"] == "budget_exhausted" for p in exhausted["payload"]]]
    assert exhausted["payload"].iloc[0]["channel_event"] == "heartbeat.action"
    bodies = slab.inbox().query("kind == 'notice'")["body"].tolist()
    assert any("daily budget is spent" in b for b in bodies)


def test_unattended_evaluation_denies_bash_without_an_inbox_item(slab, clock):
    def script(prompt, profile):
        return [
            {"tool": "Bash", "input": {"command": "df -h /data"}},
            {"say": verdict(item_1="ok", disk="ok")},
        ]

    sid = slab.schedules.add_heartbeat(
        "sneaky", CHECKLIST, when="every 30 minutes", profile="guarded", script=script
    )
    clock.advance(1800)
    df = wait_firings(slab, sid, 1)
    decision = slab.logs(task=df["task_id"][0], event="tool_decision")["payload"][0]
    assert decision["tier"] == "unattended" and decision["behavior"] == "deny"
    assert len(slab.inbox("all")) == 0
    assert df["status"][0] == "succeeded"


def test_a_contradicting_verdict_is_corrected_with_a_notice_event(slab, clock):
    said = json.dumps(
        {
            "action_needed": False,
            "summary": "",
            "items": [{"id": "disk", "status": "action_needed"}],
        }
    )
    sid = slab.schedules.add_heartbeat(
        "contradiction", CHECKLIST, when="every hour", action_mode="notify",
        script=heartbeat_script([said]),
    )  # fmt: skip
    firing = slab.schedules.fire(sid)
    wait_task(slab, firing.task_id)
    df = wait_firings(slab, sid, 1)
    assert df["action"][0] == "notify"
    note = events(slab, "notice")["payload"][0]
    assert "the items win" in note["message"]


def test_a_manual_firing_ignores_active_hours_and_update_moves_the_window(slab, clock):
    sid = slab.schedules.add_heartbeat(
        "night", CHECKLIST, when="every hour", active_hours=("22:00", "23:00"),
        script=heartbeat_script([verdict(item_1="ok", disk="ok")]),
    )  # fmt: skip
    assert f"{slab.schedules.get(sid).next_fire_at:%H:%M}" == "22:00"
    firing = slab.schedules.fire(sid)  # 10:00, outside the window: an explicit firing runs
    assert firing.status == "running"
    wait_firings(slab, sid, 1)
    view = slab.schedules.update(sid, active_hours=("12:00", "14:00"))
    assert f"{view.next_fire_at:%H:%M}" == "12:00"
