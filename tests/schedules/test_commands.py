"""``%stagent schedules|budgets`` through a real InteractiveShell, and the same commands in the
``stagent-lab`` CLI (a subprocess, as a user runs it)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from stagent_lab import Lab
from stagent_lab.notebook import set_lab
from tests.schedules.helpers import DONE_SCRIPT, wait_firings


@pytest.fixture
def shell(slab):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "stagent_lab")
    set_lab(slab)
    try:
        yield sh
    finally:
        set_lab(None)


def line(sh, text):
    return sh.run_line_magic("stagent", text)


def test_schedules_magics_list_fire_pause_resume_and_firings(shell, slab, clock, capsys):
    slab.schedules.add("nightly", "Job.", when="5m", script=DONE_SCRIPT)
    df = line(shell, "schedules")
    assert isinstance(df, pd.DataFrame)
    assert df["name"].tolist() == ["nightly"] and "next_fire_at" in df.columns
    assert "failure_streak" in df.columns
    line(shell, "schedules fire nightly")
    assert "firing #1 running" in capsys.readouterr().out
    wait_firings(slab, "nightly", 1)
    firings = line(shell, "schedules firings nightly")
    assert firings["number"].tolist() == [1] and firings["status"].tolist() == ["succeeded"]
    line(shell, "schedules pause nightly")
    assert "is paused" in capsys.readouterr().out
    line(shell, "schedules resume nightly")
    assert "is active (next: 2026-03-02 10:05 UTC)" in capsys.readouterr().out


def test_schedules_parse_magic_shows_cron_next_times_and_warnings(shell, capsys):
    df = line(shell, "schedules parse 'every weekday at 9am' --tz Europe/Paris")
    out = capsys.readouterr().out
    assert "0 9 * * 1-5  —  every weekday (Monday to Friday) at 09:00 (Europe/Paris)" in out
    assert df["utc"].tolist()[0] == "2026-03-03T08:00:00Z" and len(df) == 3
    line(shell, "schedules parse */7 * * * *")
    assert "warning: every 7 minutes" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schedules fire", "takes one schedule"),
        ("schedules frobnicate x", "unknown schedules command"),
        ("schedules parse", "needs the text"),
        ("schedules parse daily --tz", "--tz needs a zone"),
        ("schedules parse every 90 minutes", "1 to 59"),
        ("budgets disable", "takes one budget id"),
        ("budgets explode", "unknown budgets command"),
    ],
)
def test_mistakes_print_a_line_and_the_usage_never_a_traceback(shell, capsys, text, message):
    assert line(shell, text) is None
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    if "90" not in text:
        assert "usage: %stagent" in err


def test_budgets_magic_is_the_status(shell, slab):
    bid = slab.budgets.set("workspace", window="month", limit_usd=5)
    df = line(shell, "budgets")
    assert df["id"].tolist() == [bid] and df["state"].tolist() == ["ok"]
    line(shell, f"budgets disable {bid}")
    assert line(shell, "budgets status")["state"].tolist() == ["disabled"]


def run(*args: str, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "stagent_lab.cli", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_schedules_and_budgets(tmp_path):
    home = tmp_path / "ws"
    with Lab(home) as lab:
        lab.schedules.add("weekly", "Job.", when="every monday at 8am", script=DONE_SCRIPT)
    out = run(
        "schedules", "parse", "every", "weekday", "at", "9am", "--tz", "Europe/Paris", home=home
    )
    assert out.returncode == 0, out.stderr
    assert ("0 9 * * 1-5" in out.stdout and "+01:00" in out.stdout) or "+02:00" in out.stdout
    out = run("schedules", home=home)
    assert out.returncode == 0 and "weekly" in out.stdout
    out = run("schedules", "pause", "weekly", home=home)
    assert "schedule weekly is paused" in out.stdout
    out = run("budgets", "set", "workspace", "--window", "month", "--limit", "5", home=home)
    assert out.returncode == 0 and out.stdout.startswith("budget ")
    out = run("budgets", home=home)
    assert "workspace" in out.stdout and "month" in out.stdout
    out = run("schedules", "parse", "every", "other", "day", home=home)
    assert out.returncode == 1 and "every other" in out.stdout


def test_monitor_sections_show_next_firings_streaks_and_budgets(slab):
    from stagent_lab.api.requests import MonitorSnapshot

    slab.schedules.add("watch", "Job.", when="every hour", tz="Europe/Paris")
    slab.budgets.set("workspace", window="day", limit_usd=3)
    sections = slab.call(MonitorSnapshot())["sections"]
    row = sections["schedules"][0]
    assert row["name"] == "watch" and row["streak"] == "0/3"
    assert (
        row["next_fire"] == "2026-03-02 12:00 CET"
        and row["next_fire_utc"] == "2026-03-02 11:00 UTC"
    )
    budget = sections["budgets"][0]
    assert budget["scope"] == "workspace" and budget["state"] == "ok"
    assert budget["resets_at"] == "2026-03-03 00:00 UTC"
