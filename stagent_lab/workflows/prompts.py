"""What each child task of a workflow is told, and what a checkpoint shows the operator.

Every composed prompt puts each part under a plain ``## label``, so the agent can tell what it
is given (an earlier step's output, the plan, a row) from what it must do (its task). Carried
text (an earlier output, the plan, branch results) is cut at ``workflows.max_context_chars``
per item, with a marker saying how much was cut; the full text stays in the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

NOTE_LABEL = "## Note from the operator (given when approving this step)"
TASK_LABEL = "## Your task"


def cap(text: str | None, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with a marker when something was cut."""
    text = text or ""
    if limit <= 0 or len(text) <= limit:
        return text
    cut = len(text) - limit
    return (
        text[:limit]
        + f"\n[… {cut:,} more characters cut here; the full text is in the workflow's step runs]"
    )


def _join(*parts: str | None) -> str:
    return "\n\n".join(p.strip("\n") for p in parts if p)


def _section(label: str, body: str) -> str:
    return f"## {label}\n{body}"


def header(workflow: str, step_name: str, position: str) -> str:
    return f'You are one step of the workflow "{workflow}": {position}, "{step_name}".'


def with_note(prompt: str, note: str | None) -> str:
    """The operator's note from a checkpoint approval, always marked as the operator's."""
    if not note or not note.strip():
        return prompt
    return _join(prompt, f"{NOTE_LABEL}\n{note.strip()}")


def sequence(
    workflow: str,
    step_name: str,
    position: str,
    task: str,
    previous: tuple[str, str] | None,
    limit: int,
) -> str:
    """Sequence and checkpoint steps: the previous task step's output, named, then the task."""
    before = None
    if previous is not None:
        before = _section(f'Output of the previous step, "{previous[0]}"', cap(previous[1], limit))
    return _join(header(workflow, step_name, position), before, f"{TASK_LABEL}\n{task}")


def planner(workflow: str, step_name: str, task: str) -> str:
    return _join(
        header(workflow, step_name, "the planner"),
        "Make a plan that later steps will carry out, one part each. Number its parts.",
        f"{TASK_LABEL}\n{task}",
    )


def executor(
    workflow: str, step_name: str, position: str, task: str, plan: tuple[str, str], limit: int
) -> str:
    """An executor sees the plan and its own part, not the other executors' outputs."""
    return _join(
        header(workflow, step_name, position),
        "You carry out one part of the plan below. Do only your part: other steps of the "
        "workflow carry out the rest.",
        _section(f'The plan (from the step "{plan[0]}")', cap(plan[1], limit)),
        _section("Your part of the plan", task),
    )


def branch(workflow: str, step_name: str, position: str, task: str) -> str:
    return _join(
        header(workflow, step_name, position),
        "Other branches work on related tasks at the same time; a final step combines the results.",
        f"{TASK_LABEL}\n{task}",
    )


def _results(title: str, outputs: Sequence[tuple[str, str]], limit: int) -> str:
    parts = [f"### {name}\n{cap(text, limit)}" for name, text in outputs]
    return f"## {title}\n" + "\n\n".join(parts)


def synthesis(
    workflow: str, step_name: str, task: str, outputs: Sequence[tuple[str, str]], limit: int
) -> str:
    """The synthesis sees each branch's name and output, in definition order, then its task."""
    return _join(
        header(workflow, step_name, "the synthesis"),
        _results("Results of the parallel branches", outputs, limit),
        f"{TASK_LABEL}\n{task}",
    )


def coordinator(workflow: str, step_name: str, task: str, workers: Iterable[str]) -> str:
    names = ", ".join(f'"{w}"' for w in workers)
    return _join(
        header(workflow, step_name, "the coordinator"),
        f"Workers ({names}) will each take one assignment from what you write, and a final "
        "step will merge their reports. Make the assignments clear and separate.",
        f"{TASK_LABEL}\n{task}",
    )


def worker(workflow: str, step_name: str, task: str, mayor: tuple[str, str], limit: int) -> str:
    """A swarm worker: the coordinator's output, its assignment, and how to report."""
    return _join(
        header(workflow, step_name, "a worker"),
        _section(f'The coordinator\'s plan (from "{mayor[0]}")', cap(mayor[1], limit)),
        _section("Your assignment", task),
        _section(
            "How to report",
            "Stay within your assignment; other workers cover the rest. Report so a final "
            "step can combine your results with theirs: a one-line summary first, then your "
            "findings under short headings, each with its evidence.",
        ),
    )


def refinery(
    workflow: str,
    step_name: str,
    task: str,
    mayor: tuple[str, str],
    outputs: Sequence[tuple[str, str]],
    limit: int,
) -> str:
    return _join(
        header(workflow, step_name, "the final merge"),
        _section(f'The coordinator\'s plan (from "{mayor[0]}")', cap(mayor[1], limit)),
        _results("Reports of the workers", outputs, limit),
        f"{TASK_LABEL}\n{task}",
    )


def loop(
    workflow: str,
    step_name: str,
    task: str,
    n: int,
    max_iterations: int,
    previous: str | None,
    signals: Sequence[str],
    limit: int,
) -> str:
    """One iteration: its number, the previous iteration's output, the task, the signals."""
    shown = " or ".join(signals)
    return _join(
        header(workflow, step_name, f"iteration {n} of at most {max_iterations} of a loop"),
        _section(
            "Output of the previous iteration",
            cap(previous, limit) if previous else "None: this is the first iteration.",
        ),
        f"{TASK_LABEL}\n{task}",
        _section(
            "When to stop",
            f"When the whole task is done, end your answer with this signal alone on its own "
            f"line: {shown}\nA signal counts only on a line of its own; mentioned inside a "
            "sentence it does not stop the loop. Until the task is done, leave it out, and the "
            "next iteration continues from your answer.",
        ),
    )


def row(
    workflow: str,
    step_name: str,
    task: str,
    n: int,
    count: int,
    item: dict[str, Any],
    previous: tuple[str, str] | None,
    limit: int,
) -> str:
    """A step of a row-driven loop: the row (number, count, JSON), the previous step's output
    for this row, then the rendered task."""
    as_json = json.dumps(item, ensure_ascii=False, indent=2, default=str)
    before = None
    if previous is not None:
        before = _section(
            f'Output of the previous step for this row, "{previous[0]}"', cap(previous[1], limit)
        )
    return _join(
        header(workflow, step_name, f"row {n} of {count}"),
        _section(f"The row (row {n} of {count}, as JSON)", cap(as_json, limit)),
        before,
        f"{TASK_LABEL}\n{task}",
    )


def has_signal(text: str | None, signals: Iterable[str]) -> bool:
    """True when a signal stands alone on a line (trimmed, case-insensitive)."""
    wanted = {s.strip().lower() for s in signals}
    return any(line.strip().lower() in wanted for line in (text or "").splitlines())


def without_signals(text: str | None, signals: Iterable[str]) -> str:
    wanted = {s.strip().lower() for s in signals}
    lines = [ln for ln in (text or "").splitlines() if ln.strip().lower() not in wanted]
    return "\n".join(lines).strip()


def checkpoint_body(
    workflow: str,
    run_number: int,
    step_name: str,
    profile: str,
    prompt: str,
    previous: str | None,
    cost_usd: float,
) -> str:
    """What the operator sees in the inbox before allowing a step."""
    head = prompt[:500] + ("…" if len(prompt) > 500 else "")
    prev = "none" if not previous else previous[:2000] + ("…" if len(previous) > 2000 else "")
    return (
        f'Workflow "{workflow}", run #{run_number}\n'
        f"Step: {step_name} (profile {profile})\n"
        f"Prompt: {head}\n"
        f"Previous output: {prev}\n"
        f"Cost so far: ${cost_usd:.4f}"
    )


__all__ = [
    "NOTE_LABEL",
    "TASK_LABEL",
    "branch",
    "cap",
    "checkpoint_body",
    "coordinator",
    "executor",
    "has_signal",
    "loop",
    "planner",
    "refinery",
    "row",
    "sequence",
    "synthesis",
    "with_note",
    "without_signals",
    "worker",
]
