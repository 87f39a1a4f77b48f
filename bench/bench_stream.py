"""stream: can one engine loop carry a team's streaming tasks? (200 at once, 50 deltas/s each)

Ours: ``tasks`` tasks of a streaming runtime run concurrently (a registered runtime that
yields text deltas on a fixed schedule — ``rate`` per second per task, the pace of a model
streaming tokens — with a usage report and a stored text block every ``turn_s`` seconds, for
``seconds`` seconds), while one subscriber listens to everything (as a notebook monitor does).

* ``ingest.stream_events_per_s`` — runtime events the engine took per second (deltas, usage
  reports, results). Baseline: the offered rate (tasks × rate); the ratio is the fraction the
  loop kept up with (1 means nothing fell behind).
* ``ingest.stream_loop_utilisation`` — the fraction of the wall time the engine loop was busy
  (not waiting in ``select``): the headroom left for approvals, timers and requests.
* ``ingest.stream_store_latency_p95`` — p95 time from an event being recorded to the commit
  that stored it (the rows of the run: text blocks, usage, status). Baseline: the writer's
  timed commit interval (``engine.COMMIT_EVERY_S``, 250 ms), which bounds it on an idle loop.
* ``ingest.stream_delta_lag_p95`` — p95 of how late a delta was yielded against its schedule:
  grows when the loop saturates (tasks wait for their turn on the loop).
* ``ingest.stream_rows_vs_limit`` — the rows the run stored, bulk-appended by DuckDB into a
  fresh workspace schema in one transaction (the physical limit): the note gives that rate;
  the metric is the limit's rows/s and the ratio the run's peak need as a fraction of it.

The loop's idle time is measured by wrapping its selector (a benchmark-only probe); commit
times come from the writer's ``on_commit`` callbacks.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from bench._common import (
    bench_lab,
    metric,
    percentile,
    pick_sizes,
    safe_ratio,
    scratch_dir,
    task_ids_sql,
    wait_all,
)
from stagent_lab.api.requests import Ping, Sql

QUICK = {"tasks": 200, "rate": 50, "seconds": 6.0, "turn_s": 1.0}
FULL = {"tasks": 200, "rate": 50, "seconds": 30.0, "turn_s": 1.0}
SMOKE = {"tasks": 4, "rate": 40, "seconds": 0.5, "turn_s": 0.25}
FRAGMENT = "token "  # about one token per delta
FLUSH_INTERVAL_MS = 250.0  # engine.COMMIT_EVERY_S: the timed commit interval


def streaming_runtime(
    rate: float, seconds: float, turn_s: float, lags: list[float], runtime_id: str = "bench-stream"
) -> type:
    """A runtime that streams ``rate`` deltas a second for ``seconds``, one turn per
    ``turn_s``; each delta's lateness against its schedule goes into ``lags``."""
    from stagent_lab.runtimes import AssistantText, Capabilities, Result, Runtime, UsageReport

    class StreamingRuntime(Runtime):
        id: ClassVar[str] = runtime_id
        provider: ClassVar[str] = "bench"
        capabilities: ClassVar[Capabilities] = Capabilities(resume=False)

        async def run(self, ctx: Any) -> Any:
            loop = asyncio.get_running_loop()
            start = loop.time()
            per_turn = max(1, round(rate * turn_s))
            turns = max(1, round(seconds / turn_s))
            k = 0
            for _ in range(turns):
                ctx.begin_turn()
                for _ in range(per_turn):
                    due = start + k / rate
                    now = loop.time()
                    if due > now:
                        await asyncio.sleep(due - now)
                    else:
                        lags.append(now - due)
                    k += 1
                    yield AssistantText(FRAGMENT, delta=True)
                yield UsageReport(
                    provider="bench", model="bench-1", input_tokens=100, output_tokens=per_turn
                )
            yield Result(f"streamed {k} deltas")

    return StreamingRuntime


def watch_commits(writer: Any, on_commit: Any) -> None:
    """Call ``on_commit(highest committed log id)`` after each commit. A writer without
    ``on_commit`` callbacks (the one before this benchmark) is watched through ``flush``: what
    was queued when it began is committed when it returns."""
    hooks = getattr(writer, "on_commit", None)
    if hooks is not None:
        hooks.append(on_commit)
        return
    flush = writer.flush

    def watched(*args: Any, **kw: Any) -> Any:
        top = writer.last_log_id  # a property there
        try:
            return flush(*args, **kw)
        finally:
            on_commit(top)

    writer.flush = watched


class LoopProbe:
    """Time the engine loop spends waiting in ``select`` (its idle time)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._selector = loop._selector  # type: ignore[attr-defined]
        self._select = self._selector.select
        self.idle = 0.0
        probe = self

        def select(timeout: float | None = None) -> Any:
            t0 = time.perf_counter()
            try:
                return probe._select(timeout)
            finally:
                probe.idle += time.perf_counter() - t0

        self._selector.select = select

    def close(self) -> None:
        self._selector.select = self._select


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    n, rate, seconds, turn_s = sizes["tasks"], sizes["rate"], sizes["seconds"], sizes["turn_s"]
    lags: list[float] = []
    published: dict[int, float] = {}
    counts = {"delta": 0, "stored": 0}
    commits: list[tuple[int, float]] = []

    def on_commit(top: int) -> None:  # engine thread, after each commit
        commits.append((top, time.perf_counter()))

    def on_event(ev: dict[str, Any]) -> None:  # engine thread
        if ev["id"] is None:
            counts["delta"] += 1
        else:
            counts["stored"] += 1
            published[ev["id"]] = time.perf_counter()

    with scratch_dir() as root:
        with bench_lab(root, max_concurrent=n) as lab:
            lab.register_runtime(streaming_runtime(rate, seconds, turn_s, lags))
            # Warm up: the first priced usage report loads the price tables (about a second,
            # once per process), which is not what this measures.
            lab.register_runtime(streaming_runtime(rate, turn_s, turn_s, [], "bench-warm"))
            lab.submit("warm up", profile="bench", runtime="bench-warm").wait(60)
            engine = lab.workspace.service.engine  # in-process: the probes need the loop
            engine.call(lambda: watch_commits(engine.writer, on_commit))
            unsubscribe = lab.subscribe(on_event)
            probe = engine.call(lambda: LoopProbe(engine.loop))
            t0 = time.perf_counter()
            idle0 = probe.idle
            handles = [
                lab.submit(f"stream {i}", profile="bench", runtime="bench-stream", max_turns=10_000)
                for i in range(n)
            ]
            wait_all(handles, timeout=600 + 20 * seconds)
            wall = time.perf_counter() - t0
            idle = probe.idle - idle0
            lab.call(Ping())  # flushes: every row of the run is committed
            engine.call(probe.close)
            unsubscribe()
            completed = sum(h.status == "completed" for h in handles)
            ids = [h.id for h in handles]
            rows = lab.workspace.call(
                Sql(
                    query=f"SELECT * FROM agent_logs WHERE task_id IN ({task_ids_sql(len(ids))}) "
                    "ORDER BY id",
                    params=ids,
                )
            )
        limit = _bulk_rows_per_s(root / "bulk.duckdb", rows)
    per_task = max(1, round(rate * turn_s)) * max(1, round(seconds / turn_s))
    turns = max(1, round(seconds / turn_s))
    runtime_events = n * (per_task + turns + 1)  # deltas, usage reports, the result
    achieved = runtime_events / wall
    offered = n * rate
    latencies = _store_latencies(rows.column("id").to_pylist(), published, commits)
    lag_p95 = percentile(lags, 95) * 1e3 if lags else 0.0
    late = sum(1 for x in lags if x > 0.05)
    p95 = percentile(latencies, 95) * 1e3 if latencies else float("nan")
    util = max(0.0, min(1.0, 1 - idle / wall))
    note = (
        f"{n} tasks x {rate} deltas/s for {seconds:g} s ({completed}/{n} completed) in "
        f"{wall:.2f} s; {counts['delta']} delta batches and {counts['stored']} stored events "
        f"reached the subscriber; {rows.num_rows} rows stored"
    )
    stored_rate = rows.num_rows / wall
    return [
        metric(
            "ingest.stream_events_per_s",
            achieved,
            "events/s",
            baseline=f"offered load ({offered:.0f} events/s)",
            ratio=safe_ratio(achieved, offered),
            note=f"{note}; ratio = achieved / offered",
        ),
        metric(
            "ingest.stream_loop_utilisation",
            util * 100,
            "%",
            note=f"engine loop busy {wall - idle:.2f} s of {wall:.2f} s (time outside select)",
        ),
        metric(
            "ingest.stream_store_latency_p95",
            p95,
            "ms",
            baseline=f"writer commit interval ({FLUSH_INTERVAL_MS:g} ms)",
            ratio=safe_ratio(p95, FLUSH_INTERVAL_MS),
            note=f"event recorded -> its commit, {len(latencies)} stored events; p50 "
            f"{percentile(latencies, 50) * 1e3 if latencies else float('nan'):.1f} ms, max "
            f"{max(latencies) * 1e3 if latencies else float('nan'):.1f} ms; ratio = p95 / interval",
        ),
        metric(
            "ingest.stream_delta_lag_p95",
            lag_p95,
            "ms",
            note=f"how late deltas were yielded against their schedule; {late} of "
            f"{len(lags)} late deltas were over 50 ms late",
        ),
        metric(
            "ingest.stream_rows_vs_limit",
            limit,
            "rows/s",
            baseline="the run's rows per second",
            ratio=safe_ratio(stored_rate, limit),
            note=f"duckdb bulk append of the run's {rows.num_rows} rows into a fresh workspace "
            f"schema: {limit:.0f} rows/s (the limit); the run stored {stored_rate:.0f} rows/s; "
            "ratio = run / limit (the share of the disk's rate a team's streaming needs)",
        ),
    ]


def _store_latencies(
    ids: list[int], published: dict[int, float], commits: list[tuple[int, float]]
) -> list[float]:
    """For each stored id: the first commit covering it minus when it was recorded."""
    out = []
    j = 0
    commits = sorted(commits)
    for rid in sorted(ids):
        t = published.get(rid)
        if t is None:
            continue
        while j < len(commits) and commits[j][0] < rid:
            j += 1
        if j < len(commits):
            out.append(max(0.0, commits[j][1] - t))
    return out


def _bulk_rows_per_s(path: Path, rows: pa.Table) -> float:
    from bench.bench_ingest import _duckdb_bulk

    return _duckdb_bulk(path, rows)
