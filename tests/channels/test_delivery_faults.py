"""Signed webhooks out, retries with backoff on the engine clock, the dead letter, redeliver,
and auth failures that hold deliveries (spec §4.3; acceptance 4 and 5)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from stagent_lab.channels.outbox import backoff
from tests.channels.support import (
    add_hook,
    add_slack,
    add_telegram,
    channel_events,
    deliveries,
    submit,
    wait_until,
)
from tests.fakes.base import http_error
from tests.fakes.json_api import slow
from tests.fakes.slack_server import slack_error
from tests.fakes.telegram_server import retry_after_error


def _done(lab, prompt="job", **kw):
    return submit(lab, prompt, profile="tester", script=[{"result": f"{prompt} ok"}], **kw)


def _row(lab, **kw):
    rows = deliveries(lab, direction="out", **kw)
    return rows[0] if rows else None


def _failed_at(lab, attempt):
    rows = lab.sql(
        "SELECT ts, payload FROM agent_logs WHERE subject = 'channel' "
        "AND event = 'channel_delivery_failed' ORDER BY id"
    ).to_dict("records")
    row = next(r for r in rows if json.loads(r["payload"])["attempt"] == attempt)
    return row["ts"], datetime.fromisoformat(json.loads(row["payload"])["next_attempt_at"])


def test_webhook_body_schema_and_signature(clab, hook):
    add_hook(clab, hook, events=["task.completed"])
    h = _done(clab, "ship it")
    assert h.wait(20).status == "completed"
    (req,) = wait_until(lambda: hook.deliveries)
    body = json.loads(req.raw)
    assert set(body) == {"id", "event", "occurred_at", "workspace", "data"}
    assert body["event"] == "task.completed" and body["workspace"] == "ws"
    assert body["occurred_at"].endswith("Z")
    assert body["data"]["task_id"] == h.id and body["data"]["result"] == "ship it ok"
    assert {"title", "profile_id", "runtime_id", "model", "turns", "cost_usd"} <= set(body["data"])
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-stagent-event"] == "task.completed"
    assert req.headers["x-stagent-delivery"] == body["id"] == _row(clab)["id"]
    assert hook.verify(req)
    assert not hook.verify(req, secret="another-secret-of-at-least-32-chars!!")


def test_500_500_200_is_sent_after_three_attempts_with_backoff(clab, clock, hook):
    add_hook(clab, hook, events=["task.completed"])
    hook.fail("/hook", http_error(500), http_error(500))
    assert _done(clab).wait(20).status == "completed"
    assert wait_until(lambda: (_row(clab) or {}).get("status") == "retrying")
    failed_ts, when = _failed_at(clab, 1)
    assert timedelta(seconds=4) <= when - failed_ts <= timedelta(seconds=6)  # 5 s ± 20 %
    clock.advance((when - failed_ts).total_seconds() - 0.5)
    assert not wait_until(lambda: len(hook.deliveries) > 1, timeout=0.3)
    clock.advance(1.0)
    assert wait_until(lambda: len(channel_events(clab, "channel_delivery_failed")) == 2)
    failed_ts, when = _failed_at(clab, 2)
    assert timedelta(seconds=16) <= when - failed_ts <= timedelta(seconds=24)  # 20 s ± 20 %
    clock.advance((when - failed_ts).total_seconds() + 0.5)
    assert wait_until(lambda: _row(clab)["status"] == "sent")
    row = _row(clab)
    assert row["attempts"] == 3 and row["http_status"] == 200
    first, second, third = hook.deliveries
    ids = {r.headers["x-stagent-delivery"] for r in (first, second, third)}
    assert ids == {row["id"]}  # the same delivery id on every attempt
    stamps = [r.headers["x-stagent-timestamp"] for r in (first, second, third)]
    assert len(set(stamps)) == 3  # a fresh timestamp (and so signature) each time
    assert len({r.headers["x-stagent-signature"] for r in (first, second, third)}) == 3
    assert all(hook.verify(r) for r in (first, second, third))
    assert first.raw == third.raw


def test_retry_after_is_honoured(clab, clock, hook):
    add_hook(clab, hook, events=["task.completed"])
    hook.fail("/hook", http_error(429, headers={"Retry-After": "30"}))
    assert _done(clab).wait(20).status == "completed"
    assert wait_until(lambda: (_row(clab) or {}).get("status") == "retrying")
    failed_ts, when = _failed_at(clab, 1)
    assert abs((when - failed_ts).total_seconds() - 30) < 0.01
    clock.advance(29)
    assert not wait_until(lambda: len(hook.deliveries) > 1, timeout=0.3)
    clock.advance(1.5)
    assert wait_until(lambda: _row(clab)["status"] == "sent")


def test_telegram_retry_after_parameter_is_honoured(clab, clock, telegram):
    add_telegram(clab, telegram, events=["task.completed"])
    telegram.fail(telegram.path("sendMessage"), retry_after_error(45))
    assert _done(clab).wait(20).status == "completed"
    assert wait_until(lambda: (_row(clab) or {}).get("status") == "retrying")
    failed_ts, when = _failed_at(clab, 1)
    assert abs((when - failed_ts).total_seconds() - 45) < 0.01
    clock.advance(46)
    assert wait_until(lambda: _row(clab)["status"] == "sent")


def test_backoff_formula():
    import random

    rng = random.Random(1)
    for n, base in ((1, 5), (2, 20), (3, 80), (4, 320), (5, 1280)):
        assert base * 0.8 <= backoff(n, rng=rng) <= base * 1.2
    assert 2880 <= backoff(9, rng=rng) <= 3600  # capped at 1 h, jitter included
    assert backoff(1, retry_after=90, rng=rng) == 90
    assert backoff(1, retry_after=10_000, rng=rng) == 3600


def test_six_failures_make_it_dead_with_one_notice_and_redeliver_sends_it(clab, clock, hook):
    add_hook(clab, hook, events=["task.completed"])
    hook.fail("/hook", *[http_error(503)] * 6)
    assert _done(clab, "first").wait(20).status == "completed"

    def failures():
        return len(channel_events(clab, "channel_delivery_failed"))

    for attempt in range(1, 6):
        assert wait_until(lambda a=attempt: failures() == a)
        clock.advance(3600)
    assert wait_until(lambda: _row(clab)["status"] == "dead")
    row = _row(clab)
    assert row["attempts"] == 6 and row["http_status"] == 503 and "503" in row["last_error"]
    assert [e["delivery_id"] for e in channel_events(clab, "channel_dead_letter")] == [row["id"]]
    notices = clab.inbox().query("kind == 'notice'")
    assert len(notices) == 1 and notices.iloc[0]["subject"] == "channel"
    assert "lab.channels.redeliver" in notices.iloc[0]["body"]

    hook.fail("/hook", http_error(400))  # permanent: dead at once, no second notice today
    assert _done(clab, "second").wait(20).status == "completed"
    assert wait_until(lambda: len(deliveries(clab, status="dead")) == 2)
    assert len(clab.inbox().query("kind == 'notice'")) == 1

    out = clab.channels.redeliver(row["id"][:8])
    assert out == {"delivery_id": row["id"], "status": "pending"}
    assert wait_until(lambda: _row(clab, status="sent"))
    assert _row(clab, status="sent")["id"] == row["id"]
    assert hook.deliveries[-1].headers["x-stagent-delivery"] == row["id"]


def test_invalid_auth_puts_the_channel_in_error_and_holds_until_test(clab, slack):
    add_slack(clab, slack, events=["task.completed"])
    slack.fail("/api/chat.postMessage", slack_error("invalid_auth"))
    assert _done(clab, "one").wait(20).status == "completed"
    assert wait_until(lambda: clab.channels.get("ops")["status"] == "error")
    assert "invalid_auth" in clab.channels.get("ops")["status_reason"]
    assert _done(clab, "two").wait(20).status == "completed"
    assert wait_until(lambda: len(deliveries(clab, status="held")) == 2)
    assert slack.bot_posts() == []
    status = [e for e in channel_events(clab, "channel_status")]
    assert status[-1]["from"] == "active" and status[-1]["to"] == "error"
    out = clab.channels.test("ops")
    assert out["ok"] is True and out["released"] == 2
    assert clab.channels.get("ops")["status"] == "active"
    assert wait_until(lambda: len(deliveries(clab, status="sent")) == 2)
    texts = [p["text"] for p in slack.bot_posts()]
    assert texts[0].startswith("stagent_lab test message")
    assert sorted(t.split("\n")[0] for t in texts[1:]) == [
        "*Task completed:* one",
        "*Task completed:* two",
    ]


def test_held_deliveries_die_after_24_hours(clab, clock, slack):
    add_slack(clab, slack, events=["task.completed"])
    slack.fail("/api/chat.postMessage", slack_error("token_revoked"))
    assert _done(clab).wait(20).status == "completed"
    assert wait_until(lambda: (_row(clab) or {}).get("status") == "held")
    clock.advance(23 * 3600)
    assert not wait_until(lambda: _row(clab)["status"] == "dead", timeout=0.3)
    clock.advance(3600 + 1)
    assert wait_until(lambda: _row(clab)["status"] == "dead")
    assert "held for 24 h" in _row(clab)["last_error"]


def test_a_missing_variable_puts_the_channel_in_error(clab, env, slack):
    add_slack(clab, slack, events=["task.completed"])
    env.delenv("SLACK_BOT_TOKEN")
    assert _done(clab).wait(20).status == "completed"
    assert wait_until(lambda: clab.channels.get("ops")["status"] == "error")
    ch = clab.channels.get("ops")
    assert ch["status_reason"] == "environment variable SLACK_BOT_TOKEN (bot_token) is not set"
    assert _row(clab)["status"] == "held"


def test_a_slow_receiver_times_out_and_is_retried(clab, hook):
    add_hook(clab, hook, events=["task.completed"], settings={"timeout_s": 0.3})
    hook.fail("/hook", slow(3))
    assert _done(clab).wait(20).status == "completed"
    assert wait_until(lambda: (_row(clab) or {}).get("status") == "retrying")
    assert "Timeout" in _row(clab)["last_error"]


def test_a_failed_delivery_never_affects_the_task(clab, hook):
    add_hook(clab, hook, events=["task.failed", "task.completed"])
    hook.fail("/hook", http_error(400))
    h = _done(clab)
    assert h.wait(20).status == "completed"
    assert wait_until(lambda: (_row(clab) or {}).get("status") == "dead")
    assert clab.task(h.id).status == "completed" and clab.task(h.id).result == "job ok"
