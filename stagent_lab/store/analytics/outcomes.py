"""What worked: success rates, durations, turns and failure reasons from the tasks table.

A task counts as *finished* once it is completed, failed or cancelled; ``success_rate`` is
completed / finished, so tasks still running (or paused, which can resume) do not drag it
down. Durations are ``finished_at - started_at`` of finished tasks in seconds; a resumed task's
``started_at`` is its latest start. Percentiles interpolate linearly between ranks (DuckDB's
``quantile_cont``, the same rule as ``numpy.percentile``'s default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from stagent_lab.store.analytics.dims import (
    TASK_DIMS,
    Reader,
    normalize_by,
    resolve,
    time_filter,
    where,
)

FINISHED = ("completed", "failed", "cancelled")
_FINISHED_SQL = "('completed', 'failed', 'cancelled')"

# Per-task spend comes from the ledger (every model call), not tasks.cost_usd, which is only
# written when a task stops and so lags behind a running task.
_TASKS = f"""
    WITH spend AS (
        SELECT task_id, sum(cost_usd) AS cost_usd FROM usage_ledger GROUP BY task_id
    ),
    base AS (
        SELECT t.*, p.name AS project_name, coalesce(s.cost_usd, 0.0) AS spend_usd,
               t.status IN {_FINISHED_SQL} AS finished,
               CASE WHEN t.status IN {_FINISHED_SQL} AND t.started_at IS NOT NULL
                         AND t.finished_at IS NOT NULL
                    THEN date_diff('microsecond', t.started_at, t.finished_at) / 1e6 END
                   AS duration_s
        FROM tasks t
        LEFT JOIN projects p ON p.id = t.project_id
        LEFT JOIN spend s ON s.task_id = t.id
    )"""


def _dims_on_base(by: str | Sequence[str] | None, what: str) -> list[tuple[str, str]]:
    return resolve(normalize_by(by), TASK_DIMS, what)


def outcomes_sql(by: str | Sequence[str] | None = "profile") -> str:
    """The SQL ``outcomes`` runs, for docs and debugging."""
    return _outcomes_sql(_dims_on_base(by, "outcomes"), [])


def _outcomes_sql(cols: list[tuple[str, str]], clauses: list[str]) -> str:
    select = "".join(f"{expr} AS {name}, " for name, expr in cols)
    group = f"GROUP BY {', '.join(n for n, _ in cols)}" if cols else ""
    order = ", ".join(["tasks DESC", *(f"{n} ASC NULLS LAST" for n, _ in cols)])
    return f"""{_TASKS}
    SELECT {select}
        count(*) AS tasks,
        count(*) FILTER (WHERE status = 'completed') AS completed,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
        count(*) FILTER (WHERE NOT finished) AS active,
        count(*) FILTER (WHERE status = 'completed')
            / nullif(count(*) FILTER (WHERE finished), 0) AS success_rate,
        quantile_cont(duration_s, 0.5) AS duration_p50_s,
        quantile_cont(duration_s, 0.95) AS duration_p95_s,
        quantile_cont(turns, 0.5) FILTER (WHERE finished) AS turns_p50,
        quantile_cont(turns, 0.95) FILTER (WHERE finished) AS turns_p95,
        sum(spend_usd) AS cost_usd,
        sum(spend_usd) / nullif(count(*) FILTER (WHERE status = 'completed'), 0)
            AS cost_per_success_usd
    FROM base
    {where(clauses)}
    {group}
    ORDER BY {order}"""


def outcomes(
    store: Reader,
    by: str | Sequence[str] | None = "profile",
    *,
    since: Any = None,
    until: Any = None,
) -> pd.DataFrame:
    """One row per group (profile by default; None for a single overall row).

    Columns: tasks, completed, failed, cancelled, active (queued/running/waiting/paused),
    success_rate (completed / finished; NaN when nothing finished), duration_p50_s,
    duration_p95_s, turns_p50, turns_p95 (finished tasks), cost_usd (ledger spend, all tasks)
    and cost_per_success_usd (all spend divided by completed tasks: failures are paid for too).
    ``by`` takes profile, runtime, model, project, source, hour, day, week, month; ``since`` and
    ``until`` filter on the task's ``created_at``.
    """
    cols = _dims_on_base(by, "outcomes")
    clauses, params = time_filter("created_at", since, until)
    df = store.query_df(_outcomes_sql(cols, clauses), params)
    return df


def failures(
    store: Reader,
    by: str | Sequence[str] | None = None,
    *,
    since: Any = None,
    until: Any = None,
) -> pd.DataFrame:
    """Failed tasks counted by reason, most frequent first.

    Reasons carry numbers ("max turns reached (3)", "spent $0.0132 of $0.0100"), so they are
    grouped on a pattern with each number replaced by ``N``; ``example`` keeps the latest raw
    reason and ``last_task_id`` the task it came from. ``by`` adds task dimensions (e.g.
    "profile") to the grouping.
    """
    cols = _dims_on_base(by, "failures")
    clauses, params = time_filter("created_at", since, until)
    clauses.insert(0, "status = 'failed'")
    select = "".join(f"{expr} AS {name}, " for name, expr in cols)
    group = ", ".join([*(n for n, _ in cols), "reason"])
    sql = f"""{_TASKS}
    SELECT {select}
        regexp_replace(coalesce(failure_reason, 'unknown'), '[0-9]+([.][0-9]+)?', 'N', 'g')
            AS reason,
        count(*) AS tasks,
        arg_max(failure_reason, finished_at) AS example,
        arg_max(id, finished_at) AS last_task_id,
        max(finished_at) AS last_at
    FROM base
    {where(clauses)}
    GROUP BY {group}
    ORDER BY tasks DESC, {group}"""
    return store.query_df(sql, params)


def decisions(
    store: Reader,
    by: str | Sequence[str] = ("tier", "behavior"),
    *,
    since: Any = None,
    until: Any = None,
) -> pd.DataFrame:
    """Permission decisions from ``agent_logs`` (event ``tool_decision``), counted.

    Dimensions: tier (allowed_tools, profile_auto_deny, profile_auto_approve, rule, human),
    behavior (allow/deny), tool, profile. Shows how much the policy decides on its own and how
    often a person had to step in.
    """
    valid = {
        "tier": "json_extract_string(l.payload, '$.tier')",
        "behavior": "json_extract_string(l.payload, '$.behavior')",
        "tool": "l.tool_name",
        "profile": "t.profile_id",
    }
    cols = resolve(normalize_by(by), valid, "decisions")
    clauses, params = time_filter("l.ts", since, until)
    clauses.insert(0, "l.event = 'tool_decision'")
    select = "".join(f"{expr} AS {name}, " for name, expr in cols)
    group = f"GROUP BY {', '.join(n for n, _ in cols)}" if cols else ""
    order = ", ".join(["decisions DESC", *(f"{n} ASC NULLS LAST" for n, _ in cols)])
    sql = f"""
    SELECT {select} count(*) AS decisions, count(DISTINCT l.task_id) AS tasks
    FROM agent_logs l LEFT JOIN tasks t ON t.id = l.task_id
    {where(clauses)}
    {group}
    ORDER BY {order}"""
    return store.query_df(sql, params)
