"""The engine: background thread and loop, task state machine, execution, safety nets."""

from stagent_lab.engine.engine import Engine, TaskState
from stagent_lab.engine.handle import TaskHandle
from stagent_lab.engine.states import TERMINAL, TRANSITIONS, TaskStatus, check_transition

__all__ = [
    "TERMINAL",
    "TRANSITIONS",
    "Engine",
    "TaskHandle",
    "TaskState",
    "TaskStatus",
    "check_transition",
]
