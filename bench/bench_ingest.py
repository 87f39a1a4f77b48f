"""ingest: log events persisted per second under many concurrent chatty tasks.

Ours: ``tasks`` scripted tasks, each saying ``says`` lines (every line is two log events,
``assistant_text`` and ``usage``, plus a ledger row), all submitted at once. The rate is rows in
``agent_logs`` divided by the wall time from the first submit until every task is done and the
writer has flushed — the whole engine path (runtime, cascade-free turns, pricing, transcripts,
the batched writer), not just the database.

The same rows, read back from the workspace, are then written by:

* the seeds' pattern: SQLite in WAL mode, one INSERT and one commit per event, on a file. Run
  twice: with SQLite's default ``synchronous=FULL`` (what an app gets by only turning WAL on)
  and with the common tuning ``synchronous=NORMAL``;
* DuckDB's bulk append of the whole batch as one Arrow table into a fresh workspace schema:
  the limit for this schema on this disk;
* our ``EventWriter`` alone, replaying the rows in batches of the size the engine really used,
  which separates the writer's cost from the rest of the engine path (against SQLite with
  ``synchronous=NORMAL`` and against the bulk append).

Ratios are throughput ratios, ours / baseline: above 1 means ours persists more events per
second.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from bench._common import (
    bench_lab,
    metric,
    pick_sizes,
    safe_ratio,
    scratch_dir,
    task_ids_sql,
    wait_all,
)
from stagent_lab.api.requests import Ping, Sql

QUICK = {"tasks": 50, "says": 15, "sqlite_full_rows": 400, "sqlite_normal_rows": 20_000}
FULL = {"tasks": 50, "says": 200, "sqlite_full_rows": 2_000, "sqlite_normal_rows": 200_000}
SMOKE = {"tasks": 4, "says": 5, "sqlite_full_rows": 20, "sqlite_normal_rows": 100}

YIELD_EVERY = 5  # a zero sleep every few lines lets the tasks interleave on the engine loop

SQLITE_DDL = (
    "CREATE TABLE agent_logs (id INTEGER PRIMARY KEY, task_id TEXT NOT NULL, "
    "seq INTEGER NOT NULL, ts TEXT NOT NULL, runtime_id TEXT, event TEXT NOT NULL, "
    "tool_name TEXT, payload TEXT)",
    "CREATE INDEX agent_logs_task ON agent_logs (task_id, seq)",
)


def chatty_script(n_says: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for i in range(n_says):
        steps.append({"say": f"progress note {i}: read the module, found the call site, moving on"})
        if (i + 1) % YIELD_EVERY == 0:
            steps.append({"sleep": 0})
    steps.append({"result": "done"})
    return steps


def _engine_run(root: Path, n_tasks: int, n_says: int) -> dict[str, Any]:
    script = chatty_script(n_says)
    with bench_lab(root, max_concurrent=n_tasks) as lab:
        lab.submit("warm up", profile="bench", script=[{"result": "ok"}]).wait(30)
        writer = lab.call(Ping())["writer"]  # flushes first
        rows0, batches0 = writer["rows_written"], writer["batches_written"]
        t0 = time.perf_counter()
        handles = [
            lab.submit(f"chatty {i}", profile="bench", script=script, max_turns=n_says + 5)
            for i in range(n_tasks)
        ]
        wait_all(handles, timeout=600)
        writer = lab.call(Ping())["writer"]
        wall = time.perf_counter() - t0
        ids = [h.id for h in handles]
        marks = task_ids_sql(len(ids))
        rows = lab.workspace.call(
            Sql(
                query=f"SELECT * FROM agent_logs WHERE task_id IN ({marks}) ORDER BY id", params=ids
            )
        )
        texts = lab.sql(
            f"SELECT count(*) FROM agent_logs WHERE event = 'assistant_text' "
            f"AND task_id IN ({marks})",
            ids,
        ).iloc[0, 0]
        completed = sum(h.status == "completed" for h in handles)
        written = writer["rows_written"] - rows0  # log + ledger rows
        batches = max(1, writer["batches_written"] - batches0)
    return {
        "wall": wall,
        "rows": rows,
        "texts": texts,
        "completed": completed,
        "avg_batch": written / batches,
    }


def _sqlite_row_by_row(path: Path, rows: pa.Table, limit: int, synchronous: str) -> float:
    """Events/s for the seeds' pattern: one INSERT + commit per event, WAL mode, on a file."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={synchronous}")
        for ddl in SQLITE_DDL:
            con.execute(ddl)
        con.commit()
        sample = rows.slice(0, limit).to_pylist()
        params = [
            (
                r["id"],
                r["task_id"],
                r["seq"],
                r["ts"].isoformat(sep=" "),
                r["runtime_id"],
                r["event"],
                r["tool_name"],
                r["payload"],
            )
            for r in sample
        ]
        t0 = time.perf_counter()
        for p in params:
            con.execute("INSERT INTO agent_logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", p)
            con.commit()
        elapsed = time.perf_counter() - t0
        (count,) = con.execute("SELECT count(*) FROM agent_logs").fetchone()
        if count != len(params):
            raise RuntimeError(f"sqlite baseline stored {count} of {len(params)} rows")
    finally:
        con.close()
    return len(params) / elapsed


def _fresh_schema(path: Path) -> duckdb.DuckDBPyConnection:
    from stagent_lab.store.migrations import apply_migrations

    con = duckdb.connect(str(path))
    apply_migrations(con)
    return con


def _duckdb_bulk(path: Path, rows: pa.Table) -> float:
    """Events/s for one Arrow append of every row into the workspace schema (the limit)."""
    con = _fresh_schema(path)
    try:
        t0 = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        con.register("_bulk", rows)
        con.execute("INSERT INTO agent_logs SELECT * FROM _bulk")
        con.execute("COMMIT")
        elapsed = time.perf_counter() - t0
        (count,) = con.execute("SELECT count(*) FROM agent_logs").fetchone()
        if count != rows.num_rows:
            raise RuntimeError(f"bulk append stored {count} of {rows.num_rows} rows")
    finally:
        con.close()
    return rows.num_rows / elapsed


def _writer_replay(path: Path, rows: pa.Table, batch: int) -> float:
    """Events/s for our EventWriter alone, flushing batches of the size the engine used. Rows
    are queued the way the event log queues them (tuples where the writer takes them)."""
    from stagent_lab.store.writer import EventWriter

    con = _fresh_schema(path)
    try:
        writer = EventWriter(con, max_rows=10**9)
        append = getattr(writer, "append_log", None)
        if append is not None:
            pyrows: list = list(zip(*(c.to_pylist() for c in rows.columns), strict=True))
        else:  # the writer before tuples: one dict per event
            pyrows, append = rows.to_pylist(), writer.add_log
        t0 = time.perf_counter()
        for start in range(0, len(pyrows), batch):
            for r in pyrows[start : start + batch]:
                append(r)
            writer.flush()
        elapsed = time.perf_counter() - t0
        (count,) = con.execute("SELECT count(*) FROM agent_logs").fetchone()
        if count != len(pyrows):
            raise RuntimeError(f"writer replay stored {count} of {len(pyrows)} rows")
    finally:
        con.close()
    return len(pyrows) / elapsed


def run(quick: bool) -> list[dict[str, Any]]:
    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    n_tasks, n_says = sizes["tasks"], sizes["says"]
    with scratch_dir() as root:
        eng = _engine_run(root, n_tasks, n_says)
        rows: pa.Table = eng["rows"]
        n_rows = rows.num_rows
        ours = n_rows / eng["wall"]
        full_n = min(n_rows, sizes["sqlite_full_rows"])
        # Repeat the rows (fresh ids) when the sample asks for more than one run produced.
        reps = -(-sizes["sqlite_normal_rows"] // n_rows)
        many = _repeat_rows(rows, reps).slice(0, max(n_rows, sizes["sqlite_normal_rows"]))
        sqlite_full = _sqlite_row_by_row(root / "full.sqlite", rows, full_n, "FULL")
        sqlite_normal = _sqlite_row_by_row(
            root / "normal.sqlite", many, sizes["sqlite_normal_rows"], "NORMAL"
        )
        bulk = _duckdb_bulk(root / "bulk.duckdb", rows)
        batch = max(1, round(eng["avg_batch"]))
        writer = _writer_replay(root / "writer.duckdb", rows, batch)

    expected_texts = n_tasks * n_says
    lost = expected_texts - eng["texts"]
    size_note = (
        f"{n_tasks} tasks x {n_says} lines = {n_rows} log rows in {eng['wall']:.2f} s "
        f"({eng['completed']}/{n_tasks} completed, assistant_text rows missing: {lost}); "
        f"sqlite WAL row-by-row: synchronous=FULL {sqlite_full:.0f} events/s on {full_n} rows, "
        f"synchronous=NORMAL {sqlite_normal:.0f} events/s on {sizes['sqlite_normal_rows']} rows"
    )
    return [
        metric(
            "ingest.events_per_s",
            ours,
            "events/s",
            baseline="sqlite row-by-row (WAL, synchronous=FULL)",
            ratio=safe_ratio(ours, sqlite_full),
            note=f"{size_note}; ratio = ours / baseline",
        ),
        metric(
            "ingest.events_per_s_vs_limit",
            ours,
            "events/s",
            baseline="duckdb bulk append (the limit)",
            ratio=safe_ratio(ours, bulk),
            note=f"one Arrow append of the same {n_rows} rows: {bulk:.0f} events/s; "
            "ratio = ours / limit",
        ),
        metric(
            "ingest.writer_events_per_s",
            writer,
            "events/s",
            baseline="sqlite row-by-row (WAL, synchronous=NORMAL)",
            ratio=safe_ratio(writer, sqlite_normal),
            note=f"EventWriter alone replaying the same rows in batches of {batch} "
            f"(the engine's average batch); ratio = ours / baseline",
        ),
        metric(
            "ingest.writer_events_per_s_vs_limit",
            writer,
            "events/s",
            baseline="duckdb bulk append (the limit)",
            ratio=safe_ratio(writer, bulk),
            note=f"the same writer figure against one Arrow append of all {n_rows} rows "
            f"({bulk:.0f} events/s); ratio = ours / limit",
        ),
    ]


def _repeat_rows(rows: pa.Table, reps: int) -> pa.Table:
    """``rows`` repeated ``reps`` times with unique ids (for a longer SQLite sample)."""
    if reps <= 1:
        return rows
    tables = []
    n = rows.num_rows
    for k in range(reps):
        ids = pa.array([i + k * n for i in range(1, n + 1)], type=pa.int64())
        tables.append(rows.set_column(0, "id", ids))
    return pa.concat_tables(tables)
