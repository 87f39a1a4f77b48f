"""Workflow definitions: raw input (Python, JSON or blueprint YAML) validated into typed steps.

The typed models and limits live here; the checks (every problem at once, each with its path)
in :mod:`stagent_lab.workflows.validation`. A valid definition is a frozen
:class:`Definition`: a pattern, its steps and the pattern's config, which serializes to the JSON
stored on the workflow and snapshotted on each run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

PATTERNS = ("sequence", "planner-executor", "checkpoint", "loop", "parallel", "swarm")
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
DELAY = re.compile(r"^(\d+)(m|h|d|w)$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MIN_DELAY_S = 60
MAX_DELAY_S = 30 * 86400
MAX_STEPS = 50
MAX_ROWS = 10_000
MAX_PROMPT_CHARS = 200_000
TASK_ONLY_FIELDS = (
    "prompt",
    "profile",
    "runtime",
    "model",
    "max_turns",
    "budget_usd",
    "requires_approval",
    "depends_on",
    "script",
)
RESERVED_TEMPLATE_NAMES = frozenset({"inputs", "previous", "steps"})
# A Python callable given as a step's script (in-process only) is stored under this key.
CALLABLE_KEY = "python_callable"


class StepInput(BaseModel):
    """One step as given (types only; the rules are checked in ``validate_definition``)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    id: str | None = None
    name: str
    prompt: str | None = None
    profile: str | None = None
    runtime: str | None = None
    model: str | None = None
    max_turns: int | None = None
    budget_usd: float | None = None
    requires_approval: bool | None = None
    depends_on: list[str] | None = None
    delay: str | None = None
    script: Any = None  # scripted-runtime script: JSON steps, YAML text, or (in-process) callable


class LoopInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_iterations: int
    time_budget_s: float | None = None
    signals: list[str] = ["LOOP_DONE"]
    items: list[Any] | None = None
    items_sql: str | None = None
    item_var: str = "item"
    delay_between: str | None = None
    on_item_error: str = "continue"


class ConcurrencyInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_concurrent: int | None = None


@dataclass(frozen=True)
class Step:
    id: str
    name: str
    index: int
    prompt: str | None = None
    profile: str | None = None
    runtime: str | None = None
    model: str | None = None
    max_turns: int | None = None
    budget_usd: float | None = None
    requires_approval: bool = False
    depends_on: tuple[str, ...] = ()
    delay: str | None = None
    script: Any = None

    @property
    def is_delay(self) -> bool:
        return self.delay is not None

    @property
    def delay_s(self) -> int:
        return delay_seconds(self.delay) if self.delay else 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("index")
        data["depends_on"] = list(self.depends_on)
        return {k: v for k, v in data.items() if v not in (None, (), [])}


@dataclass(frozen=True)
class LoopConfig:
    max_iterations: int
    time_budget_s: float | None = None
    signals: tuple[str, ...] = ("LOOP_DONE",)
    items: tuple[dict[str, Any], ...] | None = None
    items_sql: str | None = None
    item_var: str = "item"
    delay_between: str | None = None
    on_item_error: str = "continue"

    @property
    def rows(self) -> bool:
        return self.items is not None or self.items_sql is not None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["signals"] = list(self.signals)
        if self.items is not None:
            data["items"] = list(self.items)
        return {k: v for k, v in data.items() if v is not None}


@dataclass(frozen=True)
class Definition:
    pattern: str
    steps: tuple[Step, ...]
    loop: LoopConfig | None = None
    max_concurrent: int | None = None  # parallel / swarm
    extra: dict[str, Any] = field(default_factory=dict)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(f"no step {step_id!r} in this workflow")

    @property
    def task_steps(self) -> list[Step]:
        return [s for s in self.steps if not s.is_delay]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps": [s.to_json() for s in self.steps]}
        if self.loop is not None:
            out["loop"] = self.loop.to_json()
        if self.pattern in ("parallel", "swarm") and self.max_concurrent is not None:
            out[self.pattern] = {"max_concurrent": self.max_concurrent}
        return out


def is_callable_ref(script: Any) -> bool:
    """A stored stand-in for a Python callable script: ``{"python_callable": "<token>"}``."""
    return isinstance(script, Mapping) and set(script) == {CALLABLE_KEY}


def delay_seconds(text: str) -> int:
    m = DELAY.match(text)
    if not m:
        raise ValueError(f"a delay looks like 30m, 2h, 1d or 1w, got {text!r}")
    return int(m.group(1)) * UNIT_S[m.group(2)]


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return slug[:40].rstrip("-_")


__all__ = [
    "CALLABLE_KEY",
    "PATTERNS",
    "Definition",
    "LoopConfig",
    "Step",
    "delay_seconds",
    "slugify",
]
