"""concurrency: many tasks at once on one engine thread, and nothing lost on the way.

``tasks`` scripted tasks of ``turns`` turns each (a line, then ``delay`` seconds of think time)
run with ``max_concurrent`` equal to the task count. If the engine overlapped them perfectly the
wall time would be one task's delays; run one after another it would be the sum of all delays.

* ``concurrency.wall_time`` — first submit to every task done and flushed; baseline the sum of
  the scripted delays, ratio = sum / wall (the parallel speedup; the ideal is ``tasks``).
* ``concurrency.peak_rss`` — the process's peak resident memory (getrusage). The harness runs
  each module in its own process, so this is this benchmark's own peak; the RSS before the Lab
  opened is in the note.
* ``concurrency.events_lost`` — events the engine published to subscribers minus rows in
  ``agent_logs`` for these tasks, plus any gap in a task's ``seq`` numbers. Must be 0.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bench._common import (
    bench_lab,
    metric,
    peak_rss_mb,
    pick_sizes,
    rss_mb,
    safe_ratio,
    scratch_dir,
    task_ids_sql,
    wait_all,
)
from stagent_lab.api.requests import Ping

QUICK = {"tasks": 50, "turns": 8, "delay": 0.05}
FULL = {"tasks": 100, "turns": 20, "delay": 0.05}
SMOKE = {"tasks": 6, "turns": 3, "delay": 0.01}


def script(turns: int, delay: float) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for i in range(turns):
        steps += [{"say": f"turn {i}: looked at the next file"}, {"sleep": delay}]
    return steps


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    n, turns, delay = sizes["tasks"], sizes["turns"], sizes["delay"]
    steps = script(turns, delay)
    published: dict[str, int] = {}
    lock = threading.Lock()

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("seq") is None:  # live assistant_delta events are not persisted rows
            return
        with lock:
            published[ev["task_id"]] = published.get(ev["task_id"], 0) + 1

    rss_before = rss_mb()
    with scratch_dir() as root, bench_lab(root, max_concurrent=n) as lab:
        lab.submit("warm up", profile="bench", script=[{"result": "ok"}]).wait(30)
        unsubscribe = lab.subscribe(on_event)
        try:
            t0 = time.perf_counter()
            handles = [
                lab.submit(f"concurrent {i}", profile="bench", script=steps, max_turns=turns + 5)
                for i in range(n)
            ]
            wait_all(handles, timeout=600)
            lab.call(Ping())  # flushes the writer
            wall = time.perf_counter() - t0
        finally:
            unsubscribe()
        ids = [h.id for h in handles]
        marks = task_ids_sql(len(ids))
        per_task = lab.sql(
            f"SELECT task_id, count(*), count(DISTINCT seq), min(seq), max(seq) FROM agent_logs "
            f"WHERE task_id IN ({marks}) GROUP BY task_id",
            ids,
        ).values.tolist()
        completed = sum(h.status == "completed" for h in handles)
    peak = peak_rss_mb()

    persisted = sum(r[1] for r in per_task)
    gaps = sum((r[4] - r[3] + 1) - r[2] for r in per_task)
    expected = sum(published.get(i, 0) for i in ids)
    lost = max(0, expected - persisted) + gaps
    sum_delays = n * turns * delay
    return [
        metric(
            "concurrency.wall_time",
            wall,
            "s",
            baseline="sum of scripted delays",
            ratio=safe_ratio(sum_delays, wall),
            note=(
                f"{n} tasks x {turns} turns, {delay * 1e3:.0f} ms think time per turn, "
                f"max_concurrent={n}; {completed}/{n} completed; sum of delays "
                f"{sum_delays:.1f} s, one task alone {turns * delay:.2f} s; "
                f"ratio = sum / wall (parallel speedup, ideal {n})"
            ),
        ),
        metric(
            "concurrency.peak_rss",
            peak,
            "MiB",
            note=f"peak RSS of this process (getrusage); {rss_before:.0f} MiB before the Lab",
        ),
        metric(
            "concurrency.events_lost",
            lost,
            "events",
            note=(
                f"{expected} events published to subscribers, {persisted} rows persisted, "
                f"{gaps} seq gaps, across {len(per_task)} tasks; must be 0"
            ),
        ),
    ]
