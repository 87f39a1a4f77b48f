"""Slash commands of the chat (client side): ``/task``, ``/profile``, ``/runtime``, ``/cost``,
``/inbox``, ``/help``. Each answers with a short Markdown note shown in the conversation."""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stagent_lab.notebook import fmt

if TYPE_CHECKING:
    from stagent_lab.api.chat import ChatSessionView
    from stagent_lab.client.lab import Lab

COMMANDS = ("task", "profile", "runtime", "cost", "inbox", "help")
HELP = """\
**Chat commands**

- `/task PROMPT`: start a background task from here (it runs on its own; its approvals show here)
- `/profile [ID]`: show or change the agent of the next turns
- `/runtime [ID | auto]`: show or change the runtime (`auto`: the profile's preferred, then the \
workspace default, then the first usable one)
- `/cost`: tokens and cost per turn, and the total
- `/inbox`: approvals waiting for you in this chat (and how many elsewhere)
- `/help`: this list

**Mentions** attach context to a message: `@file:path` (a text file, next to the notebook or in \
the project), `@task:ID` (a task's title, status and result), `@df:name` (a DataFrame's schema \
and first rows). Enter sends, Shift+Enter starts a new line."""


class CommandError(ValueError):
    """A slash command that does not parse or cannot run (the message says why)."""


@dataclass(frozen=True)
class CommandResult:
    note: str  # Markdown shown in the conversation
    task_id: str | None = None  # a task it started
    session: ChatSessionView | None = None  # the session after a change


def is_command(text: str) -> bool:
    return text.lstrip().startswith("/") and not text.lstrip().startswith("//")


def run(lab: Lab, session: ChatSessionView, text: str, *, script: Any = None) -> CommandResult:
    """Run the slash command ``text`` in ``session``."""
    name, _, rest = text.strip()[1:].partition(" ")
    name, rest = name.lower(), rest.strip()
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean /{close[0]}?)" if close else ""
        raise CommandError(f"unknown command /{name}{hint}; /help lists them")
    return globals()[f"_{name}"](lab, session, rest, script)


def _help(lab: Lab, session: ChatSessionView, rest: str, script: Any) -> CommandResult:
    return CommandResult(HELP)


def _task(lab: Lab, session: ChatSessionView, rest: str, script: Any) -> CommandResult:
    if not rest:
        raise CommandError("usage: /task PROMPT (the task runs in the background)")
    handle = lab.chat.launch(session, rest, script=script)
    view = handle.view()
    return CommandResult(
        f"Started background task `{handle.id}` ({view.profile_id} on {view.runtime_id}). "
        f"It runs on its own; its approvals show here, and `%stagent task {handle.id}` shows "
        "its card.",
        task_id=handle.id,
    )


def _words(rest: str, usage: str) -> list[str]:
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise CommandError(f"{usage} ({exc})") from None
    if len(words) > 1:
        raise CommandError(usage)
    return words


def _profile(lab: Lab, session: ChatSessionView, rest: str, script: Any) -> CommandResult:
    words = _words(rest, "usage: /profile [ID]")
    if not words:
        ids = ", ".join(lab.profiles.ids())
        return CommandResult(f"Profile: `{session.profile_id}`. Available: {ids}.")
    new = lab.chat.configure(session, profile=words[0])
    return CommandResult(f"The next turns go to `{new.profile_id}`.", session=new)


def _runtime(lab: Lab, session: ChatSessionView, rest: str, script: Any) -> CommandResult:
    words = _words(rest, "usage: /runtime [ID | auto]")
    if not words:
        current = f"`{session.runtime_id}`" if session.runtime_id else "chosen by routing"
        ids = ", ".join(lab.catalog.ids())
        return CommandResult(f"Runtime: {current}. Runtimes: {ids}.")
    if words[0] == "auto":
        new = lab.chat.configure(session, clear_runtime=True)
        return CommandResult("The runtime of the next turns is chosen by routing.", session=new)
    new = lab.chat.configure(session, runtime=words[0])
    return CommandResult(f"The next turns run on `{new.runtime_id}`.", session=new)


def _cost(lab: Lab, session: ChatSessionView, rest: str, script: Any) -> CommandResult:
    df = lab.chat.cost(session)
    if df.empty:
        return CommandResult("No turn yet, so nothing spent.")
    lines = ["| # | kind | message | status | tokens in / out | cost |", "|---" * 6 + "|"]
    for row in df.itertuples():
        message = str(row.message).replace("|", "\\|")
        lines.append(
            f"| {row.seq} | {row.kind} | {message} | {row.status} | "
            f"{int(row.input_tokens):,} / {int(row.output_tokens):,} | {fmt.usd(row.cost_usd)} |"
        )
    total = float(df["cost_usd"].sum())
    lines.append(f"\n**Total: {fmt.usd(total)}** over {fmt.plural(len(df), 'task')}.")
    return CommandResult("\n".join(lines))


def _inbox(lab: Lab, session: ChatSessionView, rest: str, script: Any) -> CommandResult:
    pending = lab.inbox()
    mine = {m.task_id for m in lab.chat.history(session.id) if m.task_id}
    here = pending[pending["task_id"].isin(mine)]
    elsewhere = len(pending) - len(here)
    if here.empty:
        text = "Nothing in this chat is waiting for you."
    else:
        items = [
            f"- {row.kind} `{row.tool_name or ''}` for task `{row.task_id}` (decide it above)"
            for row in here.itertuples()
        ]
        text = f"{fmt.plural(len(here), 'item')} waiting in this chat:\n" + "\n".join(items)
    if elsewhere:
        text += f"\n\n{fmt.plural(elsewhere, 'more item')} elsewhere: `%stagent inbox`."
    return CommandResult(text)


__all__ = ["COMMANDS", "HELP", "CommandError", "CommandResult", "is_command", "run"]
