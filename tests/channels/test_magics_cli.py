"""``%stagent channels …`` through a real IPython shell, and ``stagent-lab channels …`` as a
subprocess (spec §5)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from stagent_lab import Lab
from stagent_lab.api.requests import MonitorSnapshot
from stagent_lab.notebook import set_lab
from tests.channels.support import add_hook, submit, wait_until
from tests.fakes.base import http_error


@pytest.fixture
def shell(clab):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "stagent_lab")
    set_lab(clab)
    try:
        yield sh
    finally:
        set_lab(None)


def line(sh, text):
    return sh.run_line_magic("stagent", text)


def test_channels_magic_lists_health_deliveries_and_acts(shell, clab, clock, hook):
    add_hook(clab, hook, events=["task.completed"])
    listed = line(shell, "channels")
    assert isinstance(listed, pd.DataFrame)
    assert listed["name"].tolist() == ["hook"] and listed["status"].tolist() == ["active"]
    assert listed["secrets"].tolist() == ["secret=HOOK_SECRET"]
    assert listed["secrets_set"].tolist() == [{"secret": True}]

    hook.fail("/hook", *[http_error(400)])  # permanent: dead at once
    assert submit(clab, "x", script=[{"result": "ok"}]).wait(20).status == "completed"
    assert wait_until(lambda: not line(shell, "channels deliveries --dead").empty)
    dead = line(shell, "channels deliveries --dead")
    assert dead["status"].tolist() == ["dead"]
    panel = clab._req(MonitorSnapshot)["sections"]["channels"]
    assert [(r["channel"], r["status"], r["dead"], r["sent"]) for r in panel] == [
        ("hook", "active", 1, 0)
    ]
    again = line(shell, f"channels redeliver {dead['id'].iloc[0][:8]}")
    assert again == {"delivery_id": dead["id"].iloc[0], "status": "pending"}
    assert wait_until(lambda: line(shell, "channels deliveries --status sent").shape[0] == 1)

    sent = line(shell, "channels test hook --text 'hello there'")
    assert sent["ok"] is True
    assert wait_until(lambda: any(b"hello there" in r.raw for r in hook.deliveries))
    assert line(shell, "channels disable hook")["status"] == "disabled"
    assert line(shell, "channels enable hook")["status"] == "active"


def test_channels_magic_mistakes_print_the_usage(shell, capsys):
    assert line(shell, "channels deliveries --direction sideways") is None
    err = capsys.readouterr().err
    assert "invalid choice: 'sideways'" in err and "usage: %stagent channels [list]" in err
    assert "Traceback" not in err
    assert line(shell, "channels test") is None
    assert "the following arguments are required: name" in capsys.readouterr().err


def run_cli(home, *args):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "stagent_lab.cli", "--home", str(home),
                           "channels", *args], capture_output=True, text=True, timeout=120,
                          env=env)  # fmt: skip


@pytest.mark.timeout(400)  # each call opens the workspace in a new process
def test_channels_cli(tmp_path, env, hook):
    home = tmp_path / "ws"
    with Lab(home, in_process=True) as lab:
        add_hook(lab, hook)
    out = run_cli(home, "frobnicate")  # parsed before the workspace is opened
    assert out.returncode == 2 and "usage: stagent-lab channels" in out.stdout
    out = run_cli(home)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "hook" in out.stdout and "HOOK_SECRET" in out.stdout and "active" in out.stdout
    out = run_cli(home, "disable", "hook")
    assert out.returncode == 0 and "status: disabled" in out.stdout
    assert "Traceback" not in out.stderr
