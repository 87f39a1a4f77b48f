"""The built-in profiles' policies after the red-team review (issue 12): no rule that reads or
writes anywhere, the demo's decisions unchanged, and .git never written without a person."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagent_lab.governance.cascade import evaluate
from stagent_lab.governance.rules import parse_rule
from stagent_lab.profiles import builtin_profiles_dir, load_profile

BUILTIN = sorted(p.parent.name for p in builtin_profiles_dir().glob("*/profile.yaml"))
WD = Path("/nonexistent-stagent/proj")


def _profile(pid: str):
    return load_profile(builtin_profiles_dir() / pid, origin="builtin")


def _decide(pid: str, tool: str, tool_input: dict) -> tuple[str, str] | None:
    p = _profile(pid)
    policy = p.can_use_tool_policy
    d = evaluate(
        profile_id=pid,
        allowed_tools=p.allowed_tools,
        auto_approve=policy.auto_approve if policy else (),
        auto_deny=policy.auto_deny if policy else (),
        rules=[],
        tool=tool,
        tool_input=tool_input,
        working_dir=WD,
    )
    return None if d is None else (d.behavior, d.tier)


@pytest.mark.parametrize("pid", BUILTIN)
def test_no_profile_auto_approves_shell_readers(pid: str) -> None:
    policy = _profile(pid).can_use_tool_policy
    for entry in policy.auto_approve if policy else ():
        rule = parse_rule(entry)
        if rule.tool == "Bash":
            assert rule.pattern is not None, "bare Bash always asks"
            first = rule.pattern.split(" ")[0].rstrip("*")
            assert first not in {"head", "cat", "tail", "less", "more", "sed", "awk"}, entry


@pytest.mark.parametrize("pid", BUILTIN)
def test_no_profile_writes_dot_git_without_a_person(pid: str) -> None:
    for tool in ("Write", "Edit"):
        decision = _decide(pid, tool, {"file_path": ".git/config", "content": "x"})
        assert decision is None or decision[0] == "deny", decision


def test_code_reviewer_demo_decisions_are_unchanged() -> None:
    assert _decide("code-reviewer", "Glob", {"pattern": "**/*.py"}) == (
        "allow",
        "profile_auto_approve",
    )
    assert _decide("code-reviewer", "Grep", {"pattern": "TODO"}) == (
        "allow",
        "profile_auto_approve",
    )
    assert _decide("code-reviewer", "Read", {"file_path": "app/auth.py"}) == (
        "allow",
        "profile_auto_approve",
    )
    assert _decide("code-reviewer", "Bash", {"command": "git log --oneline -5"}) == (
        "allow",
        "profile_auto_approve",
    )
    assert _decide("code-reviewer", "Bash", {"command": "git status --short"}) is None


@pytest.mark.parametrize(
    ("pid", "command"),
    [
        ("code-reviewer", "git log --output=.git/hooks/pre-commit -p"),
        ("code-reviewer", "git diff --no-index /etc/passwd README.md"),
        ("code-reviewer", "git show --output=conftest.py HEAD"),
        ("code-reviewer", "git blame --contents=/proc/self/environ app.py"),
        ("code-reviewer", "git -C /tmp log"),
        ("data-analyst", "head -c 68 /proc/1/environ"),
        ("data-analyst", "wc -c /proc/self/environ"),
        ("sweep", "git status-x"),
        ("sweep", "git difftool -x evil"),
    ],
)
def test_red_team_escapes_reach_a_person(pid: str, command: str) -> None:
    assert _decide(pid, "Bash", {"command": command}) is None


@pytest.mark.parametrize(
    ("pid", "command"),
    [
        ("code-reviewer", "/bin/rm -rf app"),
        ("code-reviewer", "git -C . push"),
        ("code-reviewer", "git --no-pager push origin main"),
        ("code-reviewer", "git -c user.name=x commit -m y"),
        ("code-reviewer", "command rm x"),
        ("sweep", "/usr/bin/env rm -rf ."),
        ("devops-engineer", "git -c x=y push"),
    ],
)
def test_red_team_deny_bypasses_are_denied(pid: str, command: str) -> None:
    assert _decide(pid, "Bash", {"command": command}) == ("deny", "profile_auto_deny")
