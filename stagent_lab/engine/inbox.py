"""The inbox: requests that wait for a person — create, wait, decide, expire.

Engine thread only. A task that asks (a permission, a question, a budget override) waits on a
future; the item row is committed before the future exists, so another thread that sees the item
as pending can decide it at once. Items nobody awaits in this process (handoff approvals,
workflow checkpoints, notices) are decided through the handler their feature registered for
their kind; features may also await an item with :meth:`Inbox.wait_item`.

Decisions by kind:

=========== ============================== =====================================
kind        decisions                      who waits
=========== ============================== =====================================
permission  allow, always, deny            the task (its tool call)
question    answer, deny                   the task
handoff     allow, deny                    the handoff bus (handler)
checkpoint  allow, deny                    the workflow run (handler / wait_item)
budget      allow, deny                    the task (before its next model call)
notice      allow (acknowledge)            nobody
=========== ============================== =====================================
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stagent_lab.engine.states import TaskStatus
from stagent_lab.engine.task import new_id
from stagent_lab.errors import InboxError
from stagent_lab.store import inbox as inbox_repo

if TYPE_CHECKING:
    from stagent_lab.engine.engine import Engine
    from stagent_lab.engine.task import TaskState

S = TaskStatus
DECIDED_KEPT = 10_000

VALID_DECISIONS: dict[str, frozenset[str]] = {
    "permission": frozenset({"allow", "always", "deny"}),
    "question": frozenset({"answer", "deny"}),
    "handoff": frozenset({"allow", "deny"}),
    "checkpoint": frozenset({"allow", "deny"}),
    "budget": frozenset({"allow", "deny"}),
    "notice": frozenset({"allow"}),
}


@dataclass(frozen=True)
class InboxDecision:
    item_id: str
    kind: str
    decision: str  # allow | always | deny | answer
    message: str | None
    decided_by: str
    rule: str | None = None  # the rule saved by "always"
    task_id: str | None = None
    subject: str = "task"
    subject_id: str | None = None


Handler = Callable[[InboxDecision], None]


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._waiters: dict[str, tuple[asyncio.Future[InboxDecision], str | None]] = {}
        self.handlers: dict[str, Handler] = {}
        self._asked: dict[str, dict[str, Any]] = {}  # items a task awaits, while pending
        # Recent decisions, so a second decision is refused before the first one's row commits.
        self._decided: OrderedDict[str, tuple[str, str]] = OrderedDict()

    # ---- creating ----------------------------------------------------------------------

    async def ask(self, st: TaskState, item: dict[str, Any]) -> InboxDecision:
        """Put ``item`` in the inbox for task ``st`` and wait for the decision.

        The task is ``waiting`` while any of its items is pending. Cancelling the task expires
        the item (nobody can answer it any more).
        """
        eng = self._engine
        item = {**item, "id": item.get("id") or new_id(), "task_id": st.id, "subject": "task"}
        item_id = item["id"]
        fut: asyncio.Future[InboxDecision] = eng.loop.create_future()
        self._waiters[item_id] = (fut, st.id)
        eng.events.task(
            st,
            "inbox",
            tool_name=item.get("tool_name"),
            item_id=item_id,
            kind=item["kind"],
            question=item.get("question"),
            suggested_rule=item.get("suggested_rule"),
            body=item.get("body"),
        )
        stored = inbox_repo.insert_row(self._stored(item), eng.clock.now())
        eng.writer.insert("inbox_items", stored)
        # What decide() reads of the item, kept while it is pending: the approval path does
        # not wait for a store read.
        self._asked[item_id] = {**stored, "profile_id": st.profile_id, "title": st.title}
        if st.status == S.RUNNING:
            eng.book.set_status(st, S.WAITING, now_visible=True)
        else:
            eng.writer.flush()
        # Only now, with the row committed, is the item pending as far as other threads know.
        st.pending_inbox.add(item_id)
        eng.book.publish_snapshot(st)
        eng.book.notify()
        try:
            return await fut
        except asyncio.CancelledError:
            self.expire_for(st)
            raise
        finally:
            self._waiters.pop(item_id, None)
            self._asked.pop(item_id, None)
            st.pending_inbox.discard(item_id)
            if not st.pending_inbox and st.status == S.WAITING and not st.stop_reason:
                eng.book.set_status(st, S.RUNNING)
            else:
                eng.book.publish_snapshot(st)

    def create(
        self,
        kind: str,
        *,
        subject: str,
        subject_id: str | None,
        body: str | None = None,
        task_id: str | None = None,
        tool_name: str | None = None,
        tool_input: Any = None,
        question: str | None = None,
        item_id: str | None = None,
        log: bool = True,
    ) -> str:
        """An item nobody awaits here (a checkpoint, a notice, a handoff approval).

        Committed at once. Its decision goes to the handler registered for ``kind`` (and to
        :meth:`wait_item` waiters). Returns the item id.
        """
        if kind not in VALID_DECISIONS:
            raise InboxError(f"unknown inbox item kind {kind!r}")
        eng = self._engine
        item = {
            "id": item_id or new_id(),
            "task_id": task_id,
            "kind": kind,
            "tool_name": tool_name,
            "tool_input": tool_input,
            "question": question,
            "subject": subject,
            "subject_id": subject_id,
            "body": body,
        }
        eng.writer.insert("inbox_items", inbox_repo.insert_row(self._stored(item), eng.clock.now()))
        if log and subject != "task" and subject_id:
            eng.events.subject(subject, subject_id, "inbox", item_id=item["id"], kind=kind)
        eng.writer.flush()
        eng.book.notify()
        return item["id"]

    def wait_item(self, item_id: str) -> asyncio.Future[InboxDecision]:
        """A future resolved when ``item_id`` (created with :meth:`create`) is decided."""
        fut: asyncio.Future[InboxDecision] = self._engine.loop.create_future()
        self._waiters[item_id] = (fut, None)
        return fut

    def _stored(self, item: dict[str, Any]) -> dict[str, Any]:
        redact = self._engine.redact
        out = dict(item)
        raw = item.get("tool_input")
        if raw is not None and not isinstance(raw, str):
            raw = json.dumps(raw, default=str, ensure_ascii=False)
        out["tool_input"] = redact(raw) if raw is not None else None
        for key in ("question", "suggested_rule", "body"):
            if isinstance(out.get(key), str):
                out[key] = redact(out[key])
        return out

    # ---- deciding ----------------------------------------------------------------------

    def decide(
        self,
        item_id: str,
        decision: str,
        message: str | None = None,
        rule: str | None = None,
        scope: str | None = None,
        decided_by: str = "operator",
    ) -> dict[str, Any]:
        eng = self._engine
        row = self._asked.get(item_id) or inbox_repo.get(eng.writer.con, item_id)
        if row is None:  # a unique prefix of an id will do
            ids = inbox_repo.ids_with_prefix(eng.writer.con, item_id)
            if len(ids) > 1:
                raise InboxError(f"{item_id!r} matches several inbox items ({', '.join(ids)})")
            if not ids:
                raise InboxError(f"no inbox item with id {item_id!r}")
            item_id = ids[0]
            row = inbox_repo.get(eng.writer.con, item_id)
            if row is None:
                raise InboxError(f"no inbox item with id {item_id!r}")
        kind, task_id, status = row["kind"], row["task_id"], row["status"]
        earlier = self._decided.get(item_id)
        if earlier is not None and status == "pending":  # decided; its row not committed yet
            status = "decided"
            row = {**row, "decision": earlier[0], "decided_by": earlier[1]}
        if status != "pending":
            detail = f" ({row['decision']} by {row['decided_by']})" if row["decision"] else ""
            raise InboxError(f"inbox item {item_id} is already {status}{detail}")
        valid = VALID_DECISIONS.get(kind, frozenset({"allow", "deny"}))
        if decision not in valid:
            raise InboxError(
                f"{decision!r} does not fit a {kind} item; use one of {', '.join(sorted(valid))}"
            )
        if decision == "answer" and not (message and message.strip()):
            raise InboxError("an 'answer' decision needs the answer text in message=")
        waiter = self._waiters.get(item_id)
        handler = self.handlers.get(kind)
        if waiter is None and handler is None and kind not in ("notice",):
            raise InboxError(
                f"inbox item {item_id} belongs to task {task_id}, which is not running in this "
                "workspace; it will be expired"
            )
        saved_rule = rule_id = None
        if decision == "always":
            saved_rule, rule_id = eng.save_always_rule(row, rule, scope)
        now = eng.clock.now()
        text = eng.redact(message) if message else message
        outcome = InboxDecision(
            item_id,
            kind,
            decision,
            text,
            decided_by,
            saved_rule,
            task_id,
            row["subject"],
            row["subject_id"],
        )
        # The decision goes into the batch in order, before anything the task does next, so
        # the store never holds a tool's result without the decision that let it run. The task
        # is woken first and the batch committed right after it has taken its next step: a
        # person's "allow" does not wait for a disk commit before the tool starts.
        eng.writer.defer(
            lambda con: inbox_repo.record_decision(con, item_id, decision, text, decided_by, now),
            "inbox decision",
            task_id,
        )
        self._decided[item_id] = (decision, decided_by)
        self._asked.pop(item_id, None)
        while len(self._decided) > DECIDED_KEPT:
            self._decided.popitem(last=False)
        payload = {"item_id": item_id, "kind": kind, "decision": decision, "decided_by": decided_by}
        st = eng.book.tasks.get(task_id) if task_id else None
        if st is not None:
            eng.events.task(st, "inbox_decided", **payload)
        elif row["subject"] != "task" and row["subject_id"]:
            eng.events.subject(row["subject"], row["subject_id"], "inbox_decided", **payload)
        if waiter is not None and not waiter[0].done():
            waiter[0].set_result(outcome)  # the task's next step is scheduled now ...
        if handler is not None and (waiter is None or waiter[1] is None):
            handler(outcome)
        eng.loop.call_soon(self._commit_decisions)  # ... and the commit after it
        eng.book.notify()
        return {"item_id": item_id, "decision": decision, "rule": saved_rule, "rule_id": rule_id}

    def _commit_decisions(self) -> None:
        self._engine.writer.flush()
        self._engine.book.notify()

    # ---- expiring ----------------------------------------------------------------------

    def expire_for(self, st: TaskState) -> None:
        """Expire the pending items of a task that stopped."""
        if not st.pending_inbox:
            return
        ids = list(st.pending_inbox)
        for item_id in ids:
            self._asked.pop(item_id, None)
        now = self._engine.clock.now()
        self._engine.writer.flush(extra=lambda con: inbox_repo.expire(con, ids, now))

    def expire(self, item_ids: list[str]) -> None:
        """Expire items (e.g. a cancelled workflow's checkpoints); their waiters are cancelled."""
        if not item_ids:
            return
        now = self._engine.clock.now()
        self._engine.writer.flush(extra=lambda con: inbox_repo.expire(con, item_ids, now))
        for item_id in item_ids:
            self._asked.pop(item_id, None)
            waiter = self._waiters.pop(item_id, None)
            if waiter is not None and not waiter[0].done():
                waiter[0].cancel()
        self._engine.book.notify()

    def has_waiter(self, item_id: str) -> bool:
        return item_id in self._waiters
