"""A heartbeat's checklist and the verdict its evaluation returns.

The checklist is validated at creation (1-50 items, unique ids). The verdict is read from the
evaluation task's result, in order: the whole result as JSON; a fenced ``json`` block; the first
balanced ``{…}`` that holds ``"action_needed"``. Unknown item ids are dropped, checklist items the
verdict leaves out count as ``skipped``, summaries are cut to 1,000 characters, and when
``action_needed`` contradicts the items, the items win. Nothing readable is an invalid verdict:
the firing fails (never "action needed by default").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stagent_lab.errors import ScheduleError

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PRIORITIES = ("high", "medium", "low")
STATUSES = ("ok", "action_needed", "skipped")
MAX_ITEMS = 50
MAX_TEXT = 2000
MAX_SUMMARY = 1000

VERDICT_SCHEMA = (
    '{"action_needed": true | false, "summary": "<one or two sentences>", "items": '
    '[{"id": "<checklist item id>", "status": "ok" | "action_needed" | "skipped", '
    '"summary": "<what you found>", "action": "<what should be done (only when action is '
    'needed)>"}]}'
)


# ---- the checklist -------------------------------------------------------------------------


def load_checklist(value: Any) -> list[dict[str, str]]:
    """``[{id, text, priority}]`` from a list (dicts or plain strings), YAML text, or a YAML
    file path. Every problem is reported at once, by item."""
    source = "checklist"
    if isinstance(value, Path) or (
        isinstance(value, str) and value.strip().endswith((".yaml", ".yml")) and "\n" not in value
    ):
        path = Path(value).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise ScheduleError(f"checklist file {path}: {exc.strerror or exc}") from None
        source = str(path)
        value = _yaml(text, source)
    elif isinstance(value, str):
        value = _yaml(value, source)
    if isinstance(value, dict) and set(value) == {"items"}:
        value = value["items"]
    if not isinstance(value, list | tuple):
        raise ScheduleError(f"{source}: a checklist is a list of items, got {type(value).__name__}")
    if not value:
        raise ScheduleError(f"{source}: the checklist is empty; give 1 to {MAX_ITEMS} items")
    if len(value) > MAX_ITEMS:
        raise ScheduleError(f"{source}: {len(value)} items, at most {MAX_ITEMS}")
    items: list[dict[str, str]] = []
    problems: list[str] = []
    seen: set[str] = set()
    for n, raw in enumerate(value, 1):
        where = f"{source}[{n - 1}]"
        if isinstance(raw, str):
            raw = {"id": f"item-{n}", "text": raw}
        if not isinstance(raw, dict):
            problems.append(f"{where}: an item is a string or {{id, text, priority}}")
            continue
        unknown = set(raw) - {"id", "text", "priority"}
        if unknown:
            problems.append(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        item_id = raw.get("id", f"item-{n}")
        text = raw.get("text")
        priority = raw.get("priority", "medium")
        if not isinstance(item_id, str) or not ID_RE.match(item_id):
            problems.append(f"{where}.id: {item_id!r} is not an id (letters, digits, - _ .)")
        elif item_id in seen:
            problems.append(f"{where}.id: {item_id!r} is used twice")
        seen.add(str(item_id))
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}.text: required, a non-empty string")
        elif len(text) > MAX_TEXT:
            problems.append(f"{where}.text: {len(text)} characters, at most {MAX_TEXT}")
        if priority not in PRIORITIES:
            problems.append(f"{where}.priority: {priority!r} is not one of {', '.join(PRIORITIES)}")
        items.append({"id": str(item_id), "text": str(text or "").strip(), "priority": priority})
    if problems:
        raise ScheduleError("invalid checklist: " + "; ".join(problems))
    return items


def _yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ScheduleError(f"{source}{line}: not valid YAML ({problem})") from None


# ---- the verdict ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    action_needed: bool
    summary: str
    items: tuple[dict[str, str], ...]
    corrected: bool  # the verdict's own action_needed disagreed with its items

    @property
    def action_items(self) -> list[dict[str, str]]:
        return [i for i in self.items if i["status"] == "action_needed"]

    def as_json(self) -> dict[str, Any]:
        return {
            "action_needed": self.action_needed,
            "summary": self.summary,
            "items": [dict(i) for i in self.items],
        }


def extract_json(text: str) -> dict[str, Any] | None:
    """The verdict object in ``text``, by the three rules in order, or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    whole = _loads(text.strip())
    if isinstance(whole, dict):
        return whole
    for block in re.findall(r"```(?:json|JSON)[ \t]*\n(.*?)```", text, re.S):
        found = _loads(block.strip())
        if isinstance(found, dict):
            return found
    for start in (m.start() for m in re.finditer(r"\{", text)):
        end = _balanced_end(text, start)
        if end is None:
            continue
        chunk = text[start : end + 1]
        if '"action_needed"' not in chunk:
            continue
        found = _loads(chunk)
        if isinstance(found, dict) and "action_needed" in found:
            return found
    return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _balanced_end(text: str, start: int) -> int | None:
    depth, in_str, escape = 0, False, False
    for i in range(start, min(len(text), start + 200_000)):
        c = text[i]
        if in_str:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def read_verdict(result: str | None, checklist: list[dict[str, str]]) -> Verdict | None:
    """The validated verdict in an evaluation's result, or None when there is none."""
    data = extract_json(result or "")
    if data is None or not isinstance(data.get("action_needed"), bool):
        return None
    raw_items = data.get("items", [])
    if not isinstance(raw_items, list):
        return None
    summary = data.get("summary", "")
    summary = summary if isinstance(summary, str) else ""
    known = {c["id"]: c for c in checklist}
    by_id: dict[str, dict[str, str]] = {}
    for raw in raw_items:
        if not isinstance(raw, dict):
            continue
        item_id, status = raw.get("id"), raw.get("status")
        if item_id not in known or status not in STATUSES or item_id in by_id:
            continue
        entry = {"id": item_id, "status": status, "summary": _cut(raw.get("summary"))}
        if isinstance(raw.get("action"), str) and raw["action"].strip():
            entry["action"] = _cut(raw["action"])
        by_id[item_id] = entry
    items = tuple(
        by_id.get(c["id"], {"id": c["id"], "status": "skipped", "summary": ""}) for c in checklist
    )
    needed = any(i["status"] == "action_needed" for i in items)
    return Verdict(needed, _cut(summary), items, needed != data["action_needed"])


def _cut(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 1] + "…"


__all__ = [
    "PRIORITIES",
    "VERDICT_SCHEMA",
    "Verdict",
    "extract_json",
    "load_checklist",
    "read_verdict",
]
