"""The inbound HTTP endpoints served in-process (``lab.channels.serve``): the Slack Events API,
the Telegram webhook and the generic signed webhook (spec §4.6, §4.8, §4.9; acceptance 11–13)."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json

import httpx
import pytest

from tests.channels.support import (
    HOOK_SECRET,
    SIGNING_SECRET,
    SLACK_CHANNEL,
    TG_WEBHOOK_SECRET,
    add_hook,
    add_slack,
    add_telegram,
    channel_events,
    deliveries,
    wait_until,
)

SENDER = "USENDER01"


def unix(clock) -> int:
    return calendar.timegm(clock.now().timetuple())


def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.post(url, content=body, headers={"Content-Type": "application/json",
                                                         **headers})  # fmt: skip


def slack_headers(body: bytes, stamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    base = f"v0:{stamp}:".encode() + body
    mac = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={mac}"}


@pytest.fixture
def events_url(clab, slack):
    cid = add_slack(clab, slack, direction="both", allowed_senders=[SENDER],
                    default_profile="tester", default_runtime="channel-scripted",
                    settings={"inbound": "events"},
                    secrets={"bot_token": "SLACK_BOT_TOKEN",
                             "signing_secret": "SLACK_SIGNING_SECRET"})  # fmt: skip
    base = clab.channels.serve("127.0.0.1:0")
    return f"{base}/channels/{cid}/slack/events"


def test_slack_events_are_verified_before_anything_else(clab, clock, events_url):
    challenge = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
    bad = post(events_url, challenge, slack_headers(challenge, unix(clock), "wrong-secret"))
    assert bad.status_code == 401 and bad.json() == {"error": "unauthorized"}
    old = post(events_url, challenge, slack_headers(challenge, unix(clock) - 301))
    assert old.status_code == 401 and old.json() == bad.json()  # no detail either way
    unsigned = post(events_url, challenge, {})
    assert unsigned.status_code == 401
    ok = post(events_url, challenge, slack_headers(challenge, unix(clock) - 299))
    assert ok.status_code == 200 and ok.json() == {"challenge": "c-123"}
    assert wait_until(lambda: len(channel_events(clab, "channel_rejected")) == 3)
    assert {e["reason"] for e in channel_events(clab, "channel_rejected")} == {"signature"}


def test_a_slack_retry_starts_no_second_task(clab, clock, events_url, slack):
    event = {"type": "app_mention", "channel": SLACK_CHANNEL, "user": SENDER,
             "text": "<@UBOT0001> summarize the logs", "ts": "1700000000.000100"}  # fmt: skip
    body = json.dumps({"type": "event_callback", "event_id": "Ev1", "event": event}).encode()
    first = post(events_url, body, slack_headers(body, unix(clock)))
    assert first.status_code == 200
    assert wait_until(lambda: len(clab.tasks().query("source == 'channel'")) == 1)
    retry = post(events_url, body, {**slack_headers(body, unix(clock)), "X-Slack-Retry-Num": "1"})
    assert retry.status_code == 200
    as_message = json.dumps({"type": "event_callback", "event_id": "Ev2",
                             "event": {**event, "type": "message"}}).encode()  # fmt: skip
    assert post(events_url, as_message, slack_headers(as_message, unix(clock))).status_code == 200
    started = wait_until(lambda: [p for p in slack.bot_posts() if "Started task" in p["text"]])
    assert started[0]["thread_ts"] == event["ts"]
    assert len(deliveries(clab, direction="in")) == 1  # one message, one row
    assert len(clab.tasks().query("source == 'channel'")) == 1


def test_telegram_webhook_needs_the_secret_header_and_registers_it(clab, telegram, env):
    cid = add_telegram(clab, telegram, direction="both", allowed_senders=["43"],
                       default_profile="tester", default_runtime="channel-scripted",
                       settings={"inbound": "webhook",
                                 "webhook_url": "https://bot.example.org/tg"},
                       secrets={"bot_token": "TG_BOT", "webhook_secret": "TG_HOOK"})  # fmt: skip
    assert wait_until(lambda: telegram.webhook)
    assert telegram.webhook["secret_token"] == TG_WEBHOOK_SECRET
    assert telegram.webhook["url"] == "https://bot.example.org/tg"
    assert TG_WEBHOOK_SECRET not in json.dumps(clab.channels.get("tg"), default=str)
    url = f"{clab.channels.serve('127.0.0.1:0')}/channels/{cid}/telegram"
    update = {"update_id": 500, "message": {"message_id": 9, "from": {"id": 43, "is_bot": False},
              "chat": {"id": telegram.chat_id, "type": "group"}, "text": "summarize"}}  # fmt: skip
    body = json.dumps(update).encode()
    assert post(url, body, {}).status_code == 401
    wrong = {"X-Telegram-Bot-Api-Secret-Token": TG_WEBHOOK_SECRET[:-1] + "x"}
    assert post(url, body, wrong).status_code == 401
    assert deliveries(clab, direction="in") == []
    right = {"X-Telegram-Bot-Api-Secret-Token": TG_WEBHOOK_SECRET}
    assert post(url, body, right).status_code == 200
    assert post(url, body, right).status_code == 200  # Telegram redelivers: update_id dedupes
    assert wait_until(lambda: len(clab.tasks().query("source == 'channel'")) == 1)
    assert len(deliveries(clab, direction="in")) == 1


def signed(body: bytes, stamp: int, delivery: str, secret: str = HOOK_SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Stagent-Delivery": delivery, "X-Stagent-Timestamp": str(stamp),
            "X-Stagent-Signature": f"v1={mac}"}  # fmt: skip


def test_generic_inbound_webhook(clab, clock, hook):
    cid = add_hook(clab, hook, direction="both", allowed_senders=["alice"],
                   default_profile="tester", default_runtime="channel-scripted",
                   settings={"inbound": "on"})  # fmt: skip
    url = f"{clab.channels.serve('127.0.0.1:0')}/channels/{cid}/webhook"
    body = json.dumps({"type": "task", "prompt": "summarize", "sender": "alice"}).encode()
    accepted = post(url, body, signed(body, unix(clock), "d-1"))
    assert accepted.status_code == 202
    task_id = accepted.json()["task_id"]
    assert accepted.json()["status"] == "queued"
    row = clab.sql("SELECT source, channels FROM tasks WHERE id = ?", [task_id]).iloc[0]
    assert row["source"] == "channel" and json.loads(row["channels"]) == [cid]

    again = post(url, body, signed(body, unix(clock), "d-1"))
    assert again.status_code == 409 and again.json()["task_id"] == task_id
    replay = post(url, body, signed(body, unix(clock), "d-2"))  # same request, new id
    assert replay.status_code == 409

    old = post(url, body, signed(body, unix(clock) - 600, "d-3"))
    assert old.status_code == 401 and old.json() == {"error": "unauthorized"}
    forged = post(url, body, signed(body, unix(clock), "d-4", secret="x" * 40))
    assert forged.status_code == 401 and forged.json() == old.json()

    stranger = json.dumps({"type": "task", "prompt": "hi", "sender": "mallory"}).encode()
    assert post(url, stranger, signed(stranger, unix(clock), "d-5")).status_code == 403
    bad = json.dumps({"type": "task", "sender": "alice"}).encode()
    assert post(url, bad, signed(bad, unix(clock), "d-6")).status_code == 400
    assert post(url, body, {**signed(body, unix(clock), "d 7")}).status_code == 400
    big = b'{"type": "task", "prompt": "' + b"x" * 70_000 + b'", "sender": "alice"}'
    assert post(url, big, signed(big, unix(clock), "d-8")).status_code == 413
    assert len(clab.tasks().query("source == 'channel'")) == 1


def test_generic_inbound_decisions(clab, clock, hook):
    from tests.channels.support import submit

    cid = add_hook(clab, hook, direction="both", allowed_senders=["alice", "bob"],
                   approvers=["alice"], settings={"inbound": "on"},
                   events=["inbox.pending"])  # fmt: skip
    url = f"{clab.channels.serve('127.0.0.1:0')}/channels/{cid}/webhook"
    h = submit(
        clab,
        "clean",
        profile="guarded",
        script=[{"tool": "Bash", "input": {"command": "make clean"}}, {"result": "ok"}],
    )
    assert wait_until(
        lambda: [
            r
            for r in deliveries(clab, direction="out")
            if r["event"] == "inbox.pending" and r["status"] == "sent"
        ]
    )
    item = clab.inbox().iloc[0]["id"]

    def decide(sender, delivery, **kw):
        body = json.dumps({"type": "decision", "item_id": item, "sender": sender, **kw}).encode()
        return post(url, body, signed(body, unix(clock), delivery))

    assert decide("bob", "x-1", decision="allow").status_code == 403  # not an approver
    assert decide("alice", "x-2", decision="always").status_code == 403  # not enabled
    assert decide("alice", "x-9", decision="allow", item_code="#zz").status_code == 400
    ok = decide("alice", "x-3", decision="allow")
    assert ok.status_code == 202 and ok.json()["item_id"] == item
    assert h.wait(20).status == "completed"
    assert clab.inbox("decided").iloc[0]["decided_by"] == "webhook:alice"
    late = decide("alice", "x-4", decision="deny")
    assert late.status_code == 422 and late.json()["decided_by"] == "webhook:alice"
