"""The Jupyter Server extension that keeps widget messages from flipping the kernel's status."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path
from types import SimpleNamespace

from stagent_lab.notebook import server

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "jupyter-config" / "jupyter_server_config.d" / "stagent_lab.json"


def fake_server(types, page=None):
    settings = {} if page is None else {"page_config_data": page}
    return SimpleNamespace(
        kernel_manager=SimpleNamespace(untracked_message_types=list(types)),
        web_app=SimpleNamespace(settings=settings),
        log=logging.getLogger("test-server"),
    )


def test_comm_msg_joins_the_untracked_types_and_the_page_config():
    app = fake_server(["status", "stream"], page={"untracked_message_types": ["status"]})
    server._load_jupyter_server_extension(app)
    assert app.kernel_manager.untracked_message_types == ["status", "stream", "comm_msg"]
    assert app.web_app.settings["page_config_data"]["untracked_message_types"] == [
        "status",
        "comm_msg",
    ]
    server._load_jupyter_server_extension(app)  # loading twice adds nothing
    assert app.kernel_manager.untracked_message_types.count("comm_msg") == 1


def test_before_jupyterlab_copies_the_list_the_page_config_gets_it_too():
    app = fake_server(["status"])
    server._load_jupyter_server_extension(app)
    assert app.web_app.settings["page_config_data"]["untracked_message_types"] == [
        "status",
        "comm_msg",
    ]


def test_the_installed_config_enables_the_extension():
    enabled = json.loads(CONFIG.read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"stagent_lab.notebook.server": True}
    points = server._jupyter_server_extension_points()
    assert points == [{"module": "stagent_lab.notebook.server"}]
    shared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    target = shared["targets"]["wheel"]["shared-data"][str(CONFIG.relative_to(ROOT))]
    assert target == "etc/jupyter/jupyter_server_config.d/stagent_lab.json"
