"""The permission cascade: who may say yes to a tool request, in order.

1. tool not in the profile's ``allowedTools``      → deny  (tier ``allowed_tools``)
2. profile ``canUseToolPolicy.autoDeny``           → deny  (tier ``profile_auto_deny``)
3. profile ``canUseToolPolicy.autoApprove``        → allow (tier ``profile_auto_approve``)
4. saved rules that apply (global, this profile, this project), deny before allow
                                                   → deny/allow (tier ``rule``)
5. otherwise nobody has answered: the engine puts the request in the inbox (tier ``human``).

The first definitive answer wins. This module is pure: no I/O, so it is cheap to call for
every request and easy to test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagent_lab.governance.rules import parse_rule, rule_matches
from stagent_lab.runtimes.base import PermissionDecision


@dataclass(frozen=True)
class SavedRule:
    id: str
    rule: str
    effect: str  # allow | deny
    scope: str  # global | profile | project
    scope_id: str | None = None

    def applies(self, profile_id: str, project_id: str | None) -> bool:
        if self.scope == "global":
            return True
        if self.scope == "profile":
            return self.scope_id == profile_id
        if self.scope == "project":
            return project_id is not None and self.scope_id == project_id
        return False


def _entry_matches(
    entry: str, tool: str, tool_input: dict[str, Any], wd: Path | None, mode: str = "allow"
) -> bool:
    """A policy entry is a bare tool name or a rule such as ``Bash(command:git *)``.

    Allow entries must cover every command of a compound line; deny entries fire when any
    command matches (also inside ``sudo``, ``sh -c``, ``$(…)`` …), so ``Bash(command:rm *)``
    denies ``git status && rm -rf ~``.
    """
    if "(" not in entry:
        return entry == tool
    return rule_matches(entry, tool, tool_input, working_dir=wd, mode=mode)


def evaluate(
    *,
    profile_id: str,
    allowed_tools: Sequence[str] | None,
    auto_approve: Iterable[str],
    auto_deny: Iterable[str],
    rules: Iterable[SavedRule],
    tool: str,
    tool_input: dict[str, Any],
    project_id: str | None = None,
    working_dir: Path | None = None,
) -> PermissionDecision | None:
    """Return the decision of the first tier that answers, or None when a human must decide."""
    if allowed_tools is not None and not any(
        _entry_matches(a, tool, tool_input, working_dir) for a in allowed_tools
    ):
        allowed = ", ".join(allowed_tools) or "none"
        return PermissionDecision(
            "deny",
            "allowed_tools",
            f"The {tool} tool is not allowed for profile {profile_id} (allowed: {allowed}).",
        )
    for entry in auto_deny:
        if _entry_matches(entry, tool, tool_input, working_dir, mode="deny"):
            return PermissionDecision(
                "deny",
                "profile_auto_deny",
                f"Denied by profile {profile_id} policy: {entry}.",
                rule=entry,
            )
    for entry in auto_approve:
        if _entry_matches(entry, tool, tool_input, working_dir):
            return PermissionDecision("allow", "profile_auto_approve", rule=entry)
    applicable = [r for r in rules if r.applies(profile_id, project_id)]
    for r in applicable:
        if r.effect == "deny" and rule_matches(
            r.rule, tool, tool_input, working_dir=working_dir, mode="deny"
        ):
            return PermissionDecision(
                "deny", "rule", f"Denied by saved rule {r.rule} ({r.scope}).", rule=r.rule
            )
    for r in applicable:
        if r.effect == "allow" and rule_matches(r.rule, tool, tool_input, working_dir=working_dir):
            return PermissionDecision("allow", "rule", rule=r.rule)
    return None


def validate_rule(rule: str) -> str:
    """Parse a rule (raises RuleSyntaxError) and return it stripped."""
    parse_rule(rule.strip())
    return rule.strip()
