"""The analysis notebooks run end to end under nbval (offline, in a throwaway workspace).

nbval runs in a child pytest so the notebooks get their own kernel and the parent's options
(``-k``, ``-x``...) do not leak into them. Cells marked ``# NBVAL_CHECK_OUTPUT`` keep their
reference output in the .ipynb and must reproduce it; other cells only have to run cleanly.
If pytest itself is configured to collect notebooks/ with ``--nbval-lax``, this test steps aside.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["02_governance.ipynb", "03_cost_and_outcomes.ipynb"]

pytest.importorskip("nbval")
pytest.importorskip("ipykernel")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_under_nbval(name, request, tmp_path):
    if request.config.getoption("nbval_lax", default=False):
        pytest.skip("this pytest run already collects the notebooks with --nbval-lax")
    path = ROOT / "notebooks" / name
    assert path.is_file(), path
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
        str(path),
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=290)
    assert out.returncode == 0, f"{name} failed under nbval:\n{out.stdout[-6000:]}\n{out.stderr}"
    assert " passed" in out.stdout and "failed" not in out.stdout.splitlines()[-1]
