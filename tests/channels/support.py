"""Helpers of the channel tests: a runtime that plays a script chosen by the task's prompt
(channel tasks get no ``script=``), bounded waits, and channel set-up against the fakes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

from stagent_lab import Lab
from stagent_lab.api import requests as rq
from stagent_lab.engine.clock import FakeClock
from stagent_lab.runtimes.scripted import ScriptedRuntime
from tests.fakes.slack_server import SlackFake
from tests.fakes.telegram_server import TelegramFake
from tests.fakes.webhook_receiver import WebhookReceiver

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
HOOK_SECRET = "whsec_0123456789abcdef0123456789abcdef"
TG_WEBHOOK_SECRET = "tg-secret_token-0123456789"
SLACK_CHANNEL = "C0123456789"
APPROVER, SENDER, STRANGER = "UAPPROVER1", "USENDER01", "USTRANGER"


class ChannelScripted(ScriptedRuntime):
    """Plays ``plays[prompt]`` (default: a result echoing the prompt)."""

    id = "channel-scripted"
    label = "Scripted by prompt (tests)"
    plays: ClassVar[dict[str, Any]] = {}

    async def run(self, ctx: Any) -> AsyncIterator[Any]:
        script = self.plays.get(ctx.prompt.strip(), [{"result": f"done: {ctx.prompt.strip()}"}])
        ctx.options = {**ctx.options, "script": script}
        async for event in super().run(ctx):
            yield event


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll for an effect (never to reach a time): True as soon as ``predicate()`` is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = predicate()
        if out:
            return out
        time.sleep(0.02)
    return predicate()


def advance_until(
    clock: FakeClock, predicate: Callable[[], Any], step: float = 1.0, timeout: float = 15.0
) -> Any:
    """Advance the fake clock ``step`` seconds at a time until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = predicate()
        if out:
            return out
        clock.advance(step)
        time.sleep(0.03)
    return predicate()


def submit(lab: Lab, prompt: str, channels: list[str] | None = None, **kw: Any) -> Any:
    """A task bound to ``channels`` (what schedules and workflows do through the contract)."""
    from stagent_lab.client.handle import TaskHandle

    view = lab.call(rq.build(rq.SubmitTask, prompt=prompt, channels=channels or [], **kw))
    return TaskHandle(lab, view.id, view)


def deliveries(lab: Lab, **kw: Any) -> list[dict[str, Any]]:
    df = lab.channels.deliveries(**kw)
    return df.to_dict("records")


def channel_events(lab: Lab, event: str | None = None) -> list[dict[str, Any]]:
    import json

    df = lab.sql(
        "SELECT event, payload FROM agent_logs WHERE subject = 'channel' ORDER BY id"
    ).to_dict("records")
    out = [{"event": r["event"], **json.loads(r["payload"])} for r in df]
    return [e for e in out if event is None or e["event"] == event]


def open_lab(home: Any, profiles_dir: Any, clock: FakeClock | None) -> Lab:
    lab = Lab(home, profile_dirs=[profiles_dir], clock=clock, in_process=True)
    lab.register_runtime(ChannelScripted)
    lab.set_setting("channels.min_interval_s", 0)
    return lab


def add_slack(lab: Lab, fake: SlackFake, name: str = "ops", **kw: Any) -> str:
    settings = {"channel": SLACK_CHANNEL, "api_base": fake.api_base, **kw.pop("settings", {})}
    kw.setdefault("secrets", {"bot_token": "SLACK_BOT_TOKEN"})
    return lab.channels.add(name, "slack", settings=settings, **kw)


def add_telegram(lab: Lab, fake: TelegramFake, name: str = "tg", **kw: Any) -> str:
    settings = {"chat_id": fake.chat_id, "api_base": fake.api_base, "poll_timeout_s": 1,
                **kw.pop("settings", {})}  # fmt: skip
    kw.setdefault("secrets", {"bot_token": "TG_BOT"})
    return lab.channels.add(name, "telegram", settings=settings, **kw)


def add_hook(lab: Lab, fake: WebhookReceiver, name: str = "hook", **kw: Any) -> str:
    settings = {"url": fake.url, **kw.pop("settings", {})}
    kw.setdefault("secrets", {"secret": "HOOK_SECRET"})
    return lab.channels.add(name, "webhook", settings=settings, **kw)
