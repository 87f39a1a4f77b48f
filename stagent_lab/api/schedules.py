"""The schedules part of the contract: clock schedules, heartbeats, their firings, and the
interval preview. Schedules are named by name, id, or a unique id prefix."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from stagent_lab.api.requests import ArrowTable, Request, request
from stagent_lab.api.values import (
    Identifier,
    Name,
    PositiveInt,
    Prompt,
    Seconds,
    ShortText,
    Text,
    Turns,
    Usd,
)
from stagent_lab.api.views import View

Overlap = Literal["skip", "queue", "allow", "replace"]
CatchUp = Literal["once", "skip"]
OnApproval = Literal["wait", "deny"]
ActionMode = Literal["task", "notify"]
When = ShortText
Instant = datetime | ShortText  # a local datetime, or text such as "2026-12-01 09:00"


class ScheduleView(View):
    id: str
    name: str
    kind: str
    status: str
    paused_reason: str | None = None
    prompt: str | None = None
    workflow_id: str | None = None
    when_text: str | None = None
    cron: str | None = None
    timezone: str
    description: str | None = None
    at_local: str | None = None
    next_fire_at: datetime | None = None
    next_fire_local: str | None = None
    last_fired_at: datetime | None = None
    last_outcome: str | None = None
    profile_id: str | None = None
    runtime_id: str | None = None
    model: str | None = None
    project_id: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    max_run_s: float | None = None
    once: bool = False
    max_firings: int | None = None
    expires_at: datetime | None = None
    overlap: str = "skip"
    catch_up: str = "once"
    on_approval: str = "wait"
    include_previous: bool = True
    failure_streak: int = 0
    failure_streak_limit: int = 3
    firing_count: int = 0
    channels: list[str] = []
    checklist: list[dict[str, Any]] | None = None
    active_start: str | None = None
    active_end: str | None = None
    active_days: list[str] | None = None
    daily_budget_usd: float | None = None
    spent_today_usd: float = 0.0
    eval_budget_usd: float | None = None
    action_mode: str | None = None
    action_prompt: str | None = None
    action_profile_id: str | None = None
    action_budget_usd: float | None = None
    notify_ok: bool = False
    cooldown_s: float = 0.0
    suppression_count: int = 0
    last_action_at: datetime | None = None
    last_action_items: list[str] | None = None
    warnings: list[str] = []


class FiringView(View):
    id: str
    schedule_id: str
    number: int
    scheduled_for: datetime
    fired_at: datetime | None = None
    status: str
    reason: str | None = None
    missed_count: int = 0
    task_id: str | None = None
    workflow_run_id: str | None = None
    manual: bool = False


class _Common(Request):
    """Fields a clock schedule and a heartbeat share."""

    name: Name = Field(max_length=120)
    when: When | None = None
    at: Instant | None = None
    tz: Identifier | None = None
    profile: Identifier | None = None
    runtime: Identifier | None = None
    model: ShortText | None = None
    project: Text | None = Field(default=None, max_length=4096)
    max_turns: Turns | None = None
    max_budget_usd: Usd | None = None
    max_run_s: Seconds | None = None
    once: bool = False
    max_firings: PositiveInt | None = None
    expires_at: Instant | None = None
    overlap: Overlap = "skip"
    catch_up: CatchUp = "once"
    on_approval: OnApproval | None = None
    failure_streak_limit: int | None = Field(default=None, ge=0, le=1000)
    channels: list[Identifier] = Field(default_factory=list, max_length=20)
    script: Any = None  # the scripted runtime's script for the firing tasks (offline runs)
    result: ClassVar[Any] = ScheduleView


@request
class AddSchedule(_Common):
    """A clock schedule: at each firing, a task (``prompt``) or a workflow run (``workflow``)."""

    prompt: Prompt | None = None
    workflow: Text | None = Field(default=None, max_length=200)
    include_previous: bool = True


@request
class AddHeartbeat(_Common):
    """A heartbeat: an evaluation of ``checklist`` at each firing, action only when needed."""

    checklist: Any
    active_hours: tuple[ShortText, ShortText] | None = None
    active_days: list[ShortText] | ShortText | None = None
    daily_budget_usd: Usd | None = None
    eval_budget_usd: Usd | None = None
    action_mode: ActionMode = "task"
    action_prompt: Text | None = Field(default=None, max_length=100_000)
    action_profile: Identifier | None = None
    action_budget_usd: Usd | None = None
    notify_ok: bool = False
    cooldown_s: float = Field(default=0, ge=0, le=365 * 86400)


@request
class UpdateSchedule(Request):
    """Change any field ``add``/``add_heartbeat`` took (same names); the result is checked
    like a new schedule, and the next firing recomputed when the timing changed."""

    schedule: Text = Field(max_length=200)
    changes: dict[Identifier, Any]
    result: ClassVar[Any] = ScheduleView


@request
class GetSchedule(Request):
    schedule: Text = Field(max_length=200)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ScheduleView


@request
class ListSchedules(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class PauseSchedule(Request):
    schedule: Text = Field(max_length=200)
    reason: ShortText = "paused by the operator"
    by: ShortText = "operator"
    result: ClassVar[Any] = ScheduleView


@request
class ResumeSchedule(Request):
    schedule: Text = Field(max_length=200)
    by: ShortText = "operator"
    result: ClassVar[Any] = ScheduleView


@request
class RemoveSchedule(Request):
    schedule: Text = Field(max_length=200)
    result: ClassVar[Any] = None


@request
class FireSchedule(Request):
    """A firing now (next number, scheduled for now); the overlap policy applies unless
    ``force``; the next scheduled firing is unchanged."""

    schedule: Text = Field(max_length=200)
    force: bool = False
    result: ClassVar[Any] = FiringView


@request
class ListFirings(Request):
    schedule: Text | None = Field(default=None, max_length=200)
    limit: PositiveInt | None = 50
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class ParseInterval(Request):
    """Preview of a ``when`` text: cron, description, zone, the next 3 times, warnings."""

    text: ShortText
    tz: Identifier | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


__all__ = [
    "AddHeartbeat",
    "AddSchedule",
    "FireSchedule",
    "FiringView",
    "GetSchedule",
    "ListFirings",
    "ListSchedules",
    "ParseInterval",
    "PauseSchedule",
    "RemoveSchedule",
    "ResumeSchedule",
    "ScheduleView",
    "UpdateSchedule",
]
