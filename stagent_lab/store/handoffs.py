"""Repository: ``agent_messages``, the handoff bus between agents."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.migrations import MigrationSet, register_set
from stagent_lab.store.rows import first_row

MIGRATIONS = register_set(MigrationSet("handoffs"))

MESSAGE_COLUMNS = (
    "id, from_profile_id, to_profile_id, source_task_id, target_task_id, subject, body, status, "
    "requires_approval, inbox_item_id, parent_message_id, chain_depth, reason, expires_at, "
    "created_at, updated_at"
)
_COLS = [c.strip() for c in MESSAGE_COLUMNS.split(",")]


@MIGRATIONS
def m001_agent_messages(con: duckdb.DuckDBPyConnection) -> None:
    # Workspaces from before feature migrations got this table from core m002.
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS agent_messages (
            id VARCHAR PRIMARY KEY,
            from_profile_id VARCHAR NOT NULL,
            to_profile_id VARCHAR NOT NULL,
            source_task_id VARCHAR,
            target_task_id VARCHAR,
            subject VARCHAR NOT NULL,
            body VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            requires_approval BOOLEAN NOT NULL DEFAULT false,
            inbox_item_id VARCHAR,
            parent_message_id VARCHAR,
            chain_depth INTEGER NOT NULL DEFAULT 0,
            reason VARCHAR,
            expires_at TIMESTAMP,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )


def insert(con: duckdb.DuckDBPyConnection, msg: dict[str, Any]) -> None:
    con.execute(
        f"INSERT INTO agent_messages ({MESSAGE_COLUMNS}) VALUES ({', '.join('?' * len(_COLS))})",
        [msg[c] for c in _COLS],
    )


def where(con: duckdb.DuckDBPyConnection, clause: str, params: list[Any]) -> dict[str, Any] | None:
    """The newest message matching ``clause`` (a fixed condition from this module's callers)."""
    cur = con.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM agent_messages WHERE {clause} "
        "ORDER BY created_at DESC LIMIT 1",
        params,
    )
    row = first_row(cur)
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def by_id(con: duckdb.DuckDBPyConnection, message_id: str) -> dict[str, Any] | None:
    return where(con, "id = ?", [message_id])


def by_item(con: duckdb.DuckDBPyConnection, item_id: str) -> dict[str, Any] | None:
    return where(con, "inbox_item_id = ?", [item_id])


def by_target(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    return where(con, "target_task_id = ?", [task_id])


def update(con: duckdb.DuckDBPyConnection, message_id: str, fields: dict[str, Any]) -> None:
    cols = ", ".join(f"{k} = ?" for k in fields)
    con.execute(f"UPDATE agent_messages SET {cols} WHERE id = ?", [*fields.values(), message_id])


def due_for_expiry(con: duckdb.DuckDBPyConnection, now: datetime) -> list[tuple]:
    return con.execute(
        "SELECT m.id, m.inbox_item_id, m.created_at, m.expires_at, i.status "
        "FROM agent_messages m LEFT JOIN inbox_items i ON i.id = m.inbox_item_id "
        "WHERE m.status = 'pending' AND ((m.expires_at IS NOT NULL AND m.expires_at <= ?) "
        "OR i.status = 'expired')",
        [now],
    ).fetchall()


def expire(
    con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str | None, str]], now: datetime
) -> None:
    for mid, item_id, reason in rows:
        con.execute(
            "UPDATE agent_messages SET status = 'expired', reason = ?, updated_at = ? WHERE id = ?",
            [reason, now, mid],
        )
        if item_id:
            con.execute(
                "UPDATE inbox_items SET status = 'expired', decided_at = ? WHERE id = ? "
                "AND status IN ('pending', 'decided')",
                [now, item_id],
            )


def insert_approval_item(
    con: duckdb.DuckDBPyConnection,
    item_id: str,
    source_task_id: str | None,
    item_input: dict[str, Any],
    question: str,
    now: datetime,
) -> None:
    con.execute(
        "INSERT INTO inbox_items (id, task_id, kind, tool_name, tool_input, question, "
        "suggested_rule, status, created_at, subject, subject_id) "
        "VALUES (?, ?, 'handoff', 'Handoff', ?, ?, NULL, 'pending', ?, 'task', ?)",
        [item_id, source_task_id, json.dumps(item_input), question, now, source_task_id],
    )


def messages_arrow(
    con: duckdb.DuckDBPyConnection, status: str | None = None, task_id: str | None = None
) -> Any:
    clauses, params = [], []
    if status:
        clauses.append("status = ?")
        params.append(status)
    if task_id:
        clauses.append("(source_task_id = ? OR target_task_id = ?)")
        params += [task_id, task_id]
    clause = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return con.sql(
        f"SELECT {MESSAGE_COLUMNS} FROM agent_messages {clause} ORDER BY created_at, id",
        params=params,
    ).to_arrow_table()


def source_task(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    row = first_row(
        con.execute(
            "SELECT t.profile_id, t.project_id, p.working_directory, t.runtime_id, t.options "
            "FROM tasks t LEFT JOIN projects p ON p.id = t.project_id WHERE t.id = ?",
            [task_id],
        )
    )
    if row is None:
        return None
    return {
        "profile_id": row[0],
        "project_id": row[1],
        "working_dir": row[2],
        "runtime_id": row[3],
        "runtime_options": json.loads(row[4]) if row[4] else {},
    }
