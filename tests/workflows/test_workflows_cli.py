"""``stagent-lab workflows …`` run as a user would: a real subprocess, no terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

BIN = [sys.executable, "-m", "stagent_lab.cli"]

REVIEW = """\
name: review
pattern: checkpoint
profile: general
steps:
  - name: Review
    prompt: Review the change.
    script: [{result: "two findings"}]
  - name: Fix
    prompt: Fix the findings.
    script: [{result: "fixed both"}]
"""


def cli(*args: str, home: Path, timeout: float = 120):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.run(
        [*BIN, "--home", str(home), "workflows", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(360)  # four CLI processes, each opening the workspace
def test_create_run_approve_deny_show_and_list(tmp_path):
    home = tmp_path / "ws"
    spec = tmp_path / "review.yaml"
    spec.write_text(REVIEW)
    out = cli("create", str(spec), home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "created workflow review" in out.stdout
    out = cli("run", "review", "--approve", "allow", home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "started run #1 of review" in text
    assert "fix waits for approval" in text and "decided: allow (--approve)" in text
    assert "✓ fix" in text and "completed" in text and "fixed both" in text
    out = cli("run", "review", "--approve", "deny", home=home)
    assert out.returncode == 1 and "run #2" in out.stdout and "failed" in out.stdout
    con = duckdb.connect(str(home / "stagent.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT id, status FROM workflow_runs ORDER BY run_number").fetchall()
        assert [r[1] for r in rows] == ["completed", "failed"]
        n = con.execute("SELECT count(*) FROM tasks WHERE source = 'workflow'").fetchone()[0]
        assert n == 3  # the denied step never started a task
    finally:
        con.close()
    out = cli("show", rows[0][0][:6], home=home)
    assert "review run #1" in out.stdout and "fixed both" in out.stdout


def test_from_a_blueprint_and_mistakes_as_one_line_errors(tmp_path):
    home = tmp_path / "ws"
    out = cli("from", "release-notes", "version=1.2", home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "created workflow Release notes" in out.stdout and "skipped: Upgrade guide" in out.stdout
    out = cli("run", "nope", home=home)
    assert out.returncode == 1 and "error: no workflow named" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncolour: red\nsteps: [\n")
    out = cli("create", str(bad), home=home)
    assert out.returncode == 1 and f"{bad}:4" in out.stdout


def test_a_definition_file_with_an_unknown_field_names_it(tmp_path):
    import pytest

    from stagent_lab.errors import WorkflowDefinitionError
    from stagent_lab.workflows.cli import read_definition

    spec = tmp_path / "wf.yaml"
    spec.write_text("name: x\ncolour: red\nsteps: []\n")
    with pytest.raises(WorkflowDefinitionError, match="colour: unknown field"):
        read_definition(str(spec))
    spec.write_text(REVIEW)
    assert read_definition(str(spec))["pattern"] == "checkpoint"
