"""The chat widget: a governed conversation with one agent, in a cell.

Each message is a turn (``lab.chat.send``): a task with ``source="chat"`` whose approvals
appear inline under the turn, whose streaming text and tool calls show while it runs, and whose
reply (the task's result, rendered Markdown) and cost close it. ``/`` commands answer with a
note; ``@file:``/``@task:``/``@df:`` mentions attach context, ``@df`` from this kernel's
namespace. The conversation is stored: ``%stagent chat --session ID`` reopens it anywhere.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.chat import commands
from stagent_lab.client.handle import TaskHandle
from stagent_lab.notebook import fmt, static, views
from stagent_lab.notebook.live import hub_for
from stagent_lab.notebook.log_entries import log_entry
from stagent_lab.notebook.markdown import render_markdown
from stagent_lab.notebook.widgets._base import LiveWidget, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

STREAM_CAP = 4000
ACTIVE = ("queued", "running", "waiting")
_note_ids = itertools.count(1)
# Events of a session task after which its turn's row (status, reply, cost) may have changed.
_REFRESH_EVENTS = frozenset({"status", "result", "usage"})


class ChatView(LiveWidget):
    """``ChatView(session_id)``: the conversation, the composer, approvals inline."""

    _esm = bundle("chat.js")
    session = traitlets.Dict().tag(sync=True)
    messages = traitlets.List().tag(sync=True)
    notes = traitlets.List().tag(sync=True)  # command answers (not stored): {id, after, html}
    pending = traitlets.List().tag(sync=True)  # inbox items of this conversation's tasks
    activity = traitlets.Dict().tag(sync=True)  # task id → {"streaming", "line"}

    def __init__(
        self,
        session_id: str,
        lab: Lab | None = None,
        *,
        namespace: dict[str, Any] | None = None,
        script: Any = None,
        **kwargs: Any,
    ) -> None:
        lab = self._bind_lab(lab)
        self._namespace = namespace
        self._script = script
        self._lock = threading.Lock()
        self._new_notes: list[dict[str, Any]] = []
        self._html_cache: dict[tuple[str, int], str] = {}
        self._activity: dict[str, dict[str, str]] = {}
        self._view = lab.chat.open(session_id)
        self._task_ids: set[str] = set()
        self._start_live(lab)
        try:
            messages = self._read_messages()
            initial = {
                "session": self._session_dict(),
                "messages": messages,
                "pending": self._read_pending(),
            }
        except BaseException:
            self._hub.detach(self)
            raise
        super().__init__(**initial, **kwargs)
        self._go_live()

    @classmethod
    def for_session(
        cls,
        session_id: str,
        lab: Lab | None = None,
        *,
        namespace: dict[str, Any] | None = None,
        script: Any = None,
    ) -> ChatView:
        """The kernel's one widget per session (showing it again shows the same model)."""
        if lab is None:
            from stagent_lab.notebook import get_lab

            lab = get_lab()
        hub = hub_for(lab)
        key = f"ChatView:{session_id}"
        widget = hub.views.get(key)
        if widget is None or widget.comm is None:
            widget = cls(session_id, lab, namespace=namespace, script=script)
            hub.views[key] = widget
        else:
            if namespace is not None:
                widget._namespace = namespace
            if script is not None:
                widget._script = script
        return widget

    @property
    def session_id(self) -> str:
        return self._view.id

    # ---- reads (hub thread, or the constructor) ----------------------------------------

    def _session_dict(self) -> dict[str, Any]:
        v = self._view
        return {
            "id": v.id,
            "title": v.title,
            "profile": v.profile_id,
            "runtime": v.runtime_id,
            "project": v.project,
        }

    def _html(self, key: str, text: str | None) -> str:
        if not text:
            return ""
        cache_key = (key, hash(text))
        html = self._html_cache.get(cache_key)
        if html is None:
            html = self._html_cache[cache_key] = render_markdown(text)
        return html

    def _read_messages(self) -> list[dict[str, Any]]:
        out = []
        for m in self.lab.chat.history(self.session_id):
            if m.task_id:
                self._task_ids.add(m.task_id)
            out.append(
                {
                    "id": m.id,
                    "seq": m.seq,
                    "role": m.role,
                    "content": m.content,
                    "content_html": self._html(f"c{m.id}", m.content) if m.role == "note" else "",
                    "task_id": m.task_id,
                    "status": m.status,
                    "reply_html": self._html(f"r{m.task_id}", m.result),
                    "failure": m.failure_reason if m.status != "completed" else None,
                    "runtime": m.runtime_id,
                    "turns": m.turns,
                    "tokens_in": m.input_tokens,
                    "tokens_out": m.output_tokens,
                    "cost_usd": m.cost_usd,
                    "context": [{k: c.get(k) for k in ("kind", "ref", "note")} for c in m.context],
                    "created_ms": views.epoch_ms(m.created_at),
                }
            )
        return out

    def _read_pending(self) -> list[dict[str, Any]]:
        items = views.pending_items(self.lab)
        return [i for i in items if i.get("task") in self._task_ids]

    # ---- live updates (hub thread) -----------------------------------------------------

    def update_state(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        ours = [e for e in events if e.get("task_id") in self._task_ids]
        refresh = poked or any(e.get("event") in _REFRESH_EVENTS for e in ours)
        inbox = poked or any(e.get("event") in views.INBOX_EVENTS for e in ours)
        for ev in ours:
            self._fold(ev)
        with self._lock:
            notes, self._new_notes = self._new_notes, []
        if poked and self._view.id:
            self._view = self.lab.chat.open(self.session_id)
            session = self._session_dict()
            if session != self.session:
                self.session = session
        if refresh:
            messages = self._read_messages()
            done = {m["task_id"] for m in messages if m["status"] not in ACTIVE}
            for task_id in done:
                self._activity.pop(task_id or "", None)
            if messages != self.messages:
                self.messages = messages
        if inbox:
            pending = self._read_pending()
            if pending != self.pending:
                self.pending = pending
        activity = {k: dict(v) for k, v in self._activity.items()}
        if activity != self.activity:
            self.activity = activity
        if notes:
            self.notes = [*self.notes, *notes][-50:]

    def _fold(self, ev: dict[str, Any]) -> None:
        task_id = str(ev.get("task_id"))
        slot = self._activity.setdefault(task_id, {"streaming": "", "line": ""})
        kind = ev.get("event")
        if kind == "assistant_delta":
            text = ev.get("payload")
            if isinstance(text, str):
                slot["streaming"] = (slot["streaming"] + text)[-STREAM_CAP:]
            return
        if kind == "assistant_text":
            slot["streaming"] = ""
        entry = log_entry(ev)
        if entry is not None and kind not in ("usage", "result", "status"):
            tool = f"{entry['tool']}: " if entry.get("tool") else ""
            slot["line"] = f"{tool}{entry['text']}"

    # ---- the static copy ---------------------------------------------------------------

    def static_bundle(self) -> dict[str, str]:
        return static.chat(dict(self.session), list(self.messages))

    def static_key(self) -> Any:
        return (
            repr(self.session),
            tuple((m["id"], m["status"], m["cost_usd"]) for m in self.messages),
        )

    def static_final(self) -> bool:
        sent = getattr(self, "_static_sent", None)
        return sent is None or sent[1] != self.static_key()[1]

    # ---- front-end actions (shell or subshell thread) ----------------------------------

    def handle_action(self, kind: str, content: dict[str, Any]) -> str:
        if kind == "send":
            return self.send(str(content.get("text") or ""))
        if kind == "cancel":
            task_id = str(content.get("task_id") or "")
            if task_id not in self._task_ids:
                raise ValueError(f"task {task_id!r} is not part of this chat")
            TaskHandle(self.lab, task_id).cancel()
            return "cancelling the turn"
        return super().handle_action(kind, content)

    def send(self, text: str) -> str:
        """What the composer's Send does: a slash command, or a message (a turn)."""
        text = text.strip()
        if not text:
            raise ValueError("type a message first (/help lists the commands)")
        if commands.is_command(text):
            result = commands.run(self.lab, self._view, text, script=self._script)
            if result.task_id:
                self._task_ids.add(result.task_id)
            if result.session is not None:
                self._view = result.session
            # A /task's own message comes next: its note goes after it.
            self._note(result.note, after_next=result.task_id is not None)
            return "done"
        turn = self.lab.chat.send(self._view, text, namespace=self._namespace, script=self._script)
        self._task_ids.add(turn.task.id)
        return f"sent (turn task {turn.task.id})"

    def _note(self, markdown: str, *, after_next: bool = False) -> None:
        seq = max((m["seq"] for m in self.messages), default=0) + (1 if after_next else 0)
        note = {"id": f"n{next(_note_ids)}", "after": seq, "html": render_markdown(markdown)}
        with self._lock:
            self._new_notes.append(note)

    def total_cost(self) -> float:
        return float(sum(m.get("cost_usd") or 0.0 for m in self.messages))

    def __repr__(self) -> str:
        return f"<ChatView {self.session_id} {fmt.plural(len(self.messages), 'message')}>"


__all__ = ["ChatView"]
