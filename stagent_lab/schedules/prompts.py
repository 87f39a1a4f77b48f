"""What a firing's task is told: the schedule's prompt plus a context block, a heartbeat's
evaluation (checklist and the exact verdict schema), and its action task (the items to act on).

Every part sits under a plain label so the agent can tell its inputs from its task. Texts that
came from earlier runs (a previous result, a verdict's summaries) are quoted line by line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from stagent_lab.schedules.verdict import VERDICT_SCHEMA

PREVIOUS_CHARS = 500


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def _limits(max_turns: int | None, budget: float | None) -> str:
    turns = f"{max_turns} turns" if max_turns else "no turn limit"
    cost = f"${budget:.2f}" if budget else "no budget cap"
    return f"{turns}, {cost}"


def firing_prompt(
    prompt: str,
    *,
    name: str,
    number: int,
    scheduled_local: str,
    missed_count: int,
    max_turns: int | None,
    budget: float | None,
    previous: dict[str, Any] | None,
    include_previous: bool,
) -> str:
    lines = [
        prompt.rstrip(),
        "",
        "## About this scheduled run",
        f"- Schedule: {name}",
        f"- Firing: #{number}, scheduled for {scheduled_local}",
    ]
    if missed_count:
        lines.append(
            f"- This run stands in for {missed_count} scheduled time(s) that passed while the "
            "workspace was not running"
        )
    lines.append(f"- Your limits for this run: {_limits(max_turns, budget)}")
    if include_previous:
        if previous is None:
            lines.append("- Previous firing: none (this is the first)")
        else:
            lines.append(f"- Previous firing (#{previous['number']}): {previous['status']}")
            excerpt = (previous.get("excerpt") or "").strip()
            if excerpt:
                lines.append(f"  Its outcome (first {PREVIOUS_CHARS} characters):")
                lines.append(_quote(excerpt[:PREVIOUS_CHARS]))
    return "\n".join(lines)


def evaluation_prompt(
    *,
    name: str,
    now_local: str,
    checklist: list[dict[str, str]],
    last_action_local: str | None,
    last_action_items: list[str] | None,
    max_turns: int | None,
    budget: float | None,
) -> str:
    lines = [
        f"## Heartbeat check: {name}",
        f"Current time: {now_local}",
        "",
        "Check each item below and report whether it needs action. Look, do not fix: a "
        "separate task acts on what you report.",
        "",
        "## Checklist",
    ]
    for item in checklist:
        lines.append(f"- id: {item['id']} (priority {item['priority']}): {item['text']}")
    lines += ["", "## Last action taken"]
    if last_action_local:
        covered = ", ".join(last_action_items or []) or "no items recorded"
        lines.append(f"{last_action_local}, for items: {covered}")
    else:
        lines.append("none yet")
    lines += [
        "",
        f"## Your limits: {_limits(max_turns, budget)}",
        "",
        "## How to answer",
        "Reply with exactly one JSON object and nothing else, in this shape:",
        VERDICT_SCHEMA,
        "Give one entry per checklist item, by its id. Use status 'action_needed' only when "
        "something must be done, and say what in 'action'. Set action_needed to true when any "
        "item needs action.",
    ]
    return "\n".join(lines)


def action_prompt(
    *,
    name: str,
    number: int,
    items: list[dict[str, str]],
    checklist: list[dict[str, str]],
    summary: str,
    extra: str | None,
) -> str:
    by_id = {c["id"]: c for c in checklist}
    lines = [
        f"## Heartbeat action: {name} (check #{number})",
        "The last check found items that need action. Act on each of them.",
    ]
    if summary.strip():
        lines += ["", "## What the check said", _quote(summary.strip())]
    lines += ["", "## Items to act on"]
    for item in items:
        source = by_id.get(item["id"], {})
        lines.append(f"- id: {item['id']} (priority {source.get('priority', 'medium')})")
        lines.append(f"  Checklist: {source.get('text', '')}")
        if item.get("summary"):
            lines.append(f"  Found: {item['summary']}")
        if item.get("action"):
            lines.append(f"  Suggested action: {item['action']}")
    if extra and extra.strip():
        lines += ["", "## Instructions for actions", extra.strip()]
    return "\n".join(lines)


def local_stamp(instant: datetime, tz: Any) -> str:
    from datetime import UTC

    aware = instant.replace(tzinfo=UTC).astimezone(tz)
    return f"{aware:%Y-%m-%d %H:%M} {aware.tzname()} ({tz})"


__all__ = ["action_prompt", "evaluation_prompt", "firing_prompt", "local_stamp"]
