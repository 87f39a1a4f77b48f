"""The shipped catalog: all 20 profiles load, are complete, and are scoped sensibly."""

from __future__ import annotations

import pytest

from stagent_lab.governance.rules import parse_rule
from stagent_lab.profiles import (
    KNOWN_RUNTIMES,
    KNOWN_TOOLS,
    Profile,
    ProfileRegistry,
    builtin_profiles_dir,
    load_profile,
)

BUILTIN_IDS = {
    "general",
    "code-reviewer",
    "data-analyst",
    "devops-engineer",
    "document-writer",
    "researcher",
    "project-manager",
    "technical-writer",
    "sweep",
    "marketing-strategist",
    "sales-researcher",
    "customer-support-agent",
    "financial-analyst",
    "content-creator",
    "operations-coordinator",
    "wealth-manager",
    "health-fitness-coach",
    "learning-coach",
    "travel-planner",
    "shopping-assistant",
}
LIFESTYLE = {
    "wealth-manager",
    "health-fitness-coach",
    "learning-coach",
    "travel-planner",
    "shopping-assistant",
}
WRITERS = {"document-writer", "technical-writer", "content-creator"}


@pytest.fixture(scope="module")
def catalog() -> dict[str, Profile]:
    registry = ProfileRegistry([builtin_profiles_dir()])
    assert registry.errors() == []
    return {p.id: p for p in registry.all()}


def test_catalog_has_exactly_the_twenty_builtins(catalog):
    assert set(catalog) == BUILTIN_IDS
    assert len(catalog) == 20


@pytest.mark.parametrize("pid", sorted(BUILTIN_IDS))
def test_builtin_is_complete(catalog, pid):
    p = catalog[pid]
    assert p.origin == "builtin"
    assert p.source_dir is not None and p.source_dir.name == pid
    assert p.author == "stagent_lab"
    assert 6 <= len(p.tags) <= 10, p.tags
    assert len(p.tests) >= 2
    assert all(t.expected_keywords for t in p.tests)
    assert set(p.allowed_tools) <= set(KNOWN_TOOLS)
    assert set(p.supported_runtimes) <= set(KNOWN_RUNTIMES)
    assert p.preferred_runtime is not None and p.runtime_supported(p.preferred_runtime)
    assert p.description and len(p.description) > 40
    assert p.output_format
    body_lines = [ln for ln in p.skill_md.splitlines() if ln.strip()]
    assert len(body_lines) >= 35, f"{pid} SKILL.md body too thin"
    assert not p.skill_md.startswith("---")  # front matter stripped
    assert "## Never" in p.skill_md and "Output format" in p.skill_md


@pytest.mark.parametrize("pid", sorted(BUILTIN_IDS))
def test_builtin_policy_is_consistent(catalog, pid):
    p = catalog[pid]
    policy = p.can_use_tool_policy
    for entry in [*policy.auto_approve, *policy.auto_deny]:
        parse_rule(entry)  # every entry is a valid rule
        tool = entry.split("(", 1)[0]
        assert tool in p.allowed_tools, f"{pid}: policy names {tool} it may not use"


def test_code_reviewer_matches_the_seed_contract(catalog):
    p = catalog["code-reviewer"]
    assert p.allowed_tools[:4] == ["Read", "Grep", "Glob", "Bash"]  # the seed's four, + Memory
    assert {"Read", "Grep", "Glob"} <= set(p.can_use_tool_policy.auto_approve)
    assert "Bash" not in p.can_use_tool_policy.auto_approve  # bare Bash always asks
    assert "Bash(command:git push *)" in p.can_use_tool_policy.auto_deny
    assert p.max_turns == 20
    assert p.output_format == "structured-findings"
    assert p.tests[0].expected_keywords == ["OWASP", "injection", "authentication", "vulnerability"]
    text = p.skill_md.lower()
    for word in ("owasp", "injection", "authentication", "vulnerability", "performance"):
        assert word in text


def test_devops_shell_always_needs_a_human(catalog):
    p = catalog["devops-engineer"]
    assert "Bash" in p.allowed_tools
    assert not any(e.startswith("Bash") for e in p.can_use_tool_policy.auto_approve)
    assert any("terraform destroy" in e for e in p.can_use_tool_policy.auto_deny)


@pytest.mark.parametrize("pid", sorted(WRITERS | LIFESTYLE))
def test_writers_and_lifestyle_profiles_have_no_shell(catalog, pid):
    assert "Bash" not in catalog[pid].allowed_tools


@pytest.mark.parametrize("pid", sorted(WRITERS))
def test_writers_can_write(catalog, pid):
    assert {"Write", "Edit"} <= set(catalog[pid].allowed_tools)


@pytest.mark.parametrize("pid", sorted(LIFESTYLE))
def test_lifestyle_profiles_are_personal_and_run_on_direct_runtimes(catalog, pid):
    p = catalog[pid]
    assert p.domain == "personal"
    assert set(p.supported_runtimes) == {
        "anthropic-direct",
        "openai-direct",
        "ollama",
        "claude-code",
    }
    assert "Memory" in p.allowed_tools


def test_technical_profiles_support_both_agent_clis(catalog):
    for pid in ("code-reviewer", "data-analyst", "devops-engineer", "sweep", "technical-writer"):
        assert {"claude-code", "openai-codex-app-server"} <= set(catalog[pid].supported_runtimes)


def test_financial_analyst_capability_overrides(catalog):
    p = catalog["financial-analyst"]
    cap = p.capability_for("anthropic-direct")
    assert cap is not None and cap.extended_thinking is not None
    assert cap.extended_thinking.enabled is True
    assert cap.extended_thinking.budget_tokens == 16000
    assert p.model_for("anthropic-direct") == "claude-opus-4-5"
    assert p.model_for("ollama") == "llama3.1:8b"
    assert p.model_for("claude-code") is None
    assert p.max_turns_for("ollama") == 8
    assert p.max_turns_for("anthropic-direct") == 25
    assert p.instructions_for("ollama").endswith("needs the full analysis.")


def test_only_general_and_business_coordinators_accept_handoffs_explicitly(catalog):
    declared = {pid for pid, p in catalog.items() if p.handoff_policy is not None}
    assert declared == {"project-manager", "customer-support-agent", "operations-coordinator"}
    assert catalog["project-manager"].handoff_policy.accept_from == ["*"]


def test_builtin_dir_is_the_repo_catalog_in_a_checkout():
    d = builtin_profiles_dir()
    assert (d / "code-reviewer" / "profile.yaml").is_file()
    assert load_profile(d / "general", origin="builtin").origin == "builtin"
