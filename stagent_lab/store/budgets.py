"""Repository: ``budgets`` (spend caps per workspace, runtime, profile or project and window),
the spend sums they are checked against, and the ``blocked`` ledger rows of refused starts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.migrations import MigrationSet, register_set
from stagent_lab.store.rows import first_row

MIGRATIONS = register_set(MigrationSet("budgets"))

COLUMNS = (
    "id", "scope", "scope_id", "window", "limit_usd", "warn_ratio", "on_exceed", "enabled",
    "warned_window", "exceeded_window", "created_at", "updated_at",
)  # fmt: skip
_SELECT = ", ".join(f'"{c}"' if c == "window" else c for c in COLUMNS)
SCOPE_COLUMN = {"runtime": "runtime_id", "profile": "profile_id", "project": "project_id"}


@MIGRATIONS
def m001_budgets(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE budgets (
            id VARCHAR PRIMARY KEY,
            scope VARCHAR NOT NULL,
            scope_id VARCHAR,
            "window" VARCHAR NOT NULL,
            limit_usd DOUBLE NOT NULL,
            warn_ratio DOUBLE NOT NULL,
            on_exceed VARCHAR NOT NULL DEFAULT 'block',
            enabled BOOLEAN NOT NULL DEFAULT true,
            warned_window VARCHAR,
            exceeded_window VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )


def _col(name: str) -> str:
    return f'"{name}"' if name == "window" else name


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def insert(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    cols = [c for c in COLUMNS if c in row]
    con.execute(
        f"INSERT INTO budgets ({', '.join(_col(c) for c in cols)}) "
        f"VALUES ({', '.join('?' * len(cols))})",
        [row[c] for c in cols],
    )


def update(con: duckdb.DuckDBPyConnection, budget_id: str, fields: dict[str, Any]) -> None:
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"budgets has no column(s) {', '.join(sorted(unknown))}")
    if not fields:
        return
    sets = ", ".join(f"{_col(k)} = ?" for k in fields)
    con.execute(f"UPDATE budgets SET {sets} WHERE id = ?", [*fields.values(), budget_id])


def delete(con: duckdb.DuckDBPyConnection, budget_id: str) -> None:
    con.execute("DELETE FROM budgets WHERE id = ?", [budget_id])


def all_budgets(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _dicts(con.execute(f"SELECT {_SELECT} FROM budgets ORDER BY created_at"))


def spend(
    con: duckdb.DuckDBPyConnection,
    scope: str,
    scope_id: str | None,
    start: datetime,
    end: datetime,
) -> tuple[float, int]:
    """(spend in USD, calls with unknown pricing) of the ledger rows finished in [start, end)
    that the scope covers; ``blocked`` rows (refused starts) are not spend."""
    where = "finished_at >= ? AND finished_at < ?"
    params: list[Any] = [start, end]
    column = SCOPE_COLUMN.get(scope)
    if column is not None:
        where += f" AND {column} = ?"
        params.append(scope_id)
    row = first_row(
        con.execute(
            "SELECT coalesce(sum(cost_usd) FILTER (WHERE status <> 'blocked'), 0), "
            "count(*) FILTER (WHERE status = 'unknown_pricing') "
            f"FROM usage_ledger WHERE {where}",
            params,
        )
    )
    return (float(row[0]), int(row[1])) if row else (0.0, 0)


def insert_blocked_row(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """A start refused by a spend cap: cost 0, no tokens, status ``blocked``."""
    con.execute(
        "INSERT INTO usage_ledger (id, task_id, project_id, profile_id, activity, runtime_id, "
        "provider, model, cost_usd, pricing_source, estimated, status, started_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 'budget', false, 'blocked', ?, ?)",
        [
            row["id"],
            row["task_id"],
            row["project_id"],
            row["profile_id"],
            row["activity"],
            row["runtime_id"],
            row.get("provider"),
            row.get("model"),
            row["at"],
            row["at"],
        ],
    )


def paused_by(con: duckdb.DuckDBPyConnection, budget_id: str) -> list[str]:
    """Tasks still paused after a ``budget_paused`` event of this budget, oldest first."""
    return [
        r[0]
        for r in con.execute(
            "SELECT t.id FROM tasks t WHERE t.status = 'paused' AND t.failure_reason LIKE "
            "'budget:%' AND EXISTS (SELECT 1 FROM agent_logs l WHERE l.task_id = t.id AND "
            "l.event = 'budget_paused' AND l.payload LIKE ?) ORDER BY t.created_at",
            [f'%"budget_id": "{budget_id}"%'],
        ).fetchall()
    ]


__all__ = [
    "COLUMNS",
    "MIGRATIONS",
    "SCOPE_COLUMN",
    "all_budgets",
    "delete",
    "insert",
    "insert_blocked_row",
    "paused_by",
    "spend",
    "update",
]
