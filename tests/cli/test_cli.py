"""The stagent-lab command, run as a user would: a real subprocess, no terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

BIN = [sys.executable, "-m", "stagent_lab.cli"]


def run(*args: str, home: Path, input: str | None = None, timeout: float = 120):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.run(
        [*BIN, "--home", str(home), *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        env=env,
    )


def test_demo_allow_runs_the_whole_loop(tmp_path):
    home = tmp_path / "demo"
    out = run("demo", "--approve", "allow", "--runtime", "scripted", home=home)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "approval needed: Bash" in text and "git status --short" in text
    assert "decided: allow (--approve)" in text
    # Events replayed from the store and those seen live are printed once each.
    assert text.count("status queued → running") == 1
    assert text.count("→ Glob ") == 1
    assert "SQL injection" in text and "app/auth.py" in text and "OWASP A03" in text
    assert "Nested loops: quadratic time" in text and "app/report.py:36" in text
    assert "Working tree: no uncommitted changes." in text
    assert "Permission decisions" in text and "human" in text and "profile_auto_approve" in text
    # The record is in DuckDB after the process is gone.
    con = duckdb.connect(str(home / "stagent.duckdb"), read_only=True)
    try:
        status, turns = con.execute("SELECT status, turns FROM tasks").fetchone()
        assert status == "completed" and turns >= 5
        n_ledger = con.execute("SELECT count(*) FROM usage_ledger").fetchone()[0]
        assert n_ledger == turns
        decided = con.execute(
            "SELECT decision, decided_by FROM inbox_items WHERE tool_name = 'Bash'"
        ).fetchall()
        assert decided == [("allow", "cli --approve")]
    finally:
        con.close()


def test_demo_deny_reaches_the_agent(tmp_path):
    out = run("demo", "--approve", "deny", "--runtime", "scripted", home=tmp_path / "demo")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Working tree not inspected: Permission denied (human): Denied by the demo" in out.stdout


def test_run_with_script_then_list_and_inspect(tmp_path, project):
    home = tmp_path / "ws"
    script = tmp_path / "script.yaml"
    script.write_text("- tool: Read\n  input: {file_path: README.md}\n- say: read the readme\n")
    out = run(
        "run",
        "look",
        "--profile",
        "general",
        "--project",
        str(project),
        "--script",
        str(script),
        home=home,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "read the readme" in out.stdout
    tasks = run("tasks", home=home)
    assert tasks.returncode == 0 and "completed" in tasks.stdout and "general" in tasks.stdout
    sql = run("sql", "SELECT count(*) AS n FROM tasks", home=home)
    assert sql.returncode == 0 and "│ 1 " in sql.stdout
    inbox = run("inbox", "list", home=home)
    assert inbox.returncode == 0 and "nothing waiting" in inbox.stdout


def test_profiles_commands(tmp_path):
    home = tmp_path / "ws"
    out = run("profiles", "list", home=home)
    assert out.returncode == 0
    for pid in ("code-reviewer", "travel-planner", "shopping-assistant"):
        assert pid in out.stdout
    show = run("profiles", "show", "code-reviewer", home=home)
    assert show.returncode == 0 and "OWASP" in show.stdout and "auto-approve: Read" in show.stdout


def test_errors_are_one_line_not_tracebacks(tmp_path):
    home = tmp_path / "ws"
    out = run("run", "x", "--profile", "nope", home=home)
    assert out.returncode == 1
    assert "error: unknown profile 'nope'; valid profiles:" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    out = run("inbox", "decide", "missing", "allow", home=home)
    assert out.returncode == 1 and "no inbox item with id 'missing'" in out.stdout
    out = run("logs", "nope", home=home)
    assert out.returncode == 1 and "no log rows for task 'nope'" in out.stdout


def test_runtimes_table_reports_reasons(tmp_path):
    out = run("runtimes", home=tmp_path / "ws")
    assert out.returncode == 0
    assert "scripted" in out.stdout and "True" in out.stdout
