"""The notebook surface: ``%stagent`` magics and live anywidget views of tasks.

One ``Lab`` per kernel. ``get_lab()`` opens the workspace lazily on first use (``STAGENT_HOME``
or the user data dir); ``set_lab(lab)`` lets a notebook bring its own, e.g. a temporary
workspace so a notebook run is isolated and repeatable:

    lab = Lab(home=tempfile.mkdtemp())
    set_lab(lab)
    %load_ext stagent_lab

Importing this module is cheap: IPython, ipywidgets and anywidget load only when a magic runs
or a widget is built. The widget classes are importable from here (``TaskCard``, ``Inbox``,
``Monitor``, ``ProfilesView``, ``MemoryBrowser``, ``ChatView``) and load on first access.
"""

from __future__ import annotations

import atexit
import importlib
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

__all__ = [
    "ChatView",
    "Inbox",
    "MemoryBrowser",
    "Monitor",
    "ProfilesView",
    "TaskCard",
    "get_lab",
    "load_ipython_extension",
    "set_lab",
    "use_home",
]

_lock = threading.RLock()
_lab: Lab | None = None
_owned = False  # True when get_lab()/use_home() opened it, so we may close it


def _is_open(lab: Lab | None) -> bool:
    return lab is not None and not getattr(lab, "_closed", False)


def get_lab() -> Lab:
    """The kernel's Lab: the one given to ``set_lab``, else one opened now (STAGENT_HOME)."""
    global _lab, _owned
    with _lock:
        if not _is_open(_lab):
            from stagent_lab.client.lab import Lab

            _lab, _owned = Lab(), True
        assert _lab is not None
        return _lab


def set_lab(lab: Lab | None) -> None:
    """Make ``lab`` the one the magics and widgets use (``None`` forgets it).

    A Lab this module opened itself is closed when replaced (it holds the workspace lock);
    a Lab the caller passed in stays the caller's to close.
    """
    global _lab, _owned
    with _lock:
        previous, was_owned = _lab, _owned
        _lab, _owned = lab, False
    if previous is not None and previous is not lab:
        _stop_live(previous)
        if was_owned:
            previous.close()


def use_home(home: str | os.PathLike[str]) -> Lab:
    """Open the workspace at ``home`` and make it the kernel's Lab (``%stagent use HOME``)."""
    global _owned
    from stagent_lab.client.lab import Lab

    lab = Lab(home=home)
    set_lab(lab)
    with _lock:
        _owned = True
    return lab


def _stop_live(lab: Lab) -> None:
    live = importlib.import_module("stagent_lab.notebook.live")
    live.stop_hub(lab)


@atexit.register
def _close_owned() -> None:
    with _lock:
        lab = _lab if _owned else None
    if _is_open(lab):
        assert lab is not None
        lab.close()


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%stagent`` / ``%%stagent`` magics on ``ipython``."""
    from stagent_lab.notebook.magics import register

    register(ipython)


_WIDGETS = {
    "TaskCard": "stagent_lab.notebook.widgets.task_card",
    "Inbox": "stagent_lab.notebook.widgets.inbox",
    "Monitor": "stagent_lab.notebook.widgets.monitor",
    "ProfilesView": "stagent_lab.notebook.widgets.profiles",
    "MemoryBrowser": "stagent_lab.notebook.widgets.memory",
    "ChatView": "stagent_lab.notebook.widgets.chat",
}


def __getattr__(name: str) -> Any:
    # Widgets pull in ipywidgets and anywidget: load them when first asked for.
    if name in _WIDGETS:
        return getattr(importlib.import_module(_WIDGETS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
