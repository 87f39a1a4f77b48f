"""What a channel message says, per event, in each transport's form.

A message is built once as a :class:`Doc` (lines of fixed words and dynamic text) plus the
webhook's ``data`` (the same facts as snake_case keys, with every id). Then:

* Slack gets mrkdwn: fixed labels in bold, ``&``, ``<`` and ``>`` escaped in every dynamic
  text (so an agent's output cannot mention ``<!channel>`` or forge a link), at most 3,500
  characters, then a cut that points at the task.
* Telegram gets plain text (no ``parse_mode``: nothing to escape, nothing shown literally), at
  most 4,096 characters, and inline buttons for inbox items.
* A webhook gets ``data``.

Every text is redacted by the caller before it is queued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SLACK_LIMIT = 3500
TELEGRAM_LIMIT = 4096
STORED_TEXT = 4000
TOOL_INPUT_CHARS = 500
BODY_CHARS = 800

KIND_TITLES = {
    "permission": "Approval needed",
    "question": "Question",
    "handoff": "Handoff approval",
    "checkpoint": "Checkpoint",
    "budget": "Budget decision",
}


@dataclass
class Doc:
    """Lines of (style, text) parts: style "b" fixed bold words, "s" fixed words, "d" dynamic."""

    lines: list[list[tuple[str, str]]] = field(default_factory=list)

    def title(self, words: str, dynamic: str | None = None) -> Doc:
        line = [("b", words)]
        if dynamic:
            line += [("s", " "), ("d", dynamic)]
        self.lines.append(line)
        return self

    def field(self, label: str, value: Any) -> Doc:
        if value is not None and value != "":
            self.lines.append([("s", f"{label}: "), ("d", str(value))])
        return self

    def text(self, value: str | None) -> Doc:
        if value:
            self.lines.append([("d", value)])
        return self

    def note(self, words: str) -> Doc:
        self.lines.append([("s", words)])
        return self

    def slack(self) -> str:
        out = []
        for line in self.lines:
            parts = []
            for style, text in line:
                if style == "b":
                    parts.append(f"*{escape_slack(text)}*")
                elif style == "d":
                    parts.append(escape_slack(text))
                else:
                    parts.append(escape_slack(text))
            out.append("".join(parts))
        return "\n".join(out)

    def plain(self) -> str:
        return "\n".join("".join(text for _, text in line) for line in self.lines)


@dataclass
class Rendered:
    doc: Doc
    data: dict[str, Any]
    pointer: str  # what a cut message points to ("task 1a2b3c4d")
    buttons: list[tuple[str, str]] = field(default_factory=list)  # Telegram (label, data)


def escape_slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int, pointer: str) -> str:
    if len(text) <= limit:
        return text
    tail = f"\n… (cut; the full text is in {pointer})"
    return text[: max(0, limit - len(tail))] + tail


def short(value: str | None) -> str:
    return (value or "")[:8]


def _money(value: Any) -> str:
    try:
        return f"${float(value):.4f}"
    except (TypeError, ValueError):
        return "$0.0000"


def _duration(started: Any, finished: Any) -> str | None:
    if not isinstance(started, datetime) or not isinstance(finished, datetime):
        return None
    seconds = max(0.0, (finished - started).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if isinstance(value, datetime) else value


# ---- tasks ---------------------------------------------------------------------------------


def task_event(event: str, task: dict[str, Any], result_chars: int) -> Rendered:
    failed = event == "task.failed"
    duration = _duration(task.get("started_at"), task.get("finished_at"))
    doc = Doc().title("Task failed:" if failed else "Task completed:", task.get("title") or "")
    doc.field(
        "Task",
        f"{short(task['id'])} · profile {task.get('profile_id')} · runtime "
        f"{task.get('runtime_id')} · model {task.get('model') or '-'}",
    )
    doc.field(
        "Run",
        f"{duration or '-'} · {int(task.get('turns') or 0)} turns · {_money(task.get('cost_usd'))}",
    )
    detail = (task.get("failure_reason") if failed else task.get("result")) or ""
    excerpt = detail[:result_chars] + ("…" if len(detail) > result_chars else "")
    if failed:
        doc.field("Reason", excerpt or "(no reason given)")
    else:
        doc.text(excerpt)
    data = {
        "task_id": task["id"],
        "title": task.get("title"),
        "status": task.get("status"),
        "profile_id": task.get("profile_id"),
        "runtime_id": task.get("runtime_id"),
        "model": task.get("model"),
        "project": task.get("project"),
        "source": task.get("source"),
        "duration_s": (
            (task["finished_at"] - task["started_at"]).total_seconds()
            if isinstance(task.get("started_at"), datetime)
            and isinstance(task.get("finished_at"), datetime)
            else None
        ),
        "turns": int(task.get("turns") or 0),
        "cost_usd": float(task.get("cost_usd") or 0.0),
        ("failure_reason" if failed else "result"): excerpt,
    }
    return Rendered(doc, data, f"task {short(task['id'])}")


# ---- inbox ---------------------------------------------------------------------------------


def replies_for(kind: str, channel_type: str, allow_always: bool) -> str:
    where = (
        "Reply to this message"
        if channel_type == "telegram"
        else "Reply in this thread (or anywhere with the code)"
    )
    if kind == "question":
        forms = "answer <text> (or just the text) · deny"
    else:
        forms = "allow · deny <message for the agent>"
        if allow_always and kind == "permission":
            forms += " · always"
    return f"{where}: {forms}"


def inbox_pending(
    item: dict[str, Any], code: str, channel_type: str, allow_always: bool
) -> Rendered:
    kind = item["kind"]
    title = KIND_TITLES.get(kind, kind.capitalize())
    doc = Doc().title(f"{title} #{code}")
    if item.get("task_id"):
        doc.field("Task", f"{item.get('title') or ''} ({short(item['task_id'])})")
        doc.field("Profile", item.get("profile_id"))
    elif item.get("subject") and item.get("subject") != "task":
        doc.field(item["subject"].replace("_", " ").capitalize(), item.get("subject_id"))
    tool_input = item.get("tool_input")
    if isinstance(tool_input, str):
        shown_input = tool_input
    elif tool_input is not None:
        shown_input = json.dumps(tool_input, ensure_ascii=False)
    else:
        shown_input = None
    if shown_input and len(shown_input) > TOOL_INPUT_CHARS:
        shown_input = shown_input[:TOOL_INPUT_CHARS] + "…"
    if kind == "permission":
        doc.field("Tool", item.get("tool_name"))
        doc.field("Input", shown_input)
        doc.field("Suggested rule", item.get("suggested_rule"))
    elif kind == "question":
        doc.text(item.get("question"))
    elif kind == "handoff":
        doc.text(item.get("question"))
        doc.field("Details", shown_input)
    body = item.get("body")
    if body:
        doc.text(body[:BODY_CHARS] + ("…" if len(body) > BODY_CHARS else ""))
    doc.note(replies_for(kind, channel_type, allow_always))
    buttons = [("Allow", "a"), ("Deny", "d")]
    if allow_always and kind == "permission" and item.get("suggested_rule"):
        buttons.insert(1, ("Always", "w"))
    if kind == "question":
        buttons = [("Deny", "d")]
    data = {
        "item_id": item["id"],
        "item_code": f"#{code}",
        "kind": kind,
        "task_id": item.get("task_id"),
        "task_title": item.get("title"),
        "profile_id": item.get("profile_id"),
        "subject": item.get("subject"),
        "subject_id": item.get("subject_id"),
        "tool_name": item.get("tool_name"),
        "tool_input": shown_input,
        "suggested_rule": item.get("suggested_rule"),
        "question": item.get("question"),
        "body": body[:BODY_CHARS] if body else None,
    }
    pointer = f"inbox item #{code}"
    return Rendered(doc, data, pointer, [(label, f"d:{code}:{b}") for label, b in buttons])


def inbox_resolved(item: dict[str, Any], code: str) -> Rendered:
    if item.get("status") == "expired":
        doc = Doc().title(f"#{code} expired").note(" — nobody can answer it any more")
    else:
        who = item.get("decided_by") or "someone"
        doc = Doc().title(f"#{code} decided:", f"{item.get('decision')} by {who}")
        if item.get("response") and item.get("decision") in ("deny", "answer"):
            doc.field("Message", item["response"][:BODY_CHARS])
    data = {
        "item_id": item["id"],
        "item_code": f"#{code}",
        "status": item.get("status"),
        "decision": item.get("decision"),
        "decided_by": item.get("decided_by"),
        "decided_at": _iso(item.get("decided_at")),
        "task_id": item.get("task_id"),
    }
    return Rendered(doc, data, f"inbox item #{code}")


# ---- other features' events ----------------------------------------------------------------

SUBJECT_TITLES = {
    "schedule.alert": "Schedule alert:",
    "heartbeat.action": "Heartbeat action:",
    "heartbeat.ok": "Heartbeat OK:",
    "budget.warning": "Budget warning:",
    "budget.exceeded": "Budget exceeded:",
    "workflow.completed": "Workflow completed:",
    "workflow.failed": "Workflow failed:",
}
NAME_KEYS = ("name", "schedule", "heartbeat", "workflow", "scope")
HIDDEN_KEYS = frozenset({"channels", "channel_event"})


def subject_event(event: str, subject: str, subject_id: str, payload: dict[str, Any]) -> Rendered:
    """schedule / heartbeat / budget / workflow events: a title and one line per fact."""
    name = next((str(payload[k]) for k in NAME_KEYS if payload.get(k)), subject_id)
    doc = Doc().title(SUBJECT_TITLES.get(event, event), name)
    data: dict[str, Any] = {"subject": subject, "subject_id": subject_id}
    for key, value in payload.items():
        if key in HIDDEN_KEYS:
            continue
        data[key] = value
        if isinstance(value, dict | list):
            shown = json.dumps(value, ensure_ascii=False, default=str)
        else:
            shown = str(value)
        if len(shown) > 1500:
            shown = shown[:1500] + "…"
        doc.field(key.replace("_", " ").capitalize(), shown)
    return Rendered(doc, data, f"{subject} {short(subject_id)}")


def plain_reply(text: str) -> Rendered:
    return Rendered(Doc().text(text), {"text": text}, "the workspace")


# ---- transport payloads ----------------------------------------------------------------------


def payload_for(
    channel_type: str,
    rendered: Rendered,
    *,
    event: str,
    occurred_at: datetime,
    thread: str | None,
    chat: str | None = None,
    with_buttons: bool = False,
) -> tuple[dict[str, Any], str]:
    """(what the outbox sends, the row's text ≤ 4,000 chars)."""
    if channel_type == "slack":
        text = cut(rendered.doc.slack(), SLACK_LIMIT, rendered.pointer)
        payload: dict[str, Any] = {"text": text}
        if thread:
            payload["thread_ts"] = thread
    elif channel_type == "telegram":
        text = cut(rendered.doc.plain(), TELEGRAM_LIMIT, rendered.pointer)
        payload = {"text": text}
        if chat:
            payload["chat_id"] = chat
        if thread:
            payload["reply_to"] = thread
        if with_buttons and rendered.buttons:
            payload["buttons"] = [list(b) for b in rendered.buttons]
    else:
        text = rendered.doc.plain()
        payload = {"event": event, "occurred_at": _iso(occurred_at), "data": rendered.data}
    return payload, text[:STORED_TEXT]


__all__ = [
    "Doc",
    "Rendered",
    "cut",
    "escape_slack",
    "inbox_pending",
    "inbox_resolved",
    "payload_for",
    "plain_reply",
    "subject_event",
    "task_event",
]
