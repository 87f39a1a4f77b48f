"""How numbers read in the widgets and their static copies: money, limits, counts.

The JavaScript in ``widgets/common.js`` mirrors these (``fmtUsd``, ``fmtTurns``, ``fmtLimit``),
so a live card and the static copy saved with the notebook say the same thing.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def usd(value: Any) -> str:
    """``$0.42``; amounts under a cent keep four decimals (``$0.0031``)."""
    amount = _number(value)
    if amount is None:
        return "–"
    if amount == 0:
        return "$0.00"
    return f"${amount:.4f}" if abs(amount) < 0.01 else f"${amount:,.2f}"


def cost_of(cost: Any, budget: Any = None) -> str:
    """``$0.42 of $2.00`` with a budget, else ``$0.42``."""
    cap = _number(budget)
    return f"{usd(cost)} of {usd(cap)}" if cap else usd(cost)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 task``, ``2 tasks`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def turns_of(turns: Any, max_turns: Any = None) -> str:
    """``8 of 20 turns`` with a limit, else ``8 turns``."""
    n = int(_number(turns) or 0)
    cap = _number(max_turns)
    if cap:
        return f"{n} of {int(cap)} turns"
    return plural(n, "turn")


def utc_stamp(ms: float | None = None) -> str:
    """``2026-03-15 10:32 UTC`` for epoch milliseconds (now when None)."""
    when = datetime.now(UTC) if ms is None else datetime.fromtimestamp(ms / 1000.0, UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: Any) -> str:
    """``42s``, ``3m 05s``, ``1h 02m`` (– when unknown)."""
    value = _number(seconds)
    if value is None:
        return "–"
    s = max(0, int(value))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


__all__ = ["cost_of", "duration", "plural", "turns_of", "usd", "utc_stamp"]
