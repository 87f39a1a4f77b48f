"""The batched writer: every write of the engine goes through it, in order, and none is lost.

Runtimes can emit thousands of events a second. Rows are collected in memory and appended as
Arrow tables (one INSERT … SELECT per run of rows), never one INSERT per row. Everything else a
task writes (its insert, status changes, inbox rows, memory, ledger, transcript) is queued as an
operation in the same list, so one batch commits them in the order they happened: a status
change and the log rows before it commit together, and an outcome memory can never commit before
the status it describes.

What cannot happen any more:

* **One bad value poisons everything.** Text is repaired before it is written (lone surrogates
  become U+FFFD) and redacted; a batch that still fails for a data error is split in halves until
  the bad operation is alone. That one is skipped and reported to ``on_dropped`` (the engine logs
  an ``error`` event for its task); everything else commits.
* **A failed commit drops the batch.** A storage failure (disk full, I/O error, an invalidated
  database) keeps every row queued, in order, and retries with a growing delay (0.2 s → 10 s),
  reopening the connection when DuckDB invalidated it. ``on_warning`` is told once when writes
  start failing and once when they recover.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from stagent_lab._text import repair_text
from stagent_lab.store.rows import first_row

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
_BULK = {"agent_logs": (LOG_COLUMNS, LOG_SCHEMA), "usage_ledger": (LEDGER_COLUMNS, LEDGER_SCHEMA)}

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 10.0


@dataclass
class Dropped:
    """An operation that could not be written and was skipped (the rest committed)."""

    label: str  # "agent_logs row", "tasks update", or the label given to defer()
    task_id: str | None
    error: str


# An operation: ("rows", table, [row, ...]) | ("update", table, key_col, key, fields)
#             | ("call", fn, label, task_id) | ("transcript", task_id, data, ts)
Op = tuple[Any, ...]


class StorageUnavailable(Exception):
    """Raised inside a flush when the store cannot take writes now (rows are kept)."""


def is_storage_error(exc: BaseException) -> bool:
    """True for failures of the storage (keep and retry), False for bad data (isolate)."""
    if isinstance(exc, OSError | duckdb.IOException | StorageUnavailable):
        return True
    if isinstance(exc, getattr(duckdb, "FatalException", ()) or ()):
        return True
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("no space left", "disk full", "database has been invalidated", "i/o error")
    )


class EventWriter:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        clean: Callable[[str], str] | None = None,
        on_dropped: Callable[[Dropped], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
        reopen: Callable[[], duckdb.DuckDBPyConnection] | None = None,
        max_rows: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.con = con
        self.max_rows = max_rows
        self._clean_text = clean or repair_text
        self._on_dropped = on_dropped or (lambda d: None)
        self._on_warning = on_warning or (lambda m: None)
        self._reopen = reopen
        self._clock = clock
        self._ops: list[Op] = []
        # Only the latest transcript per task matters, so later saves replace earlier ones.
        self._transcripts: dict[str, tuple[str, Any]] = {}
        self._pending_rows = 0
        self.rows_written = 0
        self.batches_written = 0
        self.dropped: list[Dropped] = []
        self.failing_since: float | None = None
        self.retry_at = 0.0
        self._delay = RETRY_FIRST_S
        next_id = first_row(con.execute("SELECT coalesce(max(id), 0) + 1 FROM agent_logs"))
        self._next_id = int(next_id[0]) if next_id else 1

    # ---- queueing (owner thread) -----------------------------------------------------------

    def next_log_id(self) -> int:
        nid = self._next_id
        self._next_id += 1
        return nid

    @property
    def last_log_id(self) -> int:
        return self._next_id - 1

    def add_log(self, row: dict[str, Any]) -> None:
        """Queue an ``agent_logs`` row (its text already cleaned and redacted by the caller)."""
        self._add_row("agent_logs", row)

    def add_ledger(self, row: dict[str, Any]) -> None:
        self._add_row("usage_ledger", row)

    def insert(self, table: str, row: dict[str, Any]) -> None:
        """Queue an INSERT of ``row`` into ``table`` (column names are the row's keys)."""
        self._add_row(table, row)

    def _add_row(self, table: str, row: dict[str, Any]) -> None:
        ops = self._ops
        if ops and ops[-1][0] == "rows" and ops[-1][1] == table:
            ops[-1][2].append(row)
        else:
            ops.append(("rows", table, [row]))
        self._pending_rows += 1

    def update(self, table: str, key_col: str, key: Any, fields: dict[str, Any]) -> None:
        """Queue ``UPDATE table SET fields WHERE key_col = key``."""
        self._ops.append(("update", table, key_col, key, fields))
        self._pending_rows += 1

    def defer(
        self,
        fn: Callable[[duckdb.DuckDBPyConnection], None],
        label: str = "deferred write",
        task_id: str | None = None,
    ) -> None:
        """Queue ``fn(con)``: it runs in the next batch, in order, inside its transaction."""
        self._ops.append(("call", fn, label, task_id))
        self._pending_rows += 1

    def set_transcript(self, task_id: str, data: str, ts: Any) -> None:
        self._transcripts[task_id] = (data, ts)

    def pending_transcript(self, task_id: str) -> str | None:
        entry = self._transcripts.get(task_id)
        return entry[0] if entry else None

    @property
    def pending(self) -> int:
        return self._pending_rows + len(self._transcripts)

    def should_flush(self) -> bool:
        return self.pending >= self.max_rows and self._clock() >= self.retry_at

    # ---- flushing --------------------------------------------------------------------------

    def flush(self, extra: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> int:
        """Write everything queued (and run ``extra`` last, in the same transaction).

        Returns the number of rows written. A data error isolates and skips the bad operation
        (``extra`` included: then its error is raised after the rest committed). A storage
        error keeps everything, ``extra`` included, for the next attempt, and returns 0.
        """
        ops = self._ops
        if extra is not None:
            ops = [*ops, ("call", extra, "extra", None)]
        transcripts = self._transcripts
        if not ops and not transcripts:
            return 0
        self._ops, self._transcripts, self._pending_rows = [], {}, 0
        batch = ops + [("transcript", k, v[0], v[1]) for k, v in transcripts.items()]
        try:
            self._commit(batch)
        except StorageUnavailable:
            self._requeue(batch)
            return 0
        except Exception as exc:
            if is_storage_error(exc):
                self._storage_failed(exc, batch)
                return 0
            return self._isolate(batch, extra)
        self._succeeded()
        return self._count(batch)

    def _isolate(self, batch: list[Op], extra: Any) -> int:
        """Commit ``batch`` piece by piece, skipping the operations that fail on their own."""
        units = _units(batch)
        written = 0
        extra_error: BaseException | None = None
        stack = [units]
        while stack:
            part = stack.pop()
            try:
                self._commit(part)
            except Exception as exc:
                if is_storage_error(exc):
                    rest = [op for chunk in reversed(stack) for op in chunk]
                    self._storage_failed(exc, part + rest)
                    return written
                if len(part) == 1:
                    op = part[0]
                    if op[0] == "call" and op[1] is extra:
                        extra_error = exc
                    else:
                        self._report(op, exc)
                    continue
                mid = len(part) // 2
                stack.append(part[mid:])
                stack.append(part[:mid])
                continue
            written += self._count(part)
        self._succeeded()
        if extra_error is not None:
            raise extra_error
        return written

    def _commit(self, batch: list[Op]) -> None:
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            for op in _plan(batch):
                self._apply(con, op)
            con.execute("COMMIT")
        except BaseException:
            try:
                con.execute("ROLLBACK")
            except Exception as exc:  # the connection itself is gone (invalidated database)
                if self._reopen is None:
                    raise StorageUnavailable(str(exc)) from exc
                try:
                    self.con = self._reopen()
                except Exception as again:
                    raise StorageUnavailable(str(again)) from again
            raise

    def _apply(self, con: duckdb.DuckDBPyConnection, op: Op) -> None:
        kind = op[0]
        if kind == "rows":
            _, table, rows = op
            bulk = _BULK.get(table)
            if bulk is not None:
                cols, schema = bulk
                clean = self._clean_text if table != "agent_logs" else repair_text
                data = {c: [r.get(c) for r in rows] for c in cols}
                for c, f in zip(cols, schema, strict=True):
                    if pa.types.is_string(f.type):
                        data[c] = [clean(v) if isinstance(v, str) else v for v in data[c]]
                tbl = pa.table(data, schema=schema)
                name = f"_batch_{table}"
                con.register(name, tbl)
                try:
                    con.execute(
                        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} "
                        f"FROM {name}"
                    )
                finally:
                    con.unregister(name)
                return
            if len(rows) > 1 and all(r.keys() == rows[0].keys() for r in rows):
                # Many rows of one shape (a burst of submits): one Arrow append, not N INSERTs.
                cols = list(rows[0])
                tbl = pa.Table.from_pylist([{c: self._value(r[c]) for c in cols} for r in rows])
                name = f"_batch_{table}"
                con.register(name, tbl)
                try:
                    con.execute(
                        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} "
                        f"FROM {name}"
                    )
                finally:
                    con.unregister(name)
                return
            for row in rows:
                cols = list(row)
                marks = ", ".join("?" * len(cols))
                con.execute(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})",
                    [self._value(v) for v in row.values()],
                )
        elif kind == "update":
            _, table, key_col, key, fields = op
            sets = ", ".join(f"{k} = ?" for k in fields)
            con.execute(
                f"UPDATE {table} SET {sets} WHERE {key_col} = ?",
                [*(self._value(v) for v in fields.values()), key],
            )
        elif kind == "call":
            op[1](con)
        elif kind == "transcript":
            _, task_id, data, ts = op
            con.execute(
                "INSERT OR REPLACE INTO task_transcripts VALUES (?, ?, ?)",
                [task_id, self._clean_text(data), ts],
            )

    def _value(self, v: Any) -> Any:
        return self._clean_text(v) if isinstance(v, str) else v

    # ---- failures --------------------------------------------------------------------------

    def _report(self, op: Op, exc: BaseException) -> None:
        kind = op[0]
        if kind == "rows":
            label, task_id = f"{op[1]} row", op[2][0].get("task_id")
        elif kind == "update":
            label = f"{op[1]} update"
            task_id = op[3] if op[1] == "tasks" else op[4].get("task_id")
        elif kind == "call":
            label, task_id = op[2], op[3]
        else:
            label, task_id = "transcript", op[1]
        dropped = Dropped(label, task_id, f"{type(exc).__name__}: {exc}"[:500])
        self.dropped.append(dropped)
        del self.dropped[:-100]
        try:
            self._on_dropped(dropped)
        except Exception:
            pass

    def _storage_failed(self, exc: BaseException, batch: list[Op]) -> None:
        self._requeue(batch)
        now = self._clock()
        if self.failing_since is None:
            self.failing_since = now
            self._on_warning(
                f"the workspace store cannot take writes ({type(exc).__name__}: {exc}); "
                f"{self.pending} pending rows are kept and retried"
            )
        self.retry_at = now + self._delay
        self._delay = min(self._delay * 2, RETRY_MAX_S)

    def _requeue(self, batch: list[Op]) -> None:
        ops = [op for op in batch if op[0] != "transcript"]
        for op in batch:
            if op[0] == "transcript" and op[1] not in self._transcripts:
                self._transcripts[op[1]] = (op[2], op[3])
        # Keep the failed rows first: they happened before anything queued since.
        merged: list[Op] = []
        for op in ops:
            if op[0] == "call" and op[2] == "extra":
                op = ("call", op[1], "deferred write", op[3])
            merged.append(op)
        self._ops = merged + self._ops
        self._pending_rows = sum(len(op[2]) if op[0] == "rows" else 1 for op in self._ops)

    def _succeeded(self) -> None:
        if self.failing_since is not None:
            self.failing_since = None
            with contextlib.suppress(Exception):
                self._on_warning("the workspace store takes writes again; pending rows written")
        self._delay = RETRY_FIRST_S
        self.retry_at = 0.0

    def _count(self, batch: list[Op]) -> int:
        written = sum(len(op[2]) for op in batch if op[0] == "rows")
        self.rows_written += written
        if written:
            self.batches_written += 1
        return written


def _plan(batch: list[Op]) -> list[Op]:
    """The batch in the order that costs DuckDB least, with the same outcome.

    Inserts of each table become one append, first (a row never depends on an update or a
    call that comes after it in the same batch). Several updates of one row become one update
    (later fields win), at the place of the last one. Calls keep their order among the rest.
    """
    if len(batch) < 3:
        return batch
    inserts: dict[str, list[dict[str, Any]]] = {}
    last_update: dict[tuple[str, str, Any], int] = {}
    for i, op in enumerate(batch):
        if op[0] == "rows":
            inserts.setdefault(op[1], []).extend(op[2])
        elif op[0] == "update":
            last_update[(op[1], op[2], op[3])] = i
    merged: dict[tuple[str, str, Any], dict[str, Any]] = {}
    rest: list[Op] = []
    for i, op in enumerate(batch):
        if op[0] == "rows":
            continue
        if op[0] == "update":
            key = (op[1], op[2], op[3])
            merged.setdefault(key, {}).update(op[4])
            if last_update[key] == i:
                rest.append(("update", op[1], op[2], op[3], merged[key]))
            continue
        rest.append(op)
    return [("rows", table, rows) for table, rows in inserts.items()] + rest


def _units(batch: list[Op]) -> list[Op]:
    """The batch as single-row operations, in order (row runs split into one op per row)."""
    out: list[Op] = []
    for op in batch:
        if op[0] == "rows":
            out.extend(("rows", op[1], [row]) for row in op[2])
        else:
            out.append(op)
    return out
