"""Reads for the notebook views: a task card's header, the monitor's numbers.

Plain data out (datetimes stay datetimes); the notebook layer turns them into what the widgets
show. Every query here is a read on the caller's cursor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store import logs as logs_repo
from stagent_lab.store.rows import first_row

ACTIVE = ("queued", "running", "waiting")


def task_info(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    cur = con.execute(
        "SELECT t.id, t.title, t.profile_id AS profile, t.runtime_id AS runtime, t.model, "
        "t.status, t.turns, t.max_turns, t.cost_usd, t.max_budget_usd, t.result, "
        "t.failure_reason, t.created_at, t.started_at, t.finished_at, t.resume_count, t.source, "
        "p.name AS project FROM tasks t LEFT JOIN projects p ON p.id = t.project_id "
        "WHERE t.id = ?",
        [task_id],
    )
    row = first_row(cur)
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def overlay(info: dict[str, Any], snap: dict[str, Any]) -> dict[str, Any]:
    """What the engine knows right now (it is ahead of the store by up to ~0.25 s)."""
    for key in ("status", "turns", "cost_usd", "result", "failure_reason", "resume_count"):
        if key in snap:
            info[key] = snap[key]
    return info


def monitor(
    con: duckdb.DuckDBPyConnection, since: datetime | str | None, recent: int
) -> dict[str, Any]:
    """Headline numbers, active agents and the latest events across tasks."""
    if isinstance(since, str):
        since = datetime.fromisoformat(since)
    counts = dict(con.execute("SELECT status, count(*) FROM tasks GROUP BY status").fetchall())
    today = (0, 0, 0)
    cost_today = 0.0
    if since is not None:
        today = first_row(
            con.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), "
                "count(*) FILTER (WHERE status = 'failed') FROM tasks WHERE created_at >= ?",
                [since],
            )
        )
        cost_today = first_row(
            con.execute(
                "SELECT coalesce(sum(cost_usd), 0) FROM usage_ledger WHERE started_at >= ?", [since]
            )
        )[0]
    pending = first_row(con.execute("SELECT count(*) FROM inbox_items WHERE status = 'pending'"))
    completed, failed = counts.get("completed", 0), counts.get("failed", 0)
    finished = completed + failed
    cur = con.execute(
        "SELECT id, title, profile_id AS profile, runtime_id AS runtime, status, turns, "
        "max_turns, cost_usd, max_budget_usd, started_at, created_at FROM tasks "
        "WHERE status IN ('queued', 'running', 'waiting') ORDER BY created_at"
    )
    cols = [d[0] for d in cur.description]
    active = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return {
        "stats": {
            "active": sum(counts.get(s, 0) for s in ACTIVE),
            "running": counts.get("running", 0),
            "waiting": counts.get("waiting", 0),
            "queued": counts.get("queued", 0),
            "completed": completed,
            "failed": failed,
            "success_rate": (completed / finished) if finished else None,
            "tasks_today": int(today[0]),
            "completed_today": int(today[1]),
            "failed_today": int(today[2]),
            "cost_today": float(cost_today or 0.0),
            "pending_inbox": int(pending[0]) if pending else 0,
        },
        "active": active,
        "recent": logs_repo.recent(con, recent) if recent else [],
    }
