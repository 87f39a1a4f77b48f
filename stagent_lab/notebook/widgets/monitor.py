"""The monitor: active agents, success rate, today's tasks and cost, and a filterable live log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.notebook import views
from stagent_lab.notebook.widgets._base import LiveWidget, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

STATS_MIN_INTERVAL_S = 1.0  # usage events alone refresh the numbers at most once a second
_STATUS_EVENTS = frozenset({"status", "inbox"})


class Monitor(LiveWidget):
    """``Monitor()``: the control-room view over every task in the workspace.

    The log keeps the newest 500 entries; filtering by task, profile and event type happens in
    the front end, so changing a filter costs no kernel round trip.
    """

    _esm = bundle("monitor.js")
    stats = traitlets.Dict().tag(sync=True)
    agents = traitlets.List().tag(sync=True)
    log = traitlets.List().tag(sync=True)
    log_tail = traitlets.List().tag(sync=True)
    dropped = traitlets.Int(0).tag(sync=True)
    live_poll = True

    def __init__(self, lab: Lab | None = None, *, history: int = 200, **kwargs: Any) -> None:
        lab = self._bind_lab(lab)
        self._buffer = views.LogBuffer()
        self._last_stats = 0.0
        self._start_live(lab)
        try:
            snap = views.monitor_snapshot(lab, history)
            self._buffer.extend(snap["recent"])
            self._buffer.take_changes()
            initial = {
                "stats": snap["stats"],
                "agents": snap["agents"],
                "log": list(self._buffer.head),  # copies: see TaskCard._snapshot
                "log_tail": list(self._buffer.tail),
                "dropped": self._buffer.dropped,
            }
        except BaseException:
            self._hub.detach(self)
            raise
        self._last_stats = time.monotonic()
        super().__init__(**initial, **kwargs)
        self._go_live()

    def update_state(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        entries = [e for e in map(views.log_entry, events) if e is not None]
        if entries:
            self._buffer.extend(entries)
        head_changed, tail_changed = self._buffer.take_changes()
        if head_changed:
            self.log = list(self._buffer.head)
            self.dropped = self._buffer.dropped
        if head_changed or tail_changed:
            self.log_tail = list(self._buffer.tail)
        kinds = {ev.get("event") for ev in events}
        now = time.monotonic()
        due = now - self._last_stats >= STATS_MIN_INTERVAL_S
        if poked or polled or kinds & _STATUS_EVENTS or ("usage" in kinds and due):
            self._last_stats = now
            stats, agents = self._hub.read(self._read_store)
            if stats != self.stats:
                self.stats = stats
            if agents != self.agents:
                self.agents = agents

    def _read_store(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        snap = views.monitor_snapshot(self.lab, recent=0)
        return snap["stats"], snap["agents"]
