"""Repository: ``settings`` (key → text value; types live in stagent_lab.config)."""

from __future__ import annotations

import duckdb


def all_values(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT key, value FROM settings").fetchall())


def put(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])


def delete(con: duckdb.DuckDBPyConnection, key: str) -> None:
    con.execute("DELETE FROM settings WHERE key = ?", [key])
