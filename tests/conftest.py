"""Shared fixtures: every test gets its own HOME and workspace, never the user's."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

TESTER_PROFILE = """\
id: tester
name: Tester
tags: [testing]
supportedRuntimes: [anthropic-direct]
allowedTools: [Read, Grep, Glob, Bash, Write, Edit]
canUseToolPolicy:
  autoApprove: [Read, Grep, Glob, Bash, Write, Edit]
maxTurns: 50
tests:
  - task: "say hello"
    expectedKeywords: [hello]
"""

GUARDED_PROFILE = """\
id: guarded
name: Guarded
tags: [testing]
supportedRuntimes: [anthropic-direct]
allowedTools: [Read, Glob, Bash, Write]
canUseToolPolicy:
  autoApprove: [Read, Glob]
  autoDeny: ["Bash(command:rm *)"]
maxTurns: 20
"""


def write_profile(
    root: Path, pid: str, yaml_text: str, skill: str = "You are a test agent."
) -> Path:
    d = root / pid
    d.mkdir(parents=True, exist_ok=True)
    (d / "profile.yaml").write_text(yaml_text)
    (d / "SKILL.md").write_text(f"---\nname: {pid}\ndescription: test profile\n---\n{skill}\n")
    return d


def engine_of(lab):
    """The engine behind an in-process Lab: a test seam for driving events directly."""
    return lab.workspace.service.engine


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("STAGENT_HOME", raising=False)
    # Unit tests run the engine in-process (fast, and a FakeClock can drive it); the tests of
    # the workspace service (tests/service/) switch to it explicitly. Any service a test starts
    # stops a few seconds after its last client leaves.
    monkeypatch.setenv("STAGENT_TRANSPORT", "in-process")
    monkeypatch.setenv("STAGENT_SERVICE_IDLE_TIMEOUT", "3")
    for var in (
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "ANTHROPIC_BASE_URL",
        "OPENAI_BASE_URL",
        "OLLAMA_HOST",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def profiles_dir(tmp_path) -> Path:
    root = tmp_path / "user-profiles"
    write_profile(root, "tester", TESTER_PROFILE)
    write_profile(root, "guarded", GUARDED_PROFILE)
    return root


@pytest.fixture
def project(tmp_path) -> Path:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "README.md").write_text("# Demo project\nA tiny project for tests.\n")
    (proj / "src" / "app.py").write_text(
        textwrap.dedent(
            """\
            import sqlite3

            def find(con, name):
                return con.execute(f"SELECT * FROM users WHERE name = '{name}'")  # TODO fix
            """
        )
    )
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    subprocess.run(["git", "init", "-q"], cwd=proj, check=True, env=env)
    subprocess.run(["git", "add", "-A"], cwd=proj, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "initial commit"], cwd=proj, check=True, env=env)
    return proj


@pytest.fixture
def lab(tmp_path, profiles_dir):
    from stagent_lab import Lab

    lab = Lab(home=tmp_path / "ws", profile_dirs=[profiles_dir])
    try:
        yield lab
    finally:
        lab.close()
