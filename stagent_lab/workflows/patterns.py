"""The six patterns: what may start next, and what a retry reruns.

``advance(orch, run)`` is called whenever something happened to a run (a child ended, a
checkpoint was decided, a delay ended, the operator resumed it). It starts every step that may
start now, through the orchestrator (which asks for approval, arms a delay or submits the
child task), and ends the run when the pattern says so. It never blocks: anything that takes
time ends in another call to ``advance``.

Step runs of ``sequence``, ``checkpoint``, ``planner-executor``, ``parallel`` and ``swarm`` exist
from the start (``pending``); loop iterations and rows get theirs when they start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stagent_lab.errors import WorkflowStateError
from stagent_lab.workflows import prompts
from stagent_lab.workflows.definition import Step
from stagent_lab.workflows.state import DELAY_BETWEEN, Run, StepRun
from stagent_lab.workflows.templates import render

if TYPE_CHECKING:
    from stagent_lab.workflows.orchestrator import Orchestrator


@dataclass
class Compose:
    """What a step's child is given: the prompt, the previous output (for the checkpoint
    body), the task it consumes (``parent_task_id``) and its title."""

    prompt: str
    previous: str | None
    parent_task_id: str | None
    title: str
    warnings: list[str] = field(default_factory=list)


Composer = Callable[[], Compose]


def _ready(sr: StepRun) -> bool:
    """A step that the orchestrator should act on now."""
    return sr.status == "pending" or (sr.status == "waiting" and sr.decision is not None)


def _title(run: Run, step: Step, suffix: str = "") -> str:
    return f"{run.workflow} · {step.name}{suffix}"


def _inputs(orch: Orchestrator, run: Run, text: str | None) -> str:
    return render(text or "", {"inputs": run.inputs}, only={"inputs"})[0]


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
        if not _ready(sr):
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
    task = _inputs(orch, run, step.prompt)
    limit = orch.limit
    if d.pattern == "planner-executor":
        planner = tasks[0]
        if step.id == planner.id:
            return Compose(
                prompts.planner(run.workflow, step.name, task), None, None, _title(run, step)
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
        return Compose(text, plan, psr.task_id if psr else None, _title(run, step))
    prev = _last_task_output(run, step.index)
    previous = (prev[0].name, prev[1].result or "") if prev else None
    text = prompts.sequence(
        run.workflow, step.name, f"step {n} of {len(tasks)}", task, previous, limit
    )
    return Compose(
        text,
        previous[1] if previous else None,
        prev[1].task_id if prev else None,
        _title(run, step),
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
        if not _ready(sr):
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
    orch: Orchestrator, run: Run, group: list[Step], final: Step, compose: Callable[[], Compose]
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
    if _ready(fsr):
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
            _inputs(orch, run, step.prompt),
        )
        return Compose(text, None, None, _title(run, step))

    def synthesis() -> Compose:
        outputs = [(b.name, (run.step_run(b.id).result or "")) for b in branches]  # type: ignore[union-attr]
        text = prompts.synthesis(
            run.workflow, synth.name, _inputs(orch, run, synth.prompt), outputs, orch.limit
        )
        joined = "\n\n".join(f"{n}: {o}" for n, o in outputs)
        return Compose(text, joined, None, _title(run, synth))

    _fan_out(orch, run, branches, limit, branch)
    if run.status != "paused":
        _after_group(orch, run, branches, synth, synthesis)


def swarm(orch: Orchestrator, run: Run) -> None:
    d = run.definition
    mayor, workers, final = d.steps[0], list(d.steps[1:-1]), d.steps[-1]
    msr = run.step_run(mayor.id)
    assert msr is not None
    if not msr.done:
        if _ready(msr):
            orch.begin(
                run,
                mayor,
                msr,
                lambda: Compose(
                    prompts.coordinator(
                        run.workflow,
                        mayor.name,
                        _inputs(orch, run, mayor.prompt),
                        [w.name for w in workers],
                    ),
                    None,
                    None,
                    _title(run, mayor),
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
            run.workflow, step.name, _inputs(orch, run, step.prompt), plan, orch.limit
        )
        return Compose(text, plan[1], msr.task_id, _title(run, step))

    def refinery() -> Compose:
        outputs = [(w.name, (run.step_run(w.id).result or "")) for w in workers]  # type: ignore[union-attr]
        text = prompts.refinery(
            run.workflow, final.name, _inputs(orch, run, final.prompt), plan, outputs, orch.limit
        )
        joined = "\n\n".join(f"{n}: {o}" for n, o in outputs)
        return Compose(text, joined, None, _title(run, final))

    _fan_out(orch, run, workers, d.max_concurrent or 1, worker)
    if run.status != "paused":
        _after_group(orch, run, workers, final, refinery)


# ---- loops -------------------------------------------------------------------------------


def _between(orch: Orchestrator, run: Run, iteration: int) -> bool:
    """True when the loop may go on to ``iteration``; arms ``delay_between`` first."""
    cfg = run.definition.loop
    assert cfg is not None
    if not cfg.delay_between:
        return True
    d = run.step_run(DELAY_BETWEEN, iteration)
    if d is None:
        d = orch.new_delay_between(run, iteration)
        orch.arm_delay(run, d, orch.delay_seconds(cfg.delay_between))
        return False
    return d.status == "completed"


def _over_time(orch: Orchestrator, run: Run) -> bool:
    cfg = run.definition.loop
    assert cfg is not None
    if cfg.time_budget_s is None:
        return False
    return (orch.now() - run.started_at).total_seconds() >= cfg.time_budget_s


def loop(orch: Orchestrator, run: Run) -> None:
    cfg = run.definition.loop
    assert cfg is not None
    step = run.definition.task_steps[0]
    while True:
        n = run.iteration
        sr = run.step_run(step.id, n) if n else None
        if sr is not None and not sr.done:
            if _ready(sr):
                orch.begin(run, step, sr, lambda n=n: _loop_compose(orch, run, step, n))
                if sr.done:
                    continue
            return
        if sr is not None:
            stop = iteration_stop(run, sr)
            if stop == "error":
                orch.fail_run(run, sr, stop_reason="error")
                return
            if stop is not None:
                _stop(orch, run, sr, stop)
                return
        if sr is not None and not _between(orch, run, n + 1):
            return
        if _over_time(orch, run):
            _stop(orch, run, sr, "time_budget")
            return
        if orch.budget_spent(run):
            orch.pause_for_budget(run)
            return
        orch.save_run(run, iteration=n + 1)
        orch.new_step(run, step, n + 1)


def iteration_stop(run: Run, sr: StepRun) -> str | None:
    """Why a plain loop stops after this finished iteration (None: it goes on)."""
    cfg = run.definition.loop
    assert cfg is not None
    if sr.status != "completed":
        return "error"
    if prompts.has_signal(sr.result, cfg.signals):
        return "signal"
    if sr.iteration >= cfg.max_iterations:
        return "max_iterations"
    return None


def _stop(orch: Orchestrator, run: Run, sr: StepRun | None, reason: str) -> None:
    cfg = run.definition.loop
    assert cfg is not None
    output = prompts.without_signals(sr.result, cfg.signals) if sr is not None else None
    orch.complete_run(run, output, stop_reason=reason)


def _loop_compose(orch: Orchestrator, run: Run, step: Step, n: int) -> Compose:
    cfg = run.definition.loop
    assert cfg is not None
    prev = run.step_run(step.id, n - 1) if n > 1 else None
    previous = prev.result if prev is not None else None
    text = prompts.loop(
        run.workflow,
        step.name,
        _inputs(orch, run, step.prompt),
        n,
        cfg.max_iterations,
        previous,
        cfg.signals,
        orch.limit,
    )
    return Compose(
        text, previous, prev.task_id if prev else None, _title(run, step, f" · iteration {n}")
    )


def rows(orch: Orchestrator, run: Run) -> None:
    cfg = run.definition.loop
    assert cfg is not None and run.rows is not None
    steps = run.definition.task_steps
    count = len(run.rows)
    r = max(run.iteration, 1)
    while r <= count:
        srs = [run.step_run(s.id, r) for s in steps]
        if any(sr is not None and sr.status in ("failed", "blocked") for sr in srs):
            _skip_rest(orch, run, steps, r)
            if cfg.on_item_error == "stop":
                orch.finish_rows(run, stopped_at=r)
                return
            r += 1
            continue
        if all(sr is not None and sr.status in ("completed", "skipped") for sr in srs):
            r += 1
            continue
        idx = next(
            i for i, sr in enumerate(srs) if sr is None or sr.status not in ("completed", "skipped")
        )
        sr = srs[idx]
        if sr is None:
            if idx == 0:
                if r > 1 and not _between(orch, run, r):
                    _cursor(orch, run, r)
                    return
                if _over_time(orch, run):
                    orch.finish_rows(run, stop_reason="time_budget")
                    return
                if orch.budget_spent(run):
                    _cursor(orch, run, r)
                    orch.pause_for_budget(run)
                    return
            _cursor(orch, run, r)
            sr = orch.new_step(run, steps[idx], r)
        if not _ready(sr):
            _cursor(orch, run, r)
            return
        step = steps[idx]
        orch.begin(run, step, sr, lambda step=step, r=r: _row_compose(orch, run, step, r))
        if not sr.done:
            return
    orch.finish_rows(run)


def _cursor(orch: Orchestrator, run: Run, r: int) -> None:
    if run.iteration != r:
        orch.save_run(run, iteration=r)


def _skip_rest(orch: Orchestrator, run: Run, steps: list[Step], r: int) -> None:
    failed = False
    for step in steps:
        sr = run.step_run(step.id, r)
        if sr is not None and sr.status in ("failed", "blocked"):
            failed = True
            continue
        if failed and (sr is None or sr.status == "pending"):
            sr = sr or orch.new_step(run, step, r)
            orch.skip_step(run, sr, "an earlier step of this row failed")


def row_values(run: Run, step: Step, r: int) -> dict[str, Any]:
    cfg = run.definition.loop
    assert cfg is not None and run.rows is not None
    item = run.rows[r - 1]
    outputs: dict[str, str] = {}
    previous = ""
    for s in run.definition.task_steps:
        if s.id == step.id:
            break
        sr = run.step_run(s.id, r)
        outputs[s.id] = (sr.result if sr else "") or ""
        previous = outputs[s.id]
    return {cfg.item_var: item, "previous": previous, "steps": outputs, "inputs": run.inputs}


def _row_compose(orch: Orchestrator, run: Run, step: Step, r: int) -> Compose:
    assert run.rows is not None
    values = row_values(run, step, r)
    task, missing = render(step.prompt or "", values)
    warnings = [f"row {r} has no field {m.split('.', 1)[-1]!r}; it rendered empty" for m in missing]
    tasks = run.definition.task_steps
    i = tasks.index(step)
    prev_sr = run.step_run(tasks[i - 1].id, r) if i > 0 else None
    previous = (tasks[i - 1].name, prev_sr.result or "") if prev_sr is not None else None
    text = prompts.row(
        run.workflow, step.name, task, r, len(run.rows), run.rows[r - 1], previous, orch.limit
    )
    return Compose(
        text,
        previous[1] if previous else None,
        prev_sr.task_id if prev_sr else None,
        _title(run, step, f" · row {r}"),
        warnings,
    )


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


__all__ = ["Compose", "advance", "iteration_stop", "retry_plan", "row_values"]
