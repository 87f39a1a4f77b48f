"""Repository: ``agent_logs``, the event record of tasks and of other subjects."""

from __future__ import annotations

from typing import Any

import duckdb

from stagent_lab.store.rows import first_row

EVENT_COLUMNS = "id, task_id, seq, ts, runtime_id, event, tool_name, payload, subject"


def max_seqs(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, int]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    return {
        r[0]: int(r[1] or 0)
        for r in con.execute(
            f"SELECT task_id, max(seq) FROM agent_logs WHERE task_id IN ({marks}) GROUP BY task_id",
            ids,
        ).fetchall()
    }


def max_seq(con: duckdb.DuckDBPyConnection, subject_id: str) -> int:
    row = first_row(
        con.execute("SELECT coalesce(max(seq), 0) FROM agent_logs WHERE task_id = ?", [subject_id])
    )
    return int(row[0]) if row else 0


def since(con: duckdb.DuckDBPyConnection, last_id: int, limit: int = 100_000) -> list[dict]:
    """Events after ``last_id`` (the stream position), oldest first, joined with the task's
    profile and current status, in the shape the engine publishes."""
    cur = con.execute(
        "SELECT l.id, l.task_id, l.seq, l.ts, l.runtime_id, l.event, l.tool_name, l.payload, "
        "coalesce(l.subject, 'task') AS subject, t.profile_id, t.status FROM agent_logs l "
        "LEFT JOIN tasks t ON t.id = l.task_id WHERE l.id > ? ORDER BY l.id LIMIT ?",
        [last_id, limit],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def list_arrow(
    con: duckdb.DuckDBPyConnection,
    task_id: str | None = None,
    event: str | None = None,
    subject: str | None = None,
    limit: int | None = None,
) -> Any:
    clauses, params = [], []
    if task_id:
        clauses.append("task_id = ?")
        params.append(task_id)
    if event:
        clauses.append("event = ?")
        params.append(event)
    if subject:
        clauses.append("coalesce(subject, 'task') = ?")
        params.append(subject)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    if limit:
        params.append(int(limit))
        return con.sql(
            f"SELECT * FROM (SELECT * FROM agent_logs {where} ORDER BY id DESC LIMIT ?) "
            "ORDER BY id",
            params=params,
        ).to_arrow_table()
    return con.sql(f"SELECT * FROM agent_logs {where} ORDER BY id", params=params).to_arrow_table()


def task_tail(con: duckdb.DuckDBPyConnection, task_id: str, rows: int) -> list[dict[str, Any]]:
    """The last ``rows`` events of a task, oldest first."""
    cur = con.execute(
        "SELECT * FROM (SELECT id, task_id, seq, ts, event, tool_name, payload FROM agent_logs "
        "WHERE task_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
        [task_id, rows],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def count_shown_before(con: duckdb.DuckDBPyConnection, task_id: str, seq: int) -> int:
    row = first_row(
        con.execute(
            "SELECT count(*) FROM agent_logs WHERE task_id = ? AND seq < ? "
            "AND event NOT IN ('usage', 'assistant_delta')",
            [task_id, seq],
        )
    )
    return int(row[0]) if row else 0


def recent(con: duckdb.DuckDBPyConnection, limit: int) -> list[dict[str, Any]]:
    cur = con.execute(
        "SELECT * FROM (SELECT l.id, l.task_id, l.seq, l.ts, l.event, l.tool_name, l.payload, "
        "t.profile_id, t.title FROM agent_logs l LEFT JOIN tasks t ON t.id = l.task_id "
        "ORDER BY l.id DESC LIMIT ?) ORDER BY id",
        [limit],
    )
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
