"""Plots return Agg-backed Figures that render to PNG with the expected lines and bars."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure

from stagent_lab.analytics import plot_cost_over_time, plot_success_by_profile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_cost_over_time_one_line_per_group(store):
    fig = plot_cost_over_time(store, "day", by="profile")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["alpha-prof", "beta-prof"]
    beta = ax.lines[1].get_ydata()
    assert list(beta) == pytest.approx([0.01, 0.02, 0.0, 0.04])  # gap day filled with 0
    legend = ax.get_legend()
    assert legend is not None
    assert fig._repr_png_().startswith(PNG_MAGIC)  # draws, so the layout is final
    # The legend sits right of the plotting area, so it never hides a point.
    renderer = fig.canvas.get_renderer()
    box, plot = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 >= plot.x1


def test_cost_over_time_total_and_cumulative(store):
    fig = plot_cost_over_time(store, "day")
    ax = fig.axes[0]
    assert len(ax.lines) == 1
    assert list(ax.lines[0].get_ydata()) == pytest.approx([0.36, 0.32, 0.0, 0.54])
    cum = plot_cost_over_time(store, "day", cumulative=True).axes[0]
    assert list(cum.lines[0].get_ydata()) == pytest.approx([0.36, 0.68, 0.68, 1.22])
    assert cum.get_title() == "Cumulative cost"


def test_success_bars(store):
    fig = plot_success_by_profile(store)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 2
    # Sorted by rate ascending, so the best profile is the top bar.
    assert [b.get_width() for b in bars] == pytest.approx([100 / 3, 50.0])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["beta-prof", "alpha-prof"]
    texts = sorted(t.get_text().strip() for t in ax.texts)
    assert texts == ["1/3", "2/4"]
    assert fig._repr_png_().startswith(PNG_MAGIC)


def test_empty_store_draws_a_note(empty_store):
    cost = plot_cost_over_time(empty_store).axes[0]
    assert len(cost.lines) == 0
    assert [t.get_text() for t in cost.texts] == ["no usage recorded yet"]
    succ = plot_success_by_profile(empty_store).axes[0]
    assert len(succ.patches) == 0
    assert [t.get_text() for t in succ.texts] == ["no finished tasks yet"]


def test_no_pyplot_state_is_touched(store):
    import sys

    plot_cost_over_time(store)
    plot_success_by_profile(store)
    if "matplotlib.pyplot" in sys.modules:  # imported by someone else: no figures of ours
        import matplotlib.pyplot as plt

        assert plt.get_fignums() == []
