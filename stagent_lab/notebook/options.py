"""The ``%%stagent`` option line and the ``%stagent`` commands, parsed into typed values.

Kept free of IPython so it is cheap to import and easy to test. Every problem is an
``OptionError`` whose message is short enough to print under a cell: an operator who mistypes
an option wants one line saying what is wrong and how the line should look, not a traceback.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

LAUNCH_USAGE = (
    "usage: %%stagent [--profile P] [--runtime R] [--project X] [--max-turns N] "
    "[--budget USD] [--model M] [--script VAR] [--title T] [--wait] [--name VAR]\n"
    "       (the cell body is the prompt; {var} takes a variable's value, {{var}} keeps braces)"
)
COMMAND_USAGE = (
    "usage: %stagent inbox | monitor | profiles | tasks [STATUS] | cost [DIM ...] | "
    "memory [PROFILE] | chat [OPTIONS] | task ID | cancel ID | resume ID | sql QUERY | "
    "use HOME | help"
)
HELP = """\
%%stagent [--profile P] [--runtime R] [--project X] [--max-turns N] [--budget USD]
          [--model M] [--script VAR] [--title T] [--wait] [--name VAR]
<the prompt: the cell body; {var} takes a notebook variable's value, {{var}} keeps braces>

    Launch a governed task in the background. The cell returns at once with the task's live
    card: status, streaming log, approvals (Allow / Always allow / Deny), cost, Cancel, Resume.

    --profile P     the agent profile (without it the prompt is routed; the log says why)
    --runtime R     claude-code, openai-codex-app-server, anthropic-direct, openai-direct,
                    ollama or scripted (offline demo). Without it: the profile's preferred
                    runtime, then the workspace default (setting runtimes.default), then the
                    first usable one; when none is usable the cell says how to set one up
    --project X     a project name, or a folder (registered on first use)
    --max-turns N   stop after N turns          --budget USD   stop when the task spent this
    --model M       the model, when the runtime lets you choose
    --script VAR    a script for the scripted runtime (a list of steps, YAML, or a generator)
    --title T       the card's title (default: the prompt's first line)
    --wait          show the card and block until the task ends (Interrupt stops waiting)
    --name VAR      also bind the task's handle to the notebook variable VAR

%stagent COMMAND
    inbox                     pending approvals and questions of every task, decided inline
    monitor                   active agents, today's numbers, the live log, feature panels
    profiles                  what each profile may do and which runtimes it can use here
    tasks [STATUS]            tasks as a table (queued, running, waiting, completed, failed …)
    cost [DIM ...]            spend and tokens by profile, runtime, model, project, day …
    memory [PROFILE]          the memory browser (memory --table PROFILE: a DataFrame)
    chat [--profile P] [--runtime R] [--session ID] [--script VAR] [--list]
                              a governed conversation with one agent; --session reopens one
    task ID                   a task's live card (a unique prefix of the id is enough)
    cancel ID | resume ID     stop a task / continue a failed, cancelled or paused one
    sql QUERY                 read-only SQL over the workspace (%%stagent sql: query in the body)
    use HOME                  switch this kernel to another workspace
    help                      this text (also %stagent?)
{features}
Examples
    %%stagent --profile code-reviewer --project ~/src/app --name review
    Review the auth module for injection bugs; list each finding with file and line.

    %stagent task 3f2a                a task's card again (a unique prefix of its id)
    %stagent cost profile day         spend per profile per day
    %stagent chat --profile data-analyst
    %stagent sql SELECT status, count(*) AS n FROM tasks GROUP BY ALL

Tab completes commands, options, and profile, runtime, project and session names.
To run offline (demos, tests): --runtime scripted, or lab.set_setting("runtimes.default",
"scripted") for the whole workspace.
"""


class OptionError(ValueError):
    """A magic line that does not parse; the message names the problem."""


@dataclass(frozen=True)
class LaunchOptions:
    """What ``%%stagent`` was asked to do, with every value converted and checked."""

    profile: str | None = None
    runtime: str | None = None
    project: str | None = None
    max_turns: int | None = None
    budget: float | None = None
    model: str | None = None
    script: str | None = None
    title: str | None = None
    wait: bool = False
    name: str | None = None


def _text(flag: str, value: str) -> str:
    if not value.strip():
        raise OptionError(f"{flag} needs a non-empty value")
    return value


def _positive_int(flag: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise OptionError(f"{flag} takes a whole number, got {value!r}") from None
    if number < 1:
        raise OptionError(f"{flag} must be at least 1, got {number}")
    return number


def _positive_float(flag: str, value: str) -> float:
    try:
        number = float(value.lstrip("$"))
    except ValueError:
        raise OptionError(f"{flag} takes an amount in USD such as 0.50, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise OptionError(f"{flag} must be a positive amount, got {value!r}")
    return number


def _identifier(flag: str, value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise OptionError(f"{flag} takes a Python variable name, got {value!r}")
    return value


# flag → (LaunchOptions field, converter); None marks a switch that takes no value.
_FLAGS: dict[str, tuple[str, Callable[[str, str], Any] | None]] = {
    "--profile": ("profile", _text),
    "--runtime": ("runtime", _text),
    "--project": ("project", _text),
    "--max-turns": ("max_turns", _positive_int),
    "--budget": ("budget", _positive_float),
    "--model": ("model", _text),
    "--script": ("script", _identifier),
    "--title": ("title", _text),
    "--name": ("name", _identifier),
    "--wait": ("wait", None),
}
assert {f for f, _ in _FLAGS.values()} == {f.name for f in fields(LaunchOptions)}
LAUNCH_FLAGS: tuple[str, ...] = tuple(_FLAGS)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:  # unbalanced quotes
        raise OptionError(f"cannot read the option line: {exc}") from None


def _unknown(flag: str) -> OptionError:
    close = difflib.get_close_matches(flag, list(_FLAGS), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return OptionError(f"unknown option {flag}{hint}")


def parse_launch(line: str) -> LaunchOptions:
    """Parse ``--flag value`` / ``--flag=value`` tokens; the prompt itself is the cell body."""
    values: dict[str, Any] = {}
    tokens = _split(line)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--"):
            raise OptionError(
                f"unexpected argument {token!r}: options start with --, and the prompt goes in "
                "the cell body"
            )
        flag, has_inline, inline = token.partition("=")
        if flag not in _FLAGS:
            raise _unknown(flag)
        field_name, convert = _FLAGS[flag]
        if field_name in values:
            raise OptionError(f"{flag} is given twice")
        if convert is None:
            if has_inline:
                raise OptionError(f"{flag} is a switch and takes no value")
            values[field_name] = True
            continue
        if has_inline:
            raw = inline
        else:
            if i >= len(tokens) or tokens[i].partition("=")[0] in _FLAGS:
                raise OptionError(f"{flag} needs a value")
            raw = tokens[i]
            i += 1
        values[field_name] = convert(flag, raw)
    return LaunchOptions(**values)


# ---- line commands ------------------------------------------------------------------------

# command → (min args, max args or None for "rest of the line as one string")
COMMANDS: dict[str, tuple[int, int | None]] = {
    "inbox": (0, 0),
    "monitor": (0, 0),
    "profiles": (0, 0),
    "tasks": (0, 1),
    "cost": (0, 4),
    "memory": (0, 1),
    "task": (1, 1),
    "cancel": (1, 1),
    "resume": (1, 1),
    "use": (1, 1),
    "sql": (1, None),
    "help": (0, 0),
}


# Features' own command families (``%stagent workflows run WF``): name → "module:function",
# called as ``function(lab, args)`` with the rest of the line split like a shell would. Each
# handler parses its own options and raises OptionError with its usage on a mistake.
FEATURE_COMMANDS: dict[str, str] = {
    "workflows": "stagent_lab.workflows.magics:handle",
    "chat": "stagent_lab.chat.magics:handle",
    "schedules": "stagent_lab.schedules.magics:handle",
    "budgets": "stagent_lab.usage.commands:handle",
    "channels": "stagent_lab.channels.magics:handle",
}


def help_text() -> str:
    """The full ``%stagent`` usage, with the features' command families."""
    others = sorted(n for n in FEATURE_COMMANDS if n != "chat")
    features = (
        "    " + ", ".join(f"{n} …" for n in others) + "   (features; each says its usage)\n"
        if others
        else ""
    )
    return HELP.replace("{features}", features)


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[str, ...] = ()


def parse_command(line: str, body: str | None = None) -> Command:
    """``inbox``, ``cancel ID``, ``sql SELECT ...`` → Command. ``body`` is a cell's text.

    ``sql`` keeps the rest of the line verbatim (quotes matter in SQL); with ``%%stagent sql``
    the query is the cell body instead.
    """
    stripped = line.strip()
    if not stripped:
        return Command("help")
    name, _, rest = stripped.partition(" ")
    if name in FEATURE_COMMANDS:
        if body is not None and body.strip():
            raise OptionError(f"%%stagent {name} takes no cell body; use the line form")
        return Command(name, tuple(_split(rest)))
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, [*COMMANDS, *FEATURE_COMMANDS], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise OptionError(f"unknown command {name!r}{hint}")
    low, high = COMMANDS[name]
    if high is None:
        query = (body if body is not None and body.strip() else rest).strip()
        if not query:
            raise OptionError(f"{name} needs a query")
        return Command(name, (query,))
    if body is not None and body.strip():
        raise OptionError(f"%%stagent {name} takes no cell body; use the line form %stagent {name}")
    args = tuple(_split(rest))
    if not low <= len(args) <= high:
        want = (
            "no arguments"
            if high == 0
            else (f"{low} argument" if low == high else f"{low} to {high} arguments")
        )
        raise OptionError(f"{name} takes {want}, got {len(args)}")
    return Command(name, args)


# ---- prompt interpolation -----------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{([A-Za-z_]\w*)\}\}|\{([A-Za-z_]\w*)\}")


def interpolate(text: str, namespace: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Replace ``{name}`` with ``str(namespace[name])``; return the text and unknown names.

    Only bare identifiers are placeholders, so JSON, dict literals and code in a prompt pass
    through untouched; ``{{name}}`` is the escape for a literal ``{name}``. An unknown name is
    left as written (and reported) rather than failing: prompts often quote code such as
    f-strings whose names are not notebook variables.
    """
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return "{" + m.group(1) + "}"
        name = m.group(2)
        if name in namespace:
            return str(namespace[name])
        if name not in missing:
            missing.append(name)
        return m.group(0)

    return _PLACEHOLDER.sub(sub, text), missing
