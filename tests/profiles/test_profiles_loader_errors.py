"""Every malformed profile yields a ProfileError naming the file, the line and the reason."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from stagent_lab.errors import ProfileError
from stagent_lab.profiles import load_profile

SKILL = "---\nname: Demo\ndescription: A demo profile.\n---\nYou are a demo agent.\n"


def make(root: Path, yaml_text: str | bytes | None, skill: str | None = SKILL, pid="demo") -> Path:
    d = root / pid
    d.mkdir(parents=True, exist_ok=True)
    if yaml_text is not None:
        data = yaml_text if isinstance(yaml_text, bytes) else textwrap.dedent(yaml_text).encode()
        (d / "profile.yaml").write_bytes(data)
    if skill is not None:
        (d / "SKILL.md").write_text(skill, encoding="utf-8")
    return d


# (case id, profile.yaml text, expected line, substring of the reason)
YAML_CASES = [
    (
        "yaml-syntax",
        """\
        id: demo
        name: Demo
        tags: [a, b
        maxTurns: 5
        """,
        4,
        "YAML error",
    ),
    (
        "max-turns-too-high",
        """\
        id: demo
        name: Demo
        version: "1.0.0"
        domain: work
        tags: [a]
        allowedTools: [Read]
        maxTurns: 600
        """,
        7,
        "maxTurns: Input should be less than or equal to 500",
    ),
    (
        "max-turns-not-int",
        """\
        id: demo
        name: Demo
        maxTurns: lots
        """,
        3,
        "maxTurns: Input should be a valid integer",
    ),
    (
        "unknown-key-with-suggestion",
        """\
        id: demo
        name: Demo
        maxTurn: 5
        """,
        3,
        "unknown key 'maxTurn' (did you mean 'maxTurns'?)",
    ),
    (
        "nested-unknown-key",
        """\
        id: demo
        name: Demo
        canUseToolPolicy:
          autoApprove: [Read]
          autoAllow: [Grep]
        """,
        5,
        "canUseToolPolicy: unknown key 'autoAllow'",
    ),
    (
        "top-level-list",
        """\
        - id: demo
        - name: Demo
        """,
        1,
        "top level must be a mapping, not a list",
    ),
    (
        "id-mismatch",
        """\
        name: Demo
        id: other
        """,
        2,
        "id 'other' does not match its folder name 'demo'",
    ),
    (
        "id-path-escape",
        """\
        id: ../etc
        name: Demo
        """,
        1,
        "invalid id '../etc'",
    ),
    (
        "id-with-slash",
        """\
        id: a/b
        name: Demo
        """,
        1,
        "invalid id 'a/b'",
    ),
    (
        "missing-name",
        """\
        id: demo
        tags: [x]
        """,
        1,
        "missing required key 'name'",
    ),
    (
        "unknown-runtime",
        """\
        id: demo
        name: Demo
        supportedRuntimes:
          - claude-code
          - gpt-cli
        """,
        5,
        "supportedRuntimes[1]: unknown runtime 'gpt-cli'",
    ),
    (
        "preferred-not-supported",
        """\
        id: demo
        name: Demo
        supportedRuntimes: [claude-code]
        preferredRuntime: ollama
        """,
        4,
        "preferredRuntime 'ollama' is not in supportedRuntimes",
    ),
    (
        "bad-rule",
        """\
        id: demo
        name: Demo
        allowedTools: [Read, Bash]
        canUseToolPolicy:
          autoApprove:
            - Read
            - "Bash(command:git *"
        """,
        7,
        "canUseToolPolicy.autoApprove[1]: invalid rule",
    ),
    (
        "empty-expected-keywords",
        """\
        id: demo
        name: Demo
        tests:
          - task: say hello
            expectedKeywords: []
        """,
        5,
        "tests[0].expectedKeywords: List should have at least 1 item",
    ),
    (
        "temperature-out-of-range",
        """\
        id: demo
        name: Demo
        temperature: 3
        """,
        3,
        "temperature: Input should be less than or equal to 2",
    ),
    (
        "duplicate-key",
        """\
        id: demo
        name: Demo
        maxTurns: 5
        maxTurns: 50
        """,
        4,
        "duplicate key 'maxTurns'",
    ),
    (
        "override-unknown-runtime-key",
        """\
        id: demo
        name: Demo
        runtimeOverrides:
          claude-code:
            maxTurns: 5
          gemini:
            model: x
        """,
        6,
        "runtimeOverrides.gemini: unknown runtime 'gemini'",
    ),
    (
        "thinking-budget-too-small",
        """\
        id: demo
        name: Demo
        capabilityOverrides:
          anthropic-direct:
            extendedThinking:
              enabled: true
              budgetTokens: 100
        """,
        7,
        "budgetTokens: Input should be greater than or equal to 1024",
    ),
    (
        "bad-tool-name",
        """\
        id: demo
        name: Demo
        allowedTools:
          - Read
          - rm -rf
        """,
        5,
        "invalid tool name 'rm -rf'",
    ),
    (
        "tags-not-a-list",
        """\
        id: demo
        name: Demo
        tags: 5
        """,
        3,
        "tags: Input should be a valid list",
    ),
    (
        "trust-flag-not-settable",
        """\
        id: demo
        name: Demo
        origin: builtin
        """,
        3,
        "unknown key 'origin'",
    ),
    (
        "python-tag-refused",
        """\
        id: demo
        name: !!python/object/apply:os.getcwd []
        """,
        2,
        "YAML tag '!!python/object/apply:os.getcwd' is not allowed",
    ),
]


@pytest.mark.parametrize(
    ("yaml_text", "line", "reason"), [c[1:] for c in YAML_CASES], ids=[c[0] for c in YAML_CASES]
)
def test_malformed_yaml_is_reported_with_file_and_line(tmp_path, yaml_text, line, reason):
    folder = make(tmp_path, yaml_text)
    with pytest.raises(ProfileError) as info:
        load_profile(folder)
    err = info.value
    assert err.file == str(folder / "profile.yaml")
    assert err.line == line, str(err)
    assert reason in err.reason, str(err)
    assert err.profile_id == "demo"
    assert str(err).startswith(f"{folder / 'profile.yaml'}:{line}: ")


def test_empty_file_is_an_error(tmp_path):
    folder = make(tmp_path, "")
    with pytest.raises(ProfileError, match="file is empty") as info:
        load_profile(folder)
    assert info.value.file == str(folder / "profile.yaml")
    assert info.value.line is None


def test_comment_only_file_is_empty(tmp_path):
    folder = make(tmp_path, "# nothing here\n")
    with pytest.raises(ProfileError, match="file is empty"):
        load_profile(folder)


def test_non_utf8_bytes_report_their_line(tmp_path):
    folder = make(tmp_path, b"id: demo\nname: Demo\ndescription: caf\xe9\n")
    with pytest.raises(ProfileError, match="not valid UTF-8") as info:
        load_profile(folder)
    assert info.value.line == 3
    assert "0xe9" in info.value.reason


def test_python_object_apply_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    yaml_text = f"id: demo\nname: !!python/object/apply:os.system ['touch {marker}']\n"
    folder = make(tmp_path, yaml_text)
    with pytest.raises(ProfileError) as info:
        load_profile(folder)
    assert info.value.line == 2
    assert "python/object/apply:os.system" in info.value.reason
    assert not marker.exists()


def test_alias_bomb_is_refused(tmp_path):
    lines = ["id: demo", "name: Demo", "a: &a [x, x, x, x, x, x, x, x, x, x]"]
    prev = "a"
    for name in "bcdefgh":
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
        prev = name
    folder = make(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ProfileError, match="document too large"):
        load_profile(folder)


def test_unclosed_front_matter_points_at_skill_md(tmp_path):
    folder = make(tmp_path, "id: demo\nname: Demo\n", skill="---\nname: Demo\nno end here\n")
    with pytest.raises(ProfileError, match="never closed") as info:
        load_profile(folder)
    assert info.value.file == str(folder / "SKILL.md")
    assert info.value.line == 1


def test_front_matter_yaml_error_has_the_file_line(tmp_path):
    skill = "---\nname: Demo\ndescription: [unclosed\n---\nbody\n"
    folder = make(tmp_path, "id: demo\nname: Demo\n", skill=skill)
    with pytest.raises(ProfileError, match="YAML error") as info:
        load_profile(folder)
    assert info.value.file == str(folder / "SKILL.md")
    assert info.value.line == 4  # the parser notices at the closing line


def test_front_matter_description_must_be_text(tmp_path):
    skill = "---\nname: Demo\ndescription:\n  nested: mapping\n---\nbody\n"
    folder = make(tmp_path, "id: demo\nname: Demo\n", skill=skill)
    with pytest.raises(ProfileError, match="'description' must be text") as info:
        load_profile(folder)
    assert info.value.line == 3


def test_folder_without_either_file(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    with pytest.raises(ProfileError, match=r"no profile\.yaml or SKILL\.md"):
        load_profile(folder)


def test_profile_yaml_that_is_not_a_regular_file(tmp_path):
    folder = make(tmp_path, None)
    (folder / "profile.yaml").mkdir()
    with pytest.raises(ProfileError, match="not a regular file"):
        load_profile(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path):
    folder = make(tmp_path, None)
    os.mkfifo(folder / "profile.yaml")
    with pytest.raises(ProfileError, match="not a regular file"):
        load_profile(folder)


def test_several_problems_are_summarised_in_line_order(tmp_path):
    yaml_text = "id: demo\nname: Demo\ntemperature: 9\nmaxTurns: 0\nfoo: 1\n"
    folder = make(tmp_path, yaml_text)
    with pytest.raises(ProfileError) as info:
        load_profile(folder)
    err = info.value
    assert err.line == 3
    assert err.reason.startswith("temperature:")
    assert "line 4: maxTurns" in err.reason and "line 5: unknown key 'foo'" in err.reason


def test_skill_only_folder_with_bad_name_says_where_the_id_came_from(tmp_path):
    folder = make(tmp_path, None, pid="My Skill")
    with pytest.raises(ProfileError, match="id comes from the folder name") as info:
        load_profile(folder)
    assert info.value.file == str(folder / "SKILL.md")
