"""The event record: every event is a row for the writer and a message for subscribers.

An event's ``id`` is its ``agent_logs.id``: one increasing sequence for the whole workspace,
which is the position a client resumes from (``subscribe(since=id)``). Streamed text fragments
(``assistant_delta``) are published live but not stored, so they carry ``id = None``; the full
text is stored as one ``assistant_text`` event when the block ends.

Subscribers are called on the engine thread and must be quick (append to a buffer and return).
The subscriber list is copy-on-write under a lock, so subscribing from any thread is safe and
publishing never takes a lock. The last ``RING`` events stay in memory so a subscriber can
catch up without reading the store.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stagent_lab._text import repair_text
from stagent_lab.store import logs as logs_repo

if TYPE_CHECKING:
    from stagent_lab.engine.clock import Clock
    from stagent_lab.engine.redact import Redactor
    from stagent_lab.engine.task import TaskState
    from stagent_lab.store.writer import EventWriter

Subscriber = Callable[[dict[str, Any]], None]
RING = 20_000
TEXT_FLUSH_CHARS = 8_000  # streamed text is stored in blocks of at most about this size


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, default=str, ensure_ascii=False)


class EventLog:
    def __init__(self, writer: EventWriter, redact: Redactor, clock: Clock) -> None:
        self.writer = writer
        self.redact = redact
        self.clock = clock
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()
        self.ring: deque[dict[str, Any]] = deque(maxlen=RING)
        self._subject_seq: dict[str, int] = {}

    # ---- subscribers (any thread) ------------------------------------------------------

    def add_subscriber(self, fn: Subscriber) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, fn)

    def remove_subscriber(self, fn: Subscriber) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not fn)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    # ---- recording (engine thread) -----------------------------------------------------

    def task(self, st: TaskState, event: str, tool_name: str | None = None, **payload: Any) -> int:
        """Record an event of a task (buffered; committed with the next batch)."""
        if event != "assistant_text":
            self.flush_text(st)
        return self._append_task(st, event, tool_name, payload)

    def _append_task(
        self, st: TaskState, event: str, tool_name: str | None, payload: dict[str, Any]
    ) -> int:
        st.seq += 1
        row = self._row(st.id, st.seq, st.runtime_id, event, tool_name, payload, "task")
        self.writer.add_log(row)
        if self.writer.should_flush():
            self.writer.flush()
        self._publish(row, st.profile_id, str(st.status))
        return row["id"]

    def subject(
        self,
        subject: str,
        subject_id: str,
        event: str,
        tool_name: str | None = None,
        **payload: Any,
    ) -> int:
        """Record an event of another subject (a workflow run, a schedule, a budget, …)."""
        seq = self._subject_seq.get(subject_id)
        if seq is None:
            seq = logs_repo.max_seq(self.writer.con, subject_id)
        seq += 1
        self._subject_seq[subject_id] = seq
        if len(self._subject_seq) > 10_000:
            self._subject_seq.clear()
        row = self._row(subject_id, seq, None, event, tool_name, payload, subject)
        self.writer.add_log(row)
        self._publish(row, None, None)
        return row["id"]

    def _row(
        self,
        subject_id: str,
        seq: int,
        runtime_id: str | None,
        event: str,
        tool: str | None,
        payload: dict[str, Any],
        subject: str,
    ) -> dict[str, Any]:
        text = self.redact(repair_text(_dumps(payload)))
        return {
            "id": self.writer.next_log_id(),
            "task_id": subject_id,
            "seq": seq,
            "ts": self.clock.now(),
            "runtime_id": runtime_id,
            "event": event,
            "tool_name": tool,
            "payload": text,
            "subject": subject,
        }

    # ---- streamed text -----------------------------------------------------------------

    def delta(self, st: TaskState, text: str) -> None:
        """A fragment of streamed text: published now, stored later as one block."""
        st.text_buffer.append(text)
        st.text_chars += len(text)
        if self._subscribers:
            self._publish(
                {
                    "id": None,
                    "task_id": st.id,
                    "event": "assistant_delta",
                    "payload": self.redact(repair_text(text)),
                    "ts": self.clock.now(),
                    "seq": None,
                    "tool_name": None,
                    "runtime_id": st.runtime_id,
                    "subject": "task",
                },
                st.profile_id,
                str(st.status),
            )
        if st.text_chars >= TEXT_FLUSH_CHARS:
            self.flush_text(st)

    def flush_text(self, st: TaskState) -> None:
        if st.text_buffer:
            text = "".join(st.text_buffer)
            st.text_buffer.clear()
            st.text_chars = 0
            self._append_task(st, "assistant_text", None, {"text": text})

    # ---- publishing --------------------------------------------------------------------

    def _publish(self, row: dict[str, Any], profile_id: str | None, status: str | None) -> None:
        if row["id"] is not None:
            event = dict(row, profile_id=profile_id, status=status)
            self.ring.append(event)
        elif not self._subscribers:
            return
        else:
            event = dict(row, profile_id=profile_id, status=status)
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:
                traceback.print_exc()

    def publish_ephemeral(self, event: str, **payload: Any) -> None:
        """A workspace-level notice for live subscribers only (e.g. the store is failing)."""
        self._publish(
            {
                "id": None,
                "task_id": None,
                "event": event,
                "payload": _dumps(payload),
                "ts": self.clock.now(),
                "seq": None,
                "tool_name": None,
                "runtime_id": None,
                "subject": "workspace",
            },
            None,
            None,
        )

    def replay(self, since: int) -> list[dict[str, Any]] | None:
        """Stored events after ``since`` still held in memory, or None when the ring no
        longer reaches back that far (the caller reads the store instead)."""
        ring = self.ring
        if not ring:
            return [] if since >= self.writer.last_log_id else None
        first = ring[0]["id"]
        if since + 1 < first:
            return None
        return [e for e in ring if e["id"] > since]
