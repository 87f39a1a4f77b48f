"""The compiled rule index (issue 17): it answers exactly like trying every rule in order, it is
rebuilt when rules change, and it looks at a handful of rules whatever their number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagent_lab.governance import RuleIndex, compile_rules
from stagent_lab.governance.cascade import SavedRule, evaluate
from stagent_lab.governance.index import CompiledRule, Request, RuleSet, compile_policy
from stagent_lab.governance.rules import parse_rule, rule_matches

WD = Path("/nonexistent-stagent/proj")

PATTERNS = [
    "Bash",
    "Bash(command:git *)",
    "Bash(command:git log *)",
    "Bash(command:git log --oneline*)",
    "Bash(command:git status)",
    "Bash(command:* --version)",
    "Bash(command:rm *)",
    "Bash(command:rm -rf /srv/*)",
    "Bash(command:ls*)",
    "Bash(command:npm run test:*)",
    "Bash(command:*)",
    "Bash(command:pytest tests/a*/*)",
    "Read",
    "Read(src/**)",
    "Read(/srv/**)",
    "Read(/srv/p1/*.md)",
    "Read(**/*.py)",
    "Read(~/notes/**)",
    "Edit(src/**)",
    "Edit(**)",
    "Write",
    "Write(.git/**)",
    "WebFetch(https://docs.python.org/*)",
    "WebFetch(https://*.example.com/*)",
    "WebFetch(url:https://docs.*)",
    "Grep(path:/srv/**)",
    "Grep(TODO*)",
]
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("Bash", {"command": "git status"}),
    ("Bash", {"command": "git log --oneline -5"}),
    ("Bash", {"command": "git log -p | head"}),
    ("Bash", {"command": "python --version"}),
    ("Bash", {"command": "rm -rf /srv/x"}),
    ("Bash", {"command": "sudo /bin/rm -rf /srv/x"}),
    ("Bash", {"command": "ls -la && git status"}),
    ("Bash", {"command": "lsblk"}),
    ("Bash", {"command": "npm run test -- -u"}),
    ("Bash", {"command": "pytest tests/a1/test_x.py"}),
    ("Bash", {"command": "echo $(id)"}),
    ("Bash", {"command": "cat /etc/passwd"}),
    ("Bash", {"command": ""}),
    ("Bash", {"command": 3}),
    ("Read", {"file_path": "src/app.py"}),
    ("Read", {"file_path": "/srv/p1/README.md"}),
    ("Read", {"file_path": "/srv/p1/sub/README.md"}),
    ("Read", {"file_path": "../etc/passwd"}),
    ("Read", {"file_path": "~/notes/a.md"}),
    ("Read", {"file_path": "lib/x.py"}),
    ("Edit", {"file_path": "src/.git/config"}),
    ("Edit", {"file_path": "src/a.py"}),
    ("Write", {"file_path": ".git/hooks/pre-commit"}),
    ("Write", {"file_path": "notes.txt"}),
    ("WebFetch", {"url": "https://docs.python.org/3/"}),
    ("WebFetch", {"url": "https://a.example.com/x"}),
    ("WebFetch", {"url": "https://evil.example.net/"}),
    ("Grep", {"pattern": "TODO", "path": "/srv/p1"}),
    ("Grep", {"pattern": "FIXME"}),
    ("Glob", {"pattern": "*.py"}),
]
PROFILES = ["p1", "p2"]
PROJECTS = [None, "x", "y"]


def naive(rules: list[SavedRule], profile: str, project: str | None, tool, tool_input):
    """The reference: every applicable rule in list order, deny before allow."""
    applicable = [r for r in rules if r.applies(profile, project)]
    for effect in ("deny", "allow"):
        for r in applicable:
            if r.effect == effect and rule_matches(
                r.rule, tool, tool_input, working_dir=WD, mode=effect
            ):
                return effect, r.id
    return None


def indexed(rules, profile: str, project: str | None, tool, tool_input):
    decision = evaluate(
        profile_id=profile,
        allowed_tools=None,
        auto_approve=(),
        auto_deny=(),
        rules=rules,
        tool=tool,
        tool_input=tool_input,
        project_id=project,
        working_dir=WD,
    )
    if decision is None:
        return None
    rule_list = rules.rules if isinstance(rules, RuleIndex) else rules
    first = next(
        r
        for r in rule_list
        if r.rule == decision.rule and r.effect == decision.behavior and r.applies(profile, project)
    )
    return decision.behavior, first.id


SAVED = st.builds(
    lambda k, pattern, effect, scope: SavedRule(
        f"r{k}",
        pattern,
        effect,
        scope[0],
        scope[1],
    ),
    st.integers(0, 10_000),
    st.sampled_from(PATTERNS),
    st.sampled_from(["allow", "deny"]),
    st.sampled_from(
        [
            ("global", None),
            ("profile", "p1"),
            ("profile", "p2"),
            ("project", "x"),
            ("project", "y"),
            ("elsewhere", None),
        ]
    ),
)


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.lists(SAVED, max_size=25, unique_by=lambda r: r.id),
    st.sampled_from(PROFILES),
    st.sampled_from(PROJECTS),
)
def test_index_answers_like_trying_every_rule_in_order(rules, profile, project) -> None:
    index = RuleIndex(rules)
    for tool, tool_input in REQUESTS:
        expected = naive(rules, profile, project, tool, tool_input)
        assert indexed(index, profile, project, tool, tool_input) == expected, (tool, tool_input)
        assert indexed(list(rules), profile, project, tool, tool_input) == expected


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.sampled_from(PATTERNS), max_size=12))
def test_compiled_policy_answers_like_trying_every_entry(entries: list[str]) -> None:
    policy = compile_policy(entries)
    for tool, tool_input in REQUESTS:
        req = Request(tool, tool_input, WD)
        for mode in ("allow", "deny"):
            hit = policy.first_match(req, mode)
            expected = next(
                (
                    e
                    for e in entries
                    if rule_matches(e, tool, tool_input, working_dir=WD, mode=mode)
                ),
                None,
            )
            assert (hit.payload if hit else None) == expected, (tool, tool_input, mode)


# ---- invalidation ----------------------------------------------------------------------------


def _decide(rules, command: str = "git status"):
    d = evaluate(
        profile_id="p",
        allowed_tools=None,
        auto_approve=(),
        auto_deny=(),
        rules=rules,
        tool="Bash",
        tool_input={"command": command},
        working_dir=WD,
    )
    return None if d is None else (d.behavior, d.rule)


def test_a_list_edited_in_place_is_never_read_through_a_stale_index() -> None:
    rules = [SavedRule("a", "Bash(command:git *)", "allow", "global")]
    assert _decide(rules) == ("allow", "Bash(command:git *)")
    rules.append(SavedRule("b", "Bash(command:git status)", "deny", "global"))
    assert _decide(rules) == ("deny", "Bash(command:git status)")
    rules[1] = SavedRule("b", "Bash(command:git log)", "deny", "global")
    assert _decide(rules) == ("allow", "Bash(command:git *)")
    del rules[0]
    assert _decide(rules) is None


def test_evaluate_accepts_an_index_a_list_a_tuple_or_any_iterable() -> None:
    saved = [SavedRule("a", "Bash(command:git *)", "allow", "global")]
    for rules in (RuleIndex(saved), compile_rules(saved), saved, tuple(saved), iter(saved)):
        assert _decide(rules) == ("allow", "Bash(command:git *)")


def test_policies_are_cached_by_entries_and_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/alice")
    first = compile_policy(["Read(~/notes/**)"])
    assert compile_policy(("Read(~/notes/**)",)) is first
    assert first.first_match(Request("Read", {"file_path": "/home/alice/notes/a"}, WD), "allow")
    monkeypatch.setenv("HOME", "/home/bob")
    second = compile_policy(["Read(~/notes/**)"])
    assert second is not first
    assert not second.first_match(
        Request("Read", {"file_path": "/home/alice/notes/a"}, WD), "allow"
    )


def test_invalid_saved_rules_raise_when_compiled() -> None:
    with pytest.raises(ValueError):
        RuleIndex([SavedRule("a", "Bash(", "allow", "global")])


# ---- the index looks at few rules --------------------------------------------------------------


def _candidates(rule_set: RuleSet, tool: str, tool_input: dict, mode: str = "allow") -> int:
    index = rule_set.tools[tool]
    return len(index.candidates(Request(tool, tool_input, WD), mode))  # type: ignore[arg-type]


def _compiled(texts: list[str]) -> RuleSet:
    return RuleSet(CompiledRule(parse_rule(t), k, t, frozen=True) for k, t in enumerate(texts))


def test_bash_rules_are_found_by_their_literal_start() -> None:
    rule_set = _compiled([f"Bash(command:pytest tests/area{i}/*)" for i in range(1000)])
    assert _candidates(rule_set, "Bash", {"command": "pytest tests/area7/test_x.py"}) <= 2
    deny_set = _compiled([f"Bash(command:rm -rf /srv/data{i}/*)" for i in range(1000)])
    assert _candidates(deny_set, "Bash", {"command": "sudo rm -rf /srv/data42/x"}, "deny") <= 3


def test_path_and_url_rules_are_found_by_directory_and_prefix() -> None:
    paths = _compiled([f"Read(/srv/projects/p{i}/**)" for i in range(1000)])
    assert _candidates(paths, "Read", {"file_path": "/srv/projects/p905/README.md"}) == 1
    urls = _compiled([f"WebFetch(https://docs.site{i}.example.com/*)" for i in range(1000)])
    assert _candidates(urls, "WebFetch", {"url": "https://docs.site908.example.com/x"}) <= 2


def test_identical_rules_are_checked_once() -> None:
    rule_set = _compiled(["Bash(command:git log *)"] * 500)
    assert _candidates(rule_set, "Bash", {"command": "git log"}) == 1
    hit = rule_set.first_match(Request("Bash", {"command": "git log"}, WD), "allow")
    assert hit is not None and hit.order == 0
