"""The event record: every event is a row for the writer and a message for subscribers.

An event's ``id`` is its ``agent_logs.id``: one increasing sequence for the whole workspace,
which is the position a client resumes from (``subscribe(since=id)``). Streamed text fragments
(``assistant_delta``) are published live but not stored, so they carry ``id = None``; the full
text is stored as one ``assistant_text`` event when the block ends.

Subscribers are called on the engine thread and must be quick (append to a buffer and return).
The subscriber list is copy-on-write under a lock, so subscribing from any thread is safe and
publishing never takes a lock. The last ``RING`` events stay in memory so a subscriber can
catch up without reading the store.

What an event costs the engine loop is kept to what it needs: the payload's JSON, redaction,
one tuple for the writer (rows become Arrow columns once per batch, not one dict per event),
and a dict for subscribers only when someone listens (the ring keeps the tuple otherwise).
Streamed fragments of a task are joined and published at most every ``DELTA_EVERY_S`` (20
times a second, above the widgets' 10 Hz), each batch redacted as one text, and always before
the task's next stored event, so subscribers see the same order as before.
"""

from __future__ import annotations

import asyncio
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
DELTA_EVERY_S = 0.05  # streamed fragments of a task reach subscribers in batches this often
# The event dict's keys for the writer's row tuple (agent_logs columns, in order).
ROW_KEYS = ("id", "task_id", "seq", "ts", "runtime_id", "event", "tool_name", "payload", "subject")
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def _dumps(payload: dict[str, Any]) -> str:
    return _ENCODER.encode(payload)


def _event(row: tuple[Any, ...], profile_id: str | None, status: str | None) -> dict[str, Any]:
    event = dict(zip(ROW_KEYS, row, strict=True))
    event["profile_id"] = profile_id
    event["status"] = status
    return event


class EventLog:
    def __init__(self, writer: EventWriter, redact: Redactor, clock: Clock) -> None:
        self.writer = writer
        self.redact = redact
        self.clock = clock
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()
        # Stored events, newest last: a dict when it was published to someone, else the row
        # tuple with the task's profile and status (made into a dict only if replayed).
        self.ring: deque[Any] = deque(maxlen=RING)
        self._subject_seq: dict[str, int] = {}
        self._live: dict[str, tuple[TaskState, list[str]]] = {}  # fragments not yet published
        self._live_timer: asyncio.TimerHandle | None = None

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
        if st.id in self._live:
            self._publish_live(st.id)
        st.seq += 1
        writer = self.writer
        rid = writer.next_log_id()
        row = (
            rid,
            st.id,
            st.seq,
            self.clock.now(),
            st.runtime_id,
            event,
            repair_text(tool_name) if tool_name else tool_name,
            self.redact(repair_text(_dumps(payload))),
            "task",
        )
        writer.append_log(row)
        if writer.should_flush():
            writer.flush()
        self._publish(row, st.profile_id, str(st.status))
        return rid

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
        rid = self.writer.next_log_id()
        row = (
            rid,
            subject_id,
            seq,
            self.clock.now(),
            None,
            event,
            repair_text(tool_name) if tool_name else tool_name,
            self.redact(repair_text(_dumps(payload))),
            subject,
        )
        self.writer.append_log(row)
        self._publish(row, None, None)
        return rid

    # ---- streamed text -----------------------------------------------------------------

    def delta(self, st: TaskState, text: str) -> None:
        """A fragment of streamed text: published soon (joined with its neighbours), stored
        later as one block."""
        st.text_buffer.append(text)
        st.text_chars += len(text)
        if self._subscribers:
            live = self._live.get(st.id)
            if live is None:
                self._live[st.id] = (st, [text])
                self._arm_live()
            else:
                live[1].append(text)
        if st.text_chars >= TEXT_FLUSH_CHARS:
            self.flush_text(st)

    def flush_text(self, st: TaskState) -> None:
        if st.text_buffer:
            text = "".join(st.text_buffer)
            st.text_buffer.clear()
            st.text_chars = 0
            self._append_task(st, "assistant_text", None, {"text": text})
        elif st.id in self._live:
            self._publish_live(st.id)

    def _arm_live(self) -> None:
        if self._live_timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop (a direct call): publish at once
            self.publish_deltas()
            return
        self._live_timer = loop.call_later(DELTA_EVERY_S, self.publish_deltas)

    def publish_deltas(self) -> None:
        """Publish every task's streamed fragments gathered since the last call."""
        self._live_timer = None
        for task_id in list(self._live):
            self._publish_live(task_id)

    def _publish_live(self, task_id: str) -> None:
        st, parts = self._live.pop(task_id)
        if not self._subscribers:
            return
        event = {
            "id": None,
            "task_id": task_id,
            "seq": None,
            "ts": self.clock.now(),
            "runtime_id": st.runtime_id,
            "event": "assistant_delta",
            "tool_name": None,
            "payload": self.redact(repair_text("".join(parts))),
            "subject": "task",
            "profile_id": st.profile_id,
            "status": str(st.status),
        }
        self._call_subscribers(event)

    # ---- publishing --------------------------------------------------------------------

    def _publish(self, row: tuple[Any, ...], profile_id: str | None, status: str | None) -> None:
        if not self._subscribers:
            self.ring.append((row, profile_id, status))
            return
        event = _event(row, profile_id, status)
        self.ring.append(event)
        self._call_subscribers(event)

    def _call_subscribers(self, event: dict[str, Any]) -> None:
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:
                traceback.print_exc()

    def publish_ephemeral(self, event: str, **payload: Any) -> None:
        """A workspace-level notice for live subscribers only (e.g. the store is failing)."""
        if not self._subscribers:
            return
        self._call_subscribers(
            {
                "id": None,
                "task_id": None,
                "seq": None,
                "ts": self.clock.now(),
                "runtime_id": None,
                "event": event,
                "tool_name": None,
                "payload": _dumps(payload),
                "subject": "workspace",
                "profile_id": None,
                "status": None,
            }
        )

    def replay(self, since: int) -> list[dict[str, Any]] | None:
        """Stored events after ``since`` still held in memory, or None when the ring no
        longer reaches back that far (the caller reads the store instead)."""
        ring = self.ring
        if not ring:
            return [] if since >= self.writer.last_log_id else None
        if since + 1 < _event_id(ring[0]):
            return None
        out: list[dict[str, Any]] = []
        for i in range(len(ring) - 1, -1, -1):  # newest first, stop at the position
            entry = ring[i]
            if _event_id(entry) <= since:
                break
            if type(entry) is not dict:
                entry = _event(*entry)
                ring[i] = entry
            out.append(entry)
        out.reverse()
        return out


def _event_id(entry: Any) -> int:
    return entry["id"] if type(entry) is dict else entry[0][0]
