"""Moving tasks' rows in time (simulated histories for demos and the analytics notebook)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa


def backdate(con: duckdb.DuckDBPyConnection, moves: list[tuple[str, Any]], scale: float) -> None:
    """Move each task's rows to its simulated start (one transaction, the caller's).

    A row stamped ``t`` lands at ``sim_start + (max(t, started_at) - started_at) * scale``;
    the task's creation and start both become ``sim_start``.
    """
    starts = [
        m[1] if isinstance(m[1], datetime) else datetime.fromisoformat(str(m[1])) for m in moves
    ]
    moves_in = pa.table(
        {
            "task_id": pa.array([m[0] for m in moves], pa.string()),
            "sim_start": pa.array(starts, pa.timestamp("us")),
        }
    )

    def shift(col: str) -> str:
        return (
            f"m.sim_start + to_microseconds(CAST((epoch_us(greatest({col}, m.real_start)) "
            f"- epoch_us(m.real_start)) * {float(scale)!r} AS BIGINT))"
        )

    con.register("_sim_moves_in", moves_in)
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _sim_moves AS SELECT i.task_id, i.sim_start, "
            "coalesce(t.started_at, t.created_at) AS real_start "
            "FROM _sim_moves_in i JOIN tasks t ON t.id = i.task_id"
        )
    finally:
        con.unregister("_sim_moves_in")
    # table: (key column, columns shifted in time, columns pinned to the simulated start)
    plan: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
        "tasks": ("id", ("finished_at",), ("created_at", "started_at")),
        "usage_ledger": ("task_id", ("started_at", "finished_at"), ()),
        "agent_logs": ("task_id", ("ts",), ()),
        "inbox_items": ("task_id", ("created_at", "decided_at"), ()),
        "task_transcripts": ("task_id", ("updated_at",), ()),
    }
    for table, (key, shifted, pinned) in plan.items():
        # SET expressions read the old row, so tasks.finished_at still sees the real times.
        sets = [f"{c} = {shift(f'{table}.{c}')}" for c in shifted]
        sets += [f"{c} = m.sim_start" for c in pinned]
        con.execute(
            f"UPDATE {table} SET {', '.join(sets)} FROM _sim_moves m "
            f"WHERE {table}.{key} = m.task_id"
        )
    con.execute("DROP TABLE _sim_moves")


def simulated_tasks_sql(n: int) -> str:
    """One row per simulated task (``n`` ids as parameters), after back-dating."""
    marks = ",".join("?" * n)
    return (
        "SELECT t.id AS task_id, t.profile_id, t.model, p.name AS project, "
        "CAST(t.started_at AS DATE) AS day, t.status, t.failure_reason, t.started_at, "
        "t.finished_at, date_diff('microsecond', t.started_at, t.finished_at) / 1e6 "
        "AS duration_s, coalesce((SELECT sum(u.cost_usd) FROM usage_ledger u "
        "WHERE u.task_id = t.id), 0.0) AS cost_usd "
        f"FROM tasks t LEFT JOIN projects p ON p.id = t.project_id WHERE t.id IN ({marks})"
    )
