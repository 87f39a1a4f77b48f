"""Permission rules: ``Tool``, ``Tool(glob)``, ``Tool(field:glob)``.

A saved rule answers a tool request without asking a human, so matching errs towards "no":
a rule that does not clearly cover a request lets it fall through to the inbox, where a person
decides. Three kinds of fields are matched three ways:

* ``Bash``'s ``command``: every simple command of the line must match the glob (see
  :mod:`stagent_lab.governance.shell`); lines that run hidden code, use options that make a
  program read, write or run files of its own choosing, name a path outside the working
  directory, or are longer than 64 KiB never match.
* path fields (``file_path``, ``path``, ``notebook_path``): both sides are made absolute and
  normalized, and symlinks on the request side are resolved, so ``..`` or a link cannot climb
  out of a rule's root. A write (``Write``, ``Edit``, ``MultiEdit``, ``NotebookEdit``) to a
  path with a ``.git`` component is only covered by a rule whose glob names ``.git``.
* everything else (url, pattern, query, ...): ``fnmatch``-style, case-sensitive, on the raw text.

Deny rules are matched with ``mode="deny"``, which reads the request the other way round: a Bash
deny rule fires when *any* command the line may run matches (wrappers such as ``sudo``, program
paths such as ``/bin/rm`` and git's global options read past; see
:mod:`stagent_lab.governance.deny`), and a path deny rule fires when either the written path or
the resolved one matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from stagent_lab.governance.index import CompiledRule, Request
from stagent_lab.governance.paths import escape_path_glob, has_git_component, input_paths
from stagent_lab.governance.programs import RUNNERS, is_code_runner
from stagent_lab.governance.shell import analyze_command, command_index
from stagent_lab.governance.syntax import (
    PATH_FIELDS,
    SHELL_FIELDS,
    TOOL_MAIN_FIELDS,
    WRITE_TOOLS,
    Rule,
    parse_rule,
)

__all__ = [
    "PATH_FIELDS",
    "TOOL_MAIN_FIELDS",
    "WRITE_TOOLS",
    "Rule",
    "parse_rule",
    "rule_matches",
    "suggest_rule",
]

Mode = Literal["allow", "deny"]


def rule_matches(
    rule: str | Rule,
    tool: str,
    tool_input: Mapping[str, Any],
    *,
    working_dir: str | Path | None = None,
    mode: Mode = "allow",
) -> bool:
    """Does ``rule`` cover this tool request?

    ``mode="allow"`` (the default) is the strict reading used to grant: every Bash command must
    match, hidden code never matches, a path must match both as written and resolved, and a
    write under ``.git`` needs a rule that names ``.git``. ``mode="deny"`` is the broad reading
    used to refuse: any command the line may run matching is enough, and either path form
    matching is enough.
    """
    parsed = rule if isinstance(rule, Rule) else parse_rule(rule)
    if mode not in ("allow", "deny"):
        raise ValueError(f"mode must be 'allow' or 'deny', not {mode!r}")
    if parsed.tool != tool:
        return False
    compiled = CompiledRule(parsed, 0, frozen=False)
    return compiled.matches(Request(tool, tool_input, working_dir), mode)


# ---- suggestions for "always allow" ----------------------------------------------------------

# Commands whose first argument picks a sub-tool; the suggestion keeps that many words.
_MULTIPLEXERS: dict[str, int] = {"git": 1, "gh": 2}
# Sub-commands that run programs or rewrite history: the exact command is suggested.
_EXACT_SUBCOMMANDS = {
    "git": {"rebase", "bisect", "submodule", "difftool", "mergetool", "config", "clean",
            "reset", "checkout", "restore", "push", "filter-branch", "worktree", "clone",
            "apply", "am", "gc", "prune", "hook"},
    "gh": {"extension", "ext", "alias", "api", "codespace", "cs"},
}  # fmt: skip
# Never suggest "any arguments" for these: an always-allow must not grow into "delete anything".
_EXACT_ONLY = {
    "rm", "rmdir", "mv", "dd", "mkfs", "chmod", "chown", "chgrp", "kill", "killall", "pkill",
    "shred", "truncate", "curl", "wget", "ssh", "scp", "rsync", "reboot", "shutdown", "ln",
    "cp", "tee", "install", "crontab", "systemctl", "cd", "pushd", "touch", "mkdir", "sftp",
    "nc", "ncat", "netcat", "socat", "telnet", "ftp", "mount", "umount", "chattr", "setfacl",
}  # fmt: skip


def _escape_bash_glob(text: str) -> str:
    return re.sub(r"([*?\\()])", r"\\\1", text)


def _escape_fnmatch(text: str) -> str:
    return re.sub(r"([*?\[()])", r"[\1]", text)


def _suggest_bash_glob(command: str) -> str:
    analysis = analyze_command(command)
    if not analysis.coverable:
        return _escape_bash_glob(command.strip())
    globs = {_suggest_simple(c.words) for c in analysis.commands}
    if len(globs) == 1:
        return globs.pop()
    return _escape_bash_glob(command.strip())


def _suggest_simple(words: tuple[str, ...]) -> str:
    exact = _escape_bash_glob(" ".join(words))
    if command_index(words) != 0 or "/" in words[0]:
        return exact  # FOO=1 cmd, ./script, /usr/bin/x: keep it exact, the text is what runs
    base = words[0]
    if base in _EXACT_ONLY or base in RUNNERS or is_code_runner(base):
        return exact  # "node *" would allow "node -e <anything>"
    keep = 1
    if base in _MULTIPLEXERS:
        if len(words) > 1 and words[1].startswith("-"):
            return exact  # options before the sub-command: too easy to over-allow
        while keep < len(words) and keep <= _MULTIPLEXERS[base]:
            if words[keep].startswith("-"):
                break
            if words[keep] in _EXACT_SUBCOMMANDS.get(base, ()):
                return exact
            keep += 1
    return _escape_bash_glob(" ".join(words[:keep])) + " *"


def suggest_rule(
    tool: str, tool_input: Mapping[str, Any], *, working_dir: str | Path | None = None
) -> str:
    """A rule an operator can save for "always allow", narrow enough to show as a default.

    >>> suggest_rule("Bash", {"command": "git log --oneline"})
    'Bash(command:git log *)'

    Programs that can run code get the exact command; a path gets its directory, or the exact
    file when the path is under ``.git``. Raises ValueError when the request has no usable
    value in the tool's main field.
    """
    field = TOOL_MAIN_FIELDS.get(tool)
    if field is None:
        return tool
    value = tool_input.get(field) if isinstance(tool_input, Mapping) else None
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValueError(f"cannot suggest a rule: {tool} input has no usable {field!r} value")
    if (tool, field) in SHELL_FIELDS:
        glob = _suggest_bash_glob(value)
    elif field in PATH_FIELDS:
        lexical, _ = input_paths(value, working_dir)
        if has_git_component(lexical):
            glob = escape_path_glob(lexical)
        else:
            parent = lexical.rsplit("/", 1)[0] or "/"
            glob = escape_path_glob(parent).rstrip("/") + "/**"
    else:
        glob = _escape_fnmatch(value)
    rule = f"{tool}({field}:{glob})"
    parse_rule(rule)  # a suggestion must always be savable
    return rule
