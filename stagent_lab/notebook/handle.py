"""A TaskHandle that shows itself as its live task card in a notebook."""

from __future__ import annotations

from typing import Any

from stagent_lab.client.handle import TaskHandle


class NotebookTaskHandle(TaskHandle):
    """What ``%%stagent`` returns: a TaskHandle whose rich display is the task's card.

    Every display shares the task's one card model, so two cells showing the same task stay in
    step. The magic may display the card before the cell ends (``--wait``); the handle then
    skips the duplicate display of the cell's own result.
    """

    _skip_display_in: int | None = None

    @property
    def card(self) -> Any:
        from stagent_lab.notebook.widgets.task_card import TaskCard

        return TaskCard.for_task(self.id, self._lab, self._view)

    def show(self) -> None:
        """Display the card now (from inside a cell) and not again as this cell's result."""
        from IPython.display import display

        display(self.card)
        self._skip_display_in = _execution_count()

    def _ipython_display_(self) -> None:
        if self._skip_display_in is not None and self._skip_display_in == _execution_count():
            return
        from IPython.display import display

        display(self.card)


def _execution_count() -> int | None:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "execution_count", None) if shell is not None else None
