"""The inbound pipeline, the same for every transport (spec §4.5):

1. the transport has verified the request (Slack events, Telegram webhook, signed webhooks);
2. **deduplicate** on the message's key (Slack ``<channel>:<ts>``, Telegram ``<update_id>``,
   the webhook's delivery id): a duplicate changes nothing;
3. **ignore** bots and our own messages (recorded ``ignored``);
4. **read** the message (``parse.read``) and find the item it is about (thread root, the
   replied-to message, or a ``#code``; only items delivered to this channel);
5. **authorise** the sender for that action: deciding needs ``approvers`` (``None``: the
   senders), starting a task needs ``allowed_senders`` (Telegram: and ``allowed_chats`` when
   set); both lists empty accept nothing. Anything else is ``rejected`` and answered only with
   ``reply_to_unknown``;
6. **act** and **commit together**: the effect, the row (status, outcome), the poller's cursor
   and the reply (an outbound delivery) are one writer transaction, so a restart neither replays
   nor loses a message. ``submit`` and ``decide`` return at once: nothing here waits for an
   agent turn.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from stagent_lab.api import requests as rq
from stagent_lab.channels import parse, render
from stagent_lab.channels.config import Channel
from stagent_lab.channels.router import out_row
from stagent_lab.engine.task import new_id
from stagent_lab.errors import StagentError
from stagent_lab.store import channels as repo
from stagent_lab.store import inbox as inbox_repo

if TYPE_CHECKING:
    from stagent_lab.channels.feature import ChannelsFeature

STORED_TEXT = 4000


@dataclass
class Incoming:
    """One message from a transport, normalized."""

    key: str  # dedupe key
    external_id: str | None
    sender: str | None
    text: str
    ref: str | None = None  # Slack thread root / Telegram replied-to message id
    reply_thread: str | None = None  # where an answer goes (Slack ts, Telegram "chat:msg")
    chat: str | None = None  # Telegram chat id
    ignore: str | None = None  # why this message is not for us (a bot, a subtype …)
    button: tuple[str, str] | None = None  # Telegram (item code, decision)
    callback_id: str | None = None
    top_level: bool = True
    mentioned: bool = False
    cursor: tuple[str, str] | None = None  # (stream, value) to commit with the effect


@dataclass
class Action:
    kind: str  # decide | task | reply | ignore
    who: str = "any"  # deciders | senders | any
    item_id: str | None = None
    decision: str | None = None
    message: str | None = None
    prompt: str | None = None
    reply: str | None = None
    label: str = "help"  # channel_inbound kind for replies


@dataclass
class Outcome:
    status: str  # processed | ignored | rejected | duplicate
    outcome: dict[str, Any] = field(default_factory=dict)
    reply: str | None = None
    reply_id: str | None = None
    sent: dict[str, Any] = field(default_factory=dict, repr=False)  # the reply row, once stored


class Inbound:
    def __init__(self, feature: ChannelsFeature) -> None:
        self.f = feature

    # ---- entry ---------------------------------------------------------------------------

    def handle(self, ch: Channel, msg: Incoming) -> Outcome:
        """Run one message through the pipeline (engine thread)."""
        con = self.f.con
        if repo.by_key(con, ch.id, msg.key) is not None:
            if msg.cursor:
                self.f.write(lambda c: self._cursor(c, ch, msg))
            return Outcome("duplicate")
        row = self.row_for(ch, msg)
        if msg.ignore:
            return self.commit(ch, msg, row, Outcome("ignored", {"ignored": msg.ignore}))
        action = self.classify(ch, msg)
        if action.kind == "ignore":
            return self.commit(ch, msg, row, Outcome("ignored", {"ignored": action.reply}))
        if not self.allowed(ch, msg, action.who):
            return self.reject(ch, msg, row, "sender")
        if action.kind == "decide":
            return self.decide(ch, msg, row, action)
        if action.kind == "task":
            return self.start_task(ch, msg, row, action)
        self.f.log(ch, "channel_inbound", delivery_id=row["id"], kind=action.label)
        return self.commit(
            ch, msg, row, Outcome("processed", {"reply": action.label}, action.reply)
        )

    def row_for(self, ch: Channel, msg: Incoming) -> dict[str, Any]:
        return {
            "id": new_id(),
            "channel_id": ch.id,
            "direction": "in",
            "event": "message" if msg.button is None else "button",
            "subject_type": None,
            "subject_id": None,
            "dedupe_key": msg.key,
            "status": "processed",
            "attempts": 1,
            "external_id": msg.external_id,
            "thread_ref": msg.reply_thread,
            "sender_id": msg.sender,
            "text": self.f.clean(msg.text)[:STORED_TEXT],
            "created_at": self.f.clock.now(),
        }

    # ---- reading -------------------------------------------------------------------------

    def classify(self, ch: Channel, msg: Incoming) -> Action:
        bot = self.f.identity(ch.id)
        reading = parse.read(msg.text, bot.get("user_id"), bot.get("username"))
        code = msg.button[0] if msg.button else reading.code
        item, task, ambiguous, ours = self._target(ch, msg, code)
        deciders = "deciders"
        if msg.button:
            if item is None:
                return Action("reply", deciders, reply=f"#{code} is not an item of this channel")
            return Action("decide", deciders, item, msg.button[1])
        if reading.kind == "decision":
            if item is not None:
                return Action("decide", deciders, item, reading.decision, reading.message)
            if ambiguous:
                text = "Several items wait in this thread; add the #code of the one you mean."
            elif code:
                text = f"#{code} is not an item of this channel."
            else:
                text = "Which item? Reply in the item's thread, or add its #code."
            return Action("reply", deciders, reply=text, label="decision")
        if item is not None and reading.kind == "text" and reading.text:
            row = inbox_repo.get(self.f.con, item)
            if row is not None and row["kind"] == "question":
                return Action("decide", deciders, item, "answer", reading.text)
        if reading.kind == "help":
            return Action("reply", "any", reply=parse.help_text(ch.settings.task_trigger))
        if item is not None or task is not None or ours or ambiguous:
            return Action("reply", "any", reply=parse.HELP.split(". A new")[0] + ".")
        if msg.top_level:
            prompt = parse.trigger_text(reading.text, ch.settings.task_trigger, msg.mentioned)
            if prompt:
                return Action("task", "senders", prompt=prompt)
        return Action("ignore", reply="not addressed to the workspace")

    def _target(
        self, ch: Channel, msg: Incoming, code: str | None
    ) -> tuple[str | None, str | None, bool, bool]:
        """(item id, task id, ambiguous, a thread of ours) for a message."""
        con = self.f.con
        if code:
            ids = repo.delivered_items(con, ch.id, code)
            if len(ids) == 1:
                return ids[0], None, False, True
            return None, None, len(ids) > 1, False
        if not msg.ref:
            return None, None, False, False
        task_id = None
        out = repo.out_by_external(con, ch.id, msg.ref)
        if out is not None:
            if out["subject_type"] == "inbox_item":
                return out["subject_id"], None, False, True
            if out["subject_type"] == "task":
                task_id = out["subject_id"]
            elif out["subject_type"] == "inbound":
                origin = repo.get_delivery(con, out["subject_id"])
                task_id = _task_of(origin)
        else:
            task_id = _task_of(repo.in_by_external(con, ch.id, msg.ref))
        if task_id is None:
            return None, None, False, out is not None
        items = repo.pending_items_of_task(con, ch.id, task_id)
        if len(items) == 1:
            return items[0], task_id, False, True
        return None, task_id, len(items) > 1, True

    def allowed(self, ch: Channel, msg: Incoming, who: str) -> bool:
        sender = str(msg.sender or "")
        if not sender:
            return False
        senders, deciders = set(ch.allowed_senders), set(ch.deciders)
        if who == "deciders":
            return sender in deciders
        if who == "senders":
            chats = getattr(ch.settings, "allowed_chats", None)
            if chats and str(msg.chat) not in {str(c) for c in chats}:
                return False
            return sender in senders
        return sender in senders or sender in deciders

    # ---- acting --------------------------------------------------------------------------

    def reject(self, ch: Channel, msg: Incoming, row: dict[str, Any], reason: str) -> Outcome:
        self.f.log(ch, "channel_rejected", delivery_id=row["id"], reason=reason, sender=msg.sender)
        reply = None
        if reason == "rate_limit":
            limit = int(self.f.setting("channels.max_tasks_per_sender_per_hour"))
            reply = f"You have started {limit} tasks in the last hour; try again later."
        elif getattr(ch.settings, "reply_to_unknown", False):
            reply = (
                f"Sorry, {msg.sender} may not do that here. Ask the workspace operator to add "
                "you to this channel's senders or approvers."
            )
        return self.commit(ch, msg, row, Outcome("rejected", {"rejected": reason}, reply))

    def decide(self, ch: Channel, msg: Incoming, row: dict[str, Any], act: Action) -> Outcome:
        assert act.item_id is not None and act.decision is not None
        con = self.f.con
        item = inbox_repo.get(con, act.item_id)
        code = repo.item_code(con, act.item_id)
        if item is None:
            return self.commit(
                ch, msg, row, Outcome("processed", {"error": "unknown item"}, "Unknown item.")
            )
        if item["status"] != "pending":
            by = f": {item['decision']} by {item['decided_by']}" if item["decision"] else ""
            text = f"#{code} was already {item['status']}{by}."
            outcome = {"item_id": item["id"], "error": f"already {item['status']}"}
            return self.commit(ch, msg, row, Outcome("processed", outcome, text))
        if act.decision == "always":
            why = None
            if not ch.allow_always:
                why = "this channel does not allow 'always'; use allow (once) or ask the operator"
            elif item["kind"] != "permission" or not item.get("suggested_rule"):
                why = "'always' needs a permission item with a suggested rule"
            if why:
                outcome = {"item_id": item["id"], "error": "always refused"}
                return self.commit(
                    ch, msg, row, Outcome("processed", outcome, f"Not decided: {why}.")
                )
        decided_by = f"{ch.type}:{msg.sender}"
        done = Outcome(
            "processed",
            {"item_id": item["id"], "decision": act.decision},
            f"#{code}: {_past(act.decision)} by {decided_by}.",
        )
        self.f.router.decided_via[item["id"]] = ch.id
        # Queue the row, cursor and reply first: the decision's own commit takes them along,
        # so the effect and the record of the message are one transaction.
        self._queue(ch, msg, row, done)
        try:
            self.f.service.handle(
                rq.build(
                    rq.Decide,
                    item_id=item["id"],
                    decision=act.decision,
                    message=act.message,
                    decided_by=decided_by,
                )
            )
        except (StagentError, ValueError, KeyError) as exc:
            self.f.router.decided_via.pop(item["id"], None)
            done.outcome = {"item_id": item["id"], "error": self.f.clean(str(exc))[:300]}
            done.reply = f"Not decided: {self.f.clean(str(exc))[:300]}"
        else:
            self.f.log(
                ch,
                "channel_decision",
                delivery_id=row["id"],
                item_id=item["id"],
                decision=act.decision,
                decided_by=decided_by,
            )
            self.f.log(ch, "channel_inbound", delivery_id=row["id"], kind="decision")
        self.f.write(None)
        self._after(ch, msg, done)
        return done

    def start_task(
        self,
        ch: Channel,
        msg: Incoming,
        row: dict[str, Any],
        act: Action,
        overrides: dict[str, Any] | None = None,
    ) -> Outcome:
        limit = int(self.f.setting("channels.max_tasks_per_sender_per_hour"))
        since = self.f.clock.now() - timedelta(hours=1)
        if repo.tasks_started_since(self.f.con, ch.id, str(msg.sender), since) >= limit:
            return self.reject(ch, msg, row, "rate_limit")
        try:
            view = self.submit(ch, act.prompt or "", row["id"], **(overrides or {}))
        except (StagentError, ValueError, KeyError) as exc:
            error = self.f.clean(str(exc))[:300]
            return self.commit(
                ch, msg, row, Outcome("processed", {"error": error}, f"Could not start: {error}")
            )
        self.f.log(ch, "channel_inbound", delivery_id=row["id"], kind="task", task_id=view.id)
        text = (
            f"Started task {view.id[:8]} (profile {view.profile_id}, runtime {view.runtime_id}). "
            "Its result will be posted here."
        )
        return self.commit(ch, msg, row, Outcome("processed", {"task_id": view.id}, text))

    def submit(self, ch: Channel, prompt: str, origin_id: str, **overrides: Any) -> Any:
        request = rq.build(
            rq.SubmitTask,
            prompt=prompt,
            profile=overrides.get("profile") or ch.default_profile,
            project=overrides.get("project") or ch.default_project,
            runtime=overrides.get("runtime") or ch.default_runtime,
            source="channel",
            origin_id=origin_id,
            pool="channel",
            channels=[ch.id],
        )
        return self.f.service.handle(request)

    # ---- committing ----------------------------------------------------------------------

    def commit(self, ch: Channel, msg: Incoming, row: dict[str, Any], out: Outcome) -> Outcome:
        self._queue(ch, msg, row, out)
        self.f.write(None)
        self._after(ch, msg, out)
        return out

    def _queue(self, ch: Channel, msg: Incoming, row: dict[str, Any], out: Outcome) -> None:
        """Queue the row, cursor and reply; they are built from ``out`` when the batch
        commits, so a change of ``out`` before then is what gets stored."""
        out.reply_id = None
        holder = out.sent

        def write(con: Any) -> None:
            stored = dict(row, status=out.status, outcome=out.outcome, done_at=self.f.clock.now())
            if out.outcome.get("task_id"):
                stored["subject_type"], stored["subject_id"] = "task", out.outcome["task_id"]
            elif out.outcome.get("item_id"):
                stored["subject_type"], stored["subject_id"] = "inbox_item", out.outcome["item_id"]
            repo.insert_delivery(con, stored)
            if out.reply and ch.type != "webhook" and msg.reply_thread:
                reply = out_row(
                    self.f,
                    ch,
                    event="reply",
                    subject_type="inbound",
                    subject_id=row["id"],
                    key=f"reply:{row['id']}",
                    rendered=render.plain_reply(out.reply),
                    occurred_at=row["created_at"],
                    thread=msg.reply_thread,
                )
                if repo.insert_delivery(con, reply):
                    holder["reply"] = reply
            self._cursor(con, ch, msg)
            if out.outcome.get("task_id") and ch.type == "slack" and msg.reply_thread:
                stream = f"replies:{msg.reply_thread}"
                if repo.get_cursor(con, ch.id, stream) is None:
                    repo.set_cursor(con, ch.id, stream, msg.reply_thread, self.f.clock.now())

        self.f.service.writer_defer(write, "channel inbound", None)

    def _cursor(self, con: Any, ch: Channel, msg: Incoming) -> None:
        if msg.cursor:
            repo.set_cursor(con, ch.id, msg.cursor[0], msg.cursor[1], self.f.clock.now())

    def _after(self, ch: Channel, msg: Incoming, out: Outcome) -> None:
        reply = out.sent.get("reply")
        if reply is not None:
            out.reply_id = reply["id"]
            self.f.queue_out([reply])
        if msg.callback_id:
            self.f.answer_callback(ch, msg.callback_id, (out.reply or "")[:190])


def _task_of(row: dict[str, Any] | None) -> str | None:
    if row is None or not row.get("outcome"):
        return None
    try:
        return json.loads(row["outcome"]).get("task_id")
    except (ValueError, AttributeError):
        return None


def _past(decision: str) -> str:
    return {"allow": "allowed", "always": "always allowed", "deny": "denied"}.get(
        decision, "answered"
    )


__all__ = ["Action", "Inbound", "Incoming", "Outcome"]
