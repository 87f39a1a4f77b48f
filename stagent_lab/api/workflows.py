"""The workflows part of the contract: requests and views for definitions, runs and blueprints.

Definitions travel as plain JSON (``steps`` as a list of objects, the pattern's config as
``loop`` / ``parallel`` / ``swarm``); the workspace validates them and reports every problem at
once (``WorkflowDefinitionError``). Workflows are named by name or id, runs by id or a unique
id prefix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from stagent_lab.api.requests import ArrowTable, Request, request
from stagent_lab.api.values import Identifier, Message, Name, ShortText, Text, Usd
from stagent_lab.api.views import View

Pattern = Literal["sequence", "planner-executor", "checkpoint", "loop", "parallel", "swarm"]
WorkflowRef = ShortText  # a name (up to 120 characters) or an id


class WorkflowView(View):
    id: str
    name: str
    description: str | None = None
    pattern: str
    version: int = 1
    status: str = "active"
    definition: dict[str, Any] = {}
    project_id: str | None = None
    runtime_id: str | None = None
    profile_id: str | None = None
    budget_usd: float | None = None
    channels: list[str] = []
    concurrent_runs: bool = False
    blueprint_id: str | None = None
    blueprint_version: str | None = None
    blueprint_vars: dict[str, Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list(self.definition.get("steps", []))


class WorkflowRunView(View):
    id: str
    workflow_id: str
    workflow: str
    run_number: int
    status: str
    stop_reason: str | None = None
    failure_reason: str | None = None
    cost_usd: float = 0.0
    output: str | None = None
    version: int = 1
    pattern: str | None = None
    trigger: str = "manual"
    trigger_id: str | None = None
    current_index: int = 0
    iteration: int = 0
    resume_at: datetime | None = None
    budget_usd: float | None = None
    failed_items: int = 0
    inputs: dict[str, Any] | None = None
    started_at: datetime | None = None
    paused_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


# ---- definitions -------------------------------------------------------------------------


@request
class CreateWorkflow(Request):
    name: ShortText
    pattern: Pattern = "sequence"
    steps: list[dict[str, Any]] = Field(max_length=200)
    description: Message | None = None
    loop: dict[str, Any] | None = None
    parallel: dict[str, Any] | None = None
    swarm: dict[str, Any] | None = None
    project: Text | None = Field(default=None, max_length=4096)
    runtime: Identifier | None = None
    profile: Identifier | None = None
    budget_usd: Usd | None = None
    channels: list[Identifier] = Field(default_factory=list, max_length=20)
    concurrent_runs: bool = False
    result: ClassVar[Any] = WorkflowView


@request
class UpdateWorkflow(Request):
    """Change a workflow (any of the fields of CreateWorkflow); bumps its version. Live runs
    keep the snapshot they started with."""

    workflow: WorkflowRef
    changes: dict[str, Any]
    result: ClassVar[Any] = WorkflowView


@request
class GetWorkflow(Request):
    workflow: WorkflowRef
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = WorkflowView


@request
class ListWorkflows(Request):
    status: Literal["active", "archived"] | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class ArchiveWorkflow(Request):
    workflow: WorkflowRef
    result: ClassVar[Any] = WorkflowView


@request
class DeleteWorkflow(Request):
    """Remove a definition and its runs (tasks, logs and ledger rows stay); refused while a
    run is live."""

    workflow: WorkflowRef
    result: ClassVar[Any] = None


# ---- runs --------------------------------------------------------------------------------


@request
class RunWorkflow(Request):
    """Start a run of ``workflow`` (a name or id); returns at once."""

    workflow: str = Field(min_length=1, max_length=500)
    inputs: dict[str, Any] | None = None
    trigger: Literal["manual", "schedule", "channel"] = "manual"
    trigger_id: str | None = Field(default=None, max_length=128)
    result: ClassVar[Any] = WorkflowRunView


@request
class GetWorkflowRun(Request):
    run_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = WorkflowRunView


@request
class WaitWorkflowRun(Request):
    """Block until the run is completed, failed, cancelled or paused (or one of ``statuses``),
    at most ``timeout`` seconds; returns where it is."""

    run_id: Identifier
    timeout: float = Field(default=30.0, ge=0, le=3600)
    statuses: list[Identifier] = Field(default_factory=list, max_length=10)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = WorkflowRunView


@request
class ListWorkflowRuns(Request):
    workflow: WorkflowRef | None = None
    status: Identifier | None = None
    limit: int | None = Field(default=None, ge=1, le=100_000)
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class PauseWorkflowRun(Request):
    run_id: Identifier
    stop_tasks: bool = False
    reason: ShortText = "paused by the operator"
    result: ClassVar[Any] = WorkflowRunView


@request
class ResumeWorkflowRun(Request):
    run_id: Identifier
    result: ClassVar[Any] = WorkflowRunView


@request
class CancelWorkflowRun(Request):
    run_id: Identifier
    reason: ShortText = "cancelled by the operator"
    result: ClassVar[Any] = WorkflowRunView


@request
class RetryWorkflowRun(Request):
    run_id: Identifier
    step: Identifier | None = None
    items: list[int] | None = Field(default=None, max_length=10_000)
    resume: bool = False
    result: ClassVar[Any] = WorkflowRunView


@request
class SetWorkflowRunBudget(Request):
    run_id: Identifier
    budget_usd: Usd | None
    result: ClassVar[Any] = WorkflowRunView


@request
class WorkflowRunSteps(Request):
    run_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class WorkflowRunTasks(Request):
    run_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class WorkflowRunResults(Request):
    """One row per item of a row-driven loop: its fields, one column per step, status, error."""

    run_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class WorkflowRunCard(Request):
    """What the run card shows: the run, its steps with their child tasks, pending
    checkpoints."""

    run_id: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


# ---- blueprints --------------------------------------------------------------------------


@request
class ListBlueprints(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[dict[str, Any]]


@request
class GetBlueprint(Request):
    blueprint: Identifier
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = dict[str, Any]


@request
class FromBlueprint(Request):
    """Create a workflow from a blueprint: ``{workflow_id, name, steps, skipped_steps}``."""

    blueprint: Identifier
    variables: dict[str, Any] = Field(default_factory=dict)
    name: Name | None = None
    project: Text | None = Field(default=None, max_length=4096)
    result: ClassVar[Any] = dict[str, Any]


__all__ = [
    "ArchiveWorkflow",
    "CancelWorkflowRun",
    "CreateWorkflow",
    "DeleteWorkflow",
    "FromBlueprint",
    "GetBlueprint",
    "GetWorkflow",
    "GetWorkflowRun",
    "ListBlueprints",
    "ListWorkflowRuns",
    "ListWorkflows",
    "PauseWorkflowRun",
    "ResumeWorkflowRun",
    "RetryWorkflowRun",
    "RunWorkflow",
    "SetWorkflowRunBudget",
    "UpdateWorkflow",
    "WaitWorkflowRun",
    "WorkflowRunCard",
    "WorkflowRunResults",
    "WorkflowRunSteps",
    "WorkflowRunTasks",
    "WorkflowRunView",
    "WorkflowView",
]
