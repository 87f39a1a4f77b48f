"""Repository: ``permission_rules``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb


def all_rules(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str, str, str | None]]:
    return con.execute(
        "SELECT id, rule, effect, scope, scope_id FROM permission_rules ORDER BY created_at, id"
    ).fetchall()


def list_arrow(con: duckdb.DuckDBPyConnection) -> Any:
    return con.sql("SELECT * FROM permission_rules ORDER BY created_at").to_arrow_table()


def insert(
    con: duckdb.DuckDBPyConnection,
    rule_id: str,
    rule: str,
    effect: str,
    scope: str,
    scope_id: str | None,
    created_from: str | None,
    now: datetime,
) -> None:
    con.execute(
        "INSERT INTO permission_rules (id, rule, effect, scope, scope_id, created_from, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [rule_id, rule, effect, scope, scope_id, created_from, now],
    )


def delete(con: duckdb.DuckDBPyConnection, rule_id: str) -> bool:
    return bool(
        con.execute("DELETE FROM permission_rules WHERE id = ? RETURNING id", [rule_id]).fetchall()
    )
