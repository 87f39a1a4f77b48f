"""Named dimensions and time bounds shared by the analytics queries.

A grouping word (``"profile"``, ``"day"``...) is looked up in a fixed map from name to SQL
expression; it is never pasted into SQL as given. That keeps operator input out of the query
text and lets an unknown word fail with the list of words that would work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

# Bucket sizes for time dimensions and cost_over_time(freq=...).
FREQS: tuple[str, ...] = ("hour", "day", "week", "month")


def _bucket(column: str, freq: str) -> str:
    # date_trunc('week', ...) starts weeks on Monday (ISO), which is what a weekly report wants.
    return f"CAST(date_trunc('{freq}', {column}) AS {'TIMESTAMP' if freq == 'hour' else 'DATE'})"


# usage_ledger u LEFT JOIN projects p: one row per model call.
USAGE_DIMS: dict[str, str] = {
    "profile": "u.profile_id",
    "runtime": "u.runtime_id",
    "model": "u.model",
    "provider": "u.provider",
    "project": "p.name",
    "activity": "u.activity",
    "task": "u.task_id",
    **{freq: _bucket("u.started_at", freq) for freq in FREQS},
}

# One row per task: the tasks columns plus ``project_name`` (see analytics.outcomes). Time
# buckets follow the task's creation.
TASK_DIMS: dict[str, str] = {
    "profile": "profile_id",
    "runtime": "runtime_id",
    "model": "model",
    "project": "project_name",
    "source": "source",
    **{freq: _bucket("created_at", freq) for freq in FREQS},
}

TIME_DIMS = frozenset(FREQS)


class Reader(Protocol):
    """What the analytics need from a store: a read query returning a DataFrame."""

    def query_df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame: ...


def normalize_by(by: str | Sequence[str] | None) -> tuple[str, ...]:
    """``None`` → no grouping, ``"profile"`` → ("profile",), a list → a tuple of its words."""
    if by is None:
        return ()
    if isinstance(by, str):
        return (by,)
    return tuple(by)


def resolve(dims: Iterable[str], valid: Mapping[str, str], what: str) -> list[tuple[str, str]]:
    """Map dimension words to (name, SQL expression); ValueError names the valid words."""
    out: list[tuple[str, str]] = []
    for dim in dims:
        if not isinstance(dim, str) or dim not in valid:
            raise ValueError(
                f"{what}: unknown dimension {dim!r}; valid dimensions: {', '.join(valid)}"
            )
        if any(name == dim for name, _ in out):
            raise ValueError(f"{what}: dimension {dim!r} given twice")
        out.append((dim, valid[dim]))
    return out


def check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise ValueError(f"unknown freq {freq!r}; valid: {', '.join(FREQS)}")
    return freq


def to_bound(value: Any, name: str) -> dt.datetime | None:
    """A time bound as the store keeps times: naive UTC. Accepts str, date, datetime, Timestamp.

    A timezone-aware value is converted to UTC first; a naive one is taken as UTC already.
    """
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={value!r} is not a date or time: {exc}") from None
    if ts is pd.NaT:
        raise ValueError(f"{name}={value!r} is not a date or time")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def time_filter(column: str, since: Any, until: Any) -> tuple[list[str], list[Any]]:
    """SQL clauses for ``since <= column < until`` (either side optional) and their params."""
    lo, hi = to_bound(since, "since"), to_bound(until, "until")
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"since ({lo}) must be before until ({hi})")
    clauses: list[str] = []
    params: list[Any] = []
    if lo is not None:
        clauses.append(f"{column} >= ?")
        params.append(lo)
    if hi is not None:
        clauses.append(f"{column} < ?")
        params.append(hi)
    return clauses, params


def where(clauses: Sequence[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""
