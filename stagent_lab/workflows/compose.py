"""What a step's child is given, and the small helpers every pattern shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stagent_lab.workflows.definition import Step
from stagent_lab.workflows.state import Run, StepRun
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


def ready(sr: StepRun) -> bool:
    """A step that the orchestrator should act on now."""
    return sr.status == "pending" or (sr.status == "waiting" and sr.decision is not None)


def title(run: Run, step: Step, suffix: str = "") -> str:
    return f"{run.workflow} · {step.name}{suffix}"


def inputs_text(orch: Orchestrator, run: Run, text: str | None) -> str:
    return render(text or "", {"inputs": run.inputs}, only={"inputs"})[0]


__all__ = ["Compose", "Composer", "inputs_text", "ready", "title"]
