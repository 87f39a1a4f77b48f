"""Repository: ``workflows``, ``workflow_runs`` and ``workflow_step_runs``.

A workflow row is a named, versioned definition; a run executes a snapshot of it (the run keeps
its own copy, so editing the workflow never changes a live run); a step run is one attempt of
one step (in one loop iteration or row), linked to the child task that did the work. Old
attempts stay: a retry adds a row with ``attempt + 1``.

Writes come from the workflows feature on the engine thread, through the engine's writer (in
order with the child tasks' own writes); reads take any connection or cursor.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa

from stagent_lab.store.migrations import MigrationSet, register_set
from stagent_lab.store.rows import first_row

MIGRATIONS = register_set(MigrationSet("workflows"))

WORKFLOW_COLUMNS = (
    "id",
    "name",
    "description",
    "pattern",
    "definition",
    "version",
    "project_id",
    "runtime_id",
    "profile_id",
    "budget_usd",
    "channels",
    "concurrent_runs",
    "blueprint_id",
    "blueprint_version",
    "blueprint_vars",
    "status",
    "created_at",
    "updated_at",
)
RUN_COLUMNS = (
    "id",
    "workflow_id",
    "workflow_name",
    "run_number",
    "version",
    "pattern",
    "definition",
    "inputs",
    "trigger",
    "trigger_id",
    "status",
    "stop_reason",
    "failure_reason",
    "current_index",
    "iteration",
    "resume_at",
    "budget_usd",
    "cost_usd",
    "failed_items",
    "output",
    "started_at",
    "paused_at",
    "finished_at",
    "updated_at",
)
STEP_COLUMNS = (
    "id",
    "run_id",
    "step_id",
    "step_index",
    "iteration",
    "attempt",
    "status",
    "task_id",
    "input_text",
    "result",
    "error",
    "approval_item_id",
    "decision",
    "operator_note",
    "cost_usd",
    "resume_at",
    "warnings",
    "started_at",
    "finished_at",
)
LIVE_RUN_STATES = ("running", "waiting", "delayed", "paused")
_TEXT, _INT, _FLOAT, _TS = pa.string(), pa.int32(), pa.float64(), pa.timestamp("us")
STEP_TYPES = {
    **dict.fromkeys(STEP_COLUMNS, _TEXT),
    "step_index": _INT,
    "iteration": _INT,
    "attempt": _INT,
    "cost_usd": _FLOAT,
    "resume_at": _TS,
    "started_at": _TS,
    "finished_at": _TS,
}
RUN_TYPES = {
    **dict.fromkeys(RUN_COLUMNS, _TEXT),
    "run_number": _INT,
    "version": _INT,
    "current_index": _INT,
    "iteration": _INT,
    "failed_items": _INT,
    "budget_usd": _FLOAT,
    "cost_usd": _FLOAT,
    **dict.fromkeys(("resume_at", "started_at", "paused_at", "finished_at", "updated_at"), _TS),
}
_WRITABLE = {
    "workflow_runs": (RUN_COLUMNS, RUN_TYPES),
    "workflow_step_runs": (STEP_COLUMNS, STEP_TYPES),
}


@MIGRATIONS
def m001_workflow_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE workflows (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            description VARCHAR,
            pattern VARCHAR NOT NULL,
            definition VARCHAR NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            project_id VARCHAR,
            runtime_id VARCHAR,
            profile_id VARCHAR,
            budget_usd DOUBLE,
            channels VARCHAR,
            concurrent_runs BOOLEAN NOT NULL DEFAULT false,
            blueprint_id VARCHAR,
            blueprint_version VARCHAR,
            blueprint_vars VARCHAR,
            status VARCHAR NOT NULL DEFAULT 'active',
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE workflow_runs (
            id VARCHAR PRIMARY KEY,
            workflow_id VARCHAR NOT NULL,
            workflow_name VARCHAR NOT NULL,
            run_number INTEGER NOT NULL,
            version INTEGER NOT NULL,
            pattern VARCHAR NOT NULL,
            definition VARCHAR NOT NULL,
            inputs VARCHAR,
            trigger VARCHAR NOT NULL DEFAULT 'manual',
            trigger_id VARCHAR,
            status VARCHAR NOT NULL,
            stop_reason VARCHAR,
            failure_reason VARCHAR,
            current_index INTEGER NOT NULL DEFAULT 0,
            iteration INTEGER NOT NULL DEFAULT 0,
            resume_at TIMESTAMP,
            budget_usd DOUBLE,
            cost_usd DOUBLE NOT NULL DEFAULT 0,
            failed_items INTEGER NOT NULL DEFAULT 0,
            output VARCHAR,
            started_at TIMESTAMP NOT NULL,
            paused_at TIMESTAMP,
            finished_at TIMESTAMP,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE workflow_step_runs (
            id VARCHAR PRIMARY KEY,
            run_id VARCHAR NOT NULL,
            step_id VARCHAR NOT NULL,
            step_index INTEGER NOT NULL,
            iteration INTEGER NOT NULL DEFAULT 0,
            attempt INTEGER NOT NULL DEFAULT 1,
            status VARCHAR NOT NULL,
            task_id VARCHAR,
            input_text VARCHAR,
            result VARCHAR,
            error VARCHAR,
            approval_item_id VARCHAR,
            decision VARCHAR,
            operator_note VARCHAR,
            cost_usd DOUBLE NOT NULL DEFAULT 0,
            resume_at TIMESTAMP,
            warnings VARCHAR,
            started_at TIMESTAMP,
            finished_at TIMESTAMP,
            UNIQUE (run_id, step_id, iteration, attempt)
        )"""
    )


# ---- helpers ------------------------------------------------------------------------------


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _insert(con: duckdb.DuckDBPyConnection, table: str, cols: tuple[str, ...], row: dict) -> None:
    con.execute(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        [row.get(c) for c in cols],
    )


def _update(
    con: duckdb.DuckDBPyConnection,
    table: str,
    allowed: tuple[str, ...],
    key: str,
    fields: dict[str, Any],
) -> None:
    bad = [k for k in fields if k not in allowed or k == "id"]
    if bad:
        raise ValueError(f"{table} has no updatable column(s) {bad}")
    if not fields:
        return
    sets = ", ".join(f"{k} = ?" for k in fields)
    con.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*fields.values(), key])


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def loads(text: Any, default: Any = None) -> Any:
    if text is None or text == "":
        return default
    return json.loads(text)


RUN_MUTABLE = (
    "status", "stop_reason", "failure_reason", "current_index", "iteration", "resume_at",
    "budget_usd", "cost_usd", "failed_items", "output", "paused_at", "finished_at", "updated_at",
)  # fmt: skip
STEP_MUTABLE = (
    "status", "task_id", "input_text", "result", "error", "approval_item_id", "decision",
    "operator_note", "cost_usd", "resume_at", "warnings", "started_at", "finished_at",
)  # fmt: skip
_MUTABLE = {"workflow_runs": RUN_MUTABLE, "workflow_step_runs": STEP_MUTABLE}


def apply_writes(
    con: duckdb.DuckDBPyConnection,
    inserts: dict[str, list[dict[str, Any]]],
    updates: dict[str, list[dict[str, Any]]],
) -> None:
    """New and changed runs and step runs (their current rows) in as few statements as
    possible: one Arrow append per table, then one ``UPDATE … FROM`` per table."""
    for table in ("workflow_runs", "workflow_step_runs"):  # a run before its steps
        rows = inserts.get(table)
        if not rows:
            continue
        cols, types = _WRITABLE[table]
        schema = pa.schema([(c, types[c]) for c in cols])
        _with_table(
            con,
            pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows], schema=schema),
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM _wf_batch",
        )
    for table, rows in updates.items():
        if not rows:
            continue
        cols = _MUTABLE[table]
        types = _WRITABLE[table][1]
        if len(rows) == 1:
            _update(con, table, cols, rows[0]["id"], {c: rows[0].get(c) for c in cols})
            continue
        schema = pa.schema([("id", _TEXT), *((c, types[c]) for c in cols)])
        data = [{"id": r["id"], **{c: r.get(c) for c in cols}} for r in rows]
        sets = ", ".join(f"{c} = _wf_batch.{c}" for c in cols)
        _with_table(
            con,
            pa.Table.from_pylist(data, schema=schema),
            f"UPDATE {table} SET {sets} FROM _wf_batch WHERE {table}.id = _wf_batch.id",
        )


def _with_table(con: duckdb.DuckDBPyConnection, table: Any, sql: str) -> None:
    con.register("_wf_batch", table)
    try:
        con.execute(sql)
    finally:
        con.unregister("_wf_batch")


# ---- workflows ----------------------------------------------------------------------------


def insert_workflow(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    _insert(con, "workflows", WORKFLOW_COLUMNS, row)


def update_workflow(con: duckdb.DuckDBPyConnection, wid: str, fields: dict[str, Any]) -> None:
    _update(con, "workflows", WORKFLOW_COLUMNS, wid, fields)


def workflow(con: duckdb.DuckDBPyConnection, wid: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(f"SELECT {', '.join(WORKFLOW_COLUMNS)} FROM workflows WHERE id = ?", [wid])
    )
    return rows[0] if rows else None


def find_workflows(con: duckdb.DuckDBPyConnection, key: str) -> list[dict[str, Any]]:
    """Workflows named ``key`` (active ones first), else whose id is or starts with it."""
    cols = ", ".join(WORKFLOW_COLUMNS)
    by_name = _dicts(
        con.execute(
            f"SELECT {cols} FROM workflows WHERE name = ? "
            "ORDER BY status = 'active' DESC, updated_at DESC",
            [key],
        )
    )
    if by_name:
        return by_name
    exact = _dicts(con.execute(f"SELECT {cols} FROM workflows WHERE id = ?", [key]))
    if exact:
        return exact
    return _dicts(
        con.execute(
            f"SELECT {cols} FROM workflows WHERE starts_with(id, ?) ORDER BY id LIMIT 5", [key]
        )
    )


def name_taken(con: duckdb.DuckDBPyConnection, name: str, exclude_id: str | None = None) -> bool:
    row = first_row(
        con.execute(
            "SELECT count(*) FROM workflows WHERE name = ? AND status = 'active' AND id <> ?",
            [name, exclude_id or ""],
        )
    )
    return bool(row and row[0])


def workflows_arrow(con: duckdb.DuckDBPyConnection, status: str | None = None) -> Any:
    clause = "WHERE w.status = ?" if status else ""
    params = [status] if status else []
    return con.sql(
        "SELECT w.id, w.name, w.pattern, w.version, w.status, w.description, "
        "json_array_length(json_extract(w.definition, '$.steps')) AS steps, "
        "p.name AS project, w.runtime_id, w.profile_id, w.budget_usd, w.channels, "
        "w.concurrent_runs, w.blueprint_id, "
        "(SELECT count(*) FROM workflow_runs r WHERE r.workflow_id = w.id) AS runs, "
        "(SELECT max(r.started_at) FROM workflow_runs r WHERE r.workflow_id = w.id) AS last_run_at,"
        " w.created_at, w.updated_at "
        f"FROM workflows w LEFT JOIN projects p ON p.id = w.project_id {clause} "
        "ORDER BY w.created_at, w.id",
        params=params,
    ).to_arrow_table()


def delete_workflow(con: duckdb.DuckDBPyConnection, wid: str) -> None:
    """The definition, its runs and their step runs (tasks, logs and ledger rows stay)."""
    con.execute(
        "DELETE FROM workflow_step_runs WHERE run_id IN "
        "(SELECT id FROM workflow_runs WHERE workflow_id = ?)",
        [wid],
    )
    con.execute("DELETE FROM workflow_runs WHERE workflow_id = ?", [wid])
    con.execute("DELETE FROM workflows WHERE id = ?", [wid])


# ---- runs ---------------------------------------------------------------------------------


def next_run_number(con: duckdb.DuckDBPyConnection, wid: str) -> int:
    row = first_row(
        con.execute(
            "SELECT coalesce(max(run_number), 0) + 1 FROM workflow_runs WHERE workflow_id = ?",
            [wid],
        )
    )
    return int(row[0]) if row else 1


def insert_run(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    _insert(con, "workflow_runs", RUN_COLUMNS, row)


def update_run(con: duckdb.DuckDBPyConnection, run_id: str, fields: dict[str, Any]) -> None:
    _update(con, "workflow_runs", RUN_COLUMNS, run_id, fields)


def run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    rows = _dicts(
        con.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM workflow_runs WHERE id = ?", [run_id])
    )
    return rows[0] if rows else None


def run_ids_with_prefix(con: duckdb.DuckDBPyConnection, prefix: str, limit: int = 3) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM workflow_runs WHERE starts_with(id, ?) ORDER BY id LIMIT ?",
            [prefix, limit],
        ).fetchall()
    ]


def live_runs(con: duckdb.DuckDBPyConnection, wid: str | None = None) -> list[dict[str, Any]]:
    marks = ", ".join("?" * len(LIVE_RUN_STATES))
    clause = " AND workflow_id = ?" if wid else ""
    params: list[Any] = [*LIVE_RUN_STATES, *([wid] if wid else [])]
    return _dicts(
        con.execute(
            f"SELECT {', '.join(RUN_COLUMNS)} FROM workflow_runs WHERE status IN ({marks})"
            f"{clause} ORDER BY started_at, id",
            params,
        )
    )


def runs_arrow(
    con: duckdb.DuckDBPyConnection,
    wid: str | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> Any:
    clauses, params = [], []
    if wid:
        clauses.append("workflow_id = ?")
        params.append(wid)
    if status:
        clauses.append("status = ?")
        params.append(status)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    tail = f" LIMIT {int(limit)}" if limit else ""
    return con.sql(
        "SELECT id, workflow_id, workflow_name AS workflow, run_number, version, pattern, "
        "trigger, trigger_id, status, stop_reason, failure_reason, cost_usd, budget_usd, "
        "failed_items, iteration, resume_at, left(output, 500) AS output, started_at, "
        f"paused_at, finished_at FROM workflow_runs {where} "
        f"ORDER BY started_at DESC, run_number DESC{tail}",
        params=params,
    ).to_arrow_table()


def active_runs_panel(con: duckdb.DuckDBPyConnection, limit: int = 20) -> list[dict[str, Any]]:
    marks = ", ".join("?" * len(LIVE_RUN_STATES))
    return _dicts(
        con.execute(
            "SELECT id, workflow_name AS workflow, run_number, pattern, status, stop_reason, "
            "round(cost_usd, 6) AS cost_usd, budget_usd, resume_at, started_at FROM "
            f"workflow_runs WHERE status IN ({marks}) ORDER BY started_at DESC LIMIT ?",
            [*LIVE_RUN_STATES, limit],
        )
    )


# ---- step runs ----------------------------------------------------------------------------


def insert_step(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    _insert(con, "workflow_step_runs", STEP_COLUMNS, row)


def update_step(con: duckdb.DuckDBPyConnection, step_run_id: str, fields: dict[str, Any]) -> None:
    _update(con, "workflow_step_runs", STEP_COLUMNS, step_run_id, fields)


def steps_of(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Every attempt of every step of a run, in execution order."""
    return _dicts(
        con.execute(
            f"SELECT {', '.join(STEP_COLUMNS)} FROM workflow_step_runs WHERE run_id = ? "
            "ORDER BY iteration, step_index, attempt",
            [run_id],
        )
    )


def steps_arrow(con: duckdb.DuckDBPyConnection, run_id: str) -> Any:
    return con.sql(
        "SELECT s.id, s.step_id, s.step_index, s.iteration, s.attempt, s.status, s.task_id, "
        "t.status AS task_status, s.cost_usd, s.error, s.result, s.operator_note, "
        "s.approval_item_id, s.decision, s.resume_at, s.warnings, s.input_text, s.started_at, "
        "s.finished_at FROM workflow_step_runs s LEFT JOIN tasks t ON t.id = s.task_id "
        "WHERE s.run_id = ? ORDER BY s.iteration, s.step_index, s.attempt",
        params=[run_id],
    ).to_arrow_table()


def card_steps(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Every attempt of every step of a run with its child task's header (the run card)."""
    return _dicts(
        con.execute(
            "SELECT s.id, s.step_id, s.step_index, s.iteration, s.attempt, s.status, s.task_id, "
            "s.cost_usd, s.error, left(s.result, 2000) AS result, s.operator_note, "
            "s.approval_item_id, s.decision, s.resume_at, s.warnings, s.started_at, "
            "s.finished_at, t.status AS task_status, t.title AS task_title, t.profile_id, "
            "t.runtime_id, t.turns, t.cost_usd AS task_cost_usd, t.failure_reason "
            "FROM workflow_step_runs s LEFT JOIN tasks t ON t.id = s.task_id "
            "WHERE s.run_id = ? ORDER BY s.iteration, s.step_index, s.attempt",
            [run_id],
        )
    )


def run_tasks_arrow(con: duckdb.DuckDBPyConnection, run_id: str) -> Any:
    """The child tasks of a run (one row per task, resumed tasks once)."""
    return con.sql(
        "SELECT t.id, t.title, t.status, t.profile_id, t.runtime_id, t.model, t.source, "
        "t.origin_id, t.parent_task_id, t.activity, t.turns, t.cost_usd, t.failure_reason, "
        "t.resume_count, t.created_at, t.started_at, t.finished_at FROM tasks t "
        "WHERE t.id IN (SELECT task_id FROM workflow_step_runs WHERE run_id = ? "
        "AND task_id IS NOT NULL) ORDER BY t.created_at, t.id",
        params=[run_id],
    ).to_arrow_table()


def set_task_budget(con: duckdb.DuckDBPyConnection, task_id: str, usd: float | None) -> None:
    """A workflow child's budget cap follows its run's budget when the operator changes it."""
    con.execute("UPDATE tasks SET max_budget_usd = ? WHERE id = ?", [usd, task_id])


def task_states(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Status, result and failure reason of tasks, by id (restart reconciliation)."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = _dicts(
        con.execute(
            "SELECT id, status, result, failure_reason, cost_usd, resume_count FROM tasks "
            f"WHERE id IN ({marks})",
            ids,
        )
    )
    return {r["id"]: r for r in rows}


def task_costs(con: duckdb.DuckDBPyConnection, ids: list[str]) -> float:
    if not ids:
        return 0.0
    marks = ", ".join("?" * len(ids))
    row = first_row(
        con.execute(
            f"SELECT coalesce(sum(cost_usd), 0) FROM usage_ledger WHERE task_id IN ({marks})", ids
        )
    )
    return float(row[0]) if row else 0.0


__all__ = [
    "LIVE_RUN_STATES",
    "MIGRATIONS",
    "RUN_COLUMNS",
    "STEP_COLUMNS",
    "WORKFLOW_COLUMNS",
]
