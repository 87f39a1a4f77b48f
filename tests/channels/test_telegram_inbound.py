"""Telegram inbound by long polling: inline buttons decide items (answerCallbackQuery always
called), replies decide, senders and approvers, 409 Conflict, and a restart that processes
exactly the updates not yet committed (spec §4.8; acceptance 3 and 9)."""

from __future__ import annotations

import json

from stagent_lab.engine.clock import FakeClock
from tests.channels.support import (
    ChannelScripted,
    add_telegram,
    channel_events,
    deliveries,
    open_lab,
    submit,
    wait_until,
)

BASH = [{"tool": "Bash", "input": {"command": "make clean"}}, {"result": "cleaned"}]
APPROVER, SENDER, STRANGER = 42, 43, 99


def both(lab, telegram, **kw):
    kw.setdefault("allowed_senders", [str(SENDER), str(APPROVER)])
    kw.setdefault("approvers", [str(APPROVER)])
    kw.setdefault("default_profile", "tester")
    kw.setdefault("default_runtime", "channel-scripted")
    cid = add_telegram(lab, telegram, direction="both", **kw)
    first = "SELECT count(*) AS n FROM channel_cursors WHERE stream = 'updates'"
    assert wait_until(lambda: lab.sql(first).iloc[0]["n"] == 1)  # the first start is done
    return cid


def item_message(telegram):
    """The inbox.pending message: (its message id, its button data by label)."""
    sent = wait_until(lambda: [m for m in telegram.sent if m.get("reply_markup")])
    buttons = {row[0]["text"]: row[0]["callback_data"] for row in
               sent[0]["reply_markup"]["inline_keyboard"]}  # fmt: skip
    return sent[0]["message_id"], buttons


def test_an_approvers_button_press_decides_and_the_callback_is_answered(clab, telegram):
    both(clab, telegram)
    h = submit(clab, "clean", profile="guarded", script=BASH)
    mid, buttons = item_message(telegram)
    assert list(buttons) == ["Allow", "Deny"]  # no Always unless the channel allows it
    telegram.press(SENDER, mid, buttons["Allow"])  # allowed to start tasks, not to approve
    telegram.press(STRANGER, mid, buttons["Allow"])
    assert wait_until(lambda: len(telegram.callback_answers) == 2)
    assert clab.inbox().iloc[0]["status"] == "pending"
    rejected = [r for r in deliveries(clab, direction="in") if r["status"] == "rejected"]
    assert len(rejected) == 2

    telegram.press(APPROVER, mid, buttons["Allow"])
    assert h.wait(20).status == "completed"
    decided = clab.inbox("decided").iloc[0]
    assert decided["decision"] == "allow" and decided["decided_by"] == f"telegram:{APPROVER}"
    assert wait_until(lambda: len(telegram.callback_answers) == 3)
    ids = {a["callback_query_id"] for a in telegram.callback_answers}
    assert len(ids) == 3  # every press is answered, once


def test_a_reply_to_the_item_denies_with_a_message(clab, telegram):
    both(clab, telegram)
    h = submit(clab, "clean", profile="guarded", script=BASH)
    mid, _ = item_message(telegram)
    telegram.say(APPROVER, "deny use the Makefile target", reply_to=mid)
    assert h.wait(20).status == "completed"
    decided = clab.inbox("decided").iloc[0]
    assert decided["decision"] == "deny" and decided["response"] == "use the Makefile target"


def test_messages_start_tasks_only_for_allowed_senders_and_bots_are_ignored(clab, telegram):
    both(clab, telegram)
    telegram.say(SENDER, "summarize the logs")
    telegram.say(STRANGER, "let me in")
    telegram.say(7, "I am a bot", is_bot=True)
    assert wait_until(lambda: len(deliveries(clab, direction="in")) == 3)
    status = {r["sender_id"]: r["status"] for r in deliveries(clab, direction="in")}
    assert status == {str(SENDER): "processed", str(STRANGER): "rejected", "7": "ignored"}
    tasks = wait_until(lambda: clab.tasks().query("source == 'channel'").shape[0] == 1)
    assert tasks
    assert wait_until(lambda: [m for m in telegram.sent if "Started task" in m["text"]])


def test_a_conflict_puts_the_channel_in_error_naming_the_way_out(clab, telegram):
    telegram.webhook = {"url": "https://example.org/hook"}
    add_telegram(clab, telegram, direction="both", allowed_senders=["1"])
    got = wait_until(lambda: clab.channels.get("tg")["status"] == "error")
    assert got
    assert "deleteWebhook" in clab.channels.get("tg")["status_reason"]


def test_restart_processes_exactly_the_updates_not_yet_committed(
    tmp_path, profiles_dir, env, telegram
):
    ChannelScripted.plays = {}
    telegram.say(SENDER, "backlog before the first start")
    lab = open_lab(tmp_path / "ws", profiles_dir, FakeClock())
    try:
        both(lab, telegram)
        first = int(lab.sql("SELECT cursor FROM channel_cursors").iloc[0]["cursor"])
        telegram.batch = 1  # one update per answer, so the poll can be stopped mid-way
        telegram.hold_offset = first + 3  # the call after three updates never returns
        for n in range(1, 6):
            telegram.say(SENDER, f"job {n}")
        assert wait_until(lambda: len(deliveries(lab, direction="in")) == 3)
        assert wait_until(lambda: len(telegram.requests_to(
            telegram.path("getUpdates"))) >= 5)  # fmt: skip
    finally:
        lab.close()  # the "kill": the fourth poll is in flight
    telegram.hold_offset = None
    lab = open_lab(tmp_path / "ws", profiles_dir, FakeClock())
    try:
        assert wait_until(lambda: len(deliveries(lab, direction="in")) == 5)
        texts = [r["text"] for r in deliveries(lab, direction="in")]
        assert texts == [f"job {n}" for n in range(1, 6)]
        assert wait_until(lambda: len(lab.tasks().query("source == 'channel'")) == 5)
        prompts = sorted(lab.tasks().query("source == 'channel'")["prompt"].tolist())
        assert prompts == [f"job {n}" for n in range(1, 6)]  # no duplicate, no backlog
        cursor = lab.sql("SELECT cursor FROM channel_cursors").iloc[0]["cursor"]
        assert int(cursor) == first + 5
        events = [e["kind"] for e in channel_events(lab, "channel_inbound")]
        assert events.count("task") == 5
        assert all(json.loads(r["outcome"])["task_id"] for r in deliveries(lab, direction="in"))
    finally:
        lab.close()
