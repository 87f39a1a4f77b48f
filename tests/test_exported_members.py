"""The public API is exactly what __all__ says, and importing it pulls in no provider SDK."""

from __future__ import annotations

import subprocess
import sys

import stagent_lab


def test_all_names_exist():
    for name in stagent_lab.__all__:
        assert hasattr(stagent_lab, name), name


def test_public_names_are_listed():
    public = {n for n in dir(stagent_lab) if not n.startswith("_")}
    modules = {
        "api",
        "client",
        "service",
        "cli",
        "config",
        "engine",
        "errors",
        "governance",
        "profiles",
        "runtimes",
        "store",
        "tools",
        "usage",
        "memory",
        "handoffs",
        "schedules",
        "workflows",
        "notebook",
        "analytics",
        "channels",
        "chat",
    }
    assert public - modules - {"annotations"} <= set(stagent_lab.__all__)


def test_import_does_not_load_provider_sdks():
    code = (
        "import sys, stagent_lab; lab_mods = [m for m in ('anthropic', 'openai', "
        "'claude_agent_sdk', 'IPython', 'anywidget', 'ipywidgets') if m in sys.modules]; "
        "print(','.join(lab_mods))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_is_light():
    # `import stagent_lab` (and so `%load_ext stagent_lab`) loads no data stack: pandas, pyarrow,
    # DuckDB and pydantic come with the first Lab.
    code = (
        "import sys, stagent_lab; print(','.join(m for m in ('pandas', 'pyarrow', 'duckdb', "
        "'pydantic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
