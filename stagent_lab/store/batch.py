"""How a batch of queued writes becomes a few DuckDB statements (the writer's planner).

A DuckDB statement costs about a millisecond before it touches a row (parse, bind, plan), and
the writer runs on the engine loop, so the number of statements per batch is what the loop
pays. Whatever the number of tasks in a batch, it costs about one statement per table:

* ``agent_logs`` rows are queued as tuples (no dict per event) and appended as one Arrow table
  built column by column;
* rows of every other table become one Arrow append per table;
* updates of one row merge into one, and a run of updates of one table with the same columns
  becomes one ``UPDATE … FROM`` an Arrow table;
* every task's latest transcript goes in one ``INSERT OR REPLACE``.

Operations (tuples, first item the kind)::

    ("logs", [row_tuple, ...])                    agent_logs rows, values in LOG_COLUMNS order
    ("rows", table, [row_dict, ...])              inserts into another table
    ("update", table, key_col, key, fields)       UPDATE table SET fields WHERE key_col = key
    ("call", fn, label, task_id)                  fn(con), a feature's own SQL
    ("transcript", task_id, data, ts)             a task's latest transcript

and, made by :func:`plan` only, ``("updates", table, key_col, names, [(key, values), ...])``
and ``("transcripts", [(task_id, data, ts), ...])``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from stagent_lab._text import repair_text

Op = tuple[Any, ...]

LOG_COLUMNS = (
    "id",
    "task_id",
    "seq",
    "ts",
    "runtime_id",
    "event",
    "tool_name",
    "payload",
    "subject",
)
LOG_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("task_id", pa.string()),
        ("seq", pa.int32()),
        ("ts", pa.timestamp("us")),
        ("runtime_id", pa.string()),
        ("event", pa.string()),
        ("tool_name", pa.string()),
        ("payload", pa.string()),
        ("subject", pa.string()),
    ]
)

LEDGER_COLUMNS = (
    "id",
    "task_id",
    "project_id",
    "profile_id",
    "activity",
    "runtime_id",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "pricing_source",
    "estimated",
    "status",
    "started_at",
    "finished_at",
)
LEDGER_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("task_id", pa.string()),
        ("project_id", pa.string()),
        ("profile_id", pa.string()),
        ("activity", pa.string()),
        ("runtime_id", pa.string()),
        ("provider", pa.string()),
        ("model", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cache_read_tokens", pa.int64()),
        ("cache_write_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("pricing_source", pa.string()),
        ("estimated", pa.bool_()),
        ("status", pa.string()),
        ("started_at", pa.timestamp("us")),
        ("finished_at", pa.timestamp("us")),
    ]
)
TRANSCRIPT_SCHEMA = pa.schema(
    [("task_id", pa.string()), ("data", pa.string()), ("updated_at", pa.timestamp("us"))]
)
_TYPED = {"usage_ledger": (LEDGER_COLUMNS, LEDGER_SCHEMA)}
BULK_UPDATE_MIN = 3  # fewer updates than this cost less as plain statements


def plan(batch: list[Op]) -> list[Op]:
    """The batch in the order that costs DuckDB least, with the same outcome.

    Inserts of each table become one append, first (a row never depends on an update or a
    call that comes after it in the same batch). Several updates of one row become one update
    (later fields win), at the place of the last one; then each run of updates between two
    calls is grouped by table and columns. Calls keep their order among the rest; transcripts
    go last, in one statement.
    """
    if len(batch) < 2:
        return batch
    logs: list[tuple[Any, ...]] = []
    inserts: dict[str, list[dict[str, Any]]] = {}
    last_update: dict[tuple[str, str, Any], int] = {}
    for i, op in enumerate(batch):
        kind = op[0]
        if kind == "logs":
            logs.extend(op[1])
        elif kind == "rows":
            inserts.setdefault(op[1], []).extend(op[2])
        elif kind == "update":
            last_update[(op[1], op[2], op[3])] = i
    merged: dict[tuple[str, str, Any], dict[str, Any]] = {}
    rest: list[Op] = []
    run: list[Op] = []
    transcripts: list[tuple[str, str, Any]] = []
    for i, op in enumerate(batch):
        kind = op[0]
        if kind in ("logs", "rows"):
            continue
        if kind == "update":
            key = (op[1], op[2], op[3])
            merged.setdefault(key, {}).update(op[4])
            if last_update[key] == i:
                run.append(("update", op[1], op[2], op[3], merged[key]))
            continue
        if kind == "transcript":
            transcripts.append((op[1], op[2], op[3]))
            continue
        rest.extend(_group_updates(run))
        run = []
        rest.append(op)
    rest.extend(_group_updates(run))
    out: list[Op] = [("logs", logs)] if logs else []
    out += [("rows", table, rows) for table, rows in inserts.items()]
    out += rest
    if len(transcripts) == 1:
        out.append(("transcript", *transcripts[0]))
    elif transcripts:
        out.append(("transcripts", transcripts))
    return out


def _group_updates(run: list[Op]) -> list[Op]:
    """A run of single-row updates (distinct rows, nothing between them) as bulk updates.

    Rows are distinct within a run, so updates of one table commute, except when the table is
    updated through two different key columns (the same row could be reached twice): such a
    table keeps its updates one by one, in order.
    """
    if len(run) < BULK_UPDATE_MIN:
        return run
    key_cols: dict[str, set[str]] = {}
    for op in run:
        key_cols.setdefault(op[1], set()).add(op[2])
    groups: dict[tuple[str, str, tuple[str, ...]], list[tuple[Any, tuple[Any, ...]]]] = {}
    out: list[Op] = []
    for op in run:
        _, table, key_col, key, fields = op
        if len(key_cols[table]) > 1:
            out.append(op)
            continue
        names = tuple(fields)
        groups.setdefault((table, key_col, names), []).append((key, tuple(fields.values())))
    for (table, key_col, names), rows in groups.items():
        if len(rows) < BULK_UPDATE_MIN:
            out += [_single(table, key_col, names, key, values) for key, values in rows]
        else:
            out.append(("updates", table, key_col, names, rows))
    return out


def _single(table: str, key_col: str, names: tuple[str, ...], key: Any, values: Any) -> Op:
    return ("update", table, key_col, key, dict(zip(names, values, strict=True)))


def units(batch: list[Op]) -> list[Op]:
    """The batch as single-row operations, in order (row runs split into one op per row)."""
    out: list[Op] = []
    for op in batch:
        kind = op[0]
        if kind == "logs":
            out.extend(("logs", [row]) for row in op[1])
        elif kind == "rows":
            out.extend(("rows", op[1], [row]) for row in op[2])
        else:
            out.append(op)
    return out


def op_rows(op: Op) -> int:
    """How many queued rows an operation holds (what ``pending`` counts)."""
    kind = op[0]
    if kind == "logs":
        return len(op[1])
    if kind == "rows":
        return len(op[2])
    return 1


# ---- applying one planned operation ----------------------------------------------------


def apply(con: duckdb.DuckDBPyConnection, op: Op, clean: Callable[[str], str]) -> None:
    """Run one planned operation on ``con`` (inside the writer's transaction).

    ``clean`` repairs and redacts text bound for any table but ``agent_logs``, whose payloads
    the event log has already cleaned (there, text is only repaired when Arrow refuses it).
    """
    kind = op[0]
    if kind == "logs":
        columns = list(zip(*op[1], strict=True))
        arrays = [
            _array(col, field.type, repair_text)
            for col, field in zip(columns, LOG_SCHEMA, strict=True)
        ]
        _append(con, "agent_logs", LOG_COLUMNS, pa.Table.from_arrays(arrays, schema=LOG_SCHEMA))
    elif kind == "rows":
        _insert_rows(con, op[1], op[2], clean)
    elif kind == "update":
        _, table, key_col, key, fields = op
        sets = ", ".join(f"{k} = ?" for k in fields)
        con.execute(
            f"UPDATE {table} SET {sets} WHERE {key_col} = ?",
            [*(_value(v, clean) for v in fields.values()), key],
        )
    elif kind == "updates":
        _bulk_update(con, op, clean)
    elif kind == "call":
        op[1](con)
    elif kind == "transcript":
        _, task_id, data, ts = op
        con.execute(
            "INSERT OR REPLACE INTO task_transcripts VALUES (?, ?, ?)", [task_id, clean(data), ts]
        )
    elif kind == "transcripts":
        ids, data, stamps = zip(*op[1], strict=True)
        tbl = pa.Table.from_arrays(
            [
                pa.array(ids, pa.string()),
                pa.array([clean(d) for d in data], pa.string()),
                pa.array(stamps, pa.timestamp("us")),
            ],
            schema=TRANSCRIPT_SCHEMA,
        )
        _run_with(
            con,
            "_batch_transcripts",
            tbl,
            "INSERT OR REPLACE INTO task_transcripts (task_id, data, updated_at) "
            "SELECT task_id, data, updated_at FROM {name}",
        )
    else:  # pragma: no cover - a programming error, not data
        raise ValueError(f"unknown writer operation {kind!r}")


def _insert_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: list[dict[str, Any]],
    clean: Callable[[str], str],
) -> None:
    typed = _TYPED.get(table)
    if typed is not None:
        cols, schema = typed
        arrays = [
            _array([r.get(c) for r in rows], f.type, clean)
            for c, f in zip(cols, schema, strict=True)
        ]
        _append(con, table, cols, pa.Table.from_arrays(arrays, schema=schema))
        return
    if len(rows) > 1 and all(r.keys() == rows[0].keys() for r in rows):
        # Many rows of one shape (a burst of submits): one Arrow append, not N INSERTs.
        cols = tuple(rows[0])
        tbl = pa.Table.from_pylist([{c: _value(r[c], clean) for c in cols} for r in rows])
        _append(con, table, cols, tbl)
        return
    for row in rows:
        marks = ", ".join("?" * len(row))
        con.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks})",
            [_value(v, clean) for v in row.values()],
        )


def _bulk_update(con: duckdb.DuckDBPyConnection, op: Op, clean: Callable[[str], str]) -> None:
    _, table, key_col, names, rows = op
    keys = [k for k, _ in rows]
    columns = list(zip(*(values for _, values in rows), strict=True))
    try:
        arrays = [pa.array(keys)]
        arrays += [pa.array([_value(v, clean) for v in col]) for col in columns]
    except (pa.ArrowException, TypeError, ValueError):
        # Values Arrow cannot type as one column (mixed kinds): one statement per row.
        for key, values in rows:
            apply(con, _single(table, key_col, names, key, values), clean)
        return
    tbl = pa.Table.from_arrays(arrays, names=["_key", *names])
    sets = ", ".join(f"{n} = {{name}}.{n}" for n in names)
    _run_with(
        con,
        f"_batch_update_{table}",
        tbl,
        f"UPDATE {table} SET {sets} FROM {{name}} WHERE {table}.{key_col} = {{name}}._key",
    )


def _append(con: duckdb.DuckDBPyConnection, table: str, cols: tuple[str, ...], tbl: Any) -> None:
    names = ", ".join(cols)
    sql = f"INSERT INTO {table} ({names}) SELECT {names} FROM {{name}}"
    _run_with(con, f"_batch_{table}", tbl, sql)


def _run_with(con: duckdb.DuckDBPyConnection, name: str, tbl: Any, sql: str) -> None:
    con.register(name, tbl)
    try:
        con.execute(sql.format(name=name))
    finally:
        con.unregister(name)


def _array(values: Any, type_: pa.DataType, clean: Callable[[str], str]) -> pa.Array:
    """One Arrow column; text goes through ``clean`` (for logs only when Arrow refuses it)."""
    if not pa.types.is_string(type_):
        return pa.array(values, type_)
    if clean is repair_text:
        try:
            return pa.array(values, type_)
        except UnicodeEncodeError:  # a lone surrogate: repair this column and try again
            pass
    return pa.array([clean(v) if isinstance(v, str) else v for v in values], type_)


def _value(v: Any, clean: Callable[[str], str]) -> Any:
    return clean(v) if isinstance(v, str) else v
