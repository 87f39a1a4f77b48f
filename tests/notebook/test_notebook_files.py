"""The shipped notebooks read well: no accidental math, and each demo picks its runtime."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_markdown_has_no_dollar_pairs_that_render_as_math(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        prose = CODE.sub("", cell.source).replace("\\$", "")
        assert prose.count("$") < 2, f"{path.name} cell {i}: amounts in `code` or escape \\$"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_launch_chooses_the_offline_runtime_explicitly(path):
    """Routing never falls back to scripted on its own, so a notebook that runs offline says so."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for line in code.splitlines():
        if line.startswith(("%%stagent ", "%stagent chat")) and "--session" not in line:
            assert "--runtime scripted" in line or "runtimes.default" in code, line
