"""Small helpers for reading results."""

from __future__ import annotations

from typing import Any

import duckdb


def first_row(cur: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of a result, reading it to the end (an unfinished result would block the
    connection's next statement)."""
    rows = cur.fetchall()
    return rows[0] if rows else None
