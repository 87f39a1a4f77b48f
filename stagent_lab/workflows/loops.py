"""Loops: a plain loop (one step repeated until a signal, a cap or a time budget) and the
row-driven loop (every step once per row of ``items`` / ``items_sql``).

Like the other patterns, each function is called by ``patterns.advance`` whenever something
happened to the run, starts what may start now, and never blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.workflows import prompts
from stagent_lab.workflows.compose import Compose, inputs_text, ready, title
from stagent_lab.workflows.definition import Step
from stagent_lab.workflows.state import DELAY_BETWEEN, Run, StepRun
from stagent_lab.workflows.templates import render

if TYPE_CHECKING:
    from stagent_lab.workflows.orchestrator import Orchestrator

# ---- plain loop ---------------------------------------------------------------------------


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
            if ready(sr):
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
        inputs_text(orch, run, step.prompt),
        n,
        cfg.max_iterations,
        previous,
        cfg.signals,
        orch.limit,
    )
    return Compose(
        text, previous, prev.task_id if prev else None, title(run, step, f" · iteration {n}")
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
        if not ready(sr):
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
        title(run, step, f" · row {r}"),
        warnings,
    )


__all__ = ["iteration_stop", "loop", "row_values", "rows"]
