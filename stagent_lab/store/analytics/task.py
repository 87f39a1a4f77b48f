"""One task's report: outcome, permission decisions by tier, and cost (the demo prints it)."""

from __future__ import annotations

from typing import Any

from stagent_lab.store.analytics.dims import Reader

OUTCOME_SQL = (
    "SELECT id, profile_id, runtime_id, status, turns, round(cost_usd, 6) AS cost_usd, "
    "round(epoch(finished_at - started_at), 2) AS seconds, failure_reason FROM tasks "
    "WHERE id = ?"
)
DECISIONS_SQL = (
    "SELECT tool_name, json_extract_string(payload, '$.behavior') AS decision, "
    "json_extract_string(payload, '$.tier') AS tier, count(*) AS n FROM agent_logs "
    "WHERE task_id = ? AND event = 'tool_decision' GROUP BY ALL ORDER BY tool_name"
)
COST_SQL = (
    "SELECT runtime_id, model, pricing_source, count(*) AS calls, sum(input_tokens) AS input, "
    "sum(output_tokens) AS output, round(sum(cost_usd), 6) AS cost_usd FROM usage_ledger "
    "WHERE task_id = ? GROUP BY ALL"
)


def task_report(store: Reader, task_id: str) -> dict[str, Any]:
    """``{"outcome", "decisions", "cost"}`` DataFrames for one task."""
    return {
        "outcome": store.query_df(OUTCOME_SQL, [task_id]),
        "decisions": store.query_df(DECISIONS_SQL, [task_id]),
        "cost": store.query_df(COST_SQL, [task_id]),
    }
