"""Charts that render inline in Jupyter and headless in tests and CI.

matplotlib is imported only when a chart is drawn (it is in the ``notebook`` extra, and
``%load_ext stagent_lab`` should stay fast). Figures are built with the object API
(``matplotlib.figure.Figure`` on an Agg canvas), never pyplot: no global state, no GUI backend,
no figure left open behind the caller's back. The returned figure carries ``_repr_png_``, so
a cell that ends with it shows the chart even when no ``%matplotlib`` backend was set up.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stagent_lab.store.analytics.cost import cost_over_time
from stagent_lab.store.analytics.dims import Reader
from stagent_lab.store.analytics.outcomes import outcomes

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@functools.cache
def _figure_class() -> type[Figure]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("plots need matplotlib: pip install 'stagent-lab[notebook]'") from exc

    class InlineFigure(Figure):
        """A Figure that knows how to show itself as PNG in IPython."""

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            FigureCanvasAgg(self)

        def _repr_png_(self) -> bytes:
            buf = io.BytesIO()
            self.savefig(buf, format="png", dpi=100)
            return buf.getvalue()

    return InlineFigure


def new_figure(width: float = 8.0, height: float = 4.0) -> Figure:
    """An Agg-backed figure with constrained layout (labels never overlap the frame)."""
    return _figure_class()(figsize=(width, height), layout="constrained")


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_cost_over_time(
    store: Reader,
    freq: str = "day",
    by: str | None = None,
    *,
    since: Any = None,
    until: Any = None,
    cumulative: bool = False,
) -> Figure:
    """One line of spend per ``freq`` bucket; with ``by`` one line per group (e.g. profile).

    ``cumulative=True`` plots the running total instead, which makes a budget easy to read.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    df = cost_over_time(store, freq, by, since=since, until=until)
    fig = new_figure()
    ax = fig.add_subplot()
    title = f"Cost per {freq}" + (f" by {by}" if by else "")
    ax.set_title(("Cumulative cost" + (f" by {by}" if by else "")) if cumulative else title)
    if df.empty:
        _empty(ax, "no usage recorded yet")
        return fig
    groups: Sequence[tuple[Any, Any]] = (
        list(df.groupby(by, dropna=False, sort=True)) if by else [("total", df)]
    )
    for name, part in groups:
        values = part["cost_usd"].cumsum() if cumulative else part["cost_usd"]
        label = "(none)" if name is None or name != name else str(name)
        ax.plot(part["period"].to_numpy(), values.to_numpy(), marker="o", markersize=3, label=label)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("USD")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    if by:
        # Outside the axes, on the right: inside, it covered the spikes it should explain.
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_success_by_profile(store: Reader, by: str = "profile") -> Figure:
    """A horizontal bar per group with its success rate (completed / finished), labelled n/N.

    Groups with no finished task are left out (they have no rate yet).
    """
    df = outcomes(store, by=by)
    finished = df["completed"] + df["failed"] + df["cancelled"]
    df = df.assign(finished=finished)[finished > 0]
    df = df.sort_values(["success_rate", by], ascending=[True, False], na_position="first")
    fig = new_figure(8.0, max(2.5, 0.45 * len(df) + 1.2))
    ax = fig.add_subplot()
    ax.set_title(f"Success rate by {by}")
    if df.empty:
        _empty(ax, "no finished tasks yet")
        return fig
    labels = ["(none)" if v is None or v != v else str(v) for v in df[by]]
    rates = (df["success_rate"] * 100).to_numpy()
    colors = ["#2a9d8f" if r >= 80 else "#e9c46a" if r >= 50 else "#e76f51" for r in rates]
    bars = ax.barh(labels, rates, color=colors)
    ax.bar_label(
        bars,
        labels=[f" {c}/{n}" for c, n in zip(df["completed"], df["finished"], strict=True)],
        fontsize="small",
    )
    ax.set_xlim(0, 112)
    ax.set_xlabel("% of finished tasks completed")
    ax.grid(True, axis="x", alpha=0.3)
    return fig
