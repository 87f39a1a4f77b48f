"""Task states and the one place where transitions are checked."""

from __future__ import annotations

from enum import StrEnum

from stagent_lab.errors import TaskStateError


class TaskStatus(StrEnum):
    PLANNED = "planned"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # blocked on an inbox item
    PAUSED = "paused"  # stopped by the operator or interrupted; resumable
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


S = TaskStatus
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.PLANNED: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED, S.FAILED, S.PAUSED}),  # paused: closed early
    S.RUNNING: frozenset({S.WAITING, S.COMPLETED, S.FAILED, S.CANCELLED, S.PAUSED}),
    S.WAITING: frozenset({S.RUNNING, S.FAILED, S.CANCELLED, S.PAUSED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    S.FAILED: frozenset({S.QUEUED}),  # resume
    S.CANCELLED: frozenset({S.QUEUED}),  # resume
    S.COMPLETED: frozenset(),
}
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.CANCELLED})
ACTIVE = frozenset({S.QUEUED, S.RUNNING, S.WAITING})
RESUMABLE = frozenset({S.FAILED, S.CANCELLED, S.PAUSED})


def check_transition(current: str | TaskStatus, new: str | TaskStatus) -> TaskStatus:
    """Return the new status, or raise TaskStateError naming both states."""
    try:
        cur, nxt = TaskStatus(current), TaskStatus(new)
    except ValueError as exc:
        raise TaskStateError(f"unknown task status: {exc}") from None
    if nxt not in TRANSITIONS[cur]:
        allowed = ", ".join(sorted(TRANSITIONS[cur])) or "none (terminal)"
        raise TaskStateError(f"illegal transition {cur} → {nxt} (from {cur}: {allowed})")
    return nxt
