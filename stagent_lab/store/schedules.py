"""Repository: ``schedules`` (clock schedules and heartbeats) and ``schedule_firings``.

Writes run inside the engine writer's transaction (``service.writer_flush`` /
``writer_defer``); reads take a connection or reader cursor. JSON columns (channels,
checklist, active_days, last_action_items, options, verdict) are encoded and decoded here.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.migrations import MigrationSet, register_set
from stagent_lab.store.rows import first_row

MIGRATIONS = register_set(MigrationSet("schedules"))

SCHEDULE_COLUMNS = (
    "id", "name", "kind", "prompt", "workflow_id", "when_text", "cron", "timezone", "at_local",
    "status", "paused_reason", "profile_id", "runtime_id", "model", "project_id", "max_turns",
    "max_budget_usd", "max_run_s", "once", "max_firings", "expires_at", "overlap", "catch_up",
    "on_approval", "include_previous", "failure_streak", "failure_streak_limit", "firing_count",
    "next_fire_at", "last_fired_at", "last_outcome", "channels", "checklist", "active_start",
    "active_end", "active_days", "daily_budget_usd", "spent_day", "spent_today_usd",
    "eval_budget_usd", "action_mode", "action_prompt", "action_profile_id", "action_budget_usd",
    "notify_ok", "cooldown_s", "suppression_count", "last_action_at", "last_action_items",
    "budget_alert_day", "options", "created_at", "updated_at",
)  # fmt: skip
FIRING_COLUMNS = (
    "id", "schedule_id", "number", "scheduled_for", "fired_at", "status", "reason",
    "missed_count", "task_id", "workflow_run_id", "action_task_id", "verdict", "action",
    "cost_usd", "turns", "finished_at", "result_excerpt", "manual",
)  # fmt: skip
_JSON = frozenset({"channels", "checklist", "active_days", "last_action_items", "options"})
_FIRING_JSON = frozenset({"verdict"})
OPEN_FIRING = ("running", "queued")


@MIGRATIONS
def m001_schedules(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE schedules (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            kind VARCHAR NOT NULL DEFAULT 'clock',
            prompt VARCHAR,
            workflow_id VARCHAR,
            when_text VARCHAR,
            cron VARCHAR,
            timezone VARCHAR NOT NULL DEFAULT 'UTC',
            at_local VARCHAR,
            status VARCHAR NOT NULL DEFAULT 'active',
            paused_reason VARCHAR,
            profile_id VARCHAR,
            runtime_id VARCHAR,
            model VARCHAR,
            project_id VARCHAR,
            max_turns INTEGER,
            max_budget_usd DOUBLE,
            max_run_s DOUBLE,
            once BOOLEAN NOT NULL DEFAULT false,
            max_firings INTEGER,
            expires_at TIMESTAMP,
            overlap VARCHAR NOT NULL DEFAULT 'skip',
            catch_up VARCHAR NOT NULL DEFAULT 'once',
            on_approval VARCHAR NOT NULL DEFAULT 'wait',
            include_previous BOOLEAN NOT NULL DEFAULT true,
            failure_streak INTEGER NOT NULL DEFAULT 0,
            failure_streak_limit INTEGER NOT NULL DEFAULT 3,
            firing_count INTEGER NOT NULL DEFAULT 0,
            next_fire_at TIMESTAMP,
            last_fired_at TIMESTAMP,
            last_outcome VARCHAR,
            channels VARCHAR NOT NULL DEFAULT '[]',
            checklist VARCHAR,
            active_start VARCHAR,
            active_end VARCHAR,
            active_days VARCHAR,
            daily_budget_usd DOUBLE,
            spent_day DATE,
            spent_today_usd DOUBLE NOT NULL DEFAULT 0,
            eval_budget_usd DOUBLE,
            action_mode VARCHAR,
            action_prompt VARCHAR,
            action_profile_id VARCHAR,
            action_budget_usd DOUBLE,
            notify_ok BOOLEAN NOT NULL DEFAULT false,
            cooldown_s DOUBLE NOT NULL DEFAULT 0,
            suppression_count INTEGER NOT NULL DEFAULT 0,
            last_action_at TIMESTAMP,
            last_action_items VARCHAR,
            budget_alert_day DATE,
            options VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE schedule_firings (
            id VARCHAR PRIMARY KEY,
            schedule_id VARCHAR NOT NULL,
            number INTEGER NOT NULL,
            scheduled_for TIMESTAMP NOT NULL,
            fired_at TIMESTAMP,
            status VARCHAR NOT NULL,
            reason VARCHAR,
            missed_count INTEGER NOT NULL DEFAULT 0,
            task_id VARCHAR,
            workflow_run_id VARCHAR,
            action_task_id VARCHAR,
            verdict VARCHAR,
            action VARCHAR,
            cost_usd DOUBLE NOT NULL DEFAULT 0,
            turns INTEGER NOT NULL DEFAULT 0,
            finished_at TIMESTAMP,
            result_excerpt VARCHAR,
            manual BOOLEAN NOT NULL DEFAULT false
        )"""
    )
    con.execute(
        "CREATE UNIQUE INDEX schedule_firings_number ON schedule_firings (schedule_id, number)"
    )


# ---- encoding ------------------------------------------------------------------------------


def _encode(fields: dict[str, Any], json_cols: frozenset[str]) -> dict[str, Any]:
    return {
        k: (json.dumps(v) if k in json_cols and v is not None and not isinstance(v, str) else v)
        for k, v in fields.items()
    }


def _decode(row: dict[str, Any], json_cols: frozenset[str]) -> dict[str, Any]:
    for key in json_cols:
        raw = row.get(key)
        if isinstance(raw, str):
            try:
                row[key] = json.loads(raw)
            except ValueError:
                row[key] = None
    return row


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _check(fields: dict[str, Any], columns: tuple[str, ...], table: str) -> None:
    unknown = set(fields) - set(columns)
    if unknown:
        raise ValueError(f"{table} has no column(s) {', '.join(sorted(unknown))}")


# ---- schedules -----------------------------------------------------------------------------


def insert_schedule(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    _check(row, SCHEDULE_COLUMNS, "schedules")
    data = _encode(row, _JSON)
    cols = list(data)
    con.execute(
        f"INSERT INTO schedules ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [data[c] for c in cols],
    )


def update_schedule(con: duckdb.DuckDBPyConnection, sid: str, fields: dict[str, Any]) -> None:
    if not fields:
        return
    _check(fields, SCHEDULE_COLUMNS, "schedules")
    data = _encode(fields, _JSON)
    sets = ", ".join(f"{k} = ?" for k in data)
    con.execute(f"UPDATE schedules SET {sets} WHERE id = ?", [*data.values(), sid])


def delete_schedule(con: duckdb.DuckDBPyConnection, sid: str) -> None:
    con.execute("DELETE FROM schedule_firings WHERE schedule_id = ?", [sid])
    con.execute("DELETE FROM schedules WHERE id = ?", [sid])


def get(con: duckdb.DuckDBPyConnection, sid: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(f"SELECT {', '.join(SCHEDULE_COLUMNS)} FROM schedules WHERE id = ?", [sid])
    )
    return _decode(rows[0], _JSON) if rows else None


def all_schedules(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cur = con.execute(f"SELECT {', '.join(SCHEDULE_COLUMNS)} FROM schedules ORDER BY created_at")
    return [_decode(r, _JSON) for r in _dicts(cur)]


def matching(con: duckdb.DuckDBPyConnection, text: str, limit: int = 5) -> list[tuple[str, str]]:
    """(id, name) of schedules whose name is ``text``, or whose id is or starts with it."""
    exact = con.execute(
        "SELECT id, name FROM schedules WHERE name = ? OR id = ? ORDER BY created_at", [text, text]
    ).fetchall()
    if exact:
        return [(r[0], r[1]) for r in exact]
    return [
        (r[0], r[1])
        for r in con.execute(
            "SELECT id, name FROM schedules WHERE starts_with(id, ?) ORDER BY created_at LIMIT ?",
            [text, limit],
        ).fetchall()
    ]


def name_taken(con: duckdb.DuckDBPyConnection, name: str, other_than: str | None = None) -> bool:
    row = first_row(
        con.execute(
            "SELECT count(*) FROM schedules WHERE name = ? AND id <> ?", [name, other_than or ""]
        )
    )
    return bool(row and row[0])


def names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM schedules ORDER BY name").fetchall()]


def list_arrow(con: duckdb.DuckDBPyConnection) -> Any:
    return con.sql(
        "SELECT id, name, kind, status, when_text, cron, timezone, next_fire_at, last_fired_at, "
        "last_outcome, failure_streak, failure_streak_limit, firing_count, overlap, catch_up, "
        "profile_id, runtime_id, workflow_id, max_budget_usd, daily_budget_usd, spent_today_usd, "
        "suppression_count, paused_reason, channels, created_at FROM schedules "
        "ORDER BY next_fire_at NULLS LAST, name"
    ).to_arrow_table()


# ---- firings -------------------------------------------------------------------------------


def insert_firing(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    _check(row, FIRING_COLUMNS, "schedule_firings")
    data = _encode(row, _FIRING_JSON)
    cols = list(data)
    con.execute(
        f"INSERT INTO schedule_firings ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [data[c] for c in cols],
    )


def update_firing(con: duckdb.DuckDBPyConnection, fid: str, fields: dict[str, Any]) -> None:
    if not fields:
        return
    _check(fields, FIRING_COLUMNS, "schedule_firings")
    data = _encode(fields, _FIRING_JSON)
    sets = ", ".join(f"{k} = ?" for k in data)
    con.execute(f"UPDATE schedule_firings SET {sets} WHERE id = ?", [*data.values(), fid])


def add_firing_cost(con: duckdb.DuckDBPyConnection, fid: str, cost: float) -> None:
    """A heartbeat's action task ended: its cost joins the firing's."""
    con.execute(
        "UPDATE schedule_firings SET cost_usd = cost_usd + ? WHERE id = ?", [float(cost), fid]
    )


def firing(con: duckdb.DuckDBPyConnection, fid: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(f"SELECT {', '.join(FIRING_COLUMNS)} FROM schedule_firings WHERE id = ?", [fid])
    )
    return _decode(rows[0], _FIRING_JSON) if rows else None


def open_firings(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Firings still running or held (to reconcile on start), oldest first."""
    cur = con.execute(
        f"SELECT {', '.join(FIRING_COLUMNS)} FROM schedule_firings "
        "WHERE status IN ('running', 'queued') ORDER BY schedule_id, number"
    )
    return [_decode(r, _FIRING_JSON) for r in _dicts(cur)]


def last_finished(con: duckdb.DuckDBPyConnection, sid: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(
            f"SELECT {', '.join(FIRING_COLUMNS)} FROM schedule_firings WHERE schedule_id = ? "
            "AND status IN ('succeeded', 'failed', 'cancelled') ORDER BY number DESC LIMIT 1",
            [sid],
        )
    )
    return _decode(rows[0], _FIRING_JSON) if rows else None


def max_numbers(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {
        r[0]: int(r[1])
        for r in con.execute(
            "SELECT schedule_id, max(number) FROM schedule_firings GROUP BY schedule_id"
        ).fetchall()
    }


def firings_arrow(
    con: duckdb.DuckDBPyConnection, schedule_id: str | None, limit: int | None
) -> Any:
    where, params = "", []
    if schedule_id:
        where, params = "WHERE f.schedule_id = ?", [schedule_id]
    sql = (
        "SELECT f.id, f.schedule_id, s.name AS schedule, f.number, f.scheduled_for, f.fired_at, "
        "f.status, f.reason, f.missed_count, f.task_id, f.workflow_run_id, f.action, "
        "f.action_task_id, f.verdict, f.cost_usd, f.turns, f.finished_at, f.manual "
        f"FROM schedule_firings f LEFT JOIN schedules s ON s.id = f.schedule_id {where} "
        "ORDER BY coalesce(f.fired_at, f.scheduled_for) DESC, f.number DESC"
    )
    if limit:
        sql += " LIMIT ?"
        params.append(int(limit))
    return con.sql(sql, params=params).to_arrow_table()


# ---- what firings started ------------------------------------------------------------------


def task_of_origin(con: duckdb.DuckDBPyConnection, origin_id: str, activity: str) -> dict | None:
    """The newest task created by a firing (its ``origin_id``) for one activity."""
    rows = _dicts(
        con.execute(
            "SELECT id, status, result, failure_reason, cost_usd, turns FROM tasks "
            "WHERE origin_id = ? AND activity = ? ORDER BY created_at DESC LIMIT 1",
            [origin_id, activity],
        )
    )
    return rows[0] if rows else None


def task_outcome(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(
            "SELECT id, status, result, failure_reason, cost_usd, turns FROM tasks WHERE id = ?",
            [task_id],
        )
    )
    return rows[0] if rows else None


def workflow_run_outcome(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    """A workflow run's status (None when the workflows feature's table is not there)."""
    exists = first_row(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'workflow_runs'"
        )
    )
    if not exists or not exists[0]:
        return None
    rows = _dicts(con.execute("SELECT * FROM workflow_runs WHERE id = ?", [run_id]))
    return rows[0] if rows else None


def workflow_run_of_trigger(
    con: duckdb.DuckDBPyConnection, firing_id: str
) -> dict[str, Any] | None:
    """The workflow run a firing started (its ``trigger_id``), if the table is there."""
    exists = first_row(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'workflow_runs'"
        )
    )
    if not exists or not exists[0]:
        return None
    rows = _dicts(
        con.execute(
            "SELECT * FROM workflow_runs WHERE trigger_id = ? ORDER BY started_at DESC LIMIT 1",
            [firing_id],
        )
    )
    return rows[0] if rows else None


def firing_of_origin(con: duckdb.DuckDBPyConnection, fid: str) -> tuple[str, str] | None:
    """(schedule id, kind) of a firing."""
    row = first_row(
        con.execute(
            "SELECT f.schedule_id, s.kind FROM schedule_firings f JOIN schedules s "
            "ON s.id = f.schedule_id WHERE f.id = ?",
            [fid],
        )
    )
    return (row[0], row[1]) if row else None


def stamp(value: datetime | None) -> str | None:
    return value.isoformat(sep=" ", timespec="seconds") if value else None


__all__ = [
    "FIRING_COLUMNS",
    "MIGRATIONS",
    "OPEN_FIRING",
    "SCHEDULE_COLUMNS",
    "add_firing_cost",
    "all_schedules",
    "delete_schedule",
    "firing",
    "firing_of_origin",
    "firings_arrow",
    "get",
    "insert_firing",
    "insert_schedule",
    "last_finished",
    "list_arrow",
    "matching",
    "max_numbers",
    "name_taken",
    "names",
    "open_firings",
    "task_of_origin",
    "task_outcome",
    "update_firing",
    "update_schedule",
    "workflow_run_of_trigger",
    "workflow_run_outcome",
]
