"""`%load_ext stagent_lab` stays light: the data stack loads with the first magic that needs it.

Each check runs in a fresh interpreter (a kernel's import state), and asserts which modules are
loaded, never how long anything took.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "pyarrow", "duckdb", "pydantic", "numpy", "anywidget", "ipywidgets")


def _loaded_after(lines: list[str]) -> list[str]:
    code = "\n".join(
        [
            "import sys",
            "from IPython.core.interactiveshell import InteractiveShell",
            "from traitlets.config import Config",
            "config = Config()",
            "config.HistoryManager.enabled = False",  # no history database in the user's dir
            "sh = InteractiveShell.instance(config=config)",
            *lines,
            f"print('LOADED:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED:"), out.stdout
    return [m for m in last.removeprefix("LOADED:").split(",") if m]


def test_load_ext_loads_no_data_stack_and_no_widgets():
    assert _loaded_after(["sh.run_line_magic('load_ext', 'stagent_lab')"]) == []


def test_help_needs_no_workspace_and_loads_nothing_heavy():
    lines = ["sh.run_line_magic('load_ext', 'stagent_lab')", "sh.run_line_magic('stagent', 'help')"]
    assert _loaded_after(lines) == []


def test_the_client_loads_on_first_use():
    lines = [
        "sh.run_line_magic('load_ext', 'stagent_lab')",
        "import stagent_lab",
        "stagent_lab.Lab",
    ]
    assert {"pydantic"} <= set(_loaded_after(lines))
