"""bench/bench_schedules.py at smoke sizes: the record shape and the facts it counts (no
timing is asserted: the machines are shared)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO))

from bench import bench_schedules  # noqa: E402
from bench._common import METRIC_KEYS, SMOKE_ENV  # noqa: E402


def test_smoke_run_reports_three_metrics_and_nothing_fired(monkeypatch):
    monkeypatch.setenv(SMOKE_ENV, "1")
    out = bench_schedules.run(quick=True)
    names = [m["name"] for m in out]
    assert names == [
        "schedules.idle_loop_cpu",
        "schedules.idle_extra_cpu",
        "schedules.next_fire_us",
    ]
    for m in out:
        assert tuple(m) == METRIC_KEYS and math.isfinite(m["value"])
    assert out[0]["note"].startswith("20 active schedules, 0 firings")
    assert out[2]["baseline"] == "croniter get_next" and out[2]["ratio"] > 0
