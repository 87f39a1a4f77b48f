"""How a workflow run pauses for its budget and how it ends (completed or failed).

:class:`RunEnding` is mixed into :class:`~stagent_lab.workflows.orchestrator.Orchestrator`; its
methods use the orchestrator's ``service``, ``now``, ``clean``, ``save_run``, ``save_step`` and
``log``. Patterns and controls call them as ``orch.complete_run(...)`` / ``orch.fail_run(...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.errors import StagentError
from stagent_lab.workflows.state import DELAY_BETWEEN, TERMINAL_RUN, Run, StepRun

if TYPE_CHECKING:
    from datetime import datetime

    from stagent_lab.service.core import WorkspaceService

OUTPUT_EVENT_CHARS = 1_500


class RunEnding:
    if TYPE_CHECKING:
        service: WorkspaceService

        def now(self) -> datetime: ...
        def clean(self, text: str | None) -> str | None: ...
        def save_run(self, run: Run, **fields: Any) -> None: ...
        def save_step(self, sr: StepRun, **fields: Any) -> None: ...
        def log(self, run: Run, event: str, **payload: Any) -> None: ...

    # ---- budgets -----------------------------------------------------------------------

    def budget_spent(self, run: Run) -> bool:
        return run.budget_usd is not None and run.cost_usd >= run.budget_usd - 1e-12

    def budget_reason(self, run: Run) -> str:
        return f"workflow run budget reached: spent ${run.cost_usd:.4f} of ${run.budget_usd:.4f}"

    def pause_for_budget(self, run: Run, current: str | None = None) -> None:
        """No new step starts; running children pause; a notice tells the operator."""
        if run.status in TERMINAL_RUN or run.status == "paused":
            return
        reason = self.budget_reason(run)
        self.save_run(run, status="paused", stop_reason="budget", paused_at=self.now())
        self.log(run, "workflow_paused", reason=reason, stop_reason="budget")
        self.service.create_inbox_item(
            "notice",
            subject="workflow_run",
            subject_id=run.id,
            body=(
                f'Workflow "{run.workflow}" run #{run.run_number} paused: {reason}. Raise the '
                "budget with run.set_budget(usd), then run.resume()."
            ),
        )
        for sr in run.active():
            if sr.status == "running" and sr.task_id and sr.task_id != current:
                self.pause_child(sr.task_id, reason)

    def pause_child(self, task_id: str, reason: str) -> None:
        try:
            self.service.pause_task(task_id, reason)
        except StagentError:
            pass  # it stopped meanwhile; its finish hook records it

    # ---- ending a run ------------------------------------------------------------------

    def complete_run(self, run: Run, output: str | None, stop_reason: str | None = None) -> None:
        self._finish(run, "completed", output=self.clean(output), stop_reason=stop_reason)

    def fail_run(
        self,
        run: Run,
        sr: StepRun | None,
        *,
        stop_reason: str | None = "error",
        error: str | None = None,
    ) -> None:
        """The run fails because of ``sr``; steps that never started become cancelled."""
        error = error or (sr.error if sr else None) or "failed"
        name = sr.step_id if sr is not None else None
        if sr is not None and sr.step_id != DELAY_BETWEEN:
            name = run.definition.step(sr.step_id).name
        reason = f'step "{name}" failed: {error}' if name else error
        for other in run.steps.values():
            if other.status == "pending":
                self.save_step(other, status="cancelled", finished_at=self.now())
        run.failed_step = sr.step_id if sr is not None else None
        run.error = error
        self._finish(run, "failed", failure_reason=self.clean(reason), stop_reason=stop_reason)

    def finish_rows(
        self, run: Run, *, stopped_at: int | None = None, stop_reason: str | None = None
    ) -> None:
        """End a row-driven loop: completed with ``failed_items``, or failed (all rows failed,
        or a failed row with ``on_item_error: stop``)."""
        assert run.rows is not None
        steps = run.definition.task_steps
        failed = [
            r
            for r in range(1, len(run.rows) + 1)
            if any(
                (sr := run.step_run(s.id, r)) is not None and sr.status in ("failed", "blocked")
                for s in steps
            )
        ]
        run.failed_items = len(failed)
        first = failed[0] if failed else None
        bad = next(
            (sr for s in steps if (sr := run.step_run(s.id, first or 0)) and sr.status == "failed"),
            None,
        )
        if stopped_at is not None or (run.rows and len(failed) == len(run.rows)):
            why = (
                f"row {first} failed and on_item_error is stop"
                if stopped_at
                else "every row failed"
            )
            self.fail_run(run, bad, error=f"{why}: {bad.error if bad else 'failed'}")
            return
        self._finish(run, "completed", output=None, stop_reason=stop_reason)

    def _finish(self, run: Run, status: str, **fields: Any) -> None:
        now = self.now()
        for timer in run.timers.values():
            timer.cancel()
        run.timers.clear()
        self.save_run(
            run,
            status=status,
            finished_at=now,
            resume_at=None,
            failed_items=run.failed_items,
            **fields,
        )
        self.log(run, f"workflow_{status}", **self.final_payload(run))

    def final_payload(self, run: Run) -> dict[str, Any]:
        """What ``workflow_completed`` / ``_failed`` / ``_cancelled`` carry (channels route
        on it)."""
        failed_rows = []
        if run.rows is not None:
            steps = run.definition.task_steps
            failed_rows = [
                r
                for r in range(1, len(run.rows) + 1)
                if any(
                    (sr := run.step_run(s.id, r)) is not None and sr.status in ("failed", "blocked")
                    for s in steps
                )
            ]
        return {
            "workflow": run.workflow,
            "run_number": run.run_number,
            "status": run.status,
            "stop_reason": run.stop_reason,
            "cost_usd": round(run.cost_usd, 10),
            "failed_step": run.failed_step,
            "error": run.error,
            "output": (run.output or "")[:OUTPUT_EVENT_CHARS] or None,
            "channels": run.channels,
            "failed_items": failed_rows,
        }


__all__ = ["OUTPUT_EVENT_CHARS", "RunEnding"]
