"""launch: how long ``lab.submit()`` blocks the caller while the engine is busy.

A notebook cell that submits a task must return at once, even when dozens of tasks are already
running. We start ``busy`` scripted tasks that keep talking (a line every two seconds each, so
the engine thread really is logging, pricing and flushing for them), then time ``n`` submits:
spaced out like cells a person runs (``launch.submit_p50``/``_p95``) and back to back like a
loop in one cell (``launch.submit_burst_p50``, where each submit queues behind the previous
task's start).
The baseline is the floor any Python API pays: a plain function call that builds a dict like
the task row. The ratio is ours / floor, i.e. how many plain calls one submit costs.

The ``%%stagent`` cell metrics (``launch.cell*``) live in ``bench_notebook.py``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench._common import (
    bench_lab,
    cancel_all,
    median,
    metric,
    percentile,
    pick_sizes,
    safe_ratio,
    scratch_dir,
    time_per_call,
)

QUICK = {"busy": 50, "submits": 20, "gap_s": 0.05}
FULL = {"busy": 50, "submits": 200, "gap_s": 0.05}
SMOKE = {"busy": 3, "submits": 4, "gap_s": 0.01}

TICK_S = 2.0
# Background load: a line every TICK_S (cancelled long before the script ends).
CHATTY = [step for i in range(300) for step in ({"say": f"tick {i}"}, {"sleep": TICK_S})]
SLEEPER = [{"sleep": 60}, {"result": "woke up"}]


def _plain_call(prompt: str, profile: str) -> dict[str, Any]:
    """What a framework-free 'submit' would do: build the task record and return it."""
    first = prompt.strip().splitlines()[0]
    return {
        "id": uuid.uuid4().hex[:12],
        "title": first[:80],
        "prompt": prompt,
        "profile_id": profile,
        "runtime_id": "scripted",
        "status": "queued",
        "max_turns": 20,
    }


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    busy, n, gap = sizes["busy"], sizes["submits"], sizes["gap_s"]
    with scratch_dir() as root, bench_lab(root, max_concurrent=busy + 2 * n + 10) as lab:
        lab.submit("warm up", profile="bench", script=[{"result": "ok"}]).wait(30)
        background = [
            lab.submit(f"background {i}", profile="bench", script=CHATTY, max_turns=400)
            for i in range(busy)
        ]
        deadline = time.monotonic() + 30
        while sum(h.status == "running" for h in background) < busy:
            if time.monotonic() > deadline:
                started = sum(h.status == "running" for h in background)
                raise TimeoutError(f"only {started} of {busy} background tasks started")
            time.sleep(0.01)
        measured = []

        def timed_submit(label: str) -> float:
            t0 = time.perf_counter()
            measured.append(lab.submit(label, profile="bench", script=SLEEPER))
            return time.perf_counter() - t0

        spaced = []
        for i in range(n):
            spaced.append(timed_submit(f"spaced submit {i}"))
            time.sleep(gap)
        burst = [timed_submit(f"burst submit {i}") for i in range(n)]
        running = sum(h.status == "running" for h in background)
        cancel_all([*background, *measured])
        cancelled = sum(h.status == "cancelled" for h in [*background, *measured])

    plain = time_per_call(lambda: _plain_call("measured submit 1", "bench"), inner=200, repeat=25)
    p50, p95, b50 = median(spaced), percentile(spaced, 95), median(burst)
    base50, base95 = median(plain), percentile(plain, 95)
    ctx = (
        f"{busy} tasks running, each saying a line every {TICK_S} s ({running} still running "
        f"after the timed submits); {n} submits {gap * 1e3:.0f} ms apart; "
        f"{cancelled} tasks cancelled afterwards"
    )
    return [
        metric(
            "launch.submit_p50",
            p50 * 1e3,
            "ms",
            baseline="plain function call",
            ratio=safe_ratio(p50, base50),
            note=f"{ctx}; plain call p50 {base50 * 1e6:.2f} µs; ratio = ours / plain call",
        ),
        metric(
            "launch.submit_p95",
            p95 * 1e3,
            "ms",
            baseline="plain function call",
            ratio=safe_ratio(p95, base95),
            note=f"plain call p95 {base95 * 1e6:.2f} µs; ratio = ours / plain call",
        ),
        metric(
            "launch.submit_burst_p50",
            b50 * 1e3,
            "ms",
            baseline="plain function call",
            ratio=safe_ratio(b50, base50),
            note=f"{n} submits back to back (each waits for the engine thread to finish "
            "starting the previous task); ratio = ours / plain call",
        ),
    ]
