"""Each widget's JavaScript renders real widget state in node (a small fake DOM): every render
path and change handler runs, buttons send their messages, and a lost connection greys the
view out. Catches what ``node --check`` cannot (an undefined name in a render path)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from stagent_lab.notebook.widgets import Inbox, Monitor, ProfilesView, TaskCard
from stagent_lab.notebook.widgets._base import bundle
from stagent_lab.notebook.widgets.chat import ChatView
from stagent_lab.notebook.widgets.memory import MemoryBrowser

SMOKE = Path(__file__).with_name("js_smoke.mjs")
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def render(tmp_path, widget, module):
    state = {k: getattr(widget, k) for k in widget.keys if not k.startswith("_")}
    (tmp_path / "state.json").write_text(json.dumps(state, default=str))
    (tmp_path / f"{module}.mjs").write_text(bundle(f"{module}.js"))
    out = subprocess.run(
        ["node", str(SMOKE), str(tmp_path / f"{module}.mjs"), str(tmp_path / "state.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_widget_renders_its_state_and_greys_out(tmp_path, lab, project):
    lab.workspace.service.add_monitor_section("budgets", lambda: [{"budget": "team", "usd": 1.5}])
    h = lab.submit(
        "## Check it",
        profile="guarded",
        project=project,
        runtime="scripted",
        max_budget_usd=2.0,
        script=[{"tool": "Bash", "input": {"command": "echo js"}}, {"result": "## Done"}],
    )
    lab.wait_inbox(task=h.id, timeout=30)
    card, inbox, monitor = TaskCard(h.id, lab), Inbox(lab), Monitor(lab)
    assert wait_until(lambda: card.pending and inbox.items and monitor.agents)
    session = lab.chat.open(profile="tester", runtime="scripted")
    lab.chat.send(session, "hi @df:x", namespace={"x": __import__("pandas").DataFrame({"a": [1]})},
                  script=[{"result": "**hello**"}]).task.wait(timeout=30)  # fmt: skip
    chat = ChatView(session.id, lab)
    lab.memory.add("guarded", "Prefer the Read tool.", "preference")
    memory = MemoryBrowser(lab)
    widgets = [(card, "task_card"), (inbox, "inbox"), (monitor, "monitor"),
               (ProfilesView(lab), "profiles"), (memory, "memory"), (chat, "chat")]  # fmt: skip
    seen = {}
    for widget, module in widgets:
        seen[module] = render(tmp_path, widget, module)
        assert seen[module]["dead"], module  # greyed out when the workspace stops answering
        assert "does not answer" in seen[module]["text"], module
        widget.close()
    text = seen["task_card"]["text"]
    assert "offline demo" in text and "of 20 turns" in text and "$0.00 of $2.00" in text
    assert {"type": "decide", "item_id": card.pending[0]["id"], "decision": "allow"}.items() <= (
        next(m for m in seen["task_card"]["sent"] if m.get("decision") == "allow").items()
    )
    assert "1 pending" in seen["inbox"]["text"]
    assert "Budgets" in seen["monitor"]["text"] and "## Check it" in seen["monitor"]["text"]
    assert "Prefer the Read tool." in seen["memory"]["text"]
    chat_text = seen["chat"]["text"]
    assert "hi @df:x" in chat_text and "df x · 1 rows × 1 columns" in chat_text
    assert "1 turn" in chat_text and "change:messages" in seen["chat"]["handlers"]
    h.cancel()
