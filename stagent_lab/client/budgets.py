"""``lab.budgets``: spend caps per workspace, runtime, profile or project, per day or month."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.api import budgets as rq

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab


class BudgetsClient:
    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def __repr__(self) -> str:
        return f"<budgets of {self._lab.home}>"

    def set(
        self,
        scope: str,
        scope_id: str | None = None,
        *,
        window: str,
        limit_usd: float,
        warn_ratio: float | None = None,
        on_exceed: str = "block",
    ) -> str:
        """Cap the spend of ``scope`` (workspace, or a runtime / profile / project id or name)
        per ``window`` (day or month, in ``budget.timezone``). ``on_exceed``: block (new tasks
        fail at start, running ones pause after their current model call) or ask (an inbox
        item per task). Setting an existing (scope, scope_id, window) changes it. Returns
        the budget id."""
        return self._lab._req(
            rq.SetBudget,
            scope=scope,
            scope_id=scope_id,
            window=window,
            limit_usd=limit_usd,
            warn_ratio=warn_ratio,
            on_exceed=on_exceed,
        )

    def status(self) -> Any:
        """id, scope, scope_id, window, limit_usd, spent_usd, ratio, state, resets_at (UTC),
        unpriced_calls (calls with no known price, counted $0), on_exceed, warn_ratio."""
        return self._lab._req(rq.BudgetStatus)

    def disable(self, budget_id: str) -> None:
        self._lab._req(rq.DisableBudget, budget_id=budget_id)

    def enable(self, budget_id: str) -> None:
        self._lab._req(rq.EnableBudget, budget_id=budget_id)

    def remove(self, budget_id: str) -> None:
        self._lab._req(rq.RemoveBudget, budget_id=budget_id)

    def resume_paused(self, budget_id: str) -> list[str]:
        """Resume the tasks this cap paused; refused while it is still exceeded."""
        return self._lab._req(rq.ResumePausedBudget, budget_id=budget_id)


__all__ = ["BudgetsClient"]
