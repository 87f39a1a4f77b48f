"""Outbound messages on the real wire formats: Slack chat.postMessage, Telegram sendMessage
(with inline buttons), and what each event says (spec §4.3, §4.4; acceptance 2 and 3)."""

from __future__ import annotations

import re

from stagent_lab.channels import render
from tests.channels.support import (
    SLACK_CHANNEL,
    add_slack,
    add_telegram,
    advance_until,
    deliveries,
    submit,
    wait_until,
)

BASH = [{"tool": "Bash", "input": {"command": "make clean"}}, {"result": "cleaned"}]


def test_slack_bound_task_completion_failure_and_inbox_item(clab, slack):
    add_slack(clab, slack, events=[])  # subscribes to nothing: only bound tasks reach it
    done = submit(
        clab, "summarize", channels=["ops"], model="claude-sonnet-4-5", profile="tester",
        script=[{"say": "working"}, {"result": "The build is green & <fast>. " + "x" * 3000}],
    )  # fmt: skip
    assert done.wait(20).status == "completed"
    posts = wait_until(lambda: slack.bot_posts())
    assert len(posts) == 1
    text = posts[0]["text"]
    assert posts[0]["channel"] == SLACK_CHANNEL
    assert posts[0]["unfurl_links"] is False and posts[0]["unfurl_media"] is False
    assert text.startswith("*Task completed:* summarize")
    assert f"Task: {done.id[:8]} · profile tester · runtime scripted" in text
    cost = float(re.search(r"\$(\d+\.\d{4})", text).group(1))
    assert cost > 0  # priced model: the ledger's cost is in the message
    assert "The build is green &amp; &lt;fast&gt;." in text  # dynamic text escaped
    assert "x" * 1400 in text and "x" * 1600 not in text  # channels.result_chars (1,500)

    failed = submit(clab, "deploy", channels=["ops"], script=[{"fail": "disk is full"}])
    assert failed.wait(20).status == "failed"
    posts = wait_until(lambda: slack.bot_posts()[1:])
    assert posts[0]["text"].startswith("*Task failed:* deploy")
    assert "Reason: disk is full" in posts[0]["text"]

    asking = submit(clab, "clean up", channels=["ops"], profile="guarded", script=BASH)
    posts = wait_until(lambda: slack.bot_posts()[2:])
    item = clab.inbox().iloc[0]
    text = posts[0]["text"]
    code = re.search(r"#([0-9a-f]{6,})", text).group(1)
    assert item["id"].startswith(code) and len(code) >= 6
    assert "Tool: Bash" in text and '"command": "make clean"' in text
    assert "Suggested rule: Bash(command:make clean)" in text
    assert "allow · deny &lt;message for the agent&gt;" in text
    assert "always" not in text  # allow_always is off
    clab.decide(item["id"], "allow")
    assert asking.wait(20).status == "completed"
    assert len(wait_until(lambda: slack.bot_posts()[4:])) == 1  # resolved note + completion
    # The fake has the message before the outbox records it sent: wait for the record.
    rows = wait_until(
        lambda: (
            [r for r in deliveries(clab, channel="ops", direction="out") if r["status"] == "sent"][
                4:
            ]
            and deliveries(clab, channel="ops", direction="out")
        )
    )
    assert sorted(r["event"] for r in rows) == sorted(
        ["task.completed", "task.failed", "inbox.pending", "inbox.resolved", "task.completed"]
    )
    assert all(r["status"] == "sent" for r in rows)


def test_inbox_resolved_goes_in_the_items_thread_when_decided_elsewhere(clab, slack):
    add_slack(clab, slack)
    h = submit(clab, "clean", profile="guarded", script=BASH)
    wait_until(lambda: slack.bot_posts())
    root = slack.messages[SLACK_CHANNEL][0]["ts"]
    item = clab.inbox().iloc[0]
    clab.decide(item["id"], "deny", "use the Makefile target instead", decided_by="alice")
    assert h.wait(20).status == "completed"
    note = wait_until(lambda: [p for p in slack.bot_posts() if p.get("thread_ts") == root])
    assert "decided:* deny by alice" in note[0]["text"]
    assert "Message: use the Makefile target instead" in note[0]["text"]


def test_telegram_out_with_buttons_plain_text_and_replies(clab, telegram):
    add_telegram(clab, telegram, events=["task.completed", "inbox.pending"], allow_always=True,
                 direction="both", allowed_senders=["42"])  # fmt: skip
    done = submit(clab, "report", script=[{"result": "All good *really*"}])
    assert done.wait(20).status == "completed"
    sent = wait_until(lambda: telegram.sent)
    assert sent[0]["chat_id"] == telegram.chat_id
    assert "parse_mode" not in sent[0]
    assert sent[0]["text"].startswith("Task completed: report")
    assert "All good *really*" in sent[0]["text"]  # plain text: nothing escaped or shown twice

    submit(clab, "clean", profile="guarded", script=BASH)
    sent = wait_until(lambda: telegram.sent[1:])
    item = clab.inbox().iloc[0]
    code = re.search(r"#([0-9a-f]{6,})", sent[0]["text"]).group(1)
    buttons = sent[0]["reply_markup"]["inline_keyboard"]
    assert [row[0]["text"] for row in buttons] == ["Allow", "Always", "Deny"]
    datas = [row[0]["callback_data"] for row in buttons]
    assert datas == [f"d:{code}:a", f"d:{code}:w", f"d:{code}:d"]
    assert all(len(d.encode()) <= 64 for d in datas)
    assert "Reply to this message: allow · deny <message for the agent> · always" in sent[0]["text"]
    assert item["id"].startswith(code)


def test_long_texts_are_cut_with_a_pointer():
    doc = render.Doc().title("Task completed:", "t").text("y" * 10_000)
    rendered = render.Rendered(doc, {}, "task 1234abcd")
    slack_payload, stored = render.payload_for(
        "slack", rendered, event="task.completed", occurred_at=None, thread=None
    )
    assert len(slack_payload["text"]) == render.SLACK_LIMIT
    assert slack_payload["text"].endswith("(cut; the full text is in task 1234abcd)")
    assert len(stored) <= 4000
    tg, _ = render.payload_for(
        "telegram", rendered, event="task.completed", occurred_at=None, thread=None
    )
    assert len(tg["text"]) == render.TELEGRAM_LIMIT


def test_one_post_per_second_per_channel(clab, clock, slack):
    clab.set_setting("channels.min_interval_s", 1)
    add_slack(clab, slack, events=["task.completed"])
    for n in range(3):
        assert submit(clab, f"t{n}", script=[{"result": "ok"}]).wait(20).status == "completed"
    assert wait_until(lambda: len(slack.bot_posts()) == 1)
    assert wait_until(lambda: len(deliveries(clab, status="pending")) == 2)
    assert not wait_until(lambda: len(slack.bot_posts()) > 1, timeout=0.5)
    clock.advance(1.0)
    assert wait_until(lambda: len(slack.bot_posts()) == 2)
    assert advance_until(clock, lambda: len(slack.bot_posts()) == 3)


def test_a_disabled_channel_gets_nothing_and_others_are_unaffected(clab, slack, telegram):
    add_slack(clab, slack, events=["task.completed"])
    add_telegram(clab, telegram, events=["task.completed"])
    clab.channels.disable("ops")
    assert submit(clab, "x", script=[{"result": "ok"}]).wait(20).status == "completed"
    assert wait_until(lambda: telegram.sent)
    assert slack.bot_posts() == []
    assert [r["channel"] for r in deliveries(clab)] == ["tg"]


def test_events_cost_nothing_more_until_a_channel_can_take_them(clab, slack):
    """Routing commits the writer and reads the store on the engine thread, which a task's
    next step waits behind: with no channel configured, events are not routed at all."""
    feature = next(f for f in clab.workspace.service.features if f.name == "channels")
    router = feature.router
    drains: list[int] = []
    real_drain = router.drain
    router.drain = lambda: (drains.append(len(router._events)), real_drain())
    assert submit(clab, "quiet", script=[{"say": "hi"}]).wait(20).status == "completed"
    assert drains == []
    add_slack(clab, slack)
    assert submit(clab, "heard", script=[{"say": "hi"}]).wait(20).status == "completed"
    assert wait_until(lambda: sum(drains) >= 3)  # queued, running, completed were routed
