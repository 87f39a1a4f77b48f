"""Engine events as log lines for the widgets: one short line each, details on demand.

A log line says what happened in words ("allow by human", "recalled 3 memories"), never as raw
JSON; long text (an assistant's answer, a tool's output) shows its first line, and the whole
text sits behind "details". The final answer is summarised in one line, since the card shows
it rendered below the log.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stagent_lab.notebook.markdown import first_line

TEXT_CAP = 4000  # characters of assistant text / tool output kept per log entry
SUMMARY_CAP = 240
LINE_CAP = 200  # a long line of assistant text shows this much; the rest is in "details"


def _cap(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def epoch_ms(value: Any) -> float | None:
    """Store timestamps are naive UTC; the front end wants epoch milliseconds."""
    if value is None:
        return None
    if isinstance(value, str):  # over the socket, datetimes travel as ISO text
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "to_pydatetime"):
        if str(value) == "NaT":
            return None
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp() * 1000.0
    return None


def _plain(value: Any) -> Any:
    """None for pandas' missing values, numbers as Python numbers, else the value."""
    if value is None:
        return None
    try:
        if value != value:  # NaN / NaT
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def payload_of(event: dict[str, Any]) -> Any:
    """Engine events carry JSON text; rows from ``lab.logs()`` carry the parsed dict."""
    payload = event.get("payload")
    if isinstance(payload, str) and event.get("event") != "assistant_delta":
        try:
            return json.loads(payload)
        except ValueError:
            return {"text": payload}
    return payload


def _compact(value: Any, n: int = SUMMARY_CAP) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = str(value)
    return _cap(text, n)


def _pretty(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except (TypeError, ValueError):
        text = str(value)
    return _cap(text, TEXT_CAP)


def _fields(data: dict[str, Any]) -> str:
    """``key value · key value`` for an event no rule below describes (never raw JSON)."""
    parts = []
    for key, value in data.items():
        if value is None or value == "" or value == [] or value == {}:
            continue
        if isinstance(value, dict | list):
            value = _compact(value, 80)
        parts.append(f"{key.replace('_', ' ')} {value}")
    return _cap(" · ".join(parts), SUMMARY_CAP) or "(no details)"


def _memory_recalled(d: dict[str, Any]) -> tuple[str, str]:
    ids = d.get("memory_ids") or []
    n = d["count"] if isinstance(d.get("count"), int) else len(ids)
    text = f"recalled {n} {'memory' if n == 1 else 'memories'}"
    if d.get("chars"):
        text += f" ({d['chars']:,} characters of instructions)"
    if ids:
        text += ": " + ", ".join(str(i) for i in ids[:5]) + (" …" if len(ids) > 5 else "")
    return text, "info"


def _memory_written(d: dict[str, Any]) -> tuple[str, str]:
    action = d.get("action") or "wrote"
    text = f"{action} memory {d.get('memory_id') or ''}".strip()
    extra = [str(d[k]) for k in ("category",) if d.get(k)]
    if d.get("confidence") is not None:
        extra.append(f"confidence {d['confidence']}")
    if extra:
        text += f" ({', '.join(extra)})"
    if d.get("reason"):
        text += f": {d['reason']}"
    return _cap(text, SUMMARY_CAP), "info"


def _handoff(kind: str) -> Any:
    def describe(d: dict[str, Any]) -> tuple[str, str]:
        subject = f' "{_cap(str(d["subject"]), 80)}"' if d.get("subject") else ""
        if kind == "handoff_sent":
            return f"handed off to {d.get('to_profile')}{subject} ({d.get('status')})", "info"
        if kind == "handoff_received":
            return f"received from {d.get('from_profile')}{subject}", "info"
        if kind == "handoff_decided":
            why = f": {d['reason']}" if d.get("reason") else ""
            return f"handoff {d.get('decision')} → {d.get('status')}{why}", "info"
        if kind == "handoff_result":
            summary = f": {_cap(str(d['summary']), 120)}" if d.get("summary") else ""
            level = "ok" if d.get("status") == "completed" else "error"
            return f"{d.get('to_profile')} {d.get('status')}{summary}", level
        return f"handoff to {d.get('to_profile')} refused: {d.get('message') or ''}", "error"

    return describe


_DESCRIBE = {
    "memory_recalled": _memory_recalled,
    "memory_written": _memory_written,
    "inbox_decided": lambda d: (
        f"{d.get('kind')} {d.get('decision')} by {d.get('decided_by') or 'someone'}",
        "ok" if d.get("decision") in ("allow", "always", "answer") else "warn",
    ),
    **{
        k: _handoff(k)
        for k in (
            "handoff_sent",
            "handoff_received",
            "handoff_decided",
            "handoff_result",
            "handoff_refused",
        )
    },
}


def log_entry(event: dict[str, Any]) -> dict[str, Any] | None:
    """One log line for the front end, or None for events the log does not show."""
    kind = event.get("event") or ""
    if kind in ("assistant_delta", "usage"):
        return None
    data = payload_of(event)
    data = data if isinstance(data, dict) else {"text": str(data)}
    tool = _plain(event.get("tool_name")) or None
    level = "info"
    detail = ""
    if kind == "status":
        text = f"{data.get('from') or 'new'} → {data.get('to')}"
        if data.get("reason"):
            text += f" ({data['reason']})"
        level = {
            "completed": "ok",
            "failed": "error",
            "cancelled": "warn",
            "waiting": "warn",
            "paused": "warn",
        }.get(str(data.get("to")), "info")
    elif kind == "task_started":
        text = f"started on {data.get('runtime')}"
        if data.get("model"):
            text += f" ({data['model']})"
        if data.get("resuming"):
            text += f", resuming (attempt {data.get('attempt')})"
    elif kind == "assistant_text":
        full = str(data.get("text", "")).strip()
        text = first_line(full, LINE_CAP) or "(empty)"
        if "\n" in full or len(full) > LINE_CAP:
            text += " …"
            detail = _cap(full, TEXT_CAP)
    elif kind == "tool_request":
        text = _compact(data.get("input", {}))
        detail = _pretty(data.get("input", {}))
    elif kind == "tool_decision":
        text = f"{data.get('behavior')} by {data.get('tier')}"
        if data.get("rule"):
            text += f" [{data['rule']}]"
        if data.get("message"):
            text += f": {data['message']}"
        level = "ok" if data.get("behavior") == "allow" else "error"
    elif kind == "tool_result":
        output = str(data.get("output") or "")
        lines = output.count("\n") + (0 if output.endswith("\n") or not output else 1)
        first = output.strip().splitlines()[0] if output.strip() else "(no output)"
        text = f"{lines} line(s): {_cap(first, 160)}"
        detail = _cap(output, TEXT_CAP)
        level = "error" if data.get("is_error") else "info"
    elif kind == "inbox":
        what = data.get("question") or f"{data.get('kind')} for {tool}"
        text = f"waiting for you: {_cap(str(what), SUMMARY_CAP)}"
        level = "warn"
    elif kind in ("question", "answer"):
        text = _cap(str(data.get(kind) or ""), TEXT_CAP)
    elif kind in ("notice", "error"):
        text = _cap(str(data.get("message") or ""), TEXT_CAP)
        level = "error" if kind == "error" else "info"
    elif kind == "result":
        summary = first_line(str(data.get("text") or ""), LINE_CAP)
        text = f"result: {summary}" if summary else "result (empty)"
        level = "ok"
    elif kind == "session":
        text = f"session {data.get('session_id')}"
    elif kind in _DESCRIBE:
        text, level = _DESCRIBE[kind](data)
    else:
        text = _fields(data)
    return {
        "seq": _plain(event.get("seq")),
        "ts": epoch_ms(event.get("ts")),
        "task": _plain(event.get("task_id")),
        "profile": _plain(event.get("profile_id")),
        "event": kind,
        "tool": tool,
        "text": text,
        "detail": detail,
        "level": level,
    }


@dataclass
class LogBuffer:
    """The last ``head_max + tail_max`` log entries, split so updates stay small.

    New entries go to ``tail``; when it is full it moves into ``head`` in one step. A flush
    usually re-sends only the short tail, not the whole log; ``dropped`` counts entries that
    fell off the front.
    """

    head_max: int = 400
    tail_max: int = 100
    head: list[dict[str, Any]] = field(default_factory=list)
    tail: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    head_changed: bool = False
    tail_changed: bool = False

    def extend(self, entries: Iterable[dict[str, Any]]) -> None:
        for entry in entries:
            self.tail.append(entry)
            self.tail_changed = True
            if len(self.tail) >= self.tail_max:
                head = self.head + self.tail
                cut = max(0, len(head) - self.head_max)
                self.dropped += cut
                self.head = head[cut:]
                self.tail = []
                self.head_changed = True

    def take_changes(self) -> tuple[bool, bool]:
        changed = (self.head_changed, self.tail_changed)
        self.head_changed = self.tail_changed = False
        return changed

    def entries(self) -> list[dict[str, Any]]:
        return self.head + self.tail
