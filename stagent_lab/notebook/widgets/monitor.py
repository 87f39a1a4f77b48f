"""The monitor: active agents, success rate, today's tasks and cost, a filterable live log,
and one titled table per feature panel (budgets, schedules, workflow runs, channels …).

Feature panels come from ``MonitorSnapshot.sections`` (``service.add_monitor_section``): each
is a list of JSON-ready rows, rendered generically, so features never edit this widget.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.api.requests import TaskStatus
from stagent_lab.notebook import static, views
from stagent_lab.notebook.widgets._base import LiveWidget, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

STATS_MIN_INTERVAL_S = 1.0  # usage events alone refresh the numbers at most once a second
_STATUS_EVENTS = frozenset({"status", "inbox"})
TITLE_LOOKUPS_PER_ROUND = 20  # tasks seen only in live events get their title looked up


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
    titles = traitlets.Dict().tag(sync=True)  # task id → title, for the log and its filter
    sections = traitlets.Dict().tag(sync=True)  # feature panels: name → rows
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
            self._titles = dict(snap["titles"])
            self._titles.update({a["id"]: a["title"] for a in snap["agents"] if a.get("title")})
            initial = {
                "stats": snap["stats"],
                "agents": snap["agents"],
                "log": list(self._buffer.head),  # copies: see TaskCard._snapshot
                "log_tail": list(self._buffer.tail),
                "dropped": self._buffer.dropped,
                "titles": dict(self._titles),
                "sections": snap["sections"],
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
            snap = self._hub.read(views.monitor_snapshot, self.lab, 0)
            if snap["stats"] != self.stats:
                self.stats = snap["stats"]
            if snap["agents"] != self.agents:
                self.agents = snap["agents"]
            if snap["sections"] != self.sections:
                self.sections = snap["sections"]
            self._titles.update({a["id"]: a["title"] for a in snap["agents"] if a.get("title")})
        self._learn_titles(entries)

    def _learn_titles(self, entries: list[dict[str, Any]]) -> None:
        """Titles of tasks that appear in the log (live events carry only the id)."""
        unknown = []
        for e in entries:
            tid = e.get("task")
            if tid and tid not in self._titles and tid not in unknown:
                unknown.append(tid)
        for tid in unknown[:TITLE_LOOKUPS_PER_ROUND]:
            try:
                view = self._hub.read(self.lab.call, TaskStatus(task_id=tid))
            except (KeyError, ValueError):
                self._titles[tid] = ""  # not a task (a workflow run, a schedule …)
                continue
            self._titles[tid] = view.title or ""
        if self._titles != self.titles:
            self.titles = dict(self._titles)

    # ---- the static copy ---------------------------------------------------------------

    def static_bundle(self) -> dict[str, str]:
        return static.monitor(dict(self.stats), list(self.agents), dict(self.sections))

    def static_key(self) -> Any:
        s = self.stats
        agents = tuple((a["id"], a["status"], a["turns"]) for a in self.agents)
        keys = ("active", "completed", "failed", "tasks_today", "pending_inbox")
        return (tuple(s.get(k) for k in keys), agents, repr(self.sections))
