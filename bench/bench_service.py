"""service: what the workspace service costs a client, against the engine in the same process.

* ``service.submit_p50`` / ``_p95`` — ``lab.submit()`` through the service (JSON on the call
  WebSocket over the Unix socket) vs the same submit in-process, while the tasks submitted
  before run in the service; goal p50 < 2 ms.
* ``service.event_latency_p95`` — from the moment the engine records an event to the moment a
  subscribed client's callback runs, through the WebSocket, vs an in-process subscriber; goal
  p95 < 25 ms.
* ``service.sql_1m_rows`` — ``lab.sql`` of 1M rows (4 columns) arriving as a DataFrame through an
  Arrow IPC stream (sent batch by batch while DuckDB computes it) vs in-process; ratio =
  in-process time / service time (goal ≥ 0.5).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench._common import (
    bench_lab,
    cancel_all,
    metric,
    percentile,
    pick_sizes,
    safe_ratio,
    scratch_dir,
)

QUICK = {"submits": 100, "events": 300, "rows": 1_000_000}
FULL = {"submits": 1000, "events": 2000, "rows": 1_000_000}
SMOKE = {"submits": 5, "events": 10, "rows": 1000}
QUERY = "SELECT i, i * 2 AS j, 'row ' || i AS label, i / 3.0 AS ratio FROM range({n}) t(i)"


def _submit_times(lab: Any, n: int) -> list[float]:
    times, handles = [], []
    for i in range(n):
        t0 = time.perf_counter()
        handles.append(lab.submit(f"s{i}", profile="bench", script=[{"result": "ok"}]))
        times.append(time.perf_counter() - t0)
        time.sleep(0.005)  # like cells, not a tight loop
    cancel_all(handles, timeout=120)
    return times


def _event_latencies(lab: Any, n: int) -> list[float]:
    """Seconds from an event's timestamp (engine clock, UTC) to its delivery here."""
    got: list[float] = []
    done = threading.Event()

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("event") != "assistant_text":
            return
        ts = ev["ts"]
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts)
        now = datetime.now(UTC).replace(tzinfo=None)
        got.append((now - ts).total_seconds())
        if len(got) >= n:
            done.set()

    unsubscribe = lab.subscribe(on_event)
    try:
        steps = [s for i in range(n) for s in ({"say": f"line {i}"}, {"sleep": 0.01})]
        h = lab.submit("talk", profile="bench", script=[*steps, {"result": "done"}])
        done.wait(120)
        h.wait(120)
    finally:
        unsubscribe()
    return got


def _sql_seconds(lab: Any, rows: int) -> float:
    lab.sql(QUERY.format(n=1000))  # warm up (imports, connections)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        df = lab.sql(QUERY.format(n=rows))
        best = min(best, time.perf_counter() - t0)
        assert len(df) == rows
    return best


def _measure(in_process: bool, sizes: dict[str, int]) -> dict[str, Any]:
    with scratch_dir() as root, bench_lab(root, in_process=in_process) as lab:
        try:
            return {
                "submit": _submit_times(lab, sizes["submits"]),
                "events": _event_latencies(lab, sizes["events"]),
                "sql": _sql_seconds(lab, sizes["rows"]),
            }
        finally:
            if not in_process:
                _stop_service(lab)


def _stop_service(lab: Any) -> None:
    from stagent_lab.service import connection as conn

    info = conn.read_connection(lab.home)
    if info is not None and conn.pid_alive(info.pid):
        os.kill(info.pid, signal.SIGTERM)


def run(quick: bool = True) -> list[dict[str, Any]]:
    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    local = _measure(True, sizes)
    remote = _measure(False, sizes)
    out = []
    for q in (50, 95):
        ours, base = percentile(remote["submit"], q), percentile(local["submit"], q)
        out.append(
            metric(
                f"service.submit_p{q}",
                ours * 1e3,
                "ms",
                baseline="in-process submit",
                ratio=safe_ratio(ours, base),
                note=f"{sizes['submits']} submits; in-process p{q} {base * 1e3:.3f} ms; "
                "goal p50 < 2 ms; ratio = service / in-process",
            )
        )
    ours, base = percentile(remote["events"], 95), percentile(local["events"], 95)
    out.append(
        metric(
            "service.event_latency_p95",
            ours * 1e3,
            "ms",
            baseline="in-process subscriber",
            ratio=safe_ratio(ours, base),
            note=f"{len(remote['events'])} events through the WebSocket; in-process p95 "
            f"{base * 1e3:.3f} ms; goal < 25 ms; ratio = service / in-process",
        )
    )
    out.append(
        metric(
            "service.sql_1m_rows",
            remote["sql"],
            "s",
            baseline="in-process lab.sql",
            ratio=safe_ratio(local["sql"], remote["sql"]),
            note=f"{sizes['rows']:,} rows x 4 columns as a DataFrame; in-process "
            f"{local['sql']:.3f} s; ratio = in-process / service (goal >= 0.5)",
        )
    )
    return out
