"""What the widgets show, computed without any widget library.

Engine events and store rows become small JSON-ready dicts here; the widget classes only copy
them into synced traits. Keeping this pure makes the formatting and the state rules (log caps,
token sums, pending approvals) testable without a kernel or a browser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stagent_lab.lab import Lab

TEXT_CAP = 4000  # characters of assistant text / tool output kept per log entry
SUMMARY_CAP = 240
ACTIVE = ("queued", "running", "waiting")
# Events after which the set of pending inbox items may have changed.
INBOX_EVENTS = frozenset({"inbox", "tool_decision", "answer", "status"})


def _cap(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def epoch_ms(value: Any) -> float | None:
    """Store timestamps are naive UTC; the front end wants epoch milliseconds."""
    if value is None:
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
        full = str(data.get("text", ""))
        text = _cap(full, TEXT_CAP)
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
        text = "final result"
        detail = _cap(str(data.get("text") or ""), TEXT_CAP)
        level = "ok"
    elif kind == "session":
        text = f"session {data.get('session_id')}"
    else:
        text = _compact(data)
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


# ---- task card ----------------------------------------------------------------------------


@dataclass
class CardState:
    """Everything a task card shows, folded from a snapshot plus the live event stream."""

    task_id: str
    info: dict[str, Any] = field(default_factory=dict)
    log: LogBuffer = field(default_factory=LogBuffer)
    tokens: dict[str, int] = field(default_factory=lambda: {"input": 0, "output": 0})
    streaming: str = ""
    last_seq: int = 0
    last_request: dict[str, Any] = field(default_factory=dict)

    def apply(self, events: Iterable[dict[str, Any]]) -> set[str]:
        """Fold events in; return which parts changed: log, tokens, streaming, info, inbox."""
        changed: set[str] = set()
        entries = []
        for ev in events:
            kind = ev.get("event")
            if kind == "assistant_delta":
                text = ev.get("payload")
                if isinstance(text, str) and text:
                    self.streaming = (self.streaming + text)[-TEXT_CAP:]
                    changed.add("streaming")
                continue
            seq = _plain(ev.get("seq"))
            if isinstance(seq, int):
                if seq <= self.last_seq:
                    continue  # already in the snapshot
                self.last_seq = seq
            data = payload_of(ev)
            data = data if isinstance(data, dict) else {}
            if kind == "assistant_text" and self.streaming:
                self.streaming = ""
                changed.add("streaming")
            if kind == "usage":
                self.tokens = {
                    "input": self.tokens["input"] + int(data.get("input_tokens") or 0),
                    "output": self.tokens["output"] + int(data.get("output_tokens") or 0),
                }
                if isinstance(data.get("total_cost_usd"), int | float):
                    self.info["cost_usd"] = float(data["total_cost_usd"])
                    changed.add("info")
                changed.add("tokens")
            elif kind == "status":
                self._status(data, epoch_ms(ev.get("ts")))
                changed.add("info")
            if kind in INBOX_EVENTS:
                changed.add("inbox")
            entry = log_entry(ev)
            if entry is not None:
                entries.append(entry)
        if entries:
            self.log.extend(entries)
            changed.add("log")
        return changed

    def _status(self, data: dict[str, Any], ts: float | None) -> None:
        new = data.get("to")
        self.info["status"] = new
        if new == "running" and not self.info.get("started_ms"):
            self.info["started_ms"] = ts
        if new == "queued" and data.get("from"):  # a resume starts a new attempt
            self.info["finished_ms"] = None
            self.info["failure_reason"] = None
        if new in ("completed", "failed", "cancelled", "paused"):
            self.info["finished_ms"] = ts
            if new in ("failed", "paused") and data.get("reason"):
                self.info["failure_reason"] = data["reason"]


def task_info(lab: Lab, task_id: str) -> dict[str, Any]:
    """The card header: identity, status, timing and totals for a task (store + live state)."""
    rows = lab.store.query_df(
        "SELECT t.id, t.title, t.profile_id, t.runtime_id, t.model, t.status, t.turns, "
        "t.cost_usd, t.result, t.failure_reason, t.created_at, t.started_at, t.finished_at, "
        "t.resume_count, t.source, p.name AS project FROM tasks t "
        "LEFT JOIN projects p ON p.id = t.project_id WHERE t.id = ?",
        [task_id],
    )
    if rows.empty:
        raise KeyError(f"no task with id {task_id!r}")
    row = {k: _plain(v) for k, v in rows.iloc[0].to_dict().items()}
    info = {
        "id": task_id,
        "title": row["title"],
        "profile": row["profile_id"],
        "runtime": row["runtime_id"],
        "model": row["model"],
        "project": row["project"],
        "status": row["status"],
        "turns": int(row["turns"] or 0),
        "cost_usd": float(row["cost_usd"] or 0.0),
        "result": _cap(row["result"], 20_000) if row["result"] else None,
        "failure_reason": row["failure_reason"],
        "created_ms": epoch_ms(rows.iloc[0]["created_at"]),
        "started_ms": epoch_ms(rows.iloc[0]["started_at"]),
        "finished_ms": epoch_ms(rows.iloc[0]["finished_at"]),
        "resume_count": int(row["resume_count"] or 0),
        "source": row["source"],
    }
    return refresh_live(lab, info)


def refresh_live(lab: Lab, info: dict[str, Any]) -> dict[str, Any]:
    """Overlay what the engine knows right now (it is ahead of the store by up to ~100 ms).

    Text goes through the engine's redactor, as it does on its way into the store.
    """
    st = lab.engine.tasks.get(info["id"])
    if st is None:
        return info
    out = dict(info)
    out.update(
        status=str(st.status),
        turns=st.turns,
        cost_usd=float(st.cost_usd),
        result=_cap(lab.engine.redact(st.result), 20_000) if st.result else None,
        failure_reason=st.failure_reason,
        resume_count=st.resume_count,
    )
    return out


def live_info(lab: Lab, task_id: str) -> dict[str, Any] | None:
    """The card header from the engine's memory alone (no store read), or None if the task
    is not running in this process. Times come from the task's events; the project name
    arrives with the first refresh from the store."""
    st = lab.engine.tasks.get(task_id)
    if st is None:
        return None
    info = {
        "id": task_id,
        "title": lab.engine.redact(st.title),
        "profile": st.profile_id,
        "runtime": st.runtime_id,
        "model": st.model,
        "project": None,
        "created_ms": None,
        "started_ms": None,
        "finished_ms": None,
        "source": st.source,
    }
    return refresh_live(lab, info)


def token_totals(lab: Lab, task_id: str) -> dict[str, int]:
    rows = lab.store.query_rows(
        "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
        "FROM usage_ledger WHERE task_id = ?",
        [task_id],
    )
    return {"input": int(rows[0][0]), "output": int(rows[0][1])}


def _item(row: dict[str, Any]) -> dict[str, Any]:
    raw = row.get("tool_input")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            pass
    return {
        "id": row["id"],
        "task": row.get("task_id"),
        "title": _plain(row.get("title")),
        "profile": _plain(row.get("profile_id")),
        "kind": row.get("kind"),
        "tool": _plain(row.get("tool_name")),
        "input": _pretty(raw) if raw is not None else "",
        "question": _plain(row.get("question")),
        "rule": _plain(row.get("suggested_rule")),
        "created_ms": epoch_ms(row.get("created_at")),
    }


_ITEM_SQL = (
    "SELECT i.id, i.task_id, t.title, t.profile_id, i.kind, i.tool_name, i.tool_input, "
    "i.question, i.suggested_rule, i.status, i.decision, i.response, i.decided_by, "
    "i.created_at, i.decided_at FROM inbox_items i LEFT JOIN tasks t ON t.id = i.task_id "
)


def pending_items(lab: Lab, task_id: str | None = None) -> list[dict[str, Any]]:
    """Pending inbox items (of one task, or all), oldest first."""
    where, params = "WHERE i.status = 'pending'", []
    if task_id is not None:
        where += " AND i.task_id = ?"
        params.append(task_id)
    df = lab.store.query_df(_ITEM_SQL + where + " ORDER BY i.created_at", params)
    return [_item(r) for r in df.to_dict("records")]


def recent_decisions(lab: Lab, limit: int = 15) -> list[dict[str, Any]]:
    """The latest decided or expired items, newest first, with who decided and when."""
    df = lab.store.query_df(
        _ITEM_SQL + "WHERE i.status <> 'pending' ORDER BY coalesce(i.decided_at, i.created_at) "
        "DESC LIMIT ?",
        [limit],
    )
    out = []
    for r in df.to_dict("records"):
        item = _item(r)
        item.update(
            status=r["status"],
            decision=_plain(r.get("decision")),
            response=_plain(r.get("response")),
            decided_by=_plain(r.get("decided_by")),
            decided_ms=epoch_ms(r.get("decided_at")),
        )
        out.append(item)
    return out


# ---- monitor ------------------------------------------------------------------------------


def _local_midnight_utc() -> datetime:
    """Start of the operator's local day, as the naive UTC the store uses."""
    local = datetime.combine(date.today(), time.min).astimezone()
    return local.astimezone(UTC).replace(tzinfo=None)


def monitor_stats(lab: Lab) -> dict[str, Any]:
    """Headline numbers: active agents, success rate, tasks and cost today, pending approvals."""
    since = _local_midnight_utc()
    counts = dict(lab.store.query_rows("SELECT status, count(*) FROM tasks GROUP BY status"))
    today = lab.store.query_rows(
        "SELECT count(*), count(*) FILTER (WHERE status = 'completed'), "
        "count(*) FILTER (WHERE status = 'failed') FROM tasks WHERE created_at >= ?",
        [since],
    )[0]
    cost_today = lab.store.query_rows(
        "SELECT coalesce(sum(cost_usd), 0) FROM usage_ledger WHERE started_at >= ?", [since]
    )[0][0]
    pending = lab.store.query_rows("SELECT count(*) FROM inbox_items WHERE status = 'pending'")
    completed, failed = counts.get("completed", 0), counts.get("failed", 0)
    finished = completed + failed
    return {
        "active": sum(counts.get(s, 0) for s in ACTIVE),
        "running": counts.get("running", 0),
        "waiting": counts.get("waiting", 0),
        "queued": counts.get("queued", 0),
        "completed": completed,
        "failed": failed,
        "success_rate": (completed / finished) if finished else None,
        "tasks_today": int(today[0]),
        "completed_today": int(today[1]),
        "failed_today": int(today[2]),
        "cost_today": float(cost_today or 0.0),
        "pending_inbox": int(pending[0][0]),
    }


def active_agents(lab: Lab) -> list[dict[str, Any]]:
    df = lab.store.query_df(
        "SELECT id, title, profile_id, runtime_id, status, turns, cost_usd, started_at, "
        "created_at FROM tasks WHERE status IN ('queued', 'running', 'waiting') "
        "ORDER BY created_at"
    )
    out = []
    for r in df.to_dict("records"):
        info = refresh_live(
            lab,
            {
                "id": r["id"],
                "status": r["status"],
                "turns": r["turns"],
                "cost_usd": r["cost_usd"],
                "result": None,
                "failure_reason": None,
                "resume_count": 0,
            },
        )
        out.append(
            {
                "id": r["id"],
                "title": r["title"],
                "profile": r["profile_id"],
                "runtime": r["runtime_id"],
                "status": info["status"],
                "turns": int(info["turns"] or 0),
                "cost_usd": float(info["cost_usd"] or 0.0),
                "started_ms": epoch_ms(r["started_at"]) or epoch_ms(r["created_at"]),
            }
        )
    return out


def recent_log(lab: Lab, limit: int = 200) -> list[dict[str, Any]]:
    """The latest logged events across tasks, oldest first (the monitor's starting view)."""
    df = lab.store.query_df(
        "SELECT * FROM (SELECT l.id, l.task_id, l.seq, l.ts, l.event, l.tool_name, l.payload, "
        "t.profile_id FROM agent_logs l LEFT JOIN tasks t ON t.id = l.task_id "
        "ORDER BY l.id DESC LIMIT ?) ORDER BY id",
        [limit],
    )
    entries = (log_entry(r) for r in df.to_dict("records"))
    return [e for e in entries if e is not None]


# ---- profiles -----------------------------------------------------------------------------


def profile_cards(lab: Lab) -> list[dict[str, Any]]:
    """Identity, runtime coverage, tools and policy of every loaded profile."""
    usable: dict[str, tuple[bool, str]] = {}
    for rid in lab.catalog.ids():
        avail = lab.catalog.availability(rid)
        usable[rid] = (bool(avail.usable), str(avail.reason or ""))
    cards = []
    for p in sorted(lab.profiles.all(), key=lambda p: p.id):
        runtimes = [
            *p.supported_runtimes,
            *([] if "scripted" in p.supported_runtimes else ["scripted"]),
        ]
        policy = p.can_use_tool_policy
        cards.append(
            {
                "id": p.id,
                "name": p.name,
                "description": p.description,
                "domain": p.domain,
                "version": p.version,
                "author": p.author,
                "origin": p.origin,
                "tags": list(p.tags),
                "preferred": p.preferred_runtime,
                "runtimes": [
                    {
                        "id": r,
                        "usable": usable.get(r, (False, ""))[0],
                        "reason": usable.get(r, (False, "unknown runtime"))[1],
                    }
                    for r in runtimes
                ],
                "tools": list(p.allowed_tools),
                "auto_approve": list(policy.auto_approve),
                "auto_deny": list(policy.auto_deny),
                "max_turns": p.max_turns,
                "output_format": p.output_format,
                "tests": len(p.tests),
            }
        )
    return cards
