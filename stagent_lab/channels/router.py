"""Routing: which workspace events become which channel deliveries.

The router subscribes to the event stream (engine thread). A subscriber must return at once and
must not commit in the middle of the engine's own work, so events are collected and routed in
the next loop callback: the writer is flushed first (so the task row, the inbox item … are
readable), then each event's deliveries are inserted, one per (channel, event, subject) — the
``dedupe_key`` — and handed to the outbox.

Where an event goes (spec §4.4):

1. **Bound** — a task's ``channels`` (ids or names; a channel task is bound to the channel it
   came from and answers in its thread), and the ``channels`` listed in a schedule, heartbeat,
   budget or workflow event's payload. Every event of a bound task goes there, whatever the
   channel's ``events`` list.
2. **Subscribed** — each channel's ``events`` list, with ``filter`` (sources, projects,
   profiles) for task and inbox events.
3. **Notices** are never sent as ``inbox.pending``; ``inbox.resolved`` goes, in the item's
   thread, to every channel that was sent the item, except the one that decided it.

Event names of other features map to channel events: ``workflow_completed`` / ``_failed`` →
``workflow.*``, ``budget_warning`` / ``budget_exceeded`` → ``budget.*``, ``heartbeat_action`` →
``heartbeat.action``, ``heartbeat_verdict`` without action → ``heartbeat.ok``,
``schedule_skipped``, ``schedule_alert`` and an automatic ``schedule_paused`` →
``schedule.alert``. A payload may also name its channel event in ``channel_event``.
"""

from __future__ import annotations

import json
import traceback
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.channels import render
from stagent_lab.channels.config import EVENTS, Channel
from stagent_lab.engine.task import new_id
from stagent_lab.store import channels as repo
from stagent_lab.store import inbox as inbox_repo

if TYPE_CHECKING:
    from stagent_lab.channels.feature import ChannelsFeature

SUBJECT_EVENTS = {
    "workflow_completed": "workflow.completed",
    "workflow_failed": "workflow.failed",
    "budget_warning": "budget.warning",
    "budget_exceeded": "budget.exceeded",
    "heartbeat_action": "heartbeat.action",
    "heartbeat_ok": "heartbeat.ok",
    "schedule_alert": "schedule.alert",
    "schedule_skipped": "schedule.alert",
}
AUTO = frozenset({"auto", "system", "schedule", "scheduler", "failures"})
STOPPED = frozenset({"completed", "failed", "cancelled", "paused"})
TASK_EVENTS = frozenset({"status", "inbox", "inbox_decided"})
WATCHED = frozenset(
    {"inbox", "inbox_decided", "schedule_paused", "heartbeat_verdict", *SUBJECT_EVENTS}
)


def channel_event(name: str, payload: dict[str, Any]) -> str | None:
    """The channel event an event of another feature stands for (None: not delivered)."""
    explicit = payload.get("channel_event")
    if isinstance(explicit, str) and explicit in EVENTS:
        return explicit
    if name in SUBJECT_EVENTS:
        return SUBJECT_EVENTS[name]
    if name == "schedule_paused" and str(payload.get("by", "")).lower() in AUTO:
        return "schedule.alert"
    if name == "heartbeat_verdict" and payload.get("action_needed") is False:
        return "heartbeat.ok"
    return None


def thread_of(ref: str | None) -> tuple[str | None, str | None]:
    """(chat, message) from a Telegram thread ref ``"<chat>:<message id>"``."""
    if not ref or ":" not in ref:
        return None, ref
    chat, _, message = ref.rpartition(":")
    return chat, message


def out_row(
    f: ChannelsFeature,
    ch: Channel,
    *,
    event: str,
    subject_type: str,
    subject_id: str,
    key: str,
    rendered: render.Rendered,
    occurred_at: datetime,
    thread: str | None = None,
    buttons: bool = False,
) -> dict[str, Any]:
    """A new outbound delivery row, its text and payload rendered for the channel and
    redacted. ``thread``: Slack thread ts, or Telegram ``"<chat>:<message id>"``."""
    chat, message = thread_of(thread) if ch.type == "telegram" else (None, thread)
    payload, text = render.payload_for(
        ch.type,
        rendered,
        event=event,
        occurred_at=occurred_at,
        thread=message,
        chat=chat,
        with_buttons=buttons,
    )
    now = f.clock.now()
    held = ch.status != "active"
    return {
        "id": new_id(),
        "channel_id": ch.id,
        "direction": "out",
        "event": event,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "dedupe_key": key,
        "status": "held" if held else "pending",
        "attempts": 0,
        "thread_ref": thread,
        "text": f.clean(text),
        "payload": json.dumps(f.clean_tree(payload), ensure_ascii=False),
        "held_at": now if held else None,
        "last_error": f"channel is {ch.status}" if held else None,
        "created_at": now,
    }


class Router:
    def __init__(self, feature: ChannelsFeature) -> None:
        self.f = feature
        self._events: list[dict[str, Any]] = []
        self._scheduled = False
        # item id -> channel id that decided it (gets a reply, not an inbox.resolved)
        self.decided_via: dict[str, str] = {}

    # ---- subscriber (engine thread; quick) ---------------------------------------------

    def on_event(self, ev: dict[str, Any]) -> None:
        # With no channel to deliver to, an event costs nothing more: routing commits the
        # writer and reads the store on the engine thread, which a task waits behind.
        if ev.get("id") is None or not self.f.any_routable():
            return
        subject = ev.get("subject") or "task"
        name = ev.get("event")
        if subject == "channel" or subject == "workspace":
            return
        if subject == "task" and name not in TASK_EVENTS:
            return
        if (
            subject != "task"
            and name not in WATCHED
            and "channel_event" not in str(ev.get("payload"))
        ):
            return
        self._events.append(ev)
        if not self._scheduled:
            self._scheduled = True
            self.f.service.post(self.drain)

    def drain(self) -> None:
        self._scheduled = False
        events, self._events = self._events, []
        if not events or not self.f.active:
            return
        self.f.write(None)  # what the events describe is readable now
        rows: list[dict[str, Any]] = []
        for ev in events:
            try:
                rows += self.route(ev)
            except Exception:
                traceback.print_exc()
        if rows:
            self.f.insert_out(rows)

    # ---- routing -------------------------------------------------------------------------

    def route(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        con = self.f.con
        subject = ev.get("subject") or "task"
        name = ev["event"]
        payload = _payload(ev)
        if name == "inbox":
            if payload.get("kind") == "notice" or not payload.get("item_id"):
                return []
            return self._inbox_pending(con, payload["item_id"], ev)
        if name == "inbox_decided":
            return self._resolved(con, payload.get("item_id"), ev)
        if subject == "task":
            if name != "status":
                return []
            to = payload.get("to")
            rows: list[dict[str, Any]] = []
            if to in ("completed", "failed"):
                rows += self._task(con, ev["task_id"], f"task.{to}", ev)
            if to in STOPPED:
                rows += self._sweep_expired(con, ev["task_id"], ev)
            return rows
        mapped = channel_event(name, payload)
        if mapped is None:
            return []
        return self._subject(ev, subject, mapped, payload)

    def _bound(self, refs: Any) -> set[str]:
        if isinstance(refs, str):
            try:
                refs = json.loads(refs)
            except ValueError:
                refs = [refs]
        out = set()
        for ref in refs or []:
            ch = self.f.find(str(ref))
            if ch is not None:
                out.add(ch.id)
        return out

    def _targets(self, event: str, bound: set[str], task: dict[str, Any] | None) -> list[Channel]:
        out = []
        for ch in self.f.routable():
            if ch.id in bound or (event in ch.events and _matches(ch, task)):
                out.append(ch)
        return out

    def _origin_thread(self, con: Any, ch: Channel, task: dict[str, Any]) -> str | None:
        if task.get("source") != "channel" or not task.get("origin_id"):
            return None
        origin = repo.get_delivery(con, task["origin_id"])
        if origin is None or origin["channel_id"] != ch.id:
            return None
        return origin["thread_ref"]

    def _task(self, con: Any, task_id: str, event: str, ev: dict[str, Any]) -> list[dict]:
        task = repo.task_info(con, task_id)
        if task is None:
            return []
        rendered = render.task_event(event, task, int(self.f.setting("channels.result_chars")))
        key = f"{event}:{task_id}"
        if task.get("resume_count"):
            key += f"#{task['resume_count']}"
        rows = []
        for ch in self._targets(event, self._bound(task.get("channels")), task):
            rows.append(
                out_row(
                    self.f,
                    ch,
                    event=event,
                    subject_type="task",
                    subject_id=task_id,
                    key=key,
                    rendered=rendered,
                    occurred_at=ev["ts"],
                    thread=self._origin_thread(con, ch, task),
                )
            )
        return rows

    def _inbox_pending(self, con: Any, item_id: str, ev: dict[str, Any]) -> list[dict]:
        item = inbox_repo.get(con, item_id)
        if item is None or item["kind"] == "notice" or item["status"] != "pending":
            return []
        task = repo.task_info(con, item["task_id"]) if item.get("task_id") else None
        bound = self._bound(task.get("channels")) if task else set()
        code = repo.item_code(con, item_id)
        rows = []
        for ch in self._targets("inbox.pending", bound, task):
            rendered = render.inbox_pending(item, code, ch.type, ch.allow_always)
            rows.append(
                out_row(
                    self.f,
                    ch,
                    event="inbox.pending",
                    subject_type="inbox_item",
                    subject_id=item_id,
                    key=f"inbox.pending:{item_id}",
                    rendered=rendered,
                    occurred_at=ev["ts"],
                    thread=self._origin_thread(con, ch, task) if task else None,
                    buttons=ch.inbound != "off",
                )
            )
        return rows

    def _resolved(self, con: Any, item_id: str | None, ev: dict[str, Any]) -> list[dict]:
        if not item_id:
            return []
        item = inbox_repo.get(con, item_id)
        if item is None:
            return []
        decided_here = self.decided_via.pop(item_id, None)
        code = repo.item_code(con, item_id)
        rendered = render.inbox_resolved(item, code)
        rows = []
        for sent in repo.out_for_subject(con, "inbox.pending", item_id):
            ch = self.f.channel(sent["channel_id"])
            if ch is None or ch.status == "disabled" or sent["status"] != "sent":
                continue
            if ch.id == decided_here:
                continue
            if ch.type == "telegram":
                chat, _ = thread_of(sent["thread_ref"])
                thread = f"{chat}:{sent['external_id']}" if chat else None
            else:
                thread = sent["thread_ref"] or sent["external_id"]
            rows.append(
                out_row(
                    self.f,
                    ch,
                    event="inbox.resolved",
                    subject_type="inbox_item",
                    subject_id=item_id,
                    key=f"inbox.resolved:{item_id}",
                    rendered=rendered,
                    occurred_at=ev["ts"],
                    thread=thread,
                )
            )
        return rows

    def _sweep_expired(self, con: Any, task_id: str, ev: dict[str, Any]) -> list[dict]:
        """Items of a stopped task expire without an event; tell the channels that had them."""
        rows = []
        for _channel_id, item_id in repo.unresolved_items(con, task_id):
            rows += self._resolved(con, item_id, ev)
        return rows

    def sweep_all(self) -> None:
        """At start: items that expired while the workspace was closed."""
        con = self.f.con
        rows: list[dict[str, Any]] = []
        now = {"ts": self.f.clock.now()}
        seen: set[str] = set()
        for _channel_id, item_id in repo.unresolved_items(con):
            if item_id not in seen:
                seen.add(item_id)
                rows += self._resolved(con, item_id, now)
        if rows:
            self.f.insert_out(rows)

    def _subject(
        self, ev: dict[str, Any], subject: str, event: str, payload: dict[str, Any]
    ) -> list[dict]:
        subject_id = ev["task_id"]
        rendered = render.subject_event(event, subject, subject_id, payload)
        key = f"{event}:{subject}:{subject_id}:{ev['id']}"
        rows = []
        for ch in self._targets(event, self._bound(payload.get("channels")), None):
            rows.append(
                out_row(
                    self.f,
                    ch,
                    event=event,
                    subject_type=subject,
                    subject_id=subject_id,
                    key=key,
                    rendered=rendered,
                    occurred_at=ev["ts"],
                )
            )
        return rows


def _payload(ev: dict[str, Any]) -> dict[str, Any]:
    raw = ev.get("payload")
    if isinstance(raw, dict):
        return raw
    try:
        out = json.loads(raw or "{}")
    except ValueError:
        return {}
    return out if isinstance(out, dict) else {}


def _matches(ch: Channel, task: dict[str, Any] | None) -> bool:
    filt = ch.filter
    if filt is None or task is None:
        return True
    if filt.sources and task.get("source") not in filt.sources:
        return False
    if filt.projects and not {task.get("project"), task.get("project_id")} & set(filt.projects):
        return False
    return not (filt.profiles and task.get("profile_id") not in filt.profiles)


__all__ = ["Router", "channel_event", "out_row", "thread_of"]
