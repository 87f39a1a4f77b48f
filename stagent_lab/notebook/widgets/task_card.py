"""The task card: a live view of one task, with its approvals and controls inline.

The card starts from the task's history so far, then follows the live event stream. For a task
launched while the hub was listening (every ``%%stagent`` launch) the history comes from the
hub's in-memory backlog; otherwise from the store (an old task, a task from another process).
The card subscribes before it reads and skips events whose ``seq`` it already holds, so no
event falls in the gap between the two and none is shown twice.

The result is rendered from Markdown in Python (sanitised, link-free) and sent as
``result_html``; the static copy beside the card (``static.card``) is re-sent at every status
change and once more when the task ends, so the saved notebook holds the outcome.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.client.handle import TaskHandle
from stagent_lab.notebook import static, views
from stagent_lab.notebook.live import hub_for
from stagent_lab.notebook.markdown import render_markdown
from stagent_lab.notebook.widgets._base import LiveWidget, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

SNAPSHOT_ROWS = 500
FINISHED = frozenset({"completed", "failed", "cancelled", "paused"})


class TaskCard(LiveWidget):
    """``TaskCard(task_id)``: status, elapsed time, streaming log, tokens and cost, pending
    approvals (Allow / Always allow / Deny with a message), Cancel and Resume."""

    _esm = bundle("task_card.js")
    info = traitlets.Dict().tag(sync=True)
    log = traitlets.List().tag(sync=True)  # the settled part of the log (changes rarely)
    log_tail = traitlets.List().tag(sync=True)  # the newest entries (changes often)
    dropped = traitlets.Int(0).tag(sync=True)
    tokens = traitlets.Dict().tag(sync=True)
    streaming = traitlets.Unicode("").tag(sync=True)
    pending = traitlets.List().tag(sync=True)
    result_html = traitlets.Unicode("").tag(sync=True)  # the result's Markdown, sanitised

    def __init__(
        self, task_id: str, lab: Lab | None = None, *, view: Any = None, **kwargs: Any
    ) -> None:
        lab = self._bind_lab(lab)
        self.live_task_id = task_id
        self._view = view
        self._state = views.CardState(task_id)
        self._start_live(lab)  # subscribe first, then read: nothing falls in between
        try:
            initial = self._snapshot(lab, task_id)
        except BaseException:
            self._hub.detach(self)
            raise
        super().__init__(**initial, **kwargs)
        self._go_live()

    @classmethod
    def for_task(cls, task_id: str, lab: Lab | None = None, view: Any = None) -> TaskCard:
        """The card of a task: one widget model per task per kernel, shared by every view."""
        if lab is None:
            from stagent_lab.notebook import get_lab

            lab = get_lab()
        hub = hub_for(lab)
        card = hub.cards.get(task_id)
        if card is None or card.comm is None:
            card = cls(task_id, lab, view=view)
            hub.cards[task_id] = card
        return card

    # ---- state -------------------------------------------------------------------------

    def _snapshot(self, lab: Lab, task_id: str) -> dict[str, Any]:
        """The card's first state. A task launched since the hub started is rebuilt from the
        hub's in-memory backlog, so a ``%%stagent`` cell reads nothing from the store; anything
        else comes from one snapshot request. Either way the hub's first round refreshes the
        header from the store, off the cell's thread."""
        state = self._state
        backlog = self._hub.backlog(task_id)
        view = self._view
        if backlog is not None and view is not None:
            state.info = views.live_info(lab, view)
            state.apply(backlog)
            state.info["created_ms"] = (
                views.epoch_ms(backlog[0].get("ts")) if backlog else int(time.time() * 1000)
            )
            state.log.take_changes()
            return self._initial(pending=[])  # the first round reads pending items
        return self._stored_snapshot(lab, task_id)

    def _initial(self, pending: list[dict[str, Any]]) -> dict[str, Any]:
        state = self._state
        # Copies: a trait must never share a mutable object with the state folded into later,
        # or traitlets would see "no change" and the update would never be sent.
        self._result_source = state.info.get("result")
        return {
            "info": dict(state.info),
            "log": list(state.log.head),
            "log_tail": list(state.log.tail),
            "dropped": state.log.dropped,
            "tokens": dict(state.tokens),
            "streaming": state.streaming,
            "pending": pending,
            "result_html": render_markdown(self._result_source),
        }

    def _stored_snapshot(self, lab: Lab, task_id: str) -> dict[str, Any]:
        snap = views.card_snapshot(lab, task_id, SNAPSHOT_ROWS)  # KeyError for an unknown task
        state = self._state
        state.info = dict(snap["info"])
        state.apply(snap["events"])
        state.info = dict(snap["info"])  # the store row beats what the replay derived
        state.event_status = None
        state.tokens = dict(snap["tokens"])
        state.log.dropped += snap["dropped"]
        state.log.take_changes()
        return self._initial(pending=snap["pending"])

    def update_state(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        state = self._state
        changed = state.apply(events)
        if poked or changed & {"info", "tokens", "log"} or state.event_status is not None:
            if poked:  # the first round, and after every action: the store's full row
                row = self._hub.read(views.task_info, self.lab, state.task_id)
                state.info = {**state.info, **row}
            state.info, again = views.overlay_live(state, views.refresh_live(self.lab, state.info))
            if again:
                self._hub.poke(self)
            if state.info != self.info:
                self.info = dict(state.info)
            if state.info.get("result") != self._result_source:
                self._result_source = state.info.get("result")
                self.result_html = render_markdown(self._result_source)
        if "tokens" in changed:
            self.tokens = dict(state.tokens)
        if "streaming" in changed:
            self.streaming = state.streaming
        head_changed, tail_changed = state.log.take_changes()
        if head_changed:
            self.log = list(state.log.head)
            self.dropped = state.log.dropped
        if tail_changed or head_changed:
            self.log_tail = list(state.log.tail)
        if poked or "inbox" in changed:
            pending = self._hub.read(views.pending_items, self.lab, state.task_id)
            if pending != self.pending:
                self.pending = pending

    # ---- the static copy ---------------------------------------------------------------

    def static_bundle(self) -> dict[str, str]:
        return static.card(dict(self.info), pending=list(self.pending), tokens=dict(self.tokens))

    def static_key(self) -> Any:
        i = self.info
        return (
            i.get("status"),
            i.get("result"),
            i.get("failure_reason"),
            i.get("resume_count"),
            i.get("turns"),
            round(float(i.get("cost_usd") or 0.0), 6),
            tuple(p.get("id") for p in self.pending),
        )

    def static_final(self) -> bool:
        # Every status change goes out at once (the end of the task above all); cost and turn
        # updates while it runs at most every STATIC_MIN_INTERVAL_S.
        sent = getattr(self, "_static_sent", None)
        return (
            sent is None
            or sent[0] != self.info.get("status")
            or sent[6] != tuple(p.get("id") for p in self.pending)
        )

    # ---- actions -----------------------------------------------------------------------

    def handle_action(self, kind: str, content: dict[str, Any]) -> str:
        handle = TaskHandle(self.lab, self.live_task_id or "")
        if kind == "cancel":
            handle.cancel()
            return "cancelling"
        if kind == "resume":
            handle.resume()
            return "resumed"
        return super().handle_action(kind, content)

    @property
    def task_id(self) -> str:
        return self.live_task_id or ""
