"""Repository: ``projects``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.rows import first_row


def by_name(con: duckdb.DuckDBPyConnection, name: str) -> tuple[str, str] | None:
    row = first_row(
        con.execute("SELECT id, working_directory FROM projects WHERE name = ?", [name])
    )
    return (row[0], row[1]) if row else None


def by_id(con: duckdb.DuckDBPyConnection, project_id: str) -> dict[str, Any] | None:
    cur = con.execute("SELECT * FROM projects WHERE id = ?", [project_id])
    row = first_row(cur)
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def by_directory(con: duckdb.DuckDBPyConnection, working_directory: str) -> str | None:
    row = first_row(
        con.execute(
            "SELECT id FROM projects WHERE working_directory = ? ORDER BY created_at LIMIT 1",
            [working_directory],
        )
    )
    return row[0] if row else None


def id_or_name(con: duckdb.DuckDBPyConnection, text: str) -> str | None:
    row = first_row(
        con.execute(
            "SELECT id FROM projects WHERE id = ? OR name = ? ORDER BY name = ? DESC LIMIT 1",
            [text, text, text],
        )
    )
    return row[0] if row else None


def names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM projects ORDER BY name").fetchall()]


def list_arrow(con: duckdb.DuckDBPyConnection) -> Any:
    return con.sql("SELECT * FROM projects ORDER BY created_at").to_arrow_table()


def insert(
    con: duckdb.DuckDBPyConnection,
    project_id: str,
    name: str,
    working_directory: str,
    instructions: str | None,
    now: datetime,
) -> None:
    con.execute(
        "INSERT INTO projects (id, name, working_directory, instructions, status, created_at) "
        "VALUES (?, ?, ?, ?, 'active', ?)",
        [project_id, name, working_directory, instructions, now],
    )
