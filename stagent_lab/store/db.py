"""Connection ownership and the single-process lock.

DuckDB lets one process open a file read-write. We take an advisory ``flock`` on a lock file
next to the database and write our PID into it, so a second process gets an error that names
the holder instead of DuckDB's lower-level one. The kernel drops the flock when the process
dies (even on SIGKILL), so a crashed holder never blocks the workspace.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from stagent_lab.config import DB_FILENAME, LOCK_FILENAME
from stagent_lab.errors import WorkspaceError, WorkspaceLockedError
from stagent_lab.store.migrations import MigrationSet, apply_migrations


class Store:
    """Owns the DuckDB connection of one workspace.

    ``con`` is the writer connection, used only by the thread that owns writes (the engine
    thread once it runs). Readers call ``query_df`` which opens a cursor of their own.
    """

    def __init__(self, home: Path, migration_sets: list[MigrationSet] | None = None) -> None:
        self.home = home
        self.path = home / DB_FILENAME
        self.lock_path = home / LOCK_FILENAME
        self._lock_fd = self._acquire_lock()
        try:
            self.con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:  # a non-stagent process holds the file
            self._release_lock()
            m = re.search(r"PID (\d+)", str(exc))
            raise WorkspaceLockedError(str(self.home), int(m.group(1)) if m else None) from exc
        except duckdb.Error as exc:
            self._release_lock()
            raise WorkspaceError(f"cannot open {self.path}: {exc}") from exc
        self._local = threading.local()
        self._generation = 0
        try:
            self.applied_migrations = apply_migrations(self.con, migration_sets)
        except BaseException:
            self.con.close()
            self._release_lock()
            raise
        self.closed = False

    # ---- locking -------------------------------------------------------------------------

    def _acquire_lock(self) -> int:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise WorkspaceLockedError(str(self.home), holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    # ---- reading -------------------------------------------------------------------------

    def reader(self) -> duckdb.DuckDBPyConnection:
        """A cursor for the calling thread (DuckDB connections are not shared across threads)."""
        cur = getattr(self._local, "cursor", None)
        if cur is None or getattr(self._local, "generation", -1) != self._generation:
            cur = self.con.cursor()
            self._local.cursor = cur
            self._local.generation = self._generation
        return cur

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own, for a read that outlives the call that starts it (a streamed
        answer); the caller closes it."""
        if self.closed:
            raise WorkspaceError("this workspace is closed")
        return self.con.cursor()

    def query_arrow(self, sql: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        """Rows as a pyarrow Table (what the service sends over the wire)."""
        if self.closed:
            raise WorkspaceError("this workspace is closed")
        return self.reader().sql(sql, params=params or None).to_arrow_table()

    def reopen(self) -> duckdb.DuckDBPyConnection:
        """Replace the writer connection (after DuckDB invalidated it); we keep the lock."""
        with contextlib.suppress(Exception):
            self.con.close()
        self.con = duckdb.connect(str(self.path))
        self._generation += 1
        return self.con

    def query_df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        if self.closed:
            raise WorkspaceError("this workspace is closed")
        return self.reader().execute(sql, params or []).df()

    def query_rows(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        if self.closed:
            raise WorkspaceError("this workspace is closed")
        return self.reader().execute(sql, params or []).fetchall()

    # ---- writing (owner thread only) ------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self.con.execute("CHECKPOINT")
        # A reader on another thread may still be inside a query: stop it, then close.
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self.con.close()
                break
            except duckdb.Error:
                if time.monotonic() > deadline:
                    raise
                with contextlib.suppress(Exception):
                    self.con.interrupt()
                time.sleep(0.02)
        self._release_lock()


def _read_pid(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode(errors="replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
