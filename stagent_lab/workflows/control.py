"""Starting runs and the operator's controls: pause, resume, cancel, retry, budget; restart.

Everything here runs on the engine thread (the feature's request handlers hop there), on the
orchestrator's in-memory runs, and writes through the engine's writer.

* **Pause** (running, waiting or delayed → paused): no new step, branch, iteration or row
  starts; running children finish and are recorded, or pause too with ``stop_tasks``. A pending
  checkpoint stays pending; a decision made meanwhile applies on resume.
* **Resume** (paused → running; delayed → the delay ends now): children the workflow paused, or
  that a restart interrupted, are resumed, and the run goes on from where it was.
* **Cancel**: live children are cancelled, pending checkpoints expire, timers stop, steps not
  started become cancelled.
* **Retry** (failed, or completed with failed rows): failed steps rerun as new attempts with the
  input text of their first attempt (or resume their task with ``resume=True``), then the
  pattern continues.
* **Restart** (engine start): delayed runs re-arm their timers (overdue ones continue at once),
  waiting runs keep their checkpoints, paused runs stay paused, and running runs resume their
  interrupted children (``workflows.resume_on_open``) or pause with reason ``engine stopped``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.engine.task import new_id
from stagent_lab.errors import StagentError, WorkflowBusyError, WorkflowStateError
from stagent_lab.store import workflows as repo
from stagent_lab.workflows import patterns
from stagent_lab.workflows.definition import Definition
from stagent_lab.workflows.state import TERMINAL_RUN, Run, StepRun, load_run

if TYPE_CHECKING:
    from stagent_lab.workflows.orchestrator import Orchestrator

ENGINE_STOPPED = "engine stopped"
INTERRUPTED = ("engine stopped", "engine closed")


class RunControl:
    def __init__(self, orch: Orchestrator) -> None:
        self.orch = orch
        self.service = orch.service
        self._numbers: dict[str, int] = {}

    # ---- starting ----------------------------------------------------------------------

    def start(
        self,
        workflow: dict[str, Any],
        definition: Definition,
        snapshot: dict[str, Any],
        inputs: dict[str, Any],
        rows: list[dict[str, Any]] | None,
        trigger: str,
        trigger_id: str | None,
    ) -> Run:
        """A new run of ``workflow`` (its stored row) with ``snapshot`` (the definition JSON
        plus the defaults it runs with); starts its first steps. WorkflowBusyError when a run
        is live and the workflow does not allow concurrent runs."""
        orch = self.orch
        wid = workflow["id"]
        if not workflow["concurrent_runs"]:
            live = [r for r in orch.runs.values() if r.workflow_id == wid and r.live]
            if live:
                r = live[0]
                raise WorkflowBusyError(
                    f'workflow "{workflow["name"]}" already has a live run: #{r.run_number} '
                    f"({r.id}) is {r.status}; wait for it, cancel it, or set concurrent_runs",
                    r.id,
                    r.status,
                )
        number = self._numbers.get(wid)  # runs made here may still be in the writer's queue
        if number is None:
            number = repo.next_run_number(self.service.store.con, wid)
        self._numbers[wid] = number + 1
        now = orch.now()
        run = Run(
            id=new_id(),
            workflow_id=wid,
            workflow=workflow["name"],
            run_number=number,
            version=int(workflow["version"]),
            pattern=workflow["pattern"],
            definition=definition,
            snapshot=snapshot,
            inputs=inputs,
            rows=rows,
            trigger=trigger,
            trigger_id=trigger_id,
            status="running",
            started_at=now,
            updated_at=now,
            budget_usd=workflow["budget_usd"],
        )
        orch.runs[run.id] = run
        orch.insert_run(run)
        if run.pattern != "loop":
            for step in definition.steps:
                orch.new_step(run, step, 0)
        orch.publish(run)
        orch.log(
            run,
            "workflow_started",
            workflow=run.workflow,
            workflow_id=wid,
            version=run.version,
            run_number=number,
            trigger=trigger,
            trigger_id=trigger_id,
            rows=len(rows) if rows is not None else None,
        )
        orch.advance(run)
        orch.forget_finished()
        return run

    # ---- finding runs ------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        """A run by id (loaded from the store when it is not in memory)."""
        run = self.orch.runs.get(run_id)
        if run is not None:
            return run
        self.service.writer_flush(None)
        con = self.service.store.con
        row = repo.run(con, run_id)
        if row is None:
            raise KeyError(f"no workflow run with id {run_id!r}")
        run = load_run(row, repo.steps_of(con, run_id))
        self.orch.runs[run.id] = run
        self.orch.publish(run)
        return run

    # ---- controls ----------------------------------------------------------------------

    def pause(self, run_id: str, stop_tasks: bool, reason: str) -> Run:
        run = self.get(run_id)
        if run.status not in ("running", "waiting", "delayed"):
            raise WorkflowStateError(
                f"run {run.id} is {run.status}; only running, waiting or delayed runs pause"
            )
        orch = self.orch
        orch.save_run(run, status="paused", stop_reason="operator", paused_at=orch.now())
        orch.log(
            run, "workflow_paused", reason=reason, stop_reason="operator", stop_tasks=stop_tasks
        )
        if stop_tasks:
            for sr in run.active():
                if sr.status == "running" and sr.task_id:
                    orch.pause_child(sr.task_id, f"workflow run paused: {reason}")
        return run

    def resume(self, run_id: str) -> Run:
        run = self.get(run_id)
        orch = self.orch
        if run.status == "delayed":  # end the wait now
            for sr in [s for s in run.active() if s.status == "delayed"]:
                orch.log(run, "workflow_resumed", reason="delay ended early by the operator")
                orch.delay_done(run.id, sr.id)
            return run
        if run.status != "paused":
            raise WorkflowStateError(
                f"run {run.id} is {run.status}; resume() continues a paused run or ends a delay"
            )
        if run.stop_reason == "budget" and orch.budget_spent(run):
            raise WorkflowStateError(
                f"{orch.budget_reason(run)}; raise it first with run.set_budget(usd)"
            )
        orch.save_run(run, status="running", stop_reason=None, paused_at=None)
        orch.log(run, "workflow_resumed", reason="resumed by the operator")
        orch.refresh_caps(run)
        self._resume_children(run)
        orch.advance(run)
        return run

    def _resume_children(self, run: Run) -> None:
        """Resume the children the workflow paused or a restart interrupted."""
        orch = self.orch
        running = [sr for sr in run.active() if sr.status == "running" and sr.task_id]
        states = self._task_states([sr.task_id for sr in running if sr.task_id])
        for sr in running:
            state = states.get(sr.task_id or "")
            status = state["status"] if state else None
            if status == "paused" or (
                status == "failed" and state["failure_reason"] in INTERRUPTED
            ):
                self._resume_child(run, sr)
            elif status in ("completed", "failed", "cancelled"):
                orch.by_task.pop(sr.task_id or "", None)
                orch.record_child(
                    run, sr, status, state["result"], state["failure_reason"], state["cost_usd"]
                )

    def _resume_child(self, run: Run, sr: StepRun) -> None:
        assert sr.task_id is not None
        try:
            self.service.resume_task(sr.task_id)
        except StagentError as exc:
            self.orch.by_task.pop(sr.task_id, None)
            self.orch.fail_step(run, sr, f"its task could not resume: {exc}")
            return
        self.orch.by_task[sr.task_id] = (run.id, sr.id)

    def _task_states(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        missing = []
        for tid in ids:
            snap = self.service.task_snapshot(tid)
            if snap is not None:
                out[tid] = snap
            else:
                missing.append(tid)
        if missing:
            self.service.writer_flush(None)
            out.update(repo.task_states(self.service.store.con, missing))
        return out

    def cancel(self, run_id: str, reason: str) -> Run:
        run = self.get(run_id)
        if run.status in TERMINAL_RUN:
            raise WorkflowStateError(f"run {run.id} is already {run.status}")
        orch = self.orch
        now = orch.now()
        items: list[str] = []
        children: list[str] = []
        for timer in run.timers.values():
            timer.cancel()
        run.timers.clear()
        for sr in list(run.steps.values()):
            if sr.status == "running" and sr.task_id:
                sr.cancelling = True
                children.append(sr.task_id)
            elif sr.status in ("pending", "waiting", "delayed"):
                if sr.status == "waiting" and sr.approval_item_id:
                    items.append(sr.approval_item_id)
                orch.save_step(sr, status="cancelled", finished_at=now)
        orch.save_run(
            run,
            status="cancelled",
            stop_reason="cancelled",
            finished_at=now,
            resume_at=None,
            failure_reason=orch.clean(reason),
        )
        if items:
            self.service.expire_inbox_items(items)
        for task_id in children:
            try:
                self.service.cancel_task(task_id, f"workflow run cancelled: {reason}")
            except StagentError:
                pass  # already stopped; its finish hook recorded it
        orch.log(run, "workflow_cancelled", **orch.final_payload(run))
        return run

    def set_budget(self, run_id: str, budget: float | None) -> Run:
        run = self.get(run_id)
        if run.status in TERMINAL_RUN and run.status != "failed":
            raise WorkflowStateError(f"run {run.id} is {run.status}")
        self.orch.save_run(run, budget_usd=budget)
        self.orch.refresh_caps(run)
        return run

    def retry(self, run_id: str, step: str | None, items: list[int] | None, resume: bool) -> Run:
        run = self.get(run_id)
        orch = self.orch
        retryable = run.status == "failed" or (run.status == "completed" and run.failed_items)
        if not retryable:
            raise WorkflowStateError(
                f"run {run.id} is {run.status}; retry() reruns a failed run, or the failed rows "
                "of a completed one"
            )
        others = [r for r in orch.runs.values() if r.workflow_id == run.workflow_id and r.live]
        wf = repo.workflow(self.service.store.con, run.workflow_id)
        if others and wf is not None and not wf["concurrent_runs"]:
            r = others[0]
            raise WorkflowBusyError(
                f"run #{r.run_number} ({r.id}) of this workflow is {r.status}", r.id, r.status
            )
        plan, fields = patterns.retry_plan(run, step, items)
        resumed: list[StepRun] = []
        fresh: list[tuple[Any, int, bool]] = []
        for st, iteration, same_input in plan:
            old = run.step_run(st.id, iteration)
            if resume and same_input and old is not None and old.task_id:
                resumed.append(old)
            else:
                fresh.append((st, iteration, same_input))
        for old in resumed:  # first, so a refused resume changes nothing
            assert old.task_id is not None
            self.service.resume_task(old.task_id)
        for old in resumed:
            sr = orch.new_step(
                run, run.definition.step(old.step_id), old.iteration, status="running"
            )
            orch.save_step(
                sr, task_id=old.task_id, input_text=old.input_text, started_at=orch.now()
            )
            orch.by_task[old.task_id or ""] = (run.id, sr.id)
            orch.log(
                run,
                "workflow_step_started",
                step_id=sr.step_id,
                attempt=sr.attempt,
                task_id=sr.task_id,
                iteration=sr.iteration,
                resumed=True,
            )
        for st, iteration, same_input in fresh:
            old = run.step_run(st.id, iteration)
            sr = orch.new_step(run, st, iteration)
            if same_input and old is not None:
                sr.retry_input = old.input_text
        orch.save_run(
            run,
            status="running",
            stop_reason=None,
            failure_reason=None,
            finished_at=None,
            output=None,
            failed_items=0,
            **fields,
        )
        run.failed_step = run.error = None
        orch.log(run, "workflow_resumed", reason="retry", steps=[p[0].id for p in plan])
        orch.advance(run)
        return run

    # ---- restart -----------------------------------------------------------------------

    def recover(self) -> None:
        """Engine start: rebuild live runs from the store and carry on (see module doc)."""
        con = self.service.store.con
        resume_on_open = bool(self.service.settings.value("workflows.resume_on_open"))
        for row in repo.live_runs(con):
            try:
                run = load_run(row, repo.steps_of(con, row["id"]))
            except Exception as exc:  # a run this version cannot read: say so, keep the rest
                self.service.log_subject("workflow_run", row["id"], "error", message=str(exc))
                continue
            self.orch.runs[run.id] = run
            self.orch.publish(run)
            self._recover_run(run, resume_on_open)

    def _recover_run(self, run: Run, resume_on_open: bool) -> None:
        orch = self.orch
        running = [sr for sr in run.active() if sr.status == "running" and sr.task_id]
        states = repo.task_states(self.service.store.con, [sr.task_id for sr in running])  # type: ignore[misc]
        interrupted: list[StepRun] = []
        for sr in running:
            state = states.get(sr.task_id or "")
            status = state["status"] if state else None
            if status in ("completed", "cancelled") or (
                status == "failed" and state and state["failure_reason"] not in INTERRUPTED
            ):
                orch.record_child(
                    run, sr, status, state["result"], state["failure_reason"], state["cost_usd"]
                )
            elif status is None:
                orch.fail_step(run, sr, "its task is missing from the store")
            else:
                orch.by_task[sr.task_id or ""] = (run.id, sr.id)
                interrupted.append(sr)
        for sr in run.active():
            if sr.status == "delayed" and sr.resume_at is not None:
                orch.arm_timer(run, sr)
        if run.status == "paused":
            return
        if interrupted and not resume_on_open:
            orch.save_run(run, status="paused", stop_reason=ENGINE_STOPPED, paused_at=orch.now())
            orch.log(run, "workflow_paused", reason=ENGINE_STOPPED, stop_reason=ENGINE_STOPPED)
            return
        for sr in interrupted:
            self._resume_child(run, sr)
        orch.advance(run)


__all__ = ["ENGINE_STOPPED", "RunControl"]
