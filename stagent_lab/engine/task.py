"""The in-memory state of a task the engine is running (engine thread only)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.engine.states import TaskStatus

if TYPE_CHECKING:
    from stagent_lab.profiles.model import Profile


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(eq=False)
class TaskState:
    """What the engine knows about a task while it is responsible for it.

    Owned by the engine thread: other threads read tasks through the engine's snapshots
    (``Engine.snapshot``) or the store, never through this object.
    """

    id: str
    title: str
    prompt: str
    profile: Profile
    runtime_id: str
    model: str | None
    project_id: str | None
    working_dir: str
    max_turns: int
    max_budget_usd: float | None
    runtime_options: dict[str, Any]
    status: str = TaskStatus.QUEUED
    source: str = "manual"
    parent_task_id: str | None = None
    origin_id: str | None = None
    session_id: str | None = None
    result: str | None = None
    failure_reason: str | None = None
    resume_count: int = 0
    turns: int = 0
    cost_usd: float = 0.0
    seq: int = 0
    activity: str = "task_run"
    unattended: bool = False
    priority: int = 0
    channels: list[str] = field(default_factory=list)  # channels this task is bound to
    started_at: datetime | None = None  # this attempt's start (UTC, naive, engine clock)
    finished_at: datetime | None = None
    timeout_s: float | None = None  # wall-clock limit of one run (queue time excluded)
    stop_reason: str | None = None  # "cancel" | "pause" | "timeout" while a stop is under way
    stop_detail: str | None = None  # the reason given with a pause (budget, engine closed …)
    aio_task: asyncio.Task[None] | None = None
    pending_inbox: set[str] = field(default_factory=set)
    text_buffer: list[str] = field(default_factory=list)
    text_chars: int = 0
    notes: list[str] = field(default_factory=list)  # logged when the task is created
    extra: dict[str, Any] = field(default_factory=dict)  # features' per-task state

    @property
    def profile_id(self) -> str:
        return self.profile.id
