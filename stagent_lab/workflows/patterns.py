"""The six patterns: what may start next, and what a retry reruns.

``advance(orch, run)`` is called whenever something happened to a run (a child ended, a
checkpoint was decided, a delay ended, the operator resumed it). It starts every step that may
start now, through the orchestrator (which asks for approval, arms a delay or submits the
child task), and ends the run when the pattern says so. It never blocks: anything that takes
time ends in another call to ``advance``.

Loops and rows live in :mod:`stagent_lab.workflows.loops`; what a child is given in
:mod:`stagent_lab.workflows.compose`.

Step runs of ``sequence``, ``checkpoint``, ``planner-executor``, ``parallel`` and ``swarm`` exist
from the start (``pending``); loop iterations and rows get theirs when they start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stagent_lab.errors import WorkflowStateError
from stagent_lab.workflows import prompts
from stagent_lab.workflows.compose import Compose, Composer, inputs_text, ready, title
from stagent_lab.workflows.definition import Step
from stagent_lab.workflows.loops import iteration_stop, loop, rows
from stagent_lab.workflows.state import Run, StepRun

if TYPE_CHECKING:
    from stagent_lab.workflows.orchestrator import Orchestrator


def advance(orch: Orchestrator, run: Run) -> None:
    handler = {
        "sequence": linear,
        "checkpoint": linear,
        "planner-executor": linear,
        "parallel": parallel,
        "swarm": swarm,
        "loop": rows if run.definition.loop and run.definition.loop.rows else loop,
    }[run.pattern]
    handler(orch, run)


# ---- sequence, checkpoint, planner-executor ----------------------------------------------


def linear(orch: Orchestrator, run: Run) -> None:
    steps = run.definition.steps
    while run.current_index < len(steps):
        step = steps[run.current_index]
        sr = run.step_run(step.id)
        assert sr is not None
        if sr.status in ("completed", "skipped"):
            orch.save_run(run, current_index=run.current_index + 1)
            continue
        if sr.status in ("failed", "cancelled", "blocked"):
            orch.fail_run(run, sr)
            return
        if not ready(sr):
            return
        orch.begin(run, step, sr, lambda step=step: _linear_compose(orch, run, step))
        if not sr.done:
            return
    orch.complete_run(run, _linear_output(run))


def _last_task_output(run: Run, before: int) -> tuple[Step, StepRun] | None:
    for step in reversed(run.definition.steps[:before]):
        if step.is_delay:
            continue
        sr = run.step_run(step.id)
        if sr is not None and sr.status == "completed":
            return step, sr
    return None


def _linear_compose(orch: Orchestrator, run: Run, step: Step) -> Compose:
    d = run.definition
    tasks = d.task_steps
    n = next(i for i, s in enumerate(tasks) if s.id == step.id) + 1
    task = inputs_text(orch, run, step.prompt)
    limit = orch.limit
    if d.pattern == "planner-executor":
        planner = tasks[0]
        if step.id == planner.id:
            return Compose(
                prompts.planner(run.workflow, step.name, task), None, None, title(run, step)
            )
        psr = run.step_run(planner.id)
        plan = (psr.result if psr else "") or ""
        text = prompts.executor(
            run.workflow,
            step.name,
            f"executor {n - 1} of {len(tasks) - 1}",
            task,
            (planner.name, plan),
            limit,
        )
        return Compose(text, plan, psr.task_id if psr else None, title(run, step))
    prev = _last_task_output(run, step.index)
    previous = (prev[0].name, prev[1].result or "") if prev else None
    text = prompts.sequence(
        run.workflow, step.name, f"step {n} of {len(tasks)}", task, previous, limit
    )
    return Compose(
        text,
        previous[1] if previous else None,
        prev[1].task_id if prev else None,
        title(run, step),
    )


def _linear_output(run: Run) -> str | None:
    d = run.definition
    tasks = d.task_steps
    if d.pattern == "planner-executor":
        parts = []
        for step in tasks[1:]:
            sr = run.step_run(step.id)
            parts.append(f"## {step.name}\n{(sr.result if sr else '') or ''}".strip())
        return "\n\n".join(parts)
    last = run.step_run(tasks[-1].id)
    return last.result if last else None


# ---- parallel and swarm ------------------------------------------------------------------


def _fan_out(
    orch: Orchestrator, run: Run, group: list[Step], limit: int, compose: Callable[[Step], Compose]
) -> None:
    """Start the group's ready steps: approvals at once, children while slots are free.

    A step waiting for approval holds no slot, so a branch waits while its siblings run."""
    running = sum(1 for s in group if (sr := run.step_run(s.id)) and sr.status == "running")
    for step in group:
        sr = run.step_run(step.id)
        assert sr is not None
        if not ready(sr):
            continue
        starts_child = not orch.needs_ask(step, sr) and sr.decision != "deny"
        if starts_child and running >= limit:
            continue
        orch.begin(run, step, sr, lambda step=step: compose(step))
        if sr.status == "running":
            running += 1
        if run.status == "paused":
            return


def _after_group(
    orch: Orchestrator, run: Run, group: list[Step], final: Step, compose: Composer
) -> None:
    """When every step of the group is done: the final step, or blocked when one failed."""
    srs = [run.step_run(s.id) for s in group]
    if any(sr is None or not sr.done for sr in srs):
        return
    fsr = run.step_run(final.id)
    assert fsr is not None
    failed = [(s, sr) for s, sr in zip(group, srs, strict=True) if sr and sr.status != "completed"]
    if fsr.status == "pending" and failed:
        listing = "; ".join(f'"{s.name}": {sr.error or sr.status}' for s, sr in failed)
        orch.block_step(run, fsr, f"{len(failed)} of {len(group)} failed: {listing}")
    if fsr.status in ("failed", "blocked", "cancelled"):
        orch.fail_run(run, fsr)
        return
    if fsr.status == "completed":
        orch.complete_run(run, fsr.result)
        return
    if ready(fsr):
        orch.begin(run, final, fsr, compose)
        if fsr.done:
            _after_group(orch, run, group, final, compose)


def parallel(orch: Orchestrator, run: Run) -> None:
    d = run.definition
    branches = [s for s in d.steps if not s.depends_on]
    synth = next(s for s in d.steps if s.depends_on)
    limit = d.max_concurrent or 1

    def branch(step: Step) -> Compose:
        n = branches.index(step) + 1
        text = prompts.branch(
            run.workflow,
            step.name,
            f"branch {n} of {len(branches)}",
            inputs_text(orch, run, step.prompt),
        )
        return Compose(text, None, None, title(run, step))

    def synthesis() -> Compose:
        outputs = [(b.name, (run.step_run(b.id).result or "")) for b in branches]  # type: ignore[union-attr]
        text = prompts.synthesis(
            run.workflow, synth.name, inputs_text(orch, run, synth.prompt), outputs, orch.limit
        )
        joined = "\n\n".join(f"{n}: {o}" for n, o in outputs)
        return Compose(text, joined, None, title(run, synth))

    _fan_out(orch, run, branches, limit, branch)
    if run.status != "paused":
        _after_group(orch, run, branches, synth, synthesis)


def swarm(orch: Orchestrator, run: Run) -> None:
    d = run.definition
    mayor, workers, final = d.steps[0], list(d.steps[1:-1]), d.steps[-1]
    msr = run.step_run(mayor.id)
    assert msr is not None
    if not msr.done:
        if ready(msr):
            orch.begin(
                run,
                mayor,
                msr,
                lambda: Compose(
                    prompts.coordinator(
                        run.workflow,
                        mayor.name,
                        inputs_text(orch, run, mayor.prompt),
                        [w.name for w in workers],
                    ),
                    None,
                    None,
                    title(run, mayor),
                ),
            )
        if not msr.done:
            return
    if msr.status != "completed":
        orch.fail_run(run, msr)
        return
    plan = (mayor.name, msr.result or "")

    def worker(step: Step) -> Compose:
        text = prompts.worker(
            run.workflow, step.name, inputs_text(orch, run, step.prompt), plan, orch.limit
        )
        return Compose(text, plan[1], msr.task_id, title(run, step))

    def refinery() -> Compose:
        outputs = [(w.name, (run.step_run(w.id).result or "")) for w in workers]  # type: ignore[union-attr]
        task = inputs_text(orch, run, final.prompt)
        text = prompts.refinery(run.workflow, final.name, task, plan, outputs, orch.limit)
        joined = "\n\n".join(f"{n}: {o}" for n, o in outputs)
        return Compose(text, joined, None, title(run, final))

    _fan_out(orch, run, workers, d.max_concurrent or 1, worker)
    if run.status != "paused":
        _after_group(orch, run, workers, final, refinery)


# ---- retry -------------------------------------------------------------------------------


def retry_plan(
    run: Run, step_id: str | None, items: list[int] | None
) -> tuple[list[tuple[Step, int, bool]], dict[str, Any]]:
    """What a retry reruns: ``[(step, iteration, same_input)]`` and the run fields to reset.

    ``same_input`` marks a failed step, which reruns with the input text of its first attempt.
    """
    d = run.definition
    if run.pattern == "loop" and d.loop is not None and d.loop.rows:
        return _retry_rows(run, items)
    if items is not None:
        raise WorkflowStateError("items= applies to a loop over rows")
    if run.pattern == "loop":
        step = d.task_steps[0]
        sr = run.step_run(step.id, run.iteration)
        if sr is None or sr.status == "completed":
            raise WorkflowStateError(f"run {run.id} has no failed iteration to retry")
        return [(step, run.iteration, sr.status == "failed")], {}
    not_ok = [s for s in d.steps if not _ok(run, s)]
    first = _first_to_rerun(run, step_id, not_ok)
    if run.pattern in ("sequence", "checkpoint", "planner-executor"):
        plan = [(s, 0, s.id == first.id and _same_input(run, s)) for s in d.steps[first.index :]]
        return plan, {"current_index": first.index}
    if run.pattern == "parallel":
        group = [s for s in d.steps if not s.depends_on]
        final = next(s for s in d.steps if s.depends_on)
    else:
        group, final = list(d.steps[1:-1]), d.steps[-1]
        if first.id == d.steps[0].id:  # retrying the mayor reruns everything after it
            return [(s, 0, s.id == first.id and _same_input(run, s)) for s in d.steps], {}
    rerun = [s for s in group if s.id == first.id or (step_id is None and not _ok(run, s))]
    plan = [(s, 0, _same_input(run, s)) for s in rerun]
    plan.append((final, 0, final.id == first.id and _same_input(run, final)))
    return plan, {}


def _ok(run: Run, step: Step) -> bool:
    sr = run.step_run(step.id)
    return sr is not None and sr.status in ("completed", "skipped")


def _same_input(run: Run, step: Step) -> bool:
    """A failed step whose child started reruns with that child's exact input text."""
    sr = run.step_run(step.id)
    return sr is not None and sr.status == "failed" and sr.input_text is not None


def _first_to_rerun(run: Run, step_id: str | None, failed: list[Step]) -> Step:
    d = run.definition
    if step_id is not None:
        try:
            return d.step(step_id)
        except KeyError:
            ids = ", ".join(s.id for s in d.steps)
            raise WorkflowStateError(
                f"no step {step_id!r} in run {run.id} (steps: {ids})"
            ) from None
    if not failed:
        raise WorkflowStateError(f"run {run.id} has no failed step to retry")
    return failed[0]


def _retry_rows(
    run: Run, items: list[int] | None
) -> tuple[list[tuple[Step, int, bool]], dict[str, Any]]:
    assert run.rows is not None
    steps = run.definition.task_steps
    count = len(run.rows)
    if items is not None:
        bad = [i for i in items if not 1 <= i <= count]
        if bad:
            raise WorkflowStateError(f"rows are numbered 1 to {count}; no row {bad[0]}")
        chosen = sorted(set(items))
    else:
        chosen = [
            r
            for r in range(1, count + 1)
            if any(
                (sr := run.step_run(s.id, r)) and sr.status in ("failed", "blocked") for s in steps
            )
        ]
        if not chosen:
            raise WorkflowStateError(f"run {run.id} has no failed row to retry")
    plan: list[tuple[Step, int, bool]] = []
    for r in chosen:
        srs = [run.step_run(s.id, r) for s in steps]
        failed_at = next(
            (
                i
                for i, sr in enumerate(srs)
                if sr is not None and sr.status in ("failed", "blocked")
            ),
            None,
        )
        start = 0 if items is not None or failed_at is None else failed_at
        for i, s in enumerate(steps[start:], start=start):
            plan.append((s, r, i == failed_at and srs[i] is not None and srs[i].status == "failed"))
    return plan, {"iteration": chosen[0]}


__all__ = ["Compose", "Composer", "advance", "iteration_stop", "retry_plan"]
