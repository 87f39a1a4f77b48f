"""The batched event writer.

Runtimes can emit thousands of events a second. Rows are collected in memory and appended as
Arrow tables (one INSERT ... SELECT per batch), never one INSERT per row. A batch is flushed
when it reaches ``max_rows`` or when the engine's timer fires (~100 ms). Task inserts, status
updates and transcripts ride in the same batch (``defer``/``set_transcript``), so a status change
and the log rows before it commit in one transaction; inbox rows, which another thread must see
at once, use ``flush(extra=...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

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
    ]
)

LEDGER_COLUMNS = [
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
]


class EventWriter:
    def __init__(self, con: duckdb.DuckDBPyConnection, max_rows: int = 2000) -> None:
        self.con = con
        self.max_rows = max_rows
        self._logs: list[dict[str, Any]] = []
        self._ledger: list[dict[str, Any]] = []
        # Only the latest transcript per task matters, so later saves replace earlier ones.
        self._transcripts: dict[str, tuple[str, Any]] = {}
        # Statement callbacks (task inserts, status updates) run in order in the next batch,
        # in the same transaction as the log rows that precede them.
        self._deferred: list[Callable[[duckdb.DuckDBPyConnection], None]] = []
        self.rows_written = 0
        self.batches_written = 0
        next_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM agent_logs").fetchone()
        self._next_id = int(next_id[0]) if next_id else 1

    def next_log_id(self) -> int:
        nid = self._next_id
        self._next_id += 1
        return nid

    def add_log(self, row: dict[str, Any]) -> None:
        self._logs.append(row)

    def add_ledger(self, row: dict[str, Any]) -> None:
        self._ledger.append(row)

    def defer(self, fn: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        self._deferred.append(fn)

    def set_transcript(self, task_id: str, data: str, ts: Any) -> None:
        self._transcripts[task_id] = (data, ts)

    def pending_transcript(self, task_id: str) -> str | None:
        entry = self._transcripts.get(task_id)
        return entry[0] if entry else None

    @property
    def pending(self) -> int:
        return len(self._logs) + len(self._ledger) + len(self._transcripts) + len(self._deferred)

    def should_flush(self) -> bool:
        return self.pending >= self.max_rows

    def flush(self, extra: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> int:
        """Write buffered rows (and run ``extra`` in the same transaction). Returns rows written."""
        logs, ledger, transcripts = self._logs, self._ledger, self._transcripts
        deferred = self._deferred
        if not logs and not ledger and not transcripts and not deferred and extra is None:
            return 0
        self._logs, self._ledger, self._transcripts, self._deferred = [], [], {}, []
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if logs:
                batch = pa.Table.from_pylist(logs, schema=LOG_SCHEMA)
                con.register("_log_batch", batch)
                con.execute("INSERT INTO agent_logs SELECT * FROM _log_batch")
                con.unregister("_log_batch")
            if ledger:
                cols = {c: [r.get(c) for r in ledger] for c in LEDGER_COLUMNS}
                table = pa.table(cols)
                con.register("_ledger_batch", table)
                con.execute(
                    f"INSERT INTO usage_ledger ({', '.join(LEDGER_COLUMNS)}) "
                    f"SELECT {', '.join(LEDGER_COLUMNS)} FROM _ledger_batch"
                )
                con.unregister("_ledger_batch")
            if transcripts:
                table = pa.table(
                    {
                        "task_id": list(transcripts),
                        "data": [v[0] for v in transcripts.values()],
                        "updated_at": pa.array(
                            [v[1] for v in transcripts.values()], pa.timestamp("us")
                        ),
                    }
                )
                con.register("_transcript_batch", table)
                con.execute(
                    "INSERT OR REPLACE INTO task_transcripts SELECT * FROM _transcript_batch"
                )
                con.unregister("_transcript_batch")
            for fn in deferred:
                fn(con)
            if extra is not None:
                extra(con)
        except BaseException:
            con.execute("ROLLBACK")
            # Put the rows back so nothing is lost; the caller sees the error.
            self._logs = logs + self._logs
            self._ledger = ledger + self._ledger
            self._transcripts = {**transcripts, **self._transcripts}
            self._deferred = deferred + self._deferred
            raise
        con.execute("COMMIT")
        written = len(logs) + len(ledger)
        self.rows_written += written
        if written:
            self.batches_written += 1
        return written
