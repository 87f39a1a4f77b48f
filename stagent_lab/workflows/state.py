"""In-memory state of the workflow runs the engine drives (engine thread only).

A :class:`Run` mirrors its ``workflow_runs`` row plus the latest attempt of each step run
(keyed by step id and iteration); every change is written through the engine's writer as it
happens, so the store can rebuild the same state after a restart (:func:`load_run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from stagent_lab.store import workflows as repo
from stagent_lab.workflows.definition import Definition
from stagent_lab.workflows.validation import definition_from_json

TERMINAL_RUN = frozenset({"completed", "failed", "cancelled"})
LIVE_RUN = frozenset({"running", "waiting", "delayed", "paused"})
ACTIVE_STEP = frozenset({"running", "waiting", "delayed"})
DONE_STEP = frozenset({"completed", "failed", "blocked", "skipped", "cancelled"})
DELAY_BETWEEN = "_delay_between"  # the step id of a loop's wait between iterations or rows


@dataclass(eq=False)
class StepRun:
    id: str
    run_id: str
    step_id: str
    step_index: int
    iteration: int = 0
    attempt: int = 1
    status: str = "pending"
    task_id: str | None = None
    input_text: str | None = None
    result: str | None = None
    error: str | None = None
    approval_item_id: str | None = None
    decision: str | None = None
    operator_note: str | None = None
    cost_usd: float = 0.0
    resume_at: datetime | None = None
    warnings: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Not stored: set while the workflow cancels the child, and the text a retry must reuse.
    cancelling: bool = False
    retry_input: str | None = None

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in repo.STEP_COLUMNS}

    @property
    def key(self) -> tuple[str, int]:
        return (self.step_id, self.iteration)

    @property
    def done(self) -> bool:
        return self.status in DONE_STEP


@dataclass(eq=False)
class Run:
    id: str
    workflow_id: str
    workflow: str
    run_number: int
    version: int
    pattern: str
    definition: Definition
    snapshot: dict[str, Any]  # the stored definition JSON, with the workflow's defaults
    inputs: dict[str, Any]
    rows: list[dict[str, Any]] | None
    trigger: str
    trigger_id: str | None
    status: str
    started_at: datetime
    updated_at: datetime
    stop_reason: str | None = None
    failure_reason: str | None = None
    current_index: int = 0
    iteration: int = 0
    resume_at: datetime | None = None
    budget_usd: float | None = None
    cost_usd: float = 0.0
    failed_items: int = 0
    output: str | None = None
    paused_at: datetime | None = None
    finished_at: datetime | None = None
    steps: dict[tuple[str, int], StepRun] = field(default_factory=dict)
    failed_step: str | None = None
    error: str | None = None
    timers: dict[str, Any] = field(default_factory=dict)  # step run id -> timer

    @property
    def project(self) -> str | None:
        return self.snapshot.get("workflow", {}).get("project")

    @property
    def channels(self) -> list[str]:
        return list(self.snapshot.get("workflow", {}).get("channels") or [])

    @property
    def live(self) -> bool:
        return self.status in LIVE_RUN

    def step_run(self, step_id: str, iteration: int = 0) -> StepRun | None:
        return self.steps.get((step_id, iteration))

    def by_id(self, step_run_id: str) -> StepRun | None:
        for sr in self.steps.values():
            if sr.id == step_run_id:
                return sr
        return None

    def active(self) -> list[StepRun]:
        return [sr for sr in self.steps.values() if sr.status in ACTIVE_STEP]

    def row(self, full: bool = True) -> dict[str, Any]:
        """The stored row; without ``full`` only the columns that change during a run."""
        if not full:
            return {"id": self.id, **{c: getattr(self, c) for c in repo.RUN_MUTABLE}}
        out = {c: getattr(self, c) for c in repo.RUN_COLUMNS if hasattr(self, c)}
        out["workflow_name"] = self.workflow
        out["definition"] = repo.dumps(self.snapshot)
        out["inputs"] = repo.dumps(self.stored_inputs())
        return out

    def stored_inputs(self) -> dict[str, Any]:
        data = dict(self.inputs)
        if self.rows is not None:
            data["_rows"] = self.rows
        return data

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workflow_id": self.workflow_id,
            "workflow": self.workflow,
            "run_number": self.run_number,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "failure_reason": self.failure_reason,
            "cost_usd": round(self.cost_usd, 10),
            "output": self.output,
            "version": self.version,
            "pattern": self.pattern,
            "trigger": self.trigger,
            "trigger_id": self.trigger_id,
            "current_index": self.current_index,
            "iteration": self.iteration,
            "resume_at": self.resume_at,
            "budget_usd": self.budget_usd,
            "failed_items": self.failed_items,
            "inputs": self.inputs,
            "started_at": self.started_at,
            "paused_at": self.paused_at,
            "finished_at": self.finished_at,
            "updated_at": self.updated_at,
        }


STEP_FIELDS = {f.name for f in fields(StepRun)}


def load_run(row: dict[str, Any], step_rows: list[dict[str, Any]]) -> Run:
    """A live run rebuilt from its stored row and step runs (latest attempt of each step)."""
    snapshot = repo.loads(row["definition"], {})
    inputs = repo.loads(row["inputs"], {}) or {}
    rows = inputs.pop("_rows", None)
    run = Run(
        id=row["id"],
        workflow_id=row["workflow_id"],
        workflow=row["workflow_name"],
        run_number=int(row["run_number"]),
        version=int(row["version"]),
        pattern=row["pattern"],
        definition=definition_from_json(row["pattern"], snapshot),
        snapshot=snapshot,
        inputs=inputs,
        rows=rows,
        trigger=row["trigger"],
        trigger_id=row["trigger_id"],
        status=row["status"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        stop_reason=row["stop_reason"],
        failure_reason=row["failure_reason"],
        current_index=int(row["current_index"] or 0),
        iteration=int(row["iteration"] or 0),
        resume_at=row["resume_at"],
        budget_usd=row["budget_usd"],
        cost_usd=float(row["cost_usd"] or 0.0),
        failed_items=int(row["failed_items"] or 0),
        output=row["output"],
        paused_at=row["paused_at"],
        finished_at=row["finished_at"],
    )
    for s in step_rows:  # ordered by attempt, so the latest wins
        sr = StepRun(**{k: v for k, v in s.items() if k in STEP_FIELDS})
        sr.cost_usd = float(sr.cost_usd or 0.0)
        run.steps[sr.key] = sr
    return run


__all__ = [
    "ACTIVE_STEP",
    "DELAY_BETWEEN",
    "DONE_STEP",
    "LIVE_RUN",
    "TERMINAL_RUN",
    "Run",
    "StepRun",
    "load_run",
]
