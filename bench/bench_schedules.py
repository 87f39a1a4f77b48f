"""schedules: what a thousand active schedules cost the engine, idle and when re-arming.

* ``schedules.idle_loop_cpu`` — CPU time of the engine thread over a quiet window (nothing due,
  no task running) with ``schedules`` active schedules, as % of one core; baseline the same
  workspace with no schedule, measured just before in the same process; ratio = ours / without
  (1.0 means the schedules cost nothing while idle: one engine timer, no polling).
* ``schedules.idle_extra_cpu`` — the difference, in percentage points of one core (the goal
  is under 1).
* ``schedules.next_fire_us`` — computing the next firing (a UTC instant, daylight saving
  applied) for each of the schedules, mixed expressions and zones, µs per schedule; baseline
  croniter's own iterator on a zone-aware start (a new iterator per schedule, as each has its
  own start); ratio = croniter / ours (× faster). The goal is under 50 µs.

Figures are printed, never asserted: the machine is shared.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench._common import bench_lab, median, metric, pick_sizes, safe_ratio, scratch_dir

QUICK = {"schedules": 1000, "window_s": 5.0, "repeat": 5}
FULL = {"schedules": 1000, "window_s": 30.0, "repeat": 9}
SMOKE = {"schedules": 20, "window_s": 0.3, "repeat": 1}
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]


def expressions(n: int, now: datetime, seed: int = 7) -> list[str]:
    """Cron expressions whose next firing is hours away (nothing fires in the quiet window)."""
    rng = random.Random(seed)
    far = [(now.hour + h) % 24 for h in range(6, 18)]
    shapes = [
        lambda h, m: f"{m} {h} * * *",
        lambda h, m: f"{m} {h} * * 1-5",
        lambda h, m: f"{m} {h} 1,15 * *",
        lambda h, m: f"{m} {h} * * 0,6",
        lambda h, m: f"{m} {h},{(h + 1) % 24} * * *",
    ]
    return [rng.choice(shapes)(rng.choice(far), rng.randrange(60)) for _ in range(n)]


def engine_cpu() -> float:
    """CPU seconds used so far by the engine thread of this process."""
    thread = next(t for t in threading.enumerate() if t.name == "stagent-engine")
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def quiet_cpu_percent(window_s: float) -> float:
    time.sleep(0.5)  # let the last writes flush
    c0, t0 = engine_cpu(), time.perf_counter()
    time.sleep(window_s)
    return 100.0 * (engine_cpu() - c0) / (time.perf_counter() - t0)


def next_fire_timings(exprs: list[str], repeat: int) -> tuple[float, float]:
    """(ours, croniter) µs per schedule, medians over ``repeat`` passes."""
    from croniter import croniter

    from stagent_lab.schedules.cron import compile_cron, zone

    now = datetime.now(UTC).replace(tzinfo=None)
    compiled = [(compile_cron(e), zone(ZONES[i % len(ZONES)])) for i, e in enumerate(exprs)]
    starts = [now + timedelta(minutes=i) for i in range(len(exprs))]
    ours, theirs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for (cron, tz), start in zip(compiled, starts, strict=True):
            cron.next_after(start, tz)
        ours.append((time.perf_counter() - t0) / len(exprs) * 1e6)
        t0 = time.perf_counter()
        for i, start in enumerate(starts):
            aware = start.replace(tzinfo=UTC).astimezone(zone(ZONES[i % len(ZONES)]))
            croniter(exprs[i], aware).get_next(datetime)
        theirs.append((time.perf_counter() - t0) / len(exprs) * 1e6)
    return median(ours), median(theirs)


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    n, window = sizes["schedules"], sizes["window_s"]
    now = datetime.now(UTC).replace(tzinfo=None)
    exprs = expressions(n, now)
    with scratch_dir() as root, bench_lab(root) as lab:
        lab.submit("warm up", profile="bench", script=[{"result": "ok"}]).wait(30)
        base = quiet_cpu_percent(window)
        t0 = time.perf_counter()
        for i, expr in enumerate(exprs):
            lab.schedules.add(
                f"s{i}", "Check.", when=expr, tz=ZONES[i % len(ZONES)], script=[{"result": "ok"}]
            )
        added_s = time.perf_counter() - t0
        active = int((lab.schedules.list()["status"] == "active").sum())
        loaded = quiet_cpu_percent(window)
        fired = len(lab.schedules.firings(limit=None))
    ours, croniter_us = next_fire_timings(exprs, sizes["repeat"])
    note = (
        f"{active} active schedules, {fired} firings during the {window:g} s windows; adding "
        f"them took {added_s:.1f} s ({1000 * added_s / max(n, 1):.1f} ms each)"
    )
    return [
        metric(
            "schedules.idle_loop_cpu",
            loaded,
            "%",
            baseline="no schedule",
            ratio=safe_ratio(loaded, base),
            note=f"{note}; without schedules {base:.3f} % of one core",
        ),
        metric(
            "schedules.idle_extra_cpu",
            loaded - base,
            "pp",
            note="engine-thread CPU with the schedules minus without, percentage points of a core",
        ),
        metric(
            "schedules.next_fire_us",
            ours,
            "us",
            baseline="croniter get_next",
            ratio=safe_ratio(croniter_us, ours),
            note=f"croniter {croniter_us:.1f} us per schedule; {n} schedules, {len(ZONES)} zones",
        ),
    ]
