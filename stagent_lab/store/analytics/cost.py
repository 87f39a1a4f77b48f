"""What did it cost: the usage ledger grouped by any mix of named dimensions.

Every model call is one ledger row, priced when it was recorded (genai-prices, or the runtime's
own figure). Rows whose price was unknown keep ``cost_usd`` NULL; they count as zero in sums and
are reported in ``unpriced_calls`` so an unknown model never hides as "free".
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from stagent_lab.store.analytics.dims import (
    TIME_DIMS,
    USAGE_DIMS,
    Reader,
    check_freq,
    normalize_by,
    resolve,
    time_filter,
    to_bound,
    where,
)

_FROM = "FROM usage_ledger u LEFT JOIN projects p ON p.id = u.project_id"

_MEASURES = """
    count(DISTINCT u.task_id) AS tasks,
    count(*) AS calls,
    CAST(coalesce(sum(u.input_tokens), 0) AS BIGINT) AS input_tokens,
    CAST(coalesce(sum(u.output_tokens), 0) AS BIGINT) AS output_tokens,
    CAST(coalesce(sum(u.cache_read_tokens), 0) AS BIGINT) AS cache_read_tokens,
    CAST(coalesce(sum(u.cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens,
    CAST(coalesce(sum(u.reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens,
    coalesce(sum(u.cost_usd), 0.0) AS cost_usd,
    count(*) FILTER (WHERE u.cost_usd IS NULL) AS unpriced_calls"""


def cost_by_sql(*dims: str) -> str:
    """The SQL ``cost_by`` runs for ``dims`` (before any time filter): for docs and debugging."""
    return _cost_sql(resolve(dims, USAGE_DIMS, "cost_by"), [])


def _cost_sql(cols: list[tuple[str, str]], clauses: list[str]) -> str:
    select = "".join(f"{expr} AS {name}, " for name, expr in cols)
    group = f"GROUP BY {', '.join(name for name, _ in cols)}" if cols else ""
    # Time buckets read left to right; within them the biggest spenders first.
    order = [f"{n} ASC" for n, _ in cols if n in TIME_DIMS]
    order.append("cost_usd DESC")
    order += [f"{n} ASC NULLS LAST" for n, _ in cols if n not in TIME_DIMS]
    return (
        f"SELECT {select}{_MEASURES}\n{_FROM}\n{where(clauses)}\n{group}\n"
        f"ORDER BY {', '.join(order)}"
    )


def cost_by(store: Reader, *dims: str, since: Any = None, until: Any = None) -> pd.DataFrame:
    """Spend and tokens per combination of ``dims`` (none: one total row).

    Dimensions: profile, runtime, model, provider, project (its name), activity, task, and the
    time buckets hour, day, week, month (of the call's ``started_at``, UTC). ``since`` is
    inclusive and ``until`` exclusive; both take a date/time or an ISO string.

    >>> cost_by(lab.store, "profile", "day")  # doctest: +SKIP
    """
    cols = resolve(dims, USAGE_DIMS, "cost_by")
    clauses, params = time_filter("u.started_at", since, until)
    return store.query_df(_cost_sql(cols, clauses), params)


def cost_over_time(
    store: Reader,
    freq: str = "day",
    by: str | None = None,
    *,
    since: Any = None,
    until: Any = None,
) -> pd.DataFrame:
    """Spend per time bucket, with empty buckets filled with 0 so a line chart has no gaps.

    Columns: ``period`` (bucket start), ``by`` (when given: one row per bucket and group) and
    ``cost_usd``. The range runs from the first to the last bucket with spend, widened to
    ``since``/``until`` when those are given.
    """
    check_freq(freq)
    group = resolve(
        normalize_by(by),
        {k: v for k, v in USAGE_DIMS.items() if k not in TIME_DIMS},
        "cost_over_time",
    )
    grp = group[0][1] if group else "'total'"
    clauses, params = time_filter("u.started_at", since, until)
    clauses.insert(0, "u.started_at IS NOT NULL")
    lo, hi = to_bound(since, "since"), to_bound(until, "until")
    # Interval arithmetic keeps the last bucket: ``until`` is exclusive, so step back 1 µs.
    sql = f"""
        WITH spend AS (
            SELECT date_trunc('{freq}', u.started_at) AS period, {grp} AS grp,
                   coalesce(sum(u.cost_usd), 0.0) AS cost_usd
            {_FROM}
            {where(clauses)}
            GROUP BY ALL
        ),
        bounds AS (
            SELECT coalesce(date_trunc('{freq}', CAST(? AS TIMESTAMP)), min(period)) AS lo,
                   coalesce(date_trunc('{freq}', CAST(? AS TIMESTAMP) - INTERVAL 1 microsecond),
                            max(period)) AS hi
            FROM spend
        ),
        periods AS (
            SELECT unnest(generate_series(lo, hi, INTERVAL 1 {freq})) AS period
            FROM bounds WHERE lo IS NOT NULL AND hi IS NOT NULL AND lo <= hi
        ),
        groups AS (SELECT DISTINCT grp FROM spend)
        SELECT periods.period, groups.grp, coalesce(spend.cost_usd, 0.0) AS cost_usd
        FROM periods CROSS JOIN groups
        LEFT JOIN spend ON spend.period = periods.period
                       AND spend.grp IS NOT DISTINCT FROM groups.grp
        ORDER BY periods.period, groups.grp NULLS LAST
    """
    df = store.query_df(sql, [*params, lo, hi])
    if group:
        return df.rename(columns={"grp": group[0][0]})
    return df.drop(columns="grp")
