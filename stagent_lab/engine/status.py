"""Status persistence: the one place a task's status changes, and what other threads see.

``TaskBook`` owns the engine's task states (engine thread only) and publishes a small snapshot
of each (status, result, failure reason, turns, cost …) under a lock, so any thread can ask
"where is task X" without touching engine state. ``set_status`` checks the transition, logs it,
queues the row update in the same batch as the log rows before it, refreshes the snapshot, wakes
waiters and runs the finish hooks.
"""

from __future__ import annotations

import threading
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stagent_lab._text import repair_text
from stagent_lab.engine.states import TERMINAL, TaskStatus, check_transition

if TYPE_CHECKING:
    from stagent_lab.engine.clock import Clock
    from stagent_lab.engine.events import EventLog
    from stagent_lab.engine.redact import Redactor
    from stagent_lab.engine.task import TaskState
    from stagent_lab.store.writer import EventWriter

S = TaskStatus
SNAPSHOTS_KEPT = 20_000
STOPPED = frozenset({*TERMINAL, S.PAUSED})


class TaskBook:
    def __init__(
        self,
        events: EventLog,
        writer: EventWriter,
        redact: Redactor,
        clock: Clock,
        finish_hooks: list[Callable[[TaskState], None]],
    ) -> None:
        self.events = events
        self.writer = writer
        self.redact = redact
        self.clock = clock
        self.finish_hooks = finish_hooks
        self.tasks: dict[str, TaskState] = {}  # engine thread only
        self._snap_lock = threading.Lock()
        self._snapshots: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.cond = threading.Condition()  # notified on every status change
        self._cleaned: dict[int, tuple[str, str]] = {}

    # ---- snapshots (any thread) --------------------------------------------------------

    def snapshot(self, task_id: str) -> dict[str, Any] | None:
        with self._snap_lock:
            snap = self._snapshots.get(task_id)
            return dict(snap) if snap is not None else None

    def snapshots(self) -> list[dict[str, Any]]:
        with self._snap_lock:
            return [dict(s) for s in self._snapshots.values()]

    def publish_snapshot(self, st: TaskState) -> None:
        snap = {
            "id": st.id,
            "title": st.title,
            "status": str(st.status),
            # What other threads read is what the store holds: repaired and redacted.
            "result": self._clean(st.result),
            "failure_reason": self._clean(st.failure_reason),
            "profile_id": st.profile_id,
            "runtime_id": st.runtime_id,
            "model": st.model,
            "project_id": st.project_id,
            "source": st.source,
            "turns": st.turns,
            "max_turns": st.max_turns,
            "cost_usd": st.cost_usd,
            "max_budget_usd": st.max_budget_usd,
            "resume_count": st.resume_count,
            "session_id": st.session_id,
            "pending_inbox": len(st.pending_inbox),
            "seq": st.seq,
            "started_at": st.started_at,
            "finished_at": st.finished_at,
        }
        with self._snap_lock:
            self._snapshots[st.id] = snap
            self._snapshots.move_to_end(st.id)
            while len(self._snapshots) > SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)

    def _clean(self, text: str | None) -> str | None:
        if not text:
            return text
        cached = self._cleaned.get(id(text))
        if cached is not None and cached[0] is text:
            return cached[1]
        out = self.redact(repair_text(text))
        self._cleaned[id(text)] = (text, out)
        if len(self._cleaned) > 1000:
            self._cleaned.clear()
        return out

    def forget(self, task_id: str) -> None:
        with self._snap_lock:
            self._snapshots.pop(task_id, None)

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    # ---- status (engine thread) --------------------------------------------------------

    def set_status(
        self,
        st: TaskState,
        new: TaskStatus,
        *,
        reason: str | None = None,
        now_visible: bool = False,
    ) -> None:
        """Check, log, persist (in the batch) and announce a status change.

        ``now_visible``: commit at once (an inbox item that another thread must see as
        pending), instead of with the next timed batch (≤ ~0.25 s).
        """
        old = st.status
        check_transition(old, new)
        st.status = new
        now = self.clock.now()
        if new in (S.FAILED, S.PAUSED):
            st.failure_reason = self.redact(reason) if reason else reason
        elif new == S.QUEUED:
            st.failure_reason = None
        self.events.task(st, "status", **{"from": str(old), "to": str(new), "reason": reason})
        fields: dict[str, Any] = {"status": str(new), "failure_reason": st.failure_reason}
        if new == S.RUNNING and old == S.QUEUED:
            fields["started_at"] = st.started_at = now
            st.finished_at = None
        if new in STOPPED:
            st.finished_at = now
            fields.update(
                finished_at=now,
                result=self._clean(st.result),
                turns=st.turns,
                cost_usd=st.cost_usd,
            )
        if new == S.QUEUED:
            st.finished_at = None
            fields.update(finished_at=None, resume_count=st.resume_count)
        fields["session_id"] = st.session_id
        # Goes out with the next batch, in one transaction with the log rows before it;
        # readers flush first, so they are current. A crash inside that window leaves the task
        # active on disk, which the next start reconciles to failed (engine stopped), resumable.
        self.writer.update("tasks", "id", st.id, fields)
        watchdog = st.extra.get("watchdog")
        if watchdog is not None and new in (S.WAITING, S.RUNNING):
            watchdog.waiting_changed(new == S.WAITING)
        if now_visible:
            self.writer.flush()
        self.publish_snapshot(st)
        self.notify()
        if new in STOPPED:
            for hook in self.finish_hooks:
                try:
                    hook(st)
                except Exception:
                    traceback.print_exc()
