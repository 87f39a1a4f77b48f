"""Fixtures of the workflow tests: labs on a fake clock, waiting for effects, scripts."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from stagent_lab import Lab
from stagent_lab.engine.clock import FakeClock

START = datetime(2026, 3, 2, 9, 0, 0)


def _wait_until(predicate, timeout: float = 20.0, step: float = 0.02):
    """Poll ``predicate`` until it is truthy (bounded); never sleeps to reach a time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)


@pytest.fixture
def wait_until():
    return _wait_until


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "ws"


@pytest.fixture
def flab(home, profiles_dir, clock):
    """An in-process Lab whose engine clock is a FakeClock."""
    lab = Lab(home=home, profile_dirs=[profiles_dir], clock=clock)
    try:
        yield lab
    finally:
        lab.close()


def say(text: str) -> list[dict]:
    """A scripted child that answers ``text``."""
    return [{"result": text}]


@pytest.fixture
def result_script():
    return say
