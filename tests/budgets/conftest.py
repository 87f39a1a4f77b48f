"""Fixtures for spend caps: a Lab on a fake clock (mid-month), memory off so every call of the
same prompt costs the same, and a probe that measures that cost."""

from __future__ import annotations

import pytest

from stagent_lab import Lab
from stagent_lab.engine.clock import FakeClock

START = "2026-03-15 12:00:00"
MODEL = "claude-sonnet-4-5"  # the scripted runtime prices its estimated tokens as this model
PROMPT = "Summarize this text.\n" + "lorem ipsum dolor " * 2200  # ~10k tokens a call


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def blab(tmp_path, profiles_dir, clock):
    lab = Lab(home=tmp_path / "ws-budget", profile_dirs=[profiles_dir], clock=clock)
    lab.set_setting("memory.enabled", False)
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def call_cost(blab) -> float:
    """The price of one call of PROMPT (a probe task's spend, which stays in the window)."""
    handle = blab.submit(PROMPT, profile="tester", model=MODEL, script=[{"say": "probe"}])
    handle.wait(60)
    cost = float(blab.usage()["cost_usd"].sum())
    assert cost > 0.01
    return cost
