"""The writer cannot lose data: a bad row is isolated, a failed commit is kept and retried."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from stagent_lab.store import migrations as mig
from stagent_lab.store.writer import EventWriter, is_storage_error

NOW = dt.datetime(2026, 11, 1, 12, 0, 0)


@pytest.fixture
def con(tmp_path):
    c = duckdb.connect(str(tmp_path / "w.duckdb"))
    mig.apply_migrations(c)
    yield c
    c.close()


def log_row(writer: EventWriter, task: str, seq: int, payload: str = "{}") -> dict:
    return {
        "id": writer.next_log_id(),
        "task_id": task,
        "seq": seq,
        "ts": NOW,
        "runtime_id": "scripted",
        "event": "notice",
        "tool_name": None,
        "payload": payload,
        "subject": "task",
    }


class FailingCommits:
    """A connection whose COMMIT fails with an I/O error ``failures`` times (a full disk)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, failures: int) -> None:
        self._con = con
        self.failures = failures
        self.commits_refused = 0

    def execute(self, sql, *args, **kw):
        if sql == "COMMIT" and self.failures > 0:
            self.failures -= 1
            self.commits_refused += 1
            raise duckdb.IOException("IO Error: No space left on device")
        return self._con.execute(sql, *args, **kw)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_one_bad_row_is_skipped_and_reported_the_rest_commit(con):
    dropped = []
    writer = EventWriter(con, on_dropped=dropped.append)
    for seq in range(1, 11):
        # seq is an INTEGER column: 2**40 cannot be stored, the other nine can.
        writer.add_log(log_row(writer, "t1", 2**40 if seq == 6 else seq))
    writer.update("tasks", "id", "nope", {"status": "running"})  # a no-op, not an error
    writer.flush()
    stored = [r[0] for r in con.execute("SELECT seq FROM agent_logs ORDER BY seq").fetchall()]
    assert stored == [1, 2, 3, 4, 5, 7, 8, 9, 10]
    assert len(dropped) == 1
    assert dropped[0].label == "agent_logs row" and dropped[0].task_id == "t1"
    assert "1099511627776" in dropped[0].error  # the error names the value
    # The writer keeps working afterwards.
    writer.add_log(log_row(writer, "t1", 11))
    writer.flush()
    assert con.execute("SELECT count(*) FROM agent_logs").fetchone()[0] == 10


def test_text_that_cannot_be_encoded_is_repaired_not_dropped(con):
    dropped = []
    writer = EventWriter(con, on_dropped=dropped.append)
    name = b"report-\xff\xfe.txt".decode("utf-8", "surrogateescape")  # a non-UTF-8 file name
    writer.add_log(log_row(writer, "t1", 1, payload=f'{{"output": "{name}"}}'))
    writer.insert("projects", {"id": "p", "name": f"lone {chr(0xD800)}", "working_directory": "/",
                               "created_at": NOW})  # fmt: skip
    writer.flush()
    assert dropped == []
    payload = con.execute("SELECT payload FROM agent_logs").fetchone()[0]
    assert "report-\ufffd\ufffd.txt" in payload
    assert con.execute("SELECT name FROM projects").fetchone()[0] == "lone \ufffd"


def test_a_failed_commit_keeps_every_row_and_retries_in_order(con):
    warnings = []
    failing = FailingCommits(con, failures=3)
    writer = EventWriter(failing, on_warning=warnings.append)
    rows = [log_row(writer, "t1", i) for i in range(1, 6)]
    for row in rows[:3]:
        writer.add_log(row)
    assert writer.flush() == 0  # refused: nothing written, nothing lost
    assert writer.pending == 3 and writer.retry_at > 0
    for row in rows[3:]:
        writer.add_log(row)  # later rows queue behind the failed ones
    assert writer.flush() == 0
    assert writer.flush() == 0
    assert failing.commits_refused == 3
    assert writer.commits == 0  # what readers compare: nothing new is in the store
    assert len(warnings) == 1 and "cannot take writes" in warnings[0]
    assert writer.flush() == 5  # space is back
    assert writer.commits == 1
    seqs = [r[0] for r in con.execute("SELECT seq FROM agent_logs ORDER BY id").fetchall()]
    assert seqs == [1, 2, 3, 4, 5]
    assert len(warnings) == 2 and "again" in warnings[1]
    assert writer.retry_at == 0.0


def test_extra_operation_error_is_raised_after_the_rest_commit(con):
    writer = EventWriter(con)
    writer.add_log(log_row(writer, "t1", 1))

    def bad(c):
        c.execute("INSERT INTO nowhere VALUES (1)")

    with pytest.raises(duckdb.CatalogException):
        writer.flush(extra=bad)
    assert con.execute("SELECT count(*) FROM agent_logs").fetchone()[0] == 1


def test_storage_errors_are_told_apart_from_bad_data():
    assert is_storage_error(duckdb.IOException("disk"))
    assert is_storage_error(OSError(28, "No space left on device"))
    assert not is_storage_error(duckdb.ConversionException("bad value"))
    assert not is_storage_error(ValueError("x"))


def test_a_timed_commit_is_due_every_interval_or_at_once_when_somebody_waits(con):
    """The engine's flush loop ticks every 0.1 s but commits only when ``commit_due``: rows
    wait, no back-off holds them, and the last flush is old enough or somebody waits."""
    now = [100.0]
    writer = EventWriter(con, clock=lambda: now[0])
    every = 0.25
    assert not writer.commit_due(every)  # nothing queued
    writer.add_log(log_row(writer, "t1", 1))
    now[0] += 0.1
    assert not writer.commit_due(every)  # 0.1 s since the writer started: not yet
    now[0] += 0.15
    assert writer.commit_due(every)  # 0.25 s
    writer.flush()
    assert writer.flushed_at == now[0] and not writer.urgent
    writer.add_log(log_row(writer, "t1", 2))
    now[0] += 0.1
    assert not writer.commit_due(every)
    writer.urgent = True  # a remember waits for this batch
    assert writer.commit_due(every)
    writer.flush()
    assert not writer.urgent
    rows = con.execute("SELECT seq FROM agent_logs ORDER BY seq").fetchall()
    assert rows == [(1,), (2,)]
