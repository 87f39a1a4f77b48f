"""Fixtures of the channel tests: loopback Slack / Telegram / webhook fakes, the env variables
their configs name, and a workspace on a FakeClock (helpers live in support.py)."""

from __future__ import annotations

import pytest

from stagent_lab.engine.clock import FakeClock
from tests.channels.support import (
    HOOK_SECRET,
    SIGNING_SECRET,
    TG_WEBHOOK_SECRET,
    ChannelScripted,
    open_lab,
)
from tests.fakes.slack_server import TOKEN as SLACK_TOKEN
from tests.fakes.slack_server import SlackFake
from tests.fakes.telegram_server import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_server import TelegramFake
from tests.fakes.webhook_receiver import WebhookReceiver


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("TG_BOT", TELEGRAM_TOKEN)
    monkeypatch.setenv("TG_HOOK", TG_WEBHOOK_SECRET)
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)
    return monkeypatch


@pytest.fixture
def slack():
    fake = SlackFake().start()
    try:
        yield fake
    finally:
        fake.close()
    assert fake.errors == []


@pytest.fixture
def telegram():
    fake = TelegramFake().start()
    try:
        yield fake
    finally:
        fake.close()
    assert fake.errors == []


@pytest.fixture
def hook():
    fake = WebhookReceiver(HOOK_SECRET).start()
    try:
        yield fake
    finally:
        fake.close()
    assert fake.errors == []


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def clab(tmp_path, profiles_dir, clock, env):
    ChannelScripted.plays = {}
    lab = open_lab(tmp_path / "ws", profiles_dir, clock)
    try:
        yield lab
    finally:
        lab.close()
