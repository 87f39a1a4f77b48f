"""Tables the magics return: ordinary DataFrames that display without wrapping or overflowing.

``%stagent tasks`` and ``%stagent cost`` return a :class:`Table`, a ``pandas.DataFrame`` in
every respect (filter it, plot it, save it), whose notebook display keeps each row on one line:
cells do not wrap word by word, long text ends in "…" at a readable width, and a wide table
scrolls sideways inside its output instead of spilling over the page.
"""

from __future__ import annotations

import itertools
from typing import Any

import pandas as pd

CELL_MAX_EM = 30  # a long cell (a title, a reason) is cut with "…" at this width
_ids = itertools.count(1)


class Table(pd.DataFrame):
    """A DataFrame whose HTML display neither wraps cells nor overflows the output area."""

    @property
    def _constructor(self) -> type[Table]:
        return Table

    def _repr_html_(self) -> str | None:
        inner = super()._repr_html_()
        if inner is None:
            return None
        scope = f"stg-table-{next(_ids)}"
        style = (
            f"<style>.{scope} th, .{scope} td {{white-space: nowrap}}"
            f".{scope} td {{max-width: {CELL_MAX_EM}em; overflow: hidden;"
            " text-overflow: ellipsis}</style>"
        )
        return (
            f'<div class="{scope}" style="overflow-x: auto; max-width: 100%">{style}{inner}</div>'
        )


def table(df: Any) -> Table:
    """``df`` as a :class:`Table` (the same data, index and columns)."""
    return Table(df)


__all__ = ["Table", "table"]
