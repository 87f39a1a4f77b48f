"""Profile model: defaults, coercions, helpers, immutability, trust attributes."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from stagent_lab.profiles import DEFAULT_ALLOWED_TOOLS, Profile, load_profile


def test_defaults():
    p = Profile.from_data({"id": "x", "name": "X"})
    assert p.version == "1.0.0"
    assert p.max_turns == 20
    assert p.allowed_tools == list(DEFAULT_ALLOWED_TOOLS)
    assert p.supported_runtimes == [
        "claude-code",
        "openai-codex-app-server",
        "anthropic-direct",
        "openai-direct",
        "ollama",
    ]
    assert p.preferred_runtime is None
    assert p.can_use_tool_policy.auto_approve == []
    assert p.handoff_policy is None
    assert p.origin == "user" and p.source_dir is None and p.skill_md == ""


@pytest.mark.parametrize(("raw", "expected"), [(2, "2"), (1.5, "1.5"), ("2.0.1", "2.0.1")])
def test_numeric_version_is_coerced_to_text(raw, expected):
    assert Profile.from_data({"id": "x", "name": "X", "version": raw}).version == expected


def test_null_allowed_tools_means_the_safe_default():
    p = Profile.from_data({"id": "x", "name": "X", "allowedTools": None})
    assert p.allowed_tools == ["Read", "Grep", "Glob"]


def test_explicit_empty_tool_list_means_no_tools():
    assert Profile.from_data({"id": "x", "name": "X", "allowedTools": []}).allowed_tools == []


def test_scripted_runtime_is_always_supported():
    p = Profile.from_data({"id": "x", "name": "X", "supportedRuntimes": ["claude-code"]})
    assert p.runtime_supported("scripted") is True
    assert p.runtime_supported("claude-code") is True
    assert p.runtime_supported("ollama") is False


def test_preferred_runtime_may_be_scripted():
    data = {"id": "x", "name": "X", "supportedRuntimes": ["ollama"], "preferredRuntime": "scripted"}
    assert Profile.from_data(data).preferred_runtime == "scripted"


def test_model_instructions_and_turns_per_runtime():
    p = Profile.from_data(
        {
            "id": "x",
            "name": "X",
            "maxTurns": 30,
            "runtimeOverrides": {
                "ollama": {"model": "qwen3:4b", "instructions": "Be brief.", "maxTurns": 5},
                "anthropic-direct": {"model": "claude-sonnet-4-5"},
            },
            "capabilityOverrides": {"anthropic-direct": {"model": "claude-opus-4-5"}},
        },
        skill_md="You are X.\n",
    )
    assert p.model_for("anthropic-direct") == "claude-opus-4-5"  # capability override wins
    assert p.model_for("ollama") == "qwen3:4b"
    assert p.model_for("claude-code") is None
    assert p.instructions_for("ollama") == "You are X.\n\nBe brief."
    assert p.instructions_for("claude-code") == "You are X."
    assert p.max_turns_for("ollama") == 5
    assert p.max_turns_for("claude-code") == 30


def test_snake_case_keys_are_accepted():
    p = Profile.from_data({"id": "x", "name": "X", "max_turns": 3, "allowed_tools": ["Read"]})
    assert p.max_turns == 3 and p.allowed_tools == ["Read"]


def test_profile_is_frozen_and_hashable():
    p = Profile.from_data({"id": "x", "name": "X"})
    with pytest.raises(ValidationError):
        p.max_turns = 99
    assert p in {p}


def test_bool_is_not_a_number():
    with pytest.raises(ValidationError):
        Profile.from_data({"id": "x", "name": "X", "maxTurns": True})
    with pytest.raises(ValidationError):
        Profile.from_data({"id": "x", "name": "X", "temperature": True})


@pytest.mark.parametrize("key", ["skill_md", "skillMd", "origin", "source_dir", "sourceDir"])
def test_trusted_attributes_cannot_come_from_data(key):
    with pytest.raises(ValidationError) as info:
        Profile.from_data({"id": "x", "name": "X", key: "builtin"})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_yaml_description_wins_over_front_matter(tmp_path: Path):
    d = tmp_path / "demo"
    d.mkdir()
    (d / "profile.yaml").write_text("id: demo\nname: Demo\ndescription: From YAML\n")
    (d / "SKILL.md").write_text("---\nname: Other\ndescription: From front matter\n---\nBody\n")
    p = load_profile(d)
    assert p.description == "From YAML"
    assert p.name == "Demo"
    assert p.skill_md == "Body\n"
    assert p.source_dir == d


def test_front_matter_description_is_the_fallback(tmp_path: Path):
    d = tmp_path / "demo"
    d.mkdir()
    (d / "profile.yaml").write_text("id: demo\nname: Demo\n")
    (d / "SKILL.md").write_text("---\ndescription: From front matter\n---\n\nBody\n")
    p = load_profile(d, origin="builtin")
    assert p.description == "From front matter"
    assert p.skill_md == "Body\n"
    assert p.origin == "builtin"


def test_skill_md_without_front_matter_is_all_body(tmp_path: Path):
    d = tmp_path / "demo"
    d.mkdir()
    (d / "profile.yaml").write_text("id: demo\nname: Demo\n")
    (d / "SKILL.md").write_text("You are terse.\n---\nnot front matter\n")
    assert load_profile(d).skill_md == "You are terse.\n---\nnot front matter\n"


def test_handoff_policy_and_tests_round_trip():
    p = Profile.from_data(
        {
            "id": "x",
            "name": "X",
            "handoffPolicy": {"acceptFrom": ["general"], "requireApprovalFrom": ["sweep"]},
            "tests": [{"task": "t", "expectedKeywords": ["a", "b"]}],
        }
    )
    assert p.handoff_policy.accept_from == ["general"]
    assert p.handoff_policy.block_from == []
    dumped = p.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped["tests"] == [{"task": "t", "expectedKeywords": ["a", "b"]}]
    assert Profile.from_data(dumped) == p
