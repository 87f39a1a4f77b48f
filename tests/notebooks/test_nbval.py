"""Every notebook in notebooks/ runs end to end under nbval (offline, in a throwaway workspace).

nbval runs in a child pytest so each notebook gets its own real kernel (the widgets open real
comms) and the parent's options (``-k``, ``-x``...) do not leak into it. Cells marked
``# NBVAL_CHECK_OUTPUT`` keep their reference output in the .ipynb and must reproduce it (the
quickstart's last cell checks the run ended completed, decided by the profile and by a human);
other cells only have to run cleanly. A notebook added to notebooks/ is covered automatically.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_there():
    assert NOTEBOOKS[:3] == [
        "01_quickstart.ipynb",
        "02_governance.ipynb",
        "03_cost_and_outcomes.ipynb",
    ]
    assert "05_chat.ipynb" in NOTEBOOKS  # the chat, executed like the others


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_under_nbval(name, request, tmp_path):
    if request.config.getoption("nbval_lax", default=False):
        pytest.skip("this pytest run already collects the notebooks with --nbval-lax")
    path = ROOT / "notebooks" / name
    env = {**os.environ, "HOME": str(tmp_path), "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("STAGENT_HOME", None)
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
           "-p", "no:cacheprovider", "-q", "--timeout=240", str(path)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=290)
    tail = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, f"{name} failed under nbval:\n{out.stdout[-6000:]}\n{out.stderr}"
    assert " passed" in tail and "failed" not in tail
