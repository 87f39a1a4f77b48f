"""notebooks/01_quickstart.ipynb runs end to end under nbval, offline, in a throwaway workspace.

nbval runs in a child pytest so the notebook gets its own kernel (a real ipykernel, so the
widgets open real comms). The quickstart approves its pending request in code, and its last
cell is marked ``# NBVAL_CHECK_OUTPUT``: the run must end completed, decided by the profile
and by a human, with no rule saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "notebooks" / "01_quickstart.ipynb"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quickstart_runs_under_nbval(request, tmp_path):
    if request.config.getoption("nbval_lax", default=False):
        pytest.skip("this pytest run already collects the notebooks with --nbval-lax")
    assert QUICKSTART.is_file(), QUICKSTART
    env = {**os.environ, "HOME": str(tmp_path), "JUPYTER_PLATFORM_DIRS": "1"}
    env.pop("STAGENT_HOME", None)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        "-p",
        "no:cacheprovider",
        "-q",
        "--timeout=240",
        str(QUICKSTART),
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=290)
    tail = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, (
        f"quickstart failed under nbval:\n{out.stdout[-6000:]}\n{out.stderr}"
    )
    assert " passed" in tail and "failed" not in tail
