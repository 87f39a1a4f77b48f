"""Every ```python block in README.md and docs/ runs.

The blocks of one page run in order in one fresh interpreter (a page can build on earlier blocks),
with its own HOME, STAGENT_HOME and working folder. A block whose first line starts with
``# not run:`` is shown to readers but skipped here (it needs a real account, say); the reason is
part of the line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: Path) -> list[str]:
    return [b for b in BLOCK.findall(page.read_text()) if not b.lstrip().startswith("# not run:")]


RUNNABLE = [p for p in PAGES if blocks(p)]


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_page_examples_run(page, tmp_path):
    code = "\n\n".join(blocks(page))
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "STAGENT_HOME": str(tmp_path / "ws"),
        "PYTHONWARNINGS": "error::DeprecationWarning",
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, f"{page.name} examples failed:\n{out.stdout}\n{out.stderr}"


def test_not_run_blocks_say_why():
    for page in PAGES:
        for b in BLOCK.findall(page.read_text()):
            first = b.lstrip().splitlines()[0] if b.strip() else ""
            if first.startswith("# not run"):
                assert len(first) > len("# not run:") + 5, (
                    f"{page.name}: say why a block is not run"
                )


LINK = re.compile(r"\[[^\]]+\]\(([^)#:]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    missing = [t for t in LINK.findall(page.read_text()) if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"
