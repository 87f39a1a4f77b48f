"""The inbox: every pending item across tasks, decided inline, and recent decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.notebook import static, views
from stagent_lab.notebook.widgets._base import LiveWidget, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab


class Inbox(LiveWidget):
    """``Inbox()``: pending approvals and questions from every task, with Allow / Always allow /
    Deny (or an answer) per item, and the latest decisions with who made them and when."""

    _esm = bundle("inbox.js")
    items = traitlets.List().tag(sync=True)
    recent = traitlets.List().tag(sync=True)
    live_poll = True  # handoff approvals and expiries arrive without a task event

    def __init__(self, lab: Lab | None = None, *, recent: int = 15, **kwargs: Any) -> None:
        lab = self._bind_lab(lab)
        self._recent_limit = recent
        self._start_live(lab)
        try:
            initial = {
                "items": views.pending_items(lab),
                "recent": views.recent_decisions(lab, recent),
            }
        except BaseException:
            self._hub.detach(self)
            raise
        super().__init__(**initial, **kwargs)
        self._go_live()

    def update_state(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        relevant = any(ev.get("event") in views.INBOX_EVENTS for ev in events)
        if not (poked or polled or relevant):
            return
        items, recent = self._hub.read(self._read_store)
        if items != self.items:
            self.items = items
        if recent != self.recent:
            self.recent = recent

    def _read_store(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return views.pending_items(self.lab), views.recent_decisions(self.lab, self._recent_limit)

    # ---- the static copy ---------------------------------------------------------------

    def static_bundle(self) -> dict[str, str]:
        return static.inbox(list(self.items), list(self.recent))

    def static_key(self) -> Any:
        return (
            tuple(i["id"] for i in self.items),
            tuple((r["id"], r.get("decision")) for r in self.recent),
        )
