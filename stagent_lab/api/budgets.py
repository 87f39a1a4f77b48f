"""The spend-caps part of the contract: daily and monthly caps per workspace, runtime, profile
or project, their status, and the controls over them. Budgets are named by id or a unique id
prefix."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from stagent_lab.api.requests import ArrowTable, Request, request
from stagent_lab.api.values import Identifier, Text, Usd

Scope = Literal["workspace", "runtime", "profile", "project"]
Window = Literal["day", "month"]


@request
class SetBudget(Request):
    """Create the cap for (scope, scope_id, window), or change it when it exists."""

    scope: Scope
    scope_id: Text | None = Field(default=None, max_length=4096)
    window: Window
    limit_usd: Usd
    warn_ratio: float | None = None
    on_exceed: Literal["block", "ask"] = "block"
    result: ClassVar[Any] = str

    @field_validator("warn_ratio")
    @classmethod
    def _ratio(cls, value: float | None) -> float | None:
        if value is not None and not 0 < value < 1:
            raise ValueError("must be between 0 and 1 (exclusive), e.g. 0.8")
        return value


@request
class BudgetStatus(Request):
    """Every cap with its spend in the current window, state and reset time."""

    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class DisableBudget(Request):
    budget_id: Identifier
    result: ClassVar[Any] = None


@request
class EnableBudget(Request):
    budget_id: Identifier
    result: ClassVar[Any] = None


@request
class RemoveBudget(Request):
    budget_id: Identifier
    result: ClassVar[Any] = None


@request
class ResumePausedBudget(Request):
    """Resume the tasks this cap paused (refused while it is still exceeded)."""

    budget_id: Identifier
    result: ClassVar[Any] = list[str]


@request
class CheckBudgets(Request):
    """The enabled ``block`` caps that would refuse a task of this runtime, profile and
    project now (a schedule firing asks before it starts anything)."""

    runtime: Identifier | None = None
    profile: Identifier | None = None
    project_id: Identifier | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[dict[str, Any]]


__all__ = [
    "BudgetStatus",
    "CheckBudgets",
    "DisableBudget",
    "EnableBudget",
    "RemoveBudget",
    "ResumePausedBudget",
    "SetBudget",
]
