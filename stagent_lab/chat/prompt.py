"""The prompt of a chat turn: the recent conversation, the attached context, the new message.

Every turn is a fresh task, so the agent sees the conversation through its prompt (any runtime
can do that; not every runtime can continue a session). The history is bounded: the newest
turns that fit ``HISTORY_CHARS``, each reply cut at ``REPLY_CHARS``, with a line saying how
many earlier turns were left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

HISTORY_TURNS = 20
HISTORY_CHARS = 16_000
REPLY_CHARS = 3_000
PREAMBLE = (
    "You are chatting with an operator inside a Jupyter notebook. Answer the operator's latest "
    "message; the conversation so far and any attached context are there to help. Keep the "
    "answer focused and use Markdown."
)
_LABEL = {"file": "file", "task": "task", "df": "DataFrame", "text": "text"}


def _cut(text: str, n: int) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def _reply(turn: dict[str, Any]) -> str:
    status = turn.get("status")
    if turn.get("result"):
        return _cut(str(turn["result"]), REPLY_CHARS)
    if status in ("failed", "cancelled", "paused"):
        reason = turn.get("failure_reason") or status
        return f"(no answer: the turn {status}: {reason})"
    return "(no answer yet)"


def history_lines(turns: Sequence[dict[str, Any]]) -> list[str]:
    """The conversation so far, newest turns kept, oldest dropped first."""
    picked: list[str] = []
    used = 0
    shown = 0
    for turn in reversed(list(turns)[-HISTORY_TURNS:]):
        block = f"Operator: {_cut(str(turn['content']), REPLY_CHARS)}\nYou: {_reply(turn)}"
        if used + len(block) > HISTORY_CHARS and picked:
            break
        picked.append(block)
        used += len(block)
        shown += 1
    picked.reverse()
    left_out = len(turns) - shown
    if left_out > 0:
        word = "turn" if left_out == 1 else "turns"
        picked.insert(0, f"({left_out} earlier {word} left out)")
    return picked


def context_block(block: dict[str, Any]) -> str:
    label = _LABEL.get(str(block.get("kind")), str(block.get("kind")))
    note = f" ({block['note']})" if block.get("note") else ""
    fence = "```"
    body = str(block.get("text") or "")
    while fence in body:
        fence += "`"
    return f"### {label} {block.get('ref')}{note}\n{fence}\n{body}\n{fence}"


def compose(
    message: str, turns: Sequence[dict[str, Any]], context: Sequence[dict[str, Any]]
) -> str:
    """The task prompt of a turn."""
    parts = [PREAMBLE]
    history = history_lines(turns)
    if history:
        parts.append("## The conversation so far\n\n" + "\n\n".join(history))
    if context:
        parts.append(
            "## Context the operator attached\n\n" + "\n\n".join(context_block(b) for b in context)
        )
    parts.append("## The operator's message\n\n" + message.strip())
    return "\n\n".join(parts)


def title_of(message: str) -> str:
    first = next((line.strip() for line in message.splitlines() if line.strip()), "message")
    return "chat: " + (first if len(first) <= 70 else first[:69] + "…")


__all__ = ["compose", "context_block", "history_lines", "title_of"]
