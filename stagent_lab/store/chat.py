"""Repository: ``chat_sessions`` and ``chat_messages`` (the chat feature's own migration set).

A message row holds what the operator wrote (never the composed prompt, which is the task's
``prompt``) and the kind, reference and size of each block of context it attached. The reply
to a turn is its task's result: history reads join ``tasks`` and the usage ledger, so a reply,
its status and its cost are always the task's own, with nothing copied that could drift.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.migrations import MigrationSet, register_set
from stagent_lab.store.rows import first_row

MIGRATIONS = register_set(MigrationSet("chat"))

SESSION_COLUMNS = (
    "id",
    "title",
    "profile_id",
    "runtime_id",
    "project_id",
    "created_at",
    "updated_at",
)
MESSAGE_COLUMNS = ("id", "session_id", "seq", "role", "content", "task_id", "context", "created_at")


@MIGRATIONS
def m001_chat(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS chat_sessions (
            id VARCHAR PRIMARY KEY,
            title VARCHAR,
            profile_id VARCHAR NOT NULL,
            runtime_id VARCHAR,
            project_id VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS chat_messages (
            id VARCHAR PRIMARY KEY,
            session_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            role VARCHAR NOT NULL,
            content VARCHAR NOT NULL,
            task_id VARCHAR,
            context VARCHAR,
            created_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute("CREATE INDEX IF NOT EXISTS chat_messages_session ON chat_messages (session_id)")


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def insert_session(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    con.execute(
        f"INSERT INTO chat_sessions ({', '.join(SESSION_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})",
        [row[c] for c in SESSION_COLUMNS],
    )


def update_session(con: duckdb.DuckDBPyConnection, session_id: str, fields: dict[str, Any]) -> None:
    bad = set(fields) - set(SESSION_COLUMNS[1:])
    if bad:
        raise ValueError(f"not chat session columns: {sorted(bad)}")
    cols = ", ".join(f"{k} = ?" for k in fields)
    con.execute(f"UPDATE chat_sessions SET {cols} WHERE id = ?", [*fields.values(), session_id])


def get_session(con: duckdb.DuckDBPyConnection, session_id: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(
            "SELECT s.*, p.name AS project, "
            "(SELECT count(*) FROM chat_messages m WHERE m.session_id = s.id AND m.role = 'user')"
            " AS turns, (SELECT coalesce(sum(t.cost_usd), 0) FROM chat_messages m JOIN tasks t "
            "ON t.id = m.task_id WHERE m.session_id = s.id) AS cost_usd "
            "FROM chat_sessions s LEFT JOIN projects p ON p.id = s.project_id WHERE s.id = ?",
            [session_id],
        )
    )
    return rows[0] if rows else None


def session_ids_with_prefix(con: duckdb.DuckDBPyConnection, prefix: str) -> list[str]:
    rows = con.execute(
        "SELECT id FROM chat_sessions WHERE starts_with(id, ?) ORDER BY id LIMIT 10", [prefix]
    ).fetchall()
    return [r[0] for r in rows]


def sessions_arrow(con: duckdb.DuckDBPyConnection, limit: int | None = None) -> Any:
    query = (
        "SELECT s.id, s.title, s.profile_id, s.runtime_id, p.name AS project, "
        "count(m.id) FILTER (WHERE m.role = 'user') AS turns, "
        "coalesce(sum(t.cost_usd), 0) AS cost_usd, s.created_at, s.updated_at "
        "FROM chat_sessions s LEFT JOIN projects p ON p.id = s.project_id "
        "LEFT JOIN chat_messages m ON m.session_id = s.id LEFT JOIN tasks t ON t.id = m.task_id "
        "GROUP BY ALL ORDER BY s.updated_at DESC"
    )
    if limit:
        query += f" LIMIT {int(limit)}"
    return con.sql(query).to_arrow_table()


def next_seq(con: duckdb.DuckDBPyConnection, session_id: str) -> int:
    row = first_row(
        con.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM chat_messages WHERE session_id = ?",
            [session_id],
        )
    )
    return int(row[0]) if row else 1


def insert_message(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    values = dict(row)
    values["context"] = json.dumps(values.get("context") or [])
    con.execute(
        f"INSERT INTO chat_messages ({', '.join(MESSAGE_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(MESSAGE_COLUMNS))})",
        [values.get(c) for c in MESSAGE_COLUMNS],
    )


def messages(
    con: duckdb.DuckDBPyConnection, session_id: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """The session's messages, oldest first, each with its task's outcome and usage."""
    query = (
        "SELECT m.id, m.session_id, m.seq, m.role, m.content, m.task_id, m.context, "
        "m.created_at, t.status, t.result, t.failure_reason, coalesce(t.cost_usd, 0) AS cost_usd,"
        " coalesce(t.turns, 0) AS turns, t.runtime_id, "
        "coalesce(u.input_tokens, 0) AS input_tokens, coalesce(u.output_tokens, 0) AS "
        "output_tokens FROM chat_messages m LEFT JOIN tasks t ON t.id = m.task_id "
        "LEFT JOIN (SELECT task_id, sum(input_tokens) AS input_tokens, sum(output_tokens) AS "
        "output_tokens FROM usage_ledger GROUP BY task_id) u ON u.task_id = m.task_id "
        "WHERE m.session_id = ? ORDER BY m.seq"
    )
    rows = _dicts(con.execute(query, [session_id]))
    if limit:
        rows = rows[-int(limit) :]
    for row in rows:
        try:
            row["context"] = json.loads(row["context"]) if row["context"] else []
        except ValueError:
            row["context"] = []
    return rows


def last_turn(con: duckdb.DuckDBPyConnection, session_id: str) -> dict[str, Any] | None:
    """The newest turn (an operator message with its task), for the one-turn-at-a-time rule."""
    rows = _dicts(
        con.execute(
            "SELECT m.task_id, t.status FROM chat_messages m LEFT JOIN tasks t "
            "ON t.id = m.task_id WHERE m.session_id = ? AND m.role = 'user' "
            "ORDER BY m.seq DESC LIMIT 1",
            [session_id],
        )
    )
    return rows[0] if rows else None


def touch(con: duckdb.DuckDBPyConnection, session_id: str, now: datetime) -> None:
    con.execute("UPDATE chat_sessions SET updated_at = ? WHERE id = ?", [now, session_id])


__all__ = [
    "MIGRATIONS",
    "get_session",
    "insert_message",
    "insert_session",
    "last_turn",
    "messages",
    "next_seq",
    "session_ids_with_prefix",
    "sessions_arrow",
    "touch",
    "update_session",
]
