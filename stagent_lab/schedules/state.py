"""The scheduler's in-memory view of one schedule (engine thread only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stagent_lab.schedules.model import Timing, timing_of


@dataclass(frozen=True)
class Ended:
    """How the work of a firing ended (its task, or its workflow run)."""

    status: str  # completed | failed | cancelled
    result: str | None
    reason: str | None
    cost: float
    turns: int
    task_id: str | None = None


@dataclass
class LiveFiring:
    """A firing whose task or workflow run has not ended."""

    id: str
    number: int
    scheduled_for: datetime
    task_id: str | None = None
    run_id: str | None = None
    missed: int = 0  # cron times this firing stands in for (catch-up)


@dataclass
class Sched:
    row: dict[str, Any]
    timing: Timing
    script: Any = None  # a Python callable script (in-process only, not stored)
    number: int = 0  # the last firing number used
    live: dict[str, LiveFiring] = field(default_factory=dict)
    held: LiveFiring | None = None  # overlap=queue: the firing waiting for the live one
    action_task: str | None = None  # a heartbeat's live action task
    wake: datetime | None = None  # when the timer heap expects to wake for it
    previous: dict[str, Any] | None = None
    previous_loaded: bool = False

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sched:
        return cls(row=row, timing=timing_of(row))

    @property
    def id(self) -> str:
        return self.row["id"]

    @property
    def name(self) -> str:
        return self.row["name"]

    @property
    def heartbeat(self) -> bool:
        return self.row["kind"] == "heartbeat"

    def wake_time(self) -> datetime | None:
        """min(next firing, expiry) for an active schedule; None otherwise."""
        if self.row["status"] != "active":
            return None
        times = [t for t in (self.row.get("next_fire_at"), self.row.get("expires_at")) if t]
        return min(times) if times else None


__all__ = ["Ended", "LiveFiring", "Sched"]
