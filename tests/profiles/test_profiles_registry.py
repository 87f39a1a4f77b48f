"""Registry: discovery order, overrides, hot reload by stat signature, isolation of bad profiles."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import stagent_lab.profiles.registry as registry_mod
from stagent_lab.errors import ProfileError, ProfileNotFoundError
from stagent_lab.profiles import (
    DEFAULT_ALLOWED_TOOLS,
    KNOWN_RUNTIMES,
    ProfileRegistry,
    builtin_profiles_dir,
    default_profile_dirs,
)


def put(root: Path, pid: str, name: str, extra: str = "", body: str = "Do the work.") -> Path:
    d = root / pid
    d.mkdir(parents=True, exist_ok=True)
    (d / "profile.yaml").write_text(f"id: {pid}\nname: {name}\n{extra}")
    (d / "SKILL.md").write_text(f"---\nname: {name}\ndescription: about {pid}\n---\n{body}\n")
    return d


@pytest.fixture
def counting(monkeypatch):
    """Count folder parses by wrapping the loader the registry calls."""
    calls: list[Path] = []
    real = registry_mod.load_profile

    def wrapper(directory, **kwargs):
        calls.append(Path(directory))
        return real(directory, **kwargs)

    monkeypatch.setattr(registry_mod, "load_profile", wrapper)
    return calls


def test_lists_and_gets_profiles(tmp_path):
    put(tmp_path, "beta", "Beta")
    put(tmp_path, "alpha", "Alpha")
    reg = ProfileRegistry([tmp_path])
    assert reg.ids() == ["alpha", "beta"]
    assert [p.id for p in reg.all()] == ["alpha", "beta"]
    assert reg.get("alpha").name == "Alpha"
    assert "beta" in reg and "gamma" not in reg
    assert len(reg) == 2
    assert reg.get("beta").origin == "user"


def test_unknown_id_lists_valid_ids(tmp_path):
    put(tmp_path, "alpha", "Alpha")
    reg = ProfileRegistry([tmp_path])
    with pytest.raises(ProfileNotFoundError) as info:
        reg.get("nope")
    assert info.value.valid == ["alpha"]
    assert "valid profiles: alpha" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_editing_a_file_changes_the_next_get(tmp_path):
    folder = put(tmp_path, "alpha", "Alpha")
    reg = ProfileRegistry([tmp_path])
    assert reg.get("alpha").max_turns == 20
    (folder / "profile.yaml").write_text("id: alpha\nname: Alpha\nmaxTurns: 7\n")
    assert reg.get("alpha").max_turns == 7


def test_same_size_edit_is_seen_through_mtime(tmp_path):
    folder = put(tmp_path, "alpha", "Alpha", body="Version A.")
    reg = ProfileRegistry([tmp_path])
    assert reg.get("alpha").skill_md.strip() == "Version A."
    skill = folder / "SKILL.md"
    before = skill.stat()
    skill.write_text(skill.read_text().replace("Version A.", "Version B."))
    os.utime(skill, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000))
    assert skill.stat().st_size == before.st_size
    assert reg.get("alpha").skill_md.strip() == "Version B."


def test_added_folder_appears_and_deleted_folder_goes(tmp_path):
    put(tmp_path, "alpha", "Alpha")
    reg = ProfileRegistry([tmp_path])
    assert reg.ids() == ["alpha"]
    put(tmp_path, "beta", "Beta")
    assert reg.ids() == ["alpha", "beta"]
    shutil.rmtree(tmp_path / "alpha")
    assert reg.ids() == ["beta"]
    with pytest.raises(ProfileNotFoundError):
        reg.get("alpha")


def test_nothing_is_reparsed_when_nothing_changed(tmp_path, counting):
    put(tmp_path, "alpha", "Alpha")
    put(tmp_path, "beta", "Beta")
    reg = ProfileRegistry([tmp_path])
    reg.ids()
    reg.get("alpha")
    reg.all()
    assert "beta" in reg
    assert len(counting) == 2
    assert reg.parse_count == 2


def test_only_the_changed_folder_is_reparsed(tmp_path, counting):
    put(tmp_path, "alpha", "Alpha")
    put(tmp_path, "beta", "Beta")
    reg = ProfileRegistry([tmp_path])
    reg.ids()
    counting.clear()
    (tmp_path / "beta" / "profile.yaml").write_text("id: beta\nname: Beta Two\n")
    assert reg.get("beta").name == "Beta Two"
    assert counting == [tmp_path / "beta"]


def test_bad_profile_is_reported_and_does_not_hide_others(tmp_path):
    put(tmp_path, "alpha", "Alpha")
    put(tmp_path, "broken", "Broken", extra="maxTurns: 9000\n")
    put(tmp_path, "gamma", "Gamma")
    reg = ProfileRegistry([tmp_path])
    assert reg.ids() == ["alpha", "gamma"]
    errors = reg.errors()
    assert len(errors) == 1
    assert isinstance(errors[0], ProfileError)
    assert errors[0].file == str(tmp_path / "broken" / "profile.yaml")
    assert errors[0].line == 3
    assert errors[0].profile_id == "broken"
    # fixing the file clears the error on the next access
    (tmp_path / "broken" / "profile.yaml").write_text("id: broken\nname: Broken\n")
    assert reg.errors() == []
    assert "broken" in reg


def test_later_dirs_override_earlier_ones(tmp_path):
    low, mid, high = tmp_path / "low", tmp_path / "mid", tmp_path / "high"
    put(low, "shared", "Low")
    put(low, "only-low", "Only low")
    put(mid, "shared", "Mid")
    put(high, "shared", "High")
    reg = ProfileRegistry([low, mid, high])
    assert reg.get("shared").name == "High"
    assert reg.get("shared").source_dir == high / "shared"
    assert reg.get("only-low").name == "Only low"
    assert reg.overridden == {"shared": [low / "shared", mid / "shared"]}
    assert reg.errors() == []


def test_broken_override_falls_back_to_the_earlier_profile(tmp_path):
    low, high = tmp_path / "low", tmp_path / "high"
    put(low, "shared", "Low")
    put(high, "shared", "High", extra="bogus: 1\n")
    reg = ProfileRegistry([low, high])
    assert reg.get("shared").name == "Low"
    assert [e.file for e in reg.errors()] == [str(high / "shared" / "profile.yaml")]


def test_missing_dirs_hidden_and_empty_folders_are_ignored(tmp_path):
    put(tmp_path / "real", "alpha", "Alpha")
    (tmp_path / "real" / "empty-folder").mkdir()
    (tmp_path / "real" / ".hidden").mkdir()
    (tmp_path / "real" / ".hidden" / "SKILL.md").write_text("hidden")
    (tmp_path / "real" / "stray-file.txt").write_text("not a profile")
    reg = ProfileRegistry([tmp_path / "does-not-exist", tmp_path / "real"])
    assert reg.ids() == ["alpha"]
    assert reg.errors() == []
    # a directory that appears later is picked up
    put(tmp_path / "does-not-exist", "late", "Late")
    assert reg.ids() == ["alpha", "late"]


def test_claude_skills_folder_with_only_skill_md(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: home))
    skill_dir = home / ".claude" / "skills" / "pdf-summarizer"
    skill_dir.mkdir(parents=True)
    (skill_dir / "SKILL.md").write_text(
        "---\nname: PDF Summarizer\ndescription: Summarizes PDF reports.\nlicense: MIT\n---\n"
        "# PDF summarizer\n\nRead the PDF and summarize it.\n"
    )
    workspace = tmp_path / "ws"
    dirs = default_profile_dirs(workspace, [tmp_path / "extra"])
    assert dirs == [
        builtin_profiles_dir(),
        home / ".claude" / "skills",
        workspace / "profiles",
        tmp_path / "extra",
    ]
    reg = ProfileRegistry(dirs)
    p = reg.get("pdf-summarizer")
    assert p.name == "PDF Summarizer"
    assert p.description == "Summarizes PDF reports."
    assert p.skill_md.startswith("# PDF summarizer")
    assert p.allowed_tools == list(DEFAULT_ALLOWED_TOOLS)
    assert all(p.runtime_supported(r) for r in KNOWN_RUNTIMES)
    assert p.origin == "user"
    assert reg.get("code-reviewer").origin == "builtin"
    assert len(reg.ids()) == 21


def test_user_profile_overrides_builtin(tmp_path):
    user = tmp_path / "profiles"
    put(user, "code-reviewer", "My Reviewer")
    reg = ProfileRegistry([builtin_profiles_dir(), user])
    p = reg.get("code-reviewer")
    assert p.name == "My Reviewer"
    assert p.origin == "user"
    assert reg.overridden["code-reviewer"][0].name == "code-reviewer"


def test_skill_only_profile_without_description_uses_first_paragraph(tmp_path):
    d = tmp_path / "notes"
    d.mkdir()
    (d / "SKILL.md").write_text("# Notes helper\n\nKeeps meeting notes tidy and short.\n")
    p = ProfileRegistry([tmp_path]).get("notes")
    assert p.name == "notes"
    assert p.description == "Keeps meeting notes tidy and short."


def test_yaml_only_profile_loads_with_empty_instructions(tmp_path):
    d = tmp_path / "bare"
    d.mkdir()
    (d / "profile.yaml").write_text("id: bare\nname: Bare\n")
    p = ProfileRegistry([tmp_path]).get("bare")
    assert p.skill_md == ""
    assert p.instructions_for("claude-code") == ""


# ---- get(): the cheap path a submit takes -----------------------------------------------


def _bump(path: Path) -> None:
    """Edit in place with a new size (the stat signature changes whatever the clock does)."""
    path.write_text(path.read_text() + "\n")


def test_get_stats_only_the_asked_profile_until_a_full_scan_is_due(tmp_path):
    put(tmp_path, "alpha", "Alpha")
    put(tmp_path, "beta", "Beta")
    reg = ProfileRegistry([tmp_path])
    reg.get("alpha")
    scans = reg.scan_count
    for _ in range(50):
        reg.get("alpha")
    assert reg.scan_count == scans  # no folder walk per submit

    # An in-place edit of the asked profile is seen at once, without waiting for the window.
    (tmp_path / "alpha" / "profile.yaml").write_text("id: alpha\nname: Alpha two\n")
    assert reg.get("alpha").name == "Alpha two"
    # A new folder, or a removed one, changes the directory: seen at once too.
    put(tmp_path, "gamma", "Gamma")
    assert reg.get("gamma").name == "Gamma"
    shutil.rmtree(tmp_path / "beta")
    scans = reg.scan_count
    reg.get("alpha")
    assert reg.scan_count == scans + 1
    with pytest.raises(ProfileNotFoundError):
        reg.get("beta")


def test_another_profile_taking_over_an_id_is_seen_after_the_full_scan_window(
    tmp_path, monkeypatch
):
    """A broken profile in a later folder, fixed in place, overrides the asked one: neither
    the asked profile's files nor any directory change, so only a full scan sees it."""
    low, high = tmp_path / "low", tmp_path / "high"
    put(low, "shared", "From low")
    put(high, "shared", "From high", extra="maxTurns: -5\n")  # broken: skipped
    now = [1000.0]
    monkeypatch.setattr(registry_mod.time, "monotonic", lambda: now[0])
    reg = ProfileRegistry([low, high])
    assert reg.get("shared").name == "From low"  # a full scan at t=1000
    assert len(reg.errors()) == 1
    (high / "shared" / "profile.yaml").write_text("id: shared\nname: From high\n")
    now[0] += registry_mod.FULL_SCAN_EVERY_S / 2
    assert reg.get("shared").name == "From low"  # inside the window: the cached winner
    now[0] += registry_mod.FULL_SCAN_EVERY_S
    assert reg.get("shared").name == "From high"  # the window passed: a full scan
    assert reg.errors() == []
