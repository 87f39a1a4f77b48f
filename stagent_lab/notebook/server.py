"""A small Jupyter Server extension: widget messages do not flip the kernel's status.

With kernel subshells, a click in a widget is a ``comm_msg`` handled on a subshell while a cell
may still run on the main shell. The kernel publishes Busy then Idle for that message, and
JupyterLab would show the whole kernel as Idle while the cell still runs. Jupyter Server has a
list of message types whose status messages are not tracked (``untracked_message_types`` of the
kernel manager, passed to JupyterLab's page config); this extension adds ``comm_msg`` to it.

It is enabled by ``etc/jupyter/jupyter_server_config.d/stagent_lab.json``, which the package
installs (only ``jpserver_extensions`` are read from that folder, so a plain config value there
would be ignored). Loading it imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

UNTRACKED = ("comm_msg",)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "stagent_lab.notebook.server"}]


def untracked(current: list[str] | tuple[str, ...]) -> list[str]:
    """``current`` with :data:`UNTRACKED` added (order kept, no duplicates)."""
    out = list(current)
    out.extend(t for t in UNTRACKED if t not in out)
    return out


def _load_jupyter_server_extension(serverapp: Any) -> None:
    manager = serverapp.kernel_manager
    types = untracked(getattr(manager, "untracked_message_types", None) or [])
    manager.untracked_message_types = types
    # JupyterLab copies the list into its page config when it loads; keep that copy in step
    # whichever extension loads first.
    web_app = getattr(serverapp, "web_app", None)
    if web_app is not None:
        page = web_app.settings.setdefault("page_config_data", {})
        page["untracked_message_types"] = untracked(page.get("untracked_message_types") or types)
    serverapp.log.info("stagent_lab: widget messages (comm_msg) no longer change kernel status")


__all__ = ["UNTRACKED", "untracked"]
