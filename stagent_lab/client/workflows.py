"""``lab.workflows``: define, run and follow workflows; blueprints. A client of the contract.

Workflows are named by name or id (or a view), runs by id or a unique id prefix. Listings are
DataFrames; ``run()`` returns a :class:`WorkflowRun` handle at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stagent_lab.api import workflows as wq

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

TERMINAL = frozenset({"completed", "failed", "cancelled"})
WAIT_SLICE_S = 30.0


def _ref(workflow: Any) -> str:
    """A workflow's name or id from a name, an id, a view or a dict."""
    if isinstance(workflow, str):
        return workflow
    if isinstance(workflow, dict):
        return str(workflow.get("workflow_id") or workflow.get("id"))
    wid = getattr(workflow, "id", None)
    if wid is None:
        raise TypeError(f"name a workflow by name, id or view, got {type(workflow).__name__}")
    return str(wid)


class WorkflowRun:
    """One run. Properties read where it is now; nothing blocks but ``wait``."""

    def __init__(self, lab: Lab, run_id: str, view: wq.WorkflowRunView | None = None) -> None:
        self._lab = lab
        self.id = run_id
        self._view = view

    def view(self) -> wq.WorkflowRunView:
        if self._lab.closed and self._view is not None:
            return self._view
        self._view = self._lab._req(wq.GetWorkflowRun, run_id=self.id)
        return self._view

    @property
    def status(self) -> str:
        return self.view().status

    @property
    def output(self) -> str | None:
        return self.view().output

    @property
    def stop_reason(self) -> str | None:
        return self.view().stop_reason

    @property
    def failure_reason(self) -> str | None:
        return self.view().failure_reason

    @property
    def cost_usd(self) -> float:
        return self.view().cost_usd

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def wait(self, timeout: float | None = None, *, until: Iterable[str] = ()) -> WorkflowRun:
        """Block until the run is completed, failed, cancelled or paused (or in one of
        ``until``); TimeoutError says where it is."""
        wanted = list(until)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = WAIT_SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
            view = self._lab._req(
                wq.WaitWorkflowRun,
                run_id=self.id,
                timeout=min(left, WAIT_SLICE_S),
                statuses=wanted,
            )
            self._view = view
            if view.status in (set(wanted) or {*TERMINAL, "paused"}):
                return self
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"workflow run {self.id} is still {view.status} after {timeout}s"
                )

    # ---- control ------------------------------------------------------------------------

    def pause(self, stop_tasks: bool = False) -> WorkflowRun:
        """No new step starts; running children finish (or pause too, with stop_tasks)."""
        self._view = self._lab._req(wq.PauseWorkflowRun, run_id=self.id, stop_tasks=stop_tasks)
        return self

    def resume(self) -> WorkflowRun:
        """Continue a paused run (or end a delay now)."""
        self._view = self._lab._req(wq.ResumeWorkflowRun, run_id=self.id)
        return self

    def cancel(self) -> WorkflowRun:
        self._view = self._lab._req(wq.CancelWorkflowRun, run_id=self.id)
        return self

    def retry(
        self, step: str | None = None, items: list[int] | None = None, resume: bool = False
    ) -> WorkflowRun:
        """Rerun the failed steps (same input text as before), or ``step``, or the failed rows
        (or those in ``items``); ``resume=True`` resumes the failed child instead."""
        self._view = self._lab._req(
            wq.RetryWorkflowRun, run_id=self.id, step=step, items=items, resume=resume
        )
        return self

    def set_budget(self, usd: float | None) -> WorkflowRun:
        """The run's budget in USD (None: no cap); then resume() a run paused by its budget."""
        self._view = self._lab._req(wq.SetWorkflowRunBudget, run_id=self.id, budget_usd=usd)
        return self

    # ---- what happened ------------------------------------------------------------------

    def steps(self) -> Any:
        """Every attempt of every step: status, child task, cost, input text, result."""
        return self._lab._req(wq.WorkflowRunSteps, run_id=self.id)

    def tasks(self) -> Any:
        """The run's child tasks."""
        return self._lab._req(wq.WorkflowRunTasks, run_id=self.id)

    def results(self) -> Any:
        """A loop over rows: one row per item (its fields, each step's output, status, error)."""
        return self._lab._req(wq.WorkflowRunResults, run_id=self.id)

    def logs(self) -> Any:
        """The run's own events (workflow_started, workflow_step_…, loop_iteration …)."""
        from stagent_lab.api import requests as rq
        from stagent_lab.client.tables import parse_payloads

        return parse_payloads(self._lab._req(rq.ListLogs, task_id=self.id, subject="workflow_run"))

    def card(self) -> Any:
        """The live run card (a notebook widget)."""
        from stagent_lab.notebook.widgets.workflow_run import WorkflowRunCard

        return WorkflowRunCard.for_run(self.id, self._lab)

    def __repr__(self) -> str:
        try:
            v = self.view()
        except Exception:
            v = self._view
        if v is None:
            return f"<WorkflowRun {self.id}>"
        return f"<WorkflowRun {self.id} {v.workflow} #{v.run_number} {v.status}>"


class WorkflowsClient:
    """Define workflows, start and follow runs, and instantiate blueprints."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def create(
        self,
        name: str,
        pattern: str = "sequence",
        steps: Iterable[dict[str, Any]] = (),
        *,
        description: str | None = None,
        loop: dict[str, Any] | None = None,
        parallel: dict[str, Any] | None = None,
        swarm: dict[str, Any] | None = None,
        project: str | os.PathLike[str] | None = None,
        runtime: str | None = None,
        profile: str | None = None,
        budget_usd: float | None = None,
        channels: Iterable[str] | None = None,
        concurrent_runs: bool = False,
    ) -> wq.WorkflowView:
        """Validate and store a workflow; WorkflowDefinitionError lists every problem."""
        return self._lab._req(
            wq.CreateWorkflow,
            name=name,
            pattern=pattern,
            steps=[dict(s) for s in steps],
            description=description,
            loop=loop,
            parallel=parallel,
            swarm=swarm,
            project=None if project is None else os.fspath(project),
            runtime=runtime,
            profile=profile,
            budget_usd=budget_usd,
            channels=list(channels or []),
            concurrent_runs=concurrent_runs,
        )

    def update(self, workflow: Any, **changes: Any) -> wq.WorkflowView:
        """Change any field given to create(); the version goes up, live runs are unchanged."""
        if "project" in changes and changes["project"] is not None:
            changes["project"] = os.fspath(changes["project"])
        return self._lab._req(wq.UpdateWorkflow, workflow=_ref(workflow), changes=changes)

    def get(self, workflow: Any) -> wq.WorkflowView:
        return self._lab._req(wq.GetWorkflow, workflow=_ref(workflow))

    def list(self, status: str | None = None) -> Any:
        return self._lab._req(wq.ListWorkflows, status=status)

    def archive(self, workflow: Any) -> wq.WorkflowView:
        return self._lab._req(wq.ArchiveWorkflow, workflow=_ref(workflow))

    def delete(self, workflow: Any) -> None:
        """Remove the definition and its runs (tasks, logs and ledger rows stay)."""
        self._lab._req(wq.DeleteWorkflow, workflow=_ref(workflow))

    def run(self, workflow: Any, inputs: dict[str, Any] | None = None) -> WorkflowRun:
        """Start a run and return its handle at once."""
        view = self._lab._req(wq.RunWorkflow, workflow=_ref(workflow), inputs=inputs)
        return WorkflowRun(self._lab, view.id, view)

    def runs(self, workflow: Any = None, status: str | None = None, limit: int | None = None):
        return self._lab._req(
            wq.ListWorkflowRuns,
            workflow=None if workflow is None else _ref(workflow),
            status=status,
            limit=limit,
        )

    def run_handle(self, run_id: str) -> WorkflowRun:
        """The handle of an existing run (a unique id prefix is enough)."""
        view = self._lab._req(wq.GetWorkflowRun, run_id=run_id)
        return WorkflowRun(self._lab, view.id, view)

    def blueprints(self) -> Any:
        """Every blueprint (built-in, $STAGENT_HOME/blueprints, workflows.blueprint_dirs);
        files that do not load are listed with their error."""
        import pandas as pd

        return pd.DataFrame(self._lab._req(wq.ListBlueprints))

    def blueprint(self, blueprint_id: str) -> dict[str, Any]:
        return self._lab._req(wq.GetBlueprint, blueprint=blueprint_id)

    def from_blueprint(
        self,
        blueprint_id: str,
        variables: dict[str, Any] | None = None,
        name: str | None = None,
        project: str | os.PathLike[str] | None = None,
    ) -> dict[str, Any]:
        """A workflow from a blueprint: ``{workflow_id, name, steps, skipped_steps}``."""
        return self._lab._req(
            wq.FromBlueprint,
            blueprint=blueprint_id,
            variables=dict(variables or {}),
            name=name,
            project=None if project is None else os.fspath(project),
        )

    def __repr__(self) -> str:
        return f"<workflows of {self._lab.home}>"


__all__ = ["WorkflowRun", "WorkflowsClient"]
