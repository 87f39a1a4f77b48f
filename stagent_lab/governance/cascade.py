"""The permission cascade: who may say yes to a tool request, in order.

1. tool not in the profile's ``allowedTools``      → deny  (tier ``allowed_tools``)
2. profile ``canUseToolPolicy.autoDeny``           → deny  (tier ``profile_auto_deny``)
3. profile ``canUseToolPolicy.autoApprove``        → allow (tier ``profile_auto_approve``)
4. saved rules that apply (global, this profile, this project), deny before allow
                                                   → deny/allow (tier ``rule``)
5. otherwise nobody has answered: the engine puts the request in the inbox (tier ``human``).

The first definitive answer wins. This module is pure: no I/O beyond looking at paths, so it
is cheap to call for every request and easy to test. Profile policies are compiled and cached
by their entries; saved rules are compiled into a :class:`RuleIndex` (pass one to skip even
the check that a list is unchanged).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagent_lab.governance.index import Request, RuleIndex, compile_policy, compile_rules
from stagent_lab.governance.syntax import parse_rule
from stagent_lab.runtimes.base import PermissionDecision

__all__ = ["RuleIndex", "SavedRule", "compile_rules", "evaluate", "validate_rule"]


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


# The last list of saved rules passed to evaluate() and its index. A list is compared with a
# private copy on every call (identity first, so about 10 ns a rule): an edited list is never
# read through a stale index.
_last_list: tuple[Any, list[SavedRule], RuleIndex] | None = None
_last_lock = threading.Lock()


def _rule_index(rules: RuleIndex | Iterable[SavedRule]) -> RuleIndex:
    global _last_list
    if isinstance(rules, RuleIndex):
        return rules
    if isinstance(rules, (list, tuple)):
        last = _last_list
        if last is not None and last[0] is rules and rules == last[1]:
            return last[2]
        snapshot = list(rules)
        index = compile_rules(snapshot)
        if isinstance(rules, list):
            with _last_lock:
                _last_list = (rules, snapshot, index)
        return index
    return compile_rules(rules)


@functools.lru_cache(maxsize=128)
def _allowed(allowed_tools: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    names = frozenset(a for a in allowed_tools if "(" not in a)
    return names, tuple(a for a in allowed_tools if "(" in a)


def evaluate(
    *,
    profile_id: str,
    allowed_tools: Sequence[str] | None,
    auto_approve: Iterable[str],
    auto_deny: Iterable[str],
    rules: RuleIndex | Iterable[SavedRule],
    tool: str,
    tool_input: dict[str, Any],
    project_id: str | None = None,
    working_dir: Path | None = None,
) -> PermissionDecision | None:
    """Return the decision of the first tier that answers, or None when a human must decide.

    ``rules`` is a :class:`RuleIndex` (what a long-lived caller should hold) or any iterable of
    :class:`SavedRule`. Allow entries must cover every command of a compound line; deny entries
    fire when any command matches (also inside ``sudo``, ``sh -c``, ``$(…)``, ``/bin/rm`` …).
    """
    req = Request(tool, tool_input, working_dir)
    home = os.environ.get("HOME", "")
    if allowed_tools is not None:
        names, patterned = _allowed(tuple(allowed_tools))
        if tool not in names and (
            not patterned or not compile_policy(patterned, home).first_match(req, "allow")
        ):
            allowed = ", ".join(allowed_tools) or "none"
            return PermissionDecision(
                "deny",
                "allowed_tools",
                f"The {tool} tool is not allowed for profile {profile_id} (allowed: {allowed}).",
            )
    denied = compile_policy(auto_deny, home).first_match(req, "deny")
    if denied is not None:
        return PermissionDecision(
            "deny",
            "profile_auto_deny",
            f"Denied by profile {profile_id} policy: {denied.text}.",
            rule=denied.payload,
        )
    approved = compile_policy(auto_approve, home).first_match(req, "allow")
    if approved is not None:
        return PermissionDecision("allow", "profile_auto_approve", rule=approved.payload)
    index = _rule_index(rules)
    saved = index.first_match(req, "deny", profile_id, project_id)
    if saved is not None:
        return PermissionDecision(
            "deny", "rule", f"Denied by saved rule {saved.rule} ({saved.scope}).", rule=saved.rule
        )
    saved = index.first_match(req, "allow", profile_id, project_id)
    if saved is not None:
        return PermissionDecision("allow", "rule", rule=saved.rule)
    return None


def validate_rule(rule: str) -> str:
    """Parse a rule (raises RuleSyntaxError) and return it stripped."""
    parse_rule(rule.strip())
    return rule.strip()
