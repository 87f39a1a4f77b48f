"""The orchestrator: drives every workflow run on the engine loop, event by event.

Nothing here waits. A run moves when something happens to it:

* a child task stops (the engine's finish hook) → its step completes or fails;
* a child spends money (the usage hook) → the run's cost grows; at its budget the run pauses;
* a checkpoint is decided (the inbox handler for ``checkpoint``) → the step starts or fails;
* a delay ends (an engine-clock timer, so a FakeClock drives it in tests);
* the operator pauses, resumes, cancels or retries it (``control.py``).

Each of these updates the in-memory :class:`~stagent_lab.workflows.state.Run`, writes the
change through the engine's writer (in order with the child tasks' own rows), logs the event
(subject ``workflow_run``), and calls ``patterns.advance`` to start whatever may start next.
Child tasks always go through ``service.submit``: queued, governed, priced like any task.
Budget pauses and the end of a run (completed, failed, the final event's payload) are in
:mod:`stagent_lab.workflows.ending`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagent_lab._text import repair_text
from stagent_lab.api import requests as rq
from stagent_lab.config import setting_spec
from stagent_lab.engine.runner import StopTask
from stagent_lab.engine.task import new_id
from stagent_lab.errors import StagentError
from stagent_lab.store import workflows as repo
from stagent_lab.workflows import patterns, prompts
from stagent_lab.workflows.definition import CALLABLE_KEY, Step, delay_seconds, is_callable_ref
from stagent_lab.workflows.ending import RunEnding
from stagent_lab.workflows.state import DELAY_BETWEEN, TERMINAL_RUN, Run, StepRun

if TYPE_CHECKING:
    from stagent_lab.engine.inbox import InboxDecision
    from stagent_lab.engine.task import TaskState
    from stagent_lab.service.core import WorkspaceService

log = logging.getLogger("stagent_lab.workflows")
KEPT_FINISHED = 500  # finished runs kept in memory (late child events, waits)


class WriteBatch:
    """Runs and step runs changed since the writer last committed: one queued operation that
    writes their rows as they are when it runs (a batch that failed to commit is simply
    written again, whole and in order)."""

    def __init__(self) -> None:
        self.new: dict[str, Run | StepRun] = {}
        self.dirty: dict[str, Run | StepRun] = {}
        self.closed = False

    def apply(self, con: Any) -> None:
        self.closed = True  # later changes go to the next batch
        inserts: dict[str, list[dict[str, Any]]] = {}
        updates: dict[str, list[dict[str, Any]]] = {}
        for obj in self.new.values():
            inserts.setdefault(_table(obj), []).append(obj.row())
        for key, obj in self.dirty.items():
            if key not in self.new:
                row = obj.row(full=False) if isinstance(obj, Run) else obj.row()
                updates.setdefault(_table(obj), []).append(row)
        repo.apply_writes(con, inserts, updates)


def _table(obj: Run | StepRun) -> str:
    return "workflow_step_runs" if isinstance(obj, StepRun) else "workflow_runs"


class Orchestrator(RunEnding):
    def __init__(self, service: WorkspaceService) -> None:
        self.service = service
        self.runs: dict[str, Run] = {}  # engine thread only
        self.by_task: dict[str, tuple[str, str]] = {}  # task id -> (run id, step run id)
        self.callables: dict[str, Callable[..., Any]] = {}  # in-process scripts, by token
        self._snap_lock = threading.Lock()
        self._snaps: dict[str, dict[str, Any]] = {}
        self.changed = threading.Condition()  # notified whenever a run's view changes
        self._batch: WriteBatch | None = None

    # ---- plumbing ----------------------------------------------------------------------

    @property
    def limit(self) -> int:
        return int(self.service.settings.value("workflows.max_context_chars"))

    def now(self) -> datetime:
        return self.service.clock.now()

    def clean(self, text: str | None) -> str | None:
        return self.service.redact(repair_text(text)) if text else text

    @staticmethod
    def delay_seconds(text: str) -> int:
        return delay_seconds(text)

    def log(self, run: Run, event: str, **payload: Any) -> None:
        self.service.log_subject("workflow_run", run.id, event, **payload)

    def _write(self, fn: Callable[[Any], None], label: str) -> None:
        self.service.writer_defer(fn, label, None)

    def batch(self) -> WriteBatch:
        """The open batch of run and step-run writes (queued on the writer when opened)."""
        b = self._batch
        if b is None or b.closed:
            b = self._batch = WriteBatch()
            self._write(b.apply, "workflow runs and steps")
        return b

    def save_run(self, run: Run, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(run, key, value)
        run.updated_at = self.now()
        self.batch().dirty[run.id] = run
        self.publish(run)

    def save_step(self, sr: StepRun, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(sr, key, value)
        self.batch().dirty[sr.id] = sr

    def new_step(
        self, run: Run, step: Step, iteration: int = 0, *, status: str = "pending"
    ) -> StepRun:
        """A new attempt of ``step`` (attempt 1, or one more than the latest)."""
        old = run.step_run(step.id, iteration)
        sr = StepRun(
            id=new_id(),
            run_id=run.id,
            step_id=step.id,
            step_index=step.index,
            iteration=iteration,
            attempt=old.attempt + 1 if old is not None else 1,
            status=status,
        )
        return self._add_step(run, sr)

    def new_delay_between(self, run: Run, iteration: int) -> StepRun:
        sr = StepRun(
            id=new_id(), run_id=run.id, step_id=DELAY_BETWEEN, step_index=-1, iteration=iteration
        )
        return self._add_step(run, sr)

    def _add_step(self, run: Run, sr: StepRun) -> StepRun:
        run.steps[sr.key] = sr
        self.batch().new[sr.id] = sr
        return sr

    def insert_run(self, run: Run) -> None:
        self.batch().new[run.id] = run

    # ---- snapshots (any thread) --------------------------------------------------------

    def publish(self, run: Run) -> None:
        view = run.view()
        with self._snap_lock:
            self._snaps[run.id] = view
        with self.changed:
            self.changed.notify_all()

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        with self._snap_lock:
            snap = self._snaps.get(run_id)
            return dict(snap) if snap is not None else None

    def forget_finished(self) -> None:
        done = [r for r in self.runs.values() if r.status in TERMINAL_RUN]
        for run in done[: max(0, len(done) - KEPT_FINISHED)]:
            self.runs.pop(run.id, None)
            with self._snap_lock:
                self._snaps.pop(run.id, None)

    # ---- moving a run ------------------------------------------------------------------

    def advance(self, run: Run) -> None:
        """Start whatever may start now (engine thread); a bug ends the run, never the loop."""
        if run.status in TERMINAL_RUN or run.status == "paused":
            return
        try:
            patterns.advance(self, run)
        except Exception as exc:
            log.exception("workflow run %s failed inside the orchestrator", run.id)
            self.log(run, "error", message=f"{type(exc).__name__}: {exc}")
            if run.status not in TERMINAL_RUN:
                self.fail_run(run, None, error=f"internal error: {type(exc).__name__}: {exc}")
            return
        self.settle(run)

    def settle(self, run: Run) -> None:
        """The run's status from its steps: running, delayed or waiting."""
        if run.status in TERMINAL_RUN or run.status == "paused":
            return
        active = run.active()
        delayed = [sr.resume_at for sr in active if sr.status == "delayed" and sr.resume_at]
        if any(sr.status == "running" for sr in active):
            status = "running"
        elif delayed:
            status = "delayed"
        elif any(sr.status == "waiting" for sr in active):
            status = "waiting"
        else:
            status = "running"
        resume_at = min(delayed) if delayed else None
        if status != run.status or resume_at != run.resume_at:
            self.save_run(run, status=status, resume_at=resume_at)

    def needs_ask(self, step: Step, sr: StepRun) -> bool:
        return step.requires_approval and sr.decision is None

    def begin(self, run: Run, step: Step, sr: StepRun, compose: patterns.Composer) -> None:
        """Act on a ready step: arm its delay, ask for approval, or start its child task."""
        if step.is_delay:
            self.arm_delay(run, sr, step.delay_s)
            return
        if self.needs_ask(step, sr):
            if sr.status != "waiting":
                self._ask(run, step, sr, compose())
            return
        if sr.decision == "deny":
            self.fail_step(run, sr, sr.error or "denied at the checkpoint")
            return
        if self.budget_spent(run):
            self.pause_for_budget(run)
            return
        self._start_child(run, step, sr, compose())

    def _ask(self, run: Run, step: Step, sr: StepRun, c: patterns.Compose) -> None:
        body = prompts.checkpoint_body(
            run.workflow,
            run.run_number,
            step.name,
            step.profile or "auto",
            step.prompt or "",
            c.previous,
            run.cost_usd,
        )
        # The step's row names the item first: creating the item commits both together.
        item_id = new_id()
        self.save_step(sr, status="waiting", approval_item_id=item_id)
        self.service.create_inbox_item(
            "checkpoint", subject="workflow_run", subject_id=run.id, body=body, item_id=item_id
        )
        self.log(run, "workflow_checkpoint", step_id=sr.step_id, item_id=item_id, **_where(sr))

    def _start_child(self, run: Run, step: Step, sr: StepRun, c: patterns.Compose) -> None:
        text = prompts.with_note(sr.retry_input or c.prompt, sr.operator_note)
        try:
            view = self.service.submit(
                rq.build(rq.SubmitTask, **self._task_fields(run, step, sr, c, text))
            )
        except (StagentError, ValueError, KeyError, LookupError) as exc:
            self.fail_step(run, sr, f"the step's task could not start: {exc}")
            return
        self.by_task[view.id] = (run.id, sr.id)
        warnings = "\n".join(c.warnings) or None
        self.save_step(
            sr,
            status="running",
            task_id=view.id,
            input_text=self.clean(text),
            started_at=self.now(),
            warnings=warnings,
        )
        self.log(
            run,
            "workflow_step_started",
            step_id=sr.step_id,
            attempt=sr.attempt,
            task_id=view.id,
            **_where(sr),
        )

    def _task_fields(
        self, run: Run, step: Step, sr: StepRun, c: patterns.Compose, text: str
    ) -> dict[str, Any]:
        script = step.script
        if is_callable_ref(script):
            script = self.callables.get(script[CALLABLE_KEY])
            if script is None:
                raise LookupError(
                    "its script was a Python function given in another process; define the "
                    "workflow again in this process (or use a JSON script)"
                )
        return {
            "prompt": text,
            "profile": None if step.profile in (None, "auto") else step.profile,
            "runtime": step.runtime,
            "model": step.model,
            "project": run.project,
            "max_turns": step.max_turns,
            "max_budget_usd": self.task_cap(run, step),
            "script": script,
            "title": c.title[:500],
            "source": "workflow",
            "parent_task_id": c.parent_task_id,
            "origin_id": sr.id,
            "activity": "workflow_step",
            "channels": run.channels,
        }

    def task_cap(self, run: Run, step: Step, spent: float = 0.0) -> float | None:
        """min(the step's budget, else the default task budget; the run's remaining budget).

        ``spent``: what the task already spent (it counts in the run's cost and in its own)."""
        cap = step.budget_usd
        if cap is None and setting_spec("budget.task_default_usd") is not None:
            default = float(self.service.settings.value("budget.task_default_usd") or 0)
            cap = default if default > 0 else None
        if run.budget_usd is not None:
            left = max(run.budget_usd - run.cost_usd, 0.0) + spent
            left = max(left, 1e-6)
            cap = left if cap is None else min(cap, left)
        return cap

    def refresh_caps(self, run: Run) -> None:
        """After the run's budget changed: running (or paused) children get their new cap."""
        for sr in run.active():
            if sr.status != "running" or not sr.task_id or sr.step_id == DELAY_BETWEEN:
                continue
            cap = self.task_cap(run, run.definition.step(sr.step_id), sr.cost_usd)
            st = self.service.live_task(sr.task_id)
            if st is not None:
                st.max_budget_usd = cap
            self._write(
                lambda con, tid=sr.task_id, usd=cap: repo.set_task_budget(con, tid, usd),
                "task budget",
            )

    def fail_step(self, run: Run, sr: StepRun, error: str, status: str = "failed") -> None:
        self.save_step(sr, status=status, error=self.clean(error), finished_at=self.now())
        event = "workflow_step_blocked" if status == "blocked" else "workflow_step_failed"
        self.log(
            run,
            event,
            step_id=sr.step_id,
            attempt=sr.attempt,
            task_id=sr.task_id,
            error=self.clean(error),
            **_where(sr),
        )

    def block_step(self, run: Run, sr: StepRun, error: str) -> None:
        self.fail_step(run, sr, error, status="blocked")

    def skip_step(self, run: Run, sr: StepRun, reason: str) -> None:
        self.save_step(sr, status="skipped", error=reason, finished_at=self.now())
        self.log(run, "workflow_step_skipped", step_id=sr.step_id, reason=reason, **_where(sr))

    # ---- delays ------------------------------------------------------------------------

    def arm_delay(self, run: Run, sr: StepRun, seconds: float) -> None:
        resume_at = self.now() + timedelta(seconds=seconds)
        self.save_step(sr, status="delayed", resume_at=resume_at, started_at=self.now())
        self.arm_timer(run, sr)
        self.log(run, "workflow_delayed", step_id=sr.step_id, resume_at=resume_at, **_where(sr))

    def arm_timer(self, run: Run, sr: StepRun) -> None:
        assert sr.resume_at is not None
        old = run.timers.pop(sr.id, None)
        if old is not None:
            old.cancel()
        run.timers[sr.id] = self.service.call_at(
            sr.resume_at, lambda: self.delay_done(run.id, sr.id), f"workflow {run.id} delay"
        )

    def delay_done(self, run_id: str, step_run_id: str) -> None:
        """A delay ended (its timer, or resume() ending it early)."""
        run = self.runs.get(run_id)
        sr = run.by_id(step_run_id) if run is not None else None
        if run is None or sr is None or sr.status != "delayed":
            return
        timer = run.timers.pop(sr.id, None)
        if timer is not None:
            timer.cancel()
        self.save_step(sr, status="completed", finished_at=self.now())
        if sr.step_id != DELAY_BETWEEN:
            self.log(run, "workflow_step_completed", step_id=sr.step_id, **_where(sr))
        self.advance(run)  # a paused run completes the delay on resume

    # ---- hooks -------------------------------------------------------------------------

    def on_finish(self, st: TaskState) -> None:
        """Engine finish hook: a child stopped. Paused children keep their step running."""
        if st.source != "workflow" or str(st.status) == "paused":
            return
        ref = self.by_task.get(st.id)
        run = self.runs.get(ref[0]) if ref else None
        sr = run.by_id(ref[1]) if run is not None and ref else None
        if run is None or sr is None:
            return
        self.by_task.pop(st.id, None)
        if sr.status != "running":
            return
        self.record_child(run, sr, str(st.status), st.result, st.failure_reason, st.cost_usd)
        self.advance(run)

    def record_child(
        self,
        run: Run,
        sr: StepRun,
        status: str,
        result: str | None,
        reason: str | None,
        cost: float | None,
    ) -> None:
        now = self.now()
        if status == "completed":
            self.save_step(
                sr,
                status="completed",
                result=self.clean(result),
                finished_at=now,
                cost_usd=float(cost or 0.0),
            )
            self.log(
                run,
                "workflow_step_completed",
                step_id=sr.step_id,
                attempt=sr.attempt,
                task_id=sr.task_id,
                **_where(sr),
            )
        elif status == "cancelled" and (sr.cancelling or run.status == "cancelled"):
            self.save_step(sr, status="cancelled", finished_at=now, cost_usd=float(cost or 0.0))
        else:
            error = reason or "failed"
            if status == "cancelled":
                error = "child task cancelled"
            sr.cost_usd = float(cost or 0.0)
            self.save_step(sr, cost_usd=sr.cost_usd)
            self.fail_step(run, sr, error)
        plain_loop = run.pattern == "loop" and not (
            run.definition.loop and run.definition.loop.rows
        )
        if plain_loop and sr.status in ("completed", "failed"):
            stop = patterns.iteration_stop(run, sr)
            self.log(run, "loop_iteration", n=sr.iteration, task_id=sr.task_id, stop_reason=stop)

    def on_usage(self, st: TaskState, row: dict[str, Any]) -> None:
        """Engine usage hook: a child's model call adds to its run's cost."""
        if st.source != "workflow":
            return
        ref = self.by_task.get(st.id)
        run = self.runs.get(ref[0]) if ref else None
        if run is None or ref is None:
            return
        cost = float(row.get("cost_usd") or 0.0)
        if cost:
            sr = run.by_id(ref[1])
            if sr is not None:
                sr.cost_usd += cost
            self.save_run(run, cost_usd=run.cost_usd + cost)
        if run.status in ("running", "waiting", "delayed") and self.budget_spent(run):
            self.pause_for_budget(run, current=st.id)
            raise StopTask("paused", self.budget_reason(run))

    def on_checkpoint(self, decision: InboxDecision) -> None:
        """Inbox handler for ``checkpoint`` items (no timeout; decided by any client)."""
        run = self.runs.get(decision.subject_id or "")
        if run is None:
            return
        sr = next((s for s in run.steps.values() if s.approval_item_id == decision.item_id), None)
        if sr is None or sr.status != "waiting":
            return
        if decision.decision == "allow":
            self.save_step(sr, decision="allow", operator_note=self.clean(decision.message))
        else:
            why = decision.message or f"denied at the checkpoint by {decision.decided_by}"
            self.save_step(sr, decision="deny", error=self.clean(why))
        self.advance(run)  # a paused run applies the decision on resume


def _where(sr: StepRun) -> dict[str, Any]:
    return {"iteration": sr.iteration, "step_run_id": sr.id}


__all__ = ["Orchestrator"]
