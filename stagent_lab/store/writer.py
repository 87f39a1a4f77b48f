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

from stagent_lab._text import repair_text
from stagent_lab.store import batch as planner
from stagent_lab.store.batch import (  # noqa: F401  (re-exported: the writer's row shapes)
    LEDGER_COLUMNS,
    LEDGER_SCHEMA,
    LOG_COLUMNS,
    LOG_SCHEMA,
    Op,
)
from stagent_lab.store.rows import first_row

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 10.0


@dataclass
class Dropped:
    """An operation that could not be written and was skipped (the rest committed)."""

    label: str  # "agent_logs row", "tasks update", or the label given to defer()
    task_id: str | None
    error: str


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
        # Transactions committed so far. A reader that keeps rows of a table only this
        # writer changes (agent_memory: the scopes runs rank) drops them when this moves.
        self.commits = 0
        self.dropped: list[Dropped] = []
        self.failing_since: float | None = None
        self.retry_at = 0.0
        self._delay = RETRY_FIRST_S
        self.flushed_at = clock()  # when the last flush with something to write started
        self.urgent = False  # somebody waits for the next commit (the owner flushes sooner)
        # Called after each commit with the highest agent_logs id committed so far (what a
        # client may treat as durable); the benchmarks time event-to-store latency with it.
        self.on_commit: list[Callable[[int], None]] = []
        next_id = first_row(con.execute("SELECT coalesce(max(id), 0) + 1 FROM agent_logs"))
        self._next_id = int(next_id[0]) if next_id else 1
        self.committed_log_id = self._next_id - 1

    # ---- queueing (owner thread) -----------------------------------------------------------

    def next_log_id(self) -> int:
        nid = self._next_id
        self._next_id += 1
        return nid

    @property
    def last_log_id(self) -> int:
        return self._next_id - 1

    def append_log(self, row: tuple[Any, ...]) -> None:
        """Queue an ``agent_logs`` row as a tuple in ``LOG_COLUMNS`` order (the fast path:
        no dict per event; the batch is turned into columns once, at the flush). Its text is
        already cleaned and redacted by the caller; what Arrow still refuses is repaired."""
        ops = self._ops
        if ops and ops[-1][0] == "logs":
            ops[-1][1].append(row)
        else:
            ops.append(("logs", [row]))
        self._pending_rows += 1

    def add_log(self, row: dict[str, Any]) -> None:
        """Queue an ``agent_logs`` row given as a dict (missing columns are NULL)."""
        self.append_log(tuple(row.get(c) for c in LOG_COLUMNS))

    def add_ledger(self, row: dict[str, Any]) -> None:
        self._add_row("usage_ledger", row)

    def insert(self, table: str, row: dict[str, Any]) -> None:
        """Queue an INSERT of ``row`` into ``table`` (column names are the row's keys)."""
        if table == "agent_logs":
            self.add_log(row)
        else:
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

    def commit_due(self, every: float) -> bool:
        """A timed commit is due: rows wait, no retry back-off holds them, and either somebody
        waits for the commit (``urgent``) or the last flush is ``every`` seconds old."""
        now = self._clock()
        if not self.pending or now < self.retry_at:
            return False
        return self.urgent or now - self.flushed_at >= every

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
        self.flushed_at, self.urgent = self._clock(), False
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
        units = planner.units(batch)
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
            for op in planner.plan(batch):
                planner.apply(con, op, self._clean_text)
            con.execute("COMMIT")
            self.commits += 1
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

    # ---- failures --------------------------------------------------------------------------

    def _report(self, op: Op, exc: BaseException) -> None:
        kind = op[0]
        if kind == "logs":
            label, task_id = "agent_logs row", op[1][0][1]
        elif kind == "rows":
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
        self._pending_rows = sum(planner.op_rows(op) for op in self._ops)

    def _succeeded(self) -> None:
        if self.failing_since is not None:
            self.failing_since = None
            with contextlib.suppress(Exception):
                self._on_warning("the workspace store takes writes again; pending rows written")
        self._delay = RETRY_FIRST_S
        self.retry_at = 0.0

    def _count(self, batch: list[Op]) -> int:
        written = 0
        top = self.committed_log_id
        for op in batch:
            if op[0] == "logs":
                rows = op[1]
                written += len(rows)
                top = max(top, rows[-1][0] if isinstance(rows[-1][0], int) else top)
            elif op[0] == "rows":
                written += len(op[2])
        self.rows_written += written
        if written:
            self.batches_written += 1
        if top != self.committed_log_id:
            self.committed_log_id = top
            for fn in self.on_commit:
                try:
                    fn(top)
                except Exception:
                    pass
        return written
