"""Reading an inbound message: which decision it carries, which item it names, what is left.

A leading bot mention is stripped, the text is trimmed, and words match without regard to case.
The first word decides:

=================================== ===========================================
first word                          reading
=================================== ===========================================
allow, approve, yes, y, ok          decision ``allow``
always, always allow                decision ``always``
deny, reject, no, n                 decision ``deny`` (the rest: the agent's message)
answer <text>                       decision ``answer`` (the rest: the answer)
help                                ``help``
anything else                       ``text`` (an answer in a question's thread, a task, …)
=================================== ===========================================

An item code (``#`` and 6 or more hex digits) anywhere in the text names the item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALLOW = frozenset({"allow", "approve", "yes", "y", "ok"})
DENY = frozenset({"deny", "reject", "no", "n"})
CODE = re.compile(r"(?<![\w#])#([0-9a-fA-F]{6,32})\b")
SLACK_MENTION = re.compile(r"^\s*<@([A-Z0-9]+)(?:\|[^>]*)?>[\s:,]*")
FIRST_WORD = re.compile(r"^([A-Za-z]+)[\s,.:;!?-]*(.*)$", re.S)
BUTTONS = {"a": "allow", "w": "always", "d": "deny"}


@dataclass(frozen=True)
class Reading:
    kind: str  # "decision" | "help" | "text"
    text: str  # the cleaned text (mention stripped, trimmed)
    decision: str | None = None
    message: str | None = None  # deny message or answer text
    code: str | None = None  # the item code named in the text (lower case, no '#')


def strip_mention(text: str, bot_user: str | None = None, bot_name: str | None = None) -> str:
    """The text without a leading mention of the bot (Slack ``<@U…>``, Telegram ``@name``)."""
    out = text.strip()
    match = SLACK_MENTION.match(out)
    if match and (bot_user is None or match.group(1) == bot_user):
        out = out[match.end() :]
    if bot_name:
        prefix = "@" + bot_name.lower()
        if out.lower().startswith(prefix):
            out = out[len(prefix) :].lstrip(" :,")
    return out.strip()


def mentions(text: str, bot_user: str | None, bot_name: str | None = None) -> bool:
    if bot_user and re.search(rf"<@{re.escape(bot_user)}(?:\|[^>]*)?>", text):
        return True
    return bool(bot_name and f"@{bot_name.lower()}" in text.lower())


def read(text: str, bot_user: str | None = None, bot_name: str | None = None) -> Reading:
    clean = strip_mention(text, bot_user, bot_name)
    code_match = CODE.search(clean)
    code = code_match.group(1).lower() if code_match else None
    body = CODE.sub(" ", clean).strip() if code else clean
    body = " ".join(body.split(" ")).strip()
    match = FIRST_WORD.match(body)
    if not match:
        return Reading("text", clean, code=code)
    word, rest = match.group(1).lower(), match.group(2).strip()
    if word == "always":
        if rest.lower().startswith("allow"):
            rest = rest[5:].strip()
        return Reading("decision", clean, "always", rest or None, code)
    if word in ALLOW:
        return Reading("decision", clean, "allow", rest or None, code)
    if word in DENY:
        return Reading("decision", clean, "deny", rest or None, code)
    if word == "answer":
        return Reading("decision", clean, "answer", rest or None, code)
    if word == "help" and not rest:
        return Reading("help", clean, code=code)
    return Reading("text", clean, code=code)


def trigger_text(text: str, trigger: str, mentioned: bool) -> str | None:
    """The task prompt when ``text`` matches the channel's ``task_trigger``, else None."""
    mode = trigger.strip()
    if mode.lower() == "mention":
        return text if mentioned else None
    if mode.lower() == "any":
        return text
    if text.lower().startswith(mode.lower()):
        return text[len(mode) :].strip() or None
    return None


def button(data: str) -> tuple[str, str] | None:
    """(item code, decision) from Telegram ``callback_data`` ``d:<code>:<a|w|d>``."""
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != "d" or parts[2] not in BUTTONS:
        return None
    if not re.fullmatch(r"[0-9a-f]{6,32}", parts[1]):
        return None
    return parts[1], BUTTONS[parts[2]]


HELP = (
    "Reply in an item's thread (or anywhere with its #code): allow · deny <message for the "
    "agent> · always (when this channel allows it) · answer <text> for questions. A new "
    "top-level message {trigger} starts a task."
)


def help_text(trigger: str) -> str:
    mode = trigger.strip().lower()
    if mode == "mention":
        how = "that mentions the bot"
    elif mode == "any":
        how = "(any text)"
    else:
        how = f"starting with {trigger.strip()!r}"
    return HELP.format(trigger=how)


__all__ = ["Reading", "button", "help_text", "mentions", "read", "strip_mention", "trigger_text"]
