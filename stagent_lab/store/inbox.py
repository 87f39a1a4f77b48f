"""Repository: ``inbox_items``, the requests that wait for a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.rows import first_row

ITEM_COLUMNS = (
    "i.id, i.task_id, t.profile_id, t.title, i.kind, i.tool_name, i.tool_input, i.question, "
    "i.suggested_rule, i.status, i.decision, i.response, i.decided_by, i.created_at, "
    "i.decided_at, coalesce(i.subject, 'task') AS subject, i.subject_id, i.body"
)
_FROM = "FROM inbox_items i LEFT JOIN tasks t ON t.id = i.task_id"


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def get(con: duckdb.DuckDBPyConnection, item_id: str) -> dict[str, Any] | None:
    rows = _dicts(con.execute(f"SELECT {ITEM_COLUMNS} {_FROM} WHERE i.id = ?", [item_id]))
    return rows[0] if rows else None


def ids_with_prefix(con: duckdb.DuckDBPyConnection, prefix: str, limit: int = 3) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM inbox_items WHERE starts_with(id, ?) ORDER BY created_at DESC LIMIT ?",
            [prefix, limit],
        ).fetchall()
    ]


def items(
    con: duckdb.DuckDBPyConnection,
    status: str | None = "pending",
    task_id: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    clauses, params = [], []
    if status == "done":
        clauses.append("i.status <> 'pending'")
    elif status and status != "all":
        clauses.append("i.status = ?")
        params.append(status)
    if task_id:
        clauses.append("i.task_id = ?")
        params.append(task_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    order = (
        "ORDER BY coalesce(i.decided_at, i.created_at) DESC"
        if newest_first
        else "ORDER BY i.created_at, i.id"
    )
    sql = f"SELECT {ITEM_COLUMNS} {_FROM} {where} {order}"
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    return _dicts(con.execute(sql, params))


def count_pending(con: duckdb.DuckDBPyConnection) -> int:
    row = first_row(con.execute("SELECT count(*) FROM inbox_items WHERE status = 'pending'"))
    return int(row[0]) if row else 0


def insert_row(item: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "id": item["id"],
        "task_id": item.get("task_id"),
        "kind": item["kind"],
        "tool_name": item.get("tool_name"),
        "tool_input": item.get("tool_input"),
        "question": item.get("question"),
        "suggested_rule": item.get("suggested_rule"),
        "status": "pending",
        "created_at": now,
        "subject": item.get("subject") or "task",
        "subject_id": item.get("subject_id"),
        "body": item.get("body"),
    }


def record_decision(
    con: duckdb.DuckDBPyConnection,
    item_id: str,
    decision: str,
    response: str | None,
    decided_by: str,
    now: datetime,
) -> None:
    con.execute(
        "UPDATE inbox_items SET status='decided', decision=?, response=?, decided_by=?, "
        "decided_at=? WHERE id=? AND status='pending'",
        [decision, response, decided_by, now, item_id],
    )


def expire(con: duckdb.DuckDBPyConnection, ids: list[str], now: datetime) -> None:
    if not ids:
        return
    con.execute(
        f"UPDATE inbox_items SET status='expired', decided_at=? WHERE id IN "
        f"({','.join('?' * len(ids))}) AND status='pending'",
        [now, *ids],
    )


def expire_for_tasks(
    con: duckdb.DuckDBPyConnection, task_ids: list[str], now: datetime, keep_kinds=("handoff",)
) -> None:
    """Expire pending items of tasks that stopped (kinds that outlive their task are kept)."""
    if not task_ids:
        return
    kinds = ",".join("?" * len(keep_kinds))
    con.execute(
        "UPDATE inbox_items SET status='expired', decided_at=? WHERE status='pending' "
        f"AND kind NOT IN ({kinds}) AND task_id IN ({','.join('?' * len(task_ids))})",
        [now, *keep_kinds, *task_ids],
    )


def pending_without_task(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Pending items whose waiter is not a task (checkpoints, notices …), to re-attach."""
    return _dicts(
        con.execute(
            f"SELECT {ITEM_COLUMNS} {_FROM} WHERE i.status = 'pending' "
            "AND coalesce(i.subject, 'task') <> 'task' ORDER BY i.created_at"
        )
    )
