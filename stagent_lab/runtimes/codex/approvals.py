"""Codex's approval requests in the terms of our permission cascade, and our answers in its.

A command (``item/commandExecution/requestApproval``) is checked as ``Bash`` with the command a
rule should judge: the shell wrapper Codex adds (``/bin/bash -lc '…'``) is unwrapped, so
``Bash(command:git *)`` rules apply. A file change (``item/fileChange/requestApproval``) is
checked per changed path, as ``Write`` for a new file and ``Edit`` otherwise. Our decisions map
back to ``accept`` / ``acceptForSession`` (every decision was "always") / ``decline``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from stagent_lab.runtimes.base import PermissionDecision

_SHELLS = frozenset({"bash", "sh", "zsh", "dash"})
_DIFF_LIMIT = 4000


def unwrap_shell(command: str) -> str:
    """``/bin/bash -lc 'git status'`` → ``git status`` (the part a rule should judge)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    if len(argv) == 3 and Path(argv[0]).name in _SHELLS and argv[1] in ("-c", "-lc", "-l"):
        return argv[2]
    return command


def approval_answer(decisions: list[PermissionDecision], available: list[Any] | None) -> str:
    """Our decisions → Codex's: accept / acceptForSession (every decision was "always") /
    decline. ``available`` (when Codex lists it) limits acceptForSession."""
    if not decisions or any(d.behavior != "allow" for d in decisions):
        return "decline"
    names = {a for a in available if isinstance(a, str)} if available is not None else None
    if all(d.always for d in decisions) and (names is None or "acceptForSession" in names):
        return "acceptForSession"
    return "accept"


def change_kind(change: dict[str, Any]) -> str:
    """``add`` / ``delete`` / ``update`` of one entry of a fileChange item."""
    kind = change.get("kind")
    if isinstance(kind, dict):
        return str(kind.get("type") or "update")
    return str(kind or "update")


def command_check(params: dict[str, Any], item: dict[str, Any] | None) -> dict[str, Any]:
    """The ``Bash`` tool input for a command approval request."""
    raw = str(params.get("command") or (item or {}).get("command") or "")
    command = unwrap_shell(raw)
    tool_input: dict[str, Any] = {"command": command}
    if raw != command:
        tool_input["raw_command"] = raw
    for key in ("cwd", "reason"):
        if params.get(key):
            tool_input[key] = params[key]
    return tool_input


def file_change_checks(
    params: dict[str, Any], item: dict[str, Any] | None, working_dir: Path
) -> list[tuple[str, dict[str, Any]]]:
    """(tool, tool input) per changed path; the grant root when Codex names no file."""
    checks: list[tuple[str, dict[str, Any]]] = []
    for change in (item or {}).get("changes") or []:
        if not isinstance(change, dict) or not change.get("path"):
            continue
        kind = change_kind(change)
        tool_input = {
            "file_path": str(change["path"]),
            "change": kind,
            "diff": str(change.get("diff") or "")[:_DIFF_LIMIT],
        }
        checks.append(("Write" if kind == "add" else "Edit", tool_input))
    if not checks:
        root = params.get("grantRoot") or str(working_dir)
        checks.append(("Edit", {"file_path": str(root), "reason": params.get("reason")}))
    return checks


__all__ = [
    "approval_answer",
    "change_kind",
    "command_check",
    "file_change_checks",
    "unwrap_shell",
]
