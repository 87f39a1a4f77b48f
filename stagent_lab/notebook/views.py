"""What the widgets show, computed without any widget library.

Engine events and store rows become small JSON-ready dicts here; the widget classes only copy
them into synced traits. Keeping this pure makes the formatting and the state rules (log caps,
token sums, pending approvals) testable without a kernel or a browser.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from stagent_lab.api.requests import (
    ListInbox,
    ListProfiles,
    ListRuntimes,
    MonitorSnapshot,
    TaskCardSnapshot,
    TaskStatus,
)
from stagent_lab.notebook.log_entries import (  # noqa: F401  (re-exported for the widgets)
    SUMMARY_CAP,
    TEXT_CAP,
    LogBuffer,
    _cap,
    _plain,
    _pretty,
    epoch_ms,
    log_entry,
    payload_of,
)

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

ACTIVE = ("queued", "running", "waiting")
# Events after which the set of pending inbox items may have changed.
INBOX_EVENTS = frozenset({"inbox", "tool_decision", "answer", "status"})
STATUS_LAG_ROUNDS = 20  # hub rounds (~100 ms each) a status event waits for the snapshot


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
    # The status the latest status event announced, until the engine's snapshot agrees (the
    # event goes out a moment before the snapshot moves): (status, rounds left to wait).
    event_status: tuple[str, int] | None = None
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
                if isinstance(data.get("to"), str):
                    self.event_status = (data["to"], STATUS_LAG_ROUNDS)
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


def overlay_live(state: CardState, live: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``live`` (the engine's snapshot) unless it still lags the latest status event.

    Returns the info to show and whether to look again next round. The snapshot moves right
    after the event is published, so a round that reads it in between would otherwise show
    the old status until the next event (a card saying "running" beside its approval).
    """
    pending = state.event_status
    if pending is None or live.get("status") == pending[0]:
        state.event_status = None
        return live, False
    status, rounds = pending
    if rounds <= 0:  # the snapshot never agreed: it is the authority
        state.event_status = None
        return live, False
    state.event_status = (status, rounds - 1)
    return {**live, "status": status}, True


def _header(info: dict[str, Any]) -> dict[str, Any]:
    """A card header from a task row or snapshot (times as epoch ms, texts capped)."""
    row = {k: _plain(v) for k, v in info.items()}
    return {
        "id": row["id"],
        "title": row.get("title"),
        "profile": row.get("profile") or row.get("profile_id"),
        "runtime": row.get("runtime") or row.get("runtime_id"),
        "model": row.get("model"),
        "project": row.get("project"),
        "status": row.get("status"),
        "turns": int(row.get("turns") or 0),
        "max_turns": row.get("max_turns"),
        "cost_usd": float(row.get("cost_usd") or 0.0),
        "max_budget_usd": row.get("max_budget_usd"),
        "result": _cap(row["result"], 20_000) if row.get("result") else None,
        "failure_reason": row.get("failure_reason"),
        "created_ms": epoch_ms(info.get("created_at")),
        "started_ms": epoch_ms(info.get("started_at")),
        "finished_ms": epoch_ms(info.get("finished_at")),
        "resume_count": int(row.get("resume_count") or 0),
        "source": row.get("source"),
    }


def card_snapshot(lab: Lab, task_id: str, rows: int = 500) -> dict[str, Any]:
    """A card's first state from the workspace: header, last events, tokens, pending items."""
    snap = lab.call(TaskCardSnapshot(task_id=task_id, rows=rows))
    return {
        "info": _header(snap["info"]),
        "events": snap["events"],
        "dropped": int(snap["dropped"]),
        "tokens": snap["tokens"],
        "pending": [_item(i) for i in snap["pending"]],
    }


def task_info(lab: Lab, task_id: str) -> dict[str, Any]:
    """The card header: identity, status, timing and totals (the store, overlaid with what the
    engine knows right now)."""
    return card_snapshot(lab, task_id, rows=1)["info"]


def refresh_live(lab: Lab, info: dict[str, Any]) -> dict[str, Any]:
    """Overlay where the task is now (the engine is ahead of the store by up to ~0.25 s)."""
    try:
        view = lab.call(TaskStatus(task_id=info["id"]))
    except KeyError:
        return info
    out = dict(info)
    out.update(
        status=view.status,
        turns=view.turns,
        cost_usd=float(view.cost_usd),
        result=_cap(view.result, 20_000) if view.result else None,
        failure_reason=view.failure_reason,
        resume_count=view.resume_count,
    )
    # times travel with the status: a card that learns "completed" here, before the status
    # event reaches it, must not show a finished task without a finish time
    for key, when in (("started_ms", view.started_at), ("finished_ms", view.finished_at)):
        if when is not None:
            out[key] = epoch_ms(when)
    if view.finished_at is None and view.status not in (
        "completed",
        "failed",
        "cancelled",
        "paused",
    ):
        out["finished_ms"] = None  # running again (a resume): no finish time
    if view.max_turns is not None:
        out["max_turns"] = view.max_turns
    if view.max_budget_usd is not None:
        out["max_budget_usd"] = view.max_budget_usd
    return out


def live_info(lab: Lab, view: Any) -> dict[str, Any]:
    """The card header from a task view alone (no store read); the project name and times
    arrive with the first refresh from the store."""
    info = {
        "id": view.id,
        "title": view.title,
        "profile": view.profile_id,
        "runtime": view.runtime_id,
        "model": view.model,
        "project": None,
        "status": view.status,
        "turns": view.turns,
        "max_turns": view.max_turns,
        "cost_usd": float(view.cost_usd),
        "max_budget_usd": view.max_budget_usd,
        "result": None,
        "failure_reason": view.failure_reason,
        "created_ms": None,
        "started_ms": None,
        "finished_ms": None,
        "resume_count": view.resume_count,
        "source": view.source,
    }
    return info


def _item(row: Any) -> dict[str, Any]:
    data = row.model_dump() if hasattr(row, "model_dump") else dict(row)
    raw = data.get("tool_input")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            pass
    return {
        "id": data["id"],
        "task": data.get("task_id"),
        "title": _plain(data.get("title")),
        "profile": _plain(data.get("profile_id")),
        "kind": data.get("kind"),
        "tool": _plain(data.get("tool_name")),
        "input": _pretty(raw) if raw is not None else "",
        "question": _plain(data.get("question")),
        "body": _plain(data.get("body")),
        "rule": _plain(data.get("suggested_rule")),
        "created_ms": epoch_ms(data.get("created_at")),
    }


def pending_items(lab: Lab, task_id: str | None = None) -> list[dict[str, Any]]:
    """Pending inbox items (of one task, or all), oldest first."""
    return [_item(i) for i in lab.call(ListInbox(status="pending", task_id=task_id))]


def recent_decisions(lab: Lab, limit: int = 15) -> list[dict[str, Any]]:
    """The latest decided or expired items, newest first, with who decided and when."""
    out = []
    for i in lab.call(ListInbox(status="done", limit=limit, newest_first=True)):
        item = _item(i)
        item.update(
            status=i.status,
            decision=i.decision,
            response=i.response,
            decided_by=i.decided_by,
            decided_ms=epoch_ms(i.decided_at),
        )
        out.append(item)
    return out


# ---- monitor ------------------------------------------------------------------------------


def _local_midnight_utc() -> datetime:
    """Start of the operator's local day, as the naive UTC the store uses."""
    local = datetime.combine(date.today(), time.min).astimezone()
    return local.astimezone(UTC).replace(tzinfo=None)


def monitor_snapshot(lab: Lab, recent: int = 200) -> dict[str, Any]:
    """Headline numbers, active agents and recent events for the monitor."""
    snap = lab.call(MonitorSnapshot(recent=recent, since_local_midnight=_local_midnight_utc()))
    agents = []
    for r in snap["active"]:
        agents.append(
            {
                "id": r["id"],
                "title": r["title"],
                "profile": r["profile"],
                "runtime": r["runtime"],
                "status": r["status"],
                "turns": int(r["turns"] or 0),
                "max_turns": r.get("max_turns"),
                "cost_usd": float(r["cost_usd"] or 0.0),
                "max_budget_usd": r.get("max_budget_usd"),
                "started_ms": epoch_ms(r["started_at"]) or epoch_ms(r["created_at"]),
            }
        )
    entries = (log_entry(r) for r in snap["recent"])
    titles = {r["task_id"]: r["title"] for r in snap["recent"] if r.get("title")}
    return {
        "stats": snap["stats"],
        "agents": agents,
        "recent": [e for e in entries if e is not None],
        "titles": titles,
        "sections": _sections(snap.get("sections") or {}),
    }


def _sections(sections: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Feature panels as JSON-ready rows (datetimes as ISO text, numbers as numbers)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, rows in sections.items():
        clean = []
        for row in rows if isinstance(rows, list) else []:
            if not isinstance(row, dict):
                row = {"value": row}
            clean.append({str(k): _json_ready(v) for k, v in row.items()})
        out[str(name)] = clean
    return out


def _json_ready(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    return str(value)


def monitor_stats(lab: Lab) -> dict[str, Any]:
    """Headline numbers: active agents, success rate, tasks and cost today, pending approvals."""
    return monitor_snapshot(lab, recent=0)["stats"]


def active_agents(lab: Lab) -> list[dict[str, Any]]:
    return monitor_snapshot(lab, recent=0)["agents"]


def recent_log(lab: Lab, limit: int = 200) -> list[dict[str, Any]]:
    """The latest logged events across tasks, oldest first (the monitor's starting view)."""
    return monitor_snapshot(lab, recent=limit)["recent"]


# ---- profiles -----------------------------------------------------------------------------


def profile_cards(lab: Lab) -> list[dict[str, Any]]:
    """Identity, runtime coverage, tools and policy of every loaded profile."""
    usable = {r.runtime: (bool(r.usable), str(r.reason or "")) for r in lab.call(ListRuntimes())}
    cards = []
    for p in sorted(lab.call(ListProfiles()), key=lambda p: p.id):
        runtimes = [
            *p.supported_runtimes,
            *([] if "scripted" in p.supported_runtimes else ["scripted"]),
        ]
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
                "auto_approve": list(p.auto_approve),
                "auto_deny": list(p.auto_deny),
                "max_turns": p.max_turns,
                "output_format": p.output_format,
                "tests": p.tests,
            }
        )
    return cards
