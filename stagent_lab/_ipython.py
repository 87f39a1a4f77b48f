"""``%load_ext stagent_lab`` lands here. Only the magics module is imported; IPython is
already loaded in the kernel, and widgets, runtimes and provider SDKs load on first use."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    from stagent_lab.notebook.magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from stagent_lab.notebook.magics import unregister

    unregister(ipython)
