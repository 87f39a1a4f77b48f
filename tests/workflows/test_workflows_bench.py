"""bench/bench_workflows.py at smoke size: the record shape and what it counts (no timing)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is a top-level folder, not part of the package
    sys.path.insert(0, str(REPO))

from bench import bench_workflows  # noqa: E402
from bench._common import METRIC_KEYS, SMOKE_ENV, format_line  # noqa: E402


def test_bench_workflows_smoke(monkeypatch):
    monkeypatch.setenv(SMOKE_ENV, "1")
    out = bench_workflows.run(True)
    assert [m["name"] for m in out] == [
        "workflows.sequence_wall",
        "workflows.step_overhead",
        "workflows.parallel_wall",
    ]
    for m in out:
        assert tuple(m) == METRIC_KEYS and math.isfinite(m["value"])
        assert format_line(m).startswith(m["name"] + ": ")
    seq, _, par = out
    assert seq["baseline"] and seq["ratio"] > 0 and par["ratio"] > 0
    steps = bench_workflows.SMOKE["steps"]
    branches = bench_workflows.SMOKE["branches"]
    # warm-up run + one round of each workflow, every step a child task
    assert f"{steps * 2 + branches + 1} child tasks" in seq["note"]
