"""Fixtures for schedules: a Lab on a fake clock (a Monday, 10:00 UTC)."""

from __future__ import annotations

import pytest

from stagent_lab import Lab
from stagent_lab.engine.clock import FakeClock
from tests.schedules.helpers import START


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def slab(tmp_path, profiles_dir, clock):
    lab = Lab(home=tmp_path / "ws-sched", profile_dirs=[profiles_dir], clock=clock)
    try:
        yield lab
    finally:
        lab.close()
