"""Repository: ``tasks`` (and the task's transcript).

Reads take a connection or cursor (the engine's writer connection on the engine thread, a
reader cursor elsewhere); writes are queued on the engine's writer as operations.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.rows import first_row

TASK_COLUMNS = (
    "id, project_id, title, prompt, profile_id, runtime_id, model, status, priority, result, "
    "failure_reason, session_id, resume_count, max_turns, max_budget_usd, parent_task_id, "
    "source, options, turns, cost_usd, created_at, started_at, finished_at, origin_id, "
    "activity, unattended, channels"
)
ACTIVE = ("queued", "running", "waiting")


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def get(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(
            f"SELECT {TASK_COLUMNS}, (SELECT name FROM projects p WHERE p.id = t.project_id) "
            "AS project, (SELECT working_directory FROM projects p WHERE p.id = t.project_id) "
            "AS working_directory FROM tasks t WHERE id = ?",
            [task_id],
        )
    )
    return rows[0] if rows else None


def status_of(con: duckdb.DuckDBPyConnection, task_id: str) -> str | None:
    row = first_row(con.execute("SELECT status FROM tasks WHERE id = ?", [task_id]))
    return row[0] if row else None


def list_arrow(
    con: duckdb.DuckDBPyConnection,
    status: str | None = None,
    limit: int | None = None,
    source: str | None = None,
) -> Any:
    clauses, params = [], []
    if status:
        clauses.append("status = ?")
        params.append(status)
    if source:
        clauses.append("source = ?")
        params.append(source)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    if limit:
        sql = (
            f"SELECT * FROM (SELECT * FROM tasks {where} ORDER BY created_at DESC LIMIT ?) "
            "ORDER BY created_at"
        )
        params.append(int(limit))
    else:
        sql = f"SELECT * FROM tasks {where} ORDER BY created_at"
    return con.sql(sql, params=params).to_arrow_table()


def ids_with_prefix(con: duckdb.DuckDBPyConnection, prefix: str, limit: int = 3) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM tasks WHERE starts_with(id, ?) ORDER BY created_at DESC LIMIT ?",
            [prefix, limit],
        ).fetchall()
    ]


def orphans(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Tasks a stopped engine left active (to reconcile on start)."""
    return con.execute(
        "SELECT id, status FROM tasks WHERE status IN ('queued','running','waiting') "
        "ORDER BY created_at"
    ).fetchall()


def mark_orphans_failed(con: duckdb.DuckDBPyConnection, ids: list[str], now: datetime) -> None:
    marks = ",".join("?" * len(ids))
    con.execute(
        "UPDATE tasks SET status='failed', failure_reason='engine stopped', "
        f"finished_at=? WHERE id IN ({marks})",
        [now, *ids],
    )


def insert_row(values: dict[str, Any]) -> dict[str, Any]:
    """The row to queue with ``writer.insert("tasks", row)`` for a new task."""
    return {
        "id": values["id"],
        "project_id": values.get("project_id"),
        "title": values["title"],
        "prompt": values["prompt"],
        "profile_id": values["profile_id"],
        "runtime_id": values["runtime_id"],
        "model": values.get("model"),
        "status": "queued",
        "priority": int(values.get("priority") or 0),
        "resume_count": 0,
        "max_turns": values.get("max_turns"),
        "max_budget_usd": values.get("max_budget_usd"),
        "parent_task_id": values.get("parent_task_id"),
        "source": values.get("source") or "manual",
        "options": values.get("options"),
        "created_at": values["created_at"],
        "origin_id": values.get("origin_id"),
        "activity": values.get("activity") or "task_run",
        "unattended": bool(values.get("unattended")),
        "channels": json.dumps(values["channels"]) if values.get("channels") else None,
    }


def options_json(options: dict[str, Any]) -> str:
    """Options stored with the task so a resume in another process can rebuild the run."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == "script" and callable(value):
            out["script_is_callable"] = True
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return json.dumps(out)


def transcript(con: duckdb.DuckDBPyConnection, task_id: str) -> str | None:
    row = first_row(con.execute("SELECT data FROM task_transcripts WHERE task_id = ?", [task_id]))
    return row[0] if row else None


def usage_totals(con: duckdb.DuckDBPyConnection, task_id: str) -> tuple[int, int]:
    row = first_row(
        con.execute(
            "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
            "FROM usage_ledger WHERE task_id = ?",
            [task_id],
        )
    )
    return (int(row[0]), int(row[1])) if row else (0, 0)


def usage_arrow(con: duckdb.DuckDBPyConnection, task_id: str | None = None) -> Any:
    if task_id is None:
        return con.sql("SELECT * FROM usage_ledger ORDER BY started_at").to_arrow_table()
    return con.sql(
        "SELECT * FROM usage_ledger WHERE task_id = ? ORDER BY started_at", params=[task_id]
    ).to_arrow_table()
