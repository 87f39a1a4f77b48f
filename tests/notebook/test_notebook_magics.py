"""%%stagent and %stagent through a real IPython InteractiveShell."""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest

from stagent_lab.notebook import get_lab, set_lab
from stagent_lab.notebook.handle import NotebookTaskHandle


def bash_echo(prompt, profile):  # a generator script: asks to run Bash, then answers
    yield {"tool": "Bash", "input": {"command": "echo from-the-magic"}}
    yield {"say": "all done"}


@pytest.fixture
def shell(lab):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "stagent_lab")
    set_lab(lab)
    try:
        yield sh
    finally:
        set_lab(None)


def cell(sh, line, body=""):
    return sh.run_cell_magic("stagent", line, body)


def test_load_ext_registers_magics_without_heavy_imports():
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_line_magic('load_ext', 'stagent_lab')\n"
        "mm = sh.magics_manager.magics\n"
        "print('stagent' in mm['line'], 'stagent' in mm['cell'])\n"
        "heavy = ['anywidget', 'ipywidgets', 'anthropic', 'openai', 'claude_agent_sdk']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split("\n")[:2] == ["True True", "[]"]


def test_launch_returns_handle_binds_name_and_interpolates(shell, lab, project):
    shell.user_ns.update(plan=bash_echo, target="src/app.py", n=2)
    handle = cell(
        shell,
        f"--profile guarded --runtime scripted --project {project} --script plan --name job "
        "--title 'Echo check' --max-turns 5",
        "Look at {target} and report {n} things.\nKeep {{target}} and {undefined}.\n",
    )
    assert isinstance(handle, NotebookTaskHandle)
    assert shell.user_ns["job"] is handle
    info = handle.info()
    assert info["prompt"] == (
        "Look at src/app.py and report 2 things.\nKeep {target} and {undefined}."
    )
    assert info["title"] == "Echo check"
    assert info["profile_id"] == "guarded" and info["runtime_id"] == "scripted"
    assert int(info["max_turns"]) == 5
    item = lab.wait_inbox(timeout=20, task=handle.id).iloc[0]
    assert item["tool_input"] == {"command": "echo from-the-magic"}
    lab.decide(item["id"], "allow")
    assert handle.wait(timeout=20).status == "completed"
    assert handle.result == "all done"


def test_unknown_interpolation_name_is_reported_not_fatal(shell, capsys):
    shell.user_ns["plan"] = [{"say": "ok"}]
    handle = cell(shell, "--profile tester --script plan", "print(f'{nobody_defines_this}')")
    assert handle is not None
    assert "note: {nobody_defines_this} left as written" in capsys.readouterr().err
    assert handle.wait(timeout=20).status == "completed"


def test_wait_blocks_until_done_and_shows_the_card_once(shell, capsys):
    shell.user_ns["plan"] = [{"say": "waited"}]
    handle = cell(shell, "--profile tester --script plan --wait", "quick one")
    assert handle.status == "completed"
    assert handle.result == "waited"
    out = capsys.readouterr().out
    # Shown once, before waiting: a terminal cannot update a display, so no copies follow.
    assert out.count("quick one [") == 1 and "TaskCard" not in out
    # The card follows the engine on its ≤ 10 Hz rounds, so it may trail wait() briefly.
    deadline = time.monotonic() + 20
    while handle.card.info["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert handle.card.info["status"] == "completed"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--profle guarded", "stagent: unknown option --profle (did you mean --profile?)"),
        ("--max-turns zero", "stagent: --max-turns takes a whole number, got 'zero'"),
        ("do the thing", "stagent: unexpected argument 'do'"),
    ],
)
def test_bad_option_prints_message_and_usage_without_traceback(shell, lab, capsys, line, expected):
    assert cell(shell, line, "prompt") is None
    err = capsys.readouterr().err
    assert err.startswith(expected)
    assert "usage: %%stagent [--profile P]" in err
    assert "Traceback" not in err
    assert lab.tasks().empty


def test_unknown_profile_and_runtime_list_the_valid_ones(shell, lab, capsys):
    assert cell(shell, "--profile nope", "x") is None
    err = capsys.readouterr().err
    assert "unknown profile 'nope'; valid profiles:" in err
    assert "guarded" in err and "tester" in err and "code-reviewer" in err
    assert cell(shell, "--profile tester --runtime warp", "x") is None
    err = capsys.readouterr().err
    assert "unknown runtime 'warp'; valid runtimes: claude-code" in err and "scripted" in err
    assert "Traceback" not in err
    assert lab.tasks().empty


def test_empty_prompt_and_missing_script_variable(shell, lab, capsys):
    assert cell(shell, "--profile tester", "  \n ") is None
    assert "the cell body is the prompt, and it is empty" in capsys.readouterr().err
    assert cell(shell, "--profile tester --script not_here", "x") is None
    assert "--script not_here: no variable with that name" in capsys.readouterr().err
    assert lab.tasks().empty


def test_line_commands_return_views_and_frames(shell, lab):
    shell.user_ns["plan"] = [{"say": "hello there"}]
    done = cell(shell, "--profile tester --script plan --wait", "greet")
    tasks = shell.run_line_magic("stagent", "tasks")
    assert tasks["id"].tolist() == [done.id]
    assert tasks.loc[0, "status"] == "completed"
    assert shell.run_line_magic("stagent", "tasks failed").empty
    q = shell.run_line_magic(
        "stagent", "sql SELECT count(*) AS n FROM tasks WHERE status = 'completed'"
    )
    assert q["n"].tolist() == [1]
    q2 = shell.run_cell_magic("stagent", "sql", "SELECT title FROM tasks")
    assert q2["title"].tolist() == ["greet"]
    cost = shell.run_line_magic("stagent", "cost")
    assert isinstance(cost, pd.DataFrame) and "cost_usd" in cost.columns
    memory = shell.run_line_magic("stagent", "memory --table")
    assert {"profile_id", "category", "content", "confidence"} <= set(memory.columns)
    assert set(memory["profile_id"]) <= {"tester"}  # outcome memories, if that feature is on
    assert shell.run_line_magic("stagent", "memory --table guarded").empty
    profiles = shell.run_line_magic("stagent", "profiles")
    assert {"guarded", "tester", "code-reviewer"} <= {p["id"] for p in profiles.profiles}
    inbox = shell.run_line_magic("stagent", "inbox")
    assert inbox.items == [] and inbox.recent == []
    monitor = shell.run_line_magic("stagent", "monitor")
    deadline = time.monotonic() + 20  # the monitor refreshes on its ≤ 10 Hz rounds
    while monitor.stats["completed"] != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert monitor.stats["completed"] == 1 and monitor.stats["tasks_today"] == 1
    card_handle = shell.run_line_magic("stagent", f"task {done.id[:5]}")
    assert card_handle.id == done.id and card_handle.card.info["status"] == "completed"
    # Running the cell again shows the same inbox and monitor models, not new pollers.
    assert shell.run_line_magic("stagent", "inbox") is inbox
    assert shell.run_line_magic("stagent", "monitor") is monitor
    for widget in (profiles, inbox, monitor):
        widget.close()
    assert shell.run_line_magic("stagent", "inbox") is not inbox  # closed: a fresh one


def test_cancel_and_resume_by_id_prefix(shell, lab, project, capsys):
    shell.user_ns["plan"] = bash_echo
    h = cell(shell, f"--profile guarded --project {project} --script plan", "needs approval")
    lab.wait_inbox(timeout=20, task=h.id)
    assert shell.run_line_magic("stagent", f"cancel {h.id[:6]}") is None
    assert f"cancelling task {h.id}" in capsys.readouterr().out
    assert h.wait(timeout=20).status == "cancelled"
    resumed = shell.run_line_magic("stagent", f"resume {h.id}")
    assert isinstance(resumed, NotebookTaskHandle) and resumed.id == h.id
    item = lab.wait_inbox(timeout=20, task=h.id).iloc[0]
    lab.decide(item["id"], "allow")
    assert h.wait(timeout=20).status == "completed"
    assert shell.run_line_magic("stagent", f"cancel {h.id}") is None
    err = capsys.readouterr().err
    assert err.startswith(f"stagent: task {h.id} is completed; only active tasks can be cancelled")


def test_command_errors_are_one_line(shell, capsys):
    assert shell.run_line_magic("stagent", "inbx") is None
    err = capsys.readouterr().err
    assert err.startswith("stagent: unknown command 'inbx' (did you mean inbox?)")
    assert "usage: %stagent inbox | monitor" in err
    assert shell.run_line_magic("stagent", "cancel feedbeef") is None
    assert capsys.readouterr().err == ("stagent: no task with id 'feedbeef' (see %stagent tasks)\n")
    assert shell.run_line_magic("stagent", "sql SELEC 1") is None
    err = capsys.readouterr().err
    assert err.startswith("stagent: SQL does not parse: Parser Error")
    assert "Traceback" not in err
    assert shell.run_line_magic("stagent", "memory nobody") is None
    assert "unknown profile 'nobody'" in capsys.readouterr().err
    shell.run_line_magic("stagent", "")
    out = capsys.readouterr().out
    assert out.startswith("%%stagent [--profile P]") and "%stagent COMMAND" in out


def test_use_switches_workspace_and_closes_only_what_it_opened(shell, lab, tmp_path, capsys):
    shell.run_line_magic("stagent", f"use {tmp_path / 'other'}")
    other = get_lab()
    assert other is not lab and other.home == (tmp_path / "other").resolve()
    assert "using the workspace at" in capsys.readouterr().out
    set_lab(lab)  # the magic opened `other`, so replacing it closes it ...
    assert other._closed
    assert not lab._closed  # ... but the fixture's lab is never closed by us


def test_help_is_the_full_usage_with_examples_and_is_the_magics_docstring(shell, capsys):
    shell.run_line_magic("stagent", "help")
    out = capsys.readouterr().out
    for text in ("--profile P", "--runtime R", "--wait", "%stagent COMMAND", "inbox", "monitor",
                 "chat [--profile P]", "sql QUERY", "Examples", "%stagent cost profile day",
                 "Tab completes", "runtimes.default"):  # fmt: skip
        assert text in out, text
    magic = shell.find_line_magic("stagent")
    assert magic.__doc__ == out.rstrip("\n") + "\n" or magic.__doc__.strip() == out.strip()
    info = shell.object_inspect("%stagent")
    assert "Examples" in (info.get("docstring") or "")


def test_tasks_and_cost_tables_keep_rows_on_one_line(shell):
    from stagent_lab.notebook.tables import Table

    shell.user_ns["plan"] = [{"say": "ok"}]
    cell(shell, "--profile tester --script plan --wait --title 'A long title with many words'", "x")
    tasks = shell.run_line_magic("stagent", "tasks")
    cost = shell.run_line_magic("stagent", "cost runtime day")
    for table in (tasks, cost):
        assert isinstance(table, Table) and isinstance(table, pd.DataFrame)
        html = table._repr_html_()
        assert "white-space: nowrap" in html and "overflow-x: auto" in html
        assert "text-overflow: ellipsis" in html
    assert isinstance(tasks[tasks["status"] == "completed"], Table)  # still a frame to work with
    assert tasks.loc[0, "title"] == "A long title with many words"  # the data is not cut


def test_a_launch_with_no_usable_runtime_says_how_to_set_one_up(shell, lab, capsys):
    assert cell(shell, "--profile tester", "no runtime chosen") is None
    err = capsys.readouterr().err
    assert err.startswith("stagent: no usable runtime for profile tester")
    assert "runtime='scripted'" in err and "runtimes.default" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert lab.tasks().empty
    lab.set_setting("runtimes.default", "scripted")
    handle = cell(shell, "--profile tester", "now it runs offline")
    assert handle.wait(timeout=20).info()["runtime_id"] == "scripted"
