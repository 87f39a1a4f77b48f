"""Analytics over a workspace's record: what it cost, what worked, how the policy decided.

Functions of a reader (anything with ``query_df(sql, params)``): the SQL (in
``stagent_lab.store.analytics``) runs in DuckDB, read-only, and comes back as pandas. ``Lab``
exposes the same as methods (``lab.cost_by``, ``lab.outcomes``, ``lab.failures``,
``lab.plot_cost``, ``lab.plot_success``). Plot functions import matplotlib only when called;
``simulate_history`` builds a multi-day demo history.
"""

from __future__ import annotations

from typing import Any

from stagent_lab.store.analytics.cost import cost_by, cost_by_sql, cost_over_time
from stagent_lab.store.analytics.dims import FREQS, TASK_DIMS, USAGE_DIMS
from stagent_lab.store.analytics.outcomes import decisions, failures, outcomes, outcomes_sql
from stagent_lab.store.analytics.task import task_report

__all__ = [
    "FREQS",
    "TASK_DIMS",
    "USAGE_DIMS",
    "cost_by",
    "cost_by_sql",
    "cost_over_time",
    "decisions",
    "failures",
    "outcomes",
    "outcomes_sql",
    "plot_cost_over_time",
    "plot_success_by_profile",
    "simulate_history",
    "task_report",
]

_LAZY = {
    "plot_cost_over_time": "stagent_lab.analytics.plots",
    "plot_success_by_profile": "stagent_lab.analytics.plots",
    "simulate_history": "stagent_lab.analytics.history",
}


def __getattr__(name: str) -> Any:
    # Plots pull in matplotlib and history pulls in the Lab; load them on first use.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
