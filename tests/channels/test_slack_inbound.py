"""Slack inbound by polling: decisions in an item's thread, approvers, ``always``, channel tasks
and their rate limit, cursors across restarts, and a poller that never waits for an agent
(spec §4.5–§4.7; acceptance 6, 7, 8, 9 and 10)."""

from __future__ import annotations

import json

from stagent_lab.engine.clock import FakeClock
from tests.channels.support import (
    APPROVER,
    SENDER,
    SLACK_CHANNEL,
    STRANGER,
    ChannelScripted,
    add_slack,
    channel_events,
    deliveries,
    open_lab,
    submit,
    wait_until,
)

BOT = "<@UBOT0001>"
BASH = [{"tool": "Bash", "input": {"command": "make clean"}}, {"result": "cleaned"}]


def both(lab, slack, **kw):
    kw.setdefault("allowed_senders", [SENDER, APPROVER])
    kw.setdefault("approvers", [APPROVER])
    kw.setdefault("default_profile", "tester")
    kw.setdefault("default_runtime", "channel-scripted")
    settings = {"poll_interval_s": 5, **kw.pop("settings", {})}
    cid = add_slack(lab, slack, direction="both", settings=settings, **kw)
    cursor = "SELECT count(*) AS n FROM channel_cursors WHERE stream = 'history'"
    assert wait_until(lambda: lab.sql(cursor).iloc[0]["n"] == 1)  # the first poll is done
    return cid


def inbound(lab, **kw):
    return deliveries(lab, direction="in", **kw)


def poll(clock, lab, count):
    """One poll interval later, wait until ``count`` inbound rows exist."""
    clock.advance(5)
    return wait_until(lambda: len(inbound(lab)) >= count)


def pending_item(lab, slack):
    """Wait for the inbox.pending post; returns (item id, the post's ts)."""
    assert wait_until(lambda: [p for p in slack.bot_posts() if "Approval needed" in p["text"]])
    ts = next(m["ts"] for m in slack.messages[SLACK_CHANNEL] if "Approval needed" in m["text"])
    return lab.inbox().iloc[0]["id"], ts


def test_approver_denies_in_the_thread_and_the_agent_sees_the_message(clab, clock, slack):
    both(clab, slack)
    h = submit(clab, "clean", profile="guarded", script=BASH)
    item, root = pending_item(clab, slack)
    slack.post(SLACK_CHANNEL, STRANGER, "deny use make clean", thread_ts=root)
    slack.post(SLACK_CHANNEL, SENDER, "deny use make clean", thread_ts=root)  # not an approver
    assert poll(clock, clab, 3)  # our own post, and the two replies
    rows = [r for r in inbound(clab) if r["sender_id"] in (STRANGER, SENDER)]
    assert [r["status"] for r in rows] == ["rejected", "rejected"]
    assert all(json.loads(r["outcome"]) == {"rejected": "sender"} for r in rows)
    assert clab.inbox().iloc[0]["status"] == "pending"
    rejected = channel_events(clab, "channel_rejected")
    assert {e["reason"] for e in rejected} == {"sender"}
    assert len(slack.thread(SLACK_CHANNEL, root)) == 2  # no replies to strangers

    slack.post(SLACK_CHANNEL, APPROVER, f"{BOT} deny use make clean", thread_ts=root)
    assert poll(clock, clab, 4)
    assert h.wait(20).status == "completed"
    decided = clab.inbox("decided").iloc[0]
    assert decided["id"] == item and decided["decision"] == "deny"
    assert decided["decided_by"] == f"slack:{APPROVER}"
    assert decided["response"] == "use make clean"
    results = clab.logs(h.id, event="tool_result")
    assert "use make clean" in json.dumps(results["payload"].tolist())
    confirm = wait_until(lambda: [p for p in slack.bot_posts() if p.get("thread_ts") == root])
    assert confirm[0]["text"].endswith(f"denied by slack:{APPROVER}.")
    assert channel_events(clab, "channel_decision")[0]["decided_by"] == f"slack:{APPROVER}"


def test_always_needs_the_channel_to_allow_it(clab, clock, slack):
    both(clab, slack)
    h = submit(clab, "clean", profile="guarded", script=BASH)
    item, root = pending_item(clab, slack)
    slack.post(SLACK_CHANNEL, APPROVER, "always", thread_ts=root)
    assert poll(clock, clab, 2)
    refusal = wait_until(lambda: [p for p in slack.bot_posts() if p.get("thread_ts") == root])
    assert "does not allow 'always'" in refusal[0]["text"]
    assert clab.rules().empty and clab.inbox().iloc[0]["status"] == "pending"

    clab.channels.update("ops", allow_always=True)
    slack.post(SLACK_CHANNEL, APPROVER, "always allow", thread_ts=root)
    assert poll(clock, clab, 3)
    assert h.wait(20).status == "completed"
    rules = clab.rules()
    assert rules["rule"].tolist() == ["Bash(command:make clean)"]
    assert rules["created_from"].tolist() == [item]
    decided = clab.inbox("decided").iloc[0]
    assert decided["decision"] == "always" and decided["decided_by"] == f"slack:{APPROVER}"


def test_channel_tasks_answer_in_their_thread_and_are_rate_limited(clab, clock, slack):
    both(clab, slack)
    ChannelScripted.plays["summarize the logs"] = [{"result": "logs are fine"}]
    ts = slack.post(SLACK_CHANNEL, SENDER, f"{BOT} summarize the logs")
    slack.post(SLACK_CHANNEL, SENDER, "just chatting, not for the bot")
    slack.post(SLACK_CHANNEL, STRANGER, f"{BOT} let me in")
    assert poll(clock, clab, 3)
    rows = {
        r["sender_id"] + ":" + r["status"]: r for r in inbound(clab) if r["sender_id"] != "UBOT0001"
    }
    assert set(rows) == {f"{SENDER}:processed", f"{SENDER}:ignored", f"{STRANGER}:rejected"}
    origin = rows[f"{SENDER}:processed"]
    task_id = json.loads(origin["outcome"])["task_id"]
    task = clab.task(task_id)
    row = clab.sql("SELECT source, origin_id FROM tasks WHERE id = ?", [task_id]).iloc[0]
    assert row["source"] == "channel" and row["origin_id"] == origin["id"]
    assert task.wait(20).status == "completed"
    thread = wait_until(lambda: len(slack.thread(SLACK_CHANNEL, ts)) >= 2 and slack.thread(
        SLACK_CHANNEL, ts))  # fmt: skip
    assert thread[0]["text"].startswith(f"Started task {task_id[:8]} (profile tester, runtime")
    assert thread[1]["text"].startswith("*Task completed:* summarize the logs")
    assert "logs are fine" in thread[1]["text"]
    tasks = clab.sql("SELECT channels FROM tasks WHERE id = ?", [task_id])
    assert json.loads(tasks.iloc[0]["channels"]) == [clab.channels.get("ops")["id"]]

    for n in range(20):
        slack.post(SLACK_CHANNEL, SENDER, f"{BOT} job {n}")
    assert poll(clock, clab, 23)
    last = inbound(clab)[-1]
    assert last["status"] == "rejected" and json.loads(last["outcome"]) == {
        "rejected": "rate_limit"
    }
    assert len(clab.tasks().query("source == 'channel'")) == 20
    answer = wait_until(lambda: slack.thread(SLACK_CHANNEL, last["external_id"]))
    assert "in the last hour" in answer[0]["text"]
    assert channel_events(clab, "channel_rejected")[-1]["reason"] == "rate_limit"


def test_channel_tasks_wait_for_approval_in_their_own_thread(clab, clock, slack):
    both(clab, slack, default_profile="guarded")
    ChannelScripted.plays["clean"] = BASH
    ts = slack.post(SLACK_CHANNEL, SENDER, f"{BOT} clean")
    assert poll(clock, clab, 1)
    item_post = wait_until(
        lambda: [m for m in slack.thread(SLACK_CHANNEL, ts) if "Approval needed" in m["text"]]
    )
    assert item_post  # the item is posted in the task's thread, not at the top level
    slack.post(SLACK_CHANNEL, APPROVER, "yes", thread_ts=ts)
    clock.advance(5)
    assert wait_until(lambda: not clab.inbox().shape[0])
    assert clab.inbox("decided").iloc[0]["decided_by"] == f"slack:{APPROVER}"


def test_help_and_decisions_without_an_item(clab, clock, slack):
    both(clab, slack)
    a = slack.post(SLACK_CHANNEL, SENDER, "help")
    b = slack.post(SLACK_CHANNEL, APPROVER, "allow")
    assert poll(clock, clab, 2)
    helped = wait_until(lambda: slack.thread(SLACK_CHANNEL, a))[0]["text"]
    assert "allow · deny &lt;message for the agent&gt;" in helped  # mrkdwn-escaped
    asked = wait_until(lambda: slack.thread(SLACK_CHANNEL, b))[0]["text"]
    assert asked == "Which item? Reply in the item's thread, or add its #code."
    assert clab.tasks().empty  # a decision word never becomes a task


def test_a_code_anywhere_decides_the_item(clab, clock, slack):
    both(clab, slack)
    h = submit(clab, "clean", profile="guarded", script=BASH)
    item, _ = pending_item(clab, slack)
    slack.post(SLACK_CHANNEL, APPROVER, f"approve #{item[:6]} please")
    assert poll(clock, clab, 2)
    assert h.wait(20).status == "completed"
    assert clab.inbox("decided").iloc[0]["decision"] == "allow"


def test_first_start_skips_the_backlog_and_a_restart_never_replays(
    tmp_path, profiles_dir, clock, env, slack
):
    ChannelScripted.plays = {}
    slack.post(SLACK_CHANNEL, SENDER, f"{BOT} old request one")
    slack.post(SLACK_CHANNEL, SENDER, f"{BOT} old request two")
    lab = open_lab(tmp_path / "ws", profiles_dir, clock)
    try:
        both(lab, slack)
        slack.post(SLACK_CHANNEL, SENDER, f"{BOT} new request")
        assert poll(clock, lab, 1)
        assert len(inbound(lab)) == 1 and "new request" in inbound(lab)[0]["text"]
    finally:
        lab.close()
    slack.post(SLACK_CHANNEL, SENDER, f"{BOT} while closed")
    clock = FakeClock(clock.now())  # a closed workspace's timers stay on the old clock
    lab = open_lab(tmp_path / "ws", profiles_dir, clock)
    try:
        assert wait_until(lambda: len([r for r in inbound(lab) if r["sender_id"] == SENDER]) == 2)
        clock.advance(5)
        clock.advance(5)
        texts = [r["text"] for r in inbound(lab) if r["sender_id"] == SENDER]
        assert wait_until(lambda: len(lab.tasks().query("source == 'channel'")) == 2)
        assert sorted(t.split("> ")[1] for t in texts) == ["new request", "while closed"]
    finally:
        lab.close()


def test_a_polling_channel_keeps_the_service_up(clab, slack):
    service = clab.workspace.service
    assert not any("channel" in r for r in service.live_work())
    name = both(clab, slack)
    assert wait_until(lambda: "1 channel poller(s)" in service.live_work())
    clab.channels.disable(name)
    assert wait_until(lambda: not any("channel" in r for r in service.live_work()))


def test_polling_never_waits_for_an_agent_turn(clab, clock, slack):
    both(clab, slack)
    ChannelScripted.plays["long job"] = [{"sleep": 3600}]
    slack.post(SLACK_CHANNEL, SENDER, f"{BOT} long job")
    assert poll(clock, clab, 1)
    long_task = json.loads(inbound(clab)[0]["outcome"])["task_id"]
    assert wait_until(lambda: clab.task(long_task).status == "running")
    h = submit(clab, "clean", profile="guarded", script=BASH)
    _item, root = pending_item(clab, slack)
    slack.post(SLACK_CHANNEL, APPROVER, "allow", thread_ts=root)
    clock.advance(5)  # one poll interval
    assert wait_until(lambda: clab.inbox().empty)
    assert h.wait(20).status == "completed"
    assert clab.task(long_task).status == "running"


def test_rate_limited_polls_wait_for_retry_after(clab, clock, slack):
    from tests.fakes.slack_server import rate_limited

    both(clab, slack)
    slack.fail("/api/conversations.history", rate_limited(120))
    clock.advance(5)
    assert wait_until(lambda: channel_events(clab, "notice"))
    assert "polling again in 120 s" in channel_events(clab, "notice")[0]["message"]
    before = len(slack.requests_to("/api/conversations.history", "GET"))
    clock.advance(60)
    assert not wait_until(
        lambda: len(slack.requests_to("/api/conversations.history", "GET")) > before, timeout=0.3
    )
    clock.advance(61)
    assert wait_until(lambda: len(slack.requests_to("/api/conversations.history", "GET")) > before)
