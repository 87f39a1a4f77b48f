"""%stagent chat: the widget, its approvals inline, mentions from the kernel, slash commands."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from stagent_lab.notebook import set_lab
from stagent_lab.notebook.tables import Table
from stagent_lab.notebook.widgets.chat import ChatView


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def click(widget, **content):
    req = f"r{time.monotonic_ns()}"
    t = threading.Thread(target=widget._on_front_msg, args=(widget, {**content, "req": req}, []))
    t.start()
    t.join(30)
    assert wait_until(lambda: widget.last_action.get("req") == req), widget.last_action
    return widget.last_action


def analyst(prompt, profile):
    out = yield {"tool": "Bash", "input": {"command": "echo counted"}}
    columns = "region, amount" if "DataFrame sales" in prompt else "no frame"
    yield {"result": f"## Sales\nColumns: **{columns}**; the shell said `{out.strip()}`."}


@pytest.fixture
def shell(lab):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "stagent_lab")
    set_lab(lab)
    try:
        yield sh
    finally:
        set_lab(None)


def test_a_chat_turn_with_an_approval_inline_and_a_dataframe_mention(shell, lab):
    shell.user_ns.update(sales=pd.DataFrame({"region": ["n", "s"], "amount": [1.0, 2.5]}))
    shell.user_ns["plan"] = analyst
    chat = shell.run_line_magic(
        "stagent", "chat --profile guarded --runtime scripted --script plan"
    )
    assert isinstance(chat, ChatView)
    assert chat.session["profile"] == "guarded" and chat.session["runtime"] == "scripted"
    ack = click(chat, type="send", text="What is in @df:sales?")
    assert ack["ok"] and ack["message"].startswith("sent (turn task ")
    assert wait_until(lambda: chat.pending != [])
    (item,) = chat.pending
    (turn,) = chat.messages
    assert item["task"] == turn["task_id"] and item["tool"] == "Bash"
    assert turn["context"] == [{"kind": "df", "ref": "sales", "note": "2 rows × 2 columns"}]
    assert wait_until(
        lambda: "waiting for you" in chat.activity.get(turn["task_id"], {}).get("line", "")
    )
    assert click(chat, type="decide", item_id=item["id"], decision="allow")["message"] == "allowed"
    assert wait_until(lambda: chat.messages[0]["status"] == "completed" and chat.pending == [])
    reply = chat.messages[0]["reply_html"]
    assert "<h2>Sales</h2>" in reply and "<strong>region, amount</strong>" in reply
    assert "<code>counted</code>" in reply
    assert chat.messages[0]["tokens_in"] > 0
    copy = chat.static_bundle()
    assert "What is in @df:sales?" in copy["text/html"] and "<h2>Sales</h2>" in copy["text/html"]
    assert "offline demo" in copy["text/html"]
    assert lab.tasks()["source"].tolist() == ["chat"]
    chat.close()


def test_slash_commands_answer_in_the_conversation(shell, lab, project):
    chat = shell.run_line_magic(
        "stagent", f"chat --profile tester --runtime scripted --project {project}"
    )
    assert click(chat, type="send", text="/help")["ok"]
    assert wait_until(lambda: len(chat.notes) == 1)
    assert "/task PROMPT" in chat.notes[0]["html"] and "@df:name" in chat.notes[0]["html"]
    bad = click(chat, type="send", text="/cots")
    assert bad["ok"] is False
    assert bad["message"] == "unknown command /cots (did you mean /cost?); /help lists them"
    assert click(chat, type="send", text="/profile guarded")["ok"]
    assert wait_until(lambda: chat.session["profile"] == "guarded")
    assert click(chat, type="send", text="/runtime auto")["ok"]
    assert wait_until(lambda: chat.session["runtime"] is None)
    assert not click(chat, type="send", text="/profile a b")["ok"]
    chat._script = [{"tool": "Bash", "input": {"command": "echo bg"}}, {"result": "bg done"}]
    assert click(chat, type="send", text="/runtime scripted")["ok"]
    assert click(chat, type="send", text="/task look around in the background")["ok"]
    assert wait_until(lambda: any(m["role"] == "task" for m in chat.messages))
    task = next(m for m in chat.messages if m["role"] == "task")
    assert wait_until(lambda: [p["task"] for p in chat.pending] == [task["task_id"]])
    assert click(chat, type="send", text="/inbox")["ok"]
    assert wait_until(lambda: "1 item waiting in this chat" in chat.notes[-1]["html"])
    click(chat, type="decide", item_id=chat.pending[0]["id"], decision="deny", message="no")
    assert wait_until(
        lambda: next(m for m in chat.messages if m["role"] == "task")["status"] == "completed"
    )
    assert click(chat, type="send", text="/cost")["ok"]
    assert wait_until(lambda: "Total: $" in chat.notes[-1]["html"])
    assert not click(chat, type="send", text="   ")["ok"]
    notes = [m["content"] for m in chat.messages if m["role"] == "note"]
    assert notes == [
        "profile set to guarded",
        "runtime: chosen by routing",
        "runtime set to scripted",
    ]
    chat.close()


def test_reopen_list_and_option_errors(shell, lab):
    chat = shell.run_line_magic("stagent", "chat --profile tester --runtime scripted")
    chat._script = [{"result": "first reply"}]
    assert click(chat, type="send", text="hello")["ok"]
    assert wait_until(lambda: chat.messages and chat.messages[0]["status"] == "completed")
    sid = chat.session["id"]
    chat.close()
    listed = shell.run_line_magic("stagent", "chat --list")
    assert isinstance(listed, Table) and listed["id"].tolist() == [sid]
    again = shell.run_line_magic("stagent", f"chat --session {sid[:6]}")
    assert again is not chat and again.session["id"] == sid
    assert [m["reply_html"] for m in again.messages] == ["<p>first reply</p>"]
    assert shell.run_line_magic("stagent", f"chat --session {sid}") is again  # one per session
    again.close()


def test_chat_option_mistakes_are_one_line(shell, capsys):
    assert shell.run_line_magic("stagent", "chat --profil x") is None
    err = capsys.readouterr().err
    assert err.startswith("stagent: chat: unrecognized arguments: --profil x")
    assert "usage: %stagent chat [--profile P]" in err and "Traceback" not in err
    assert shell.run_line_magic("stagent", "chat --script nothing_here") is None
    assert "--script nothing_here: no variable with that name" in capsys.readouterr().err
    assert shell.run_line_magic("stagent", "chat --session feedbeef") is None
    assert "no chat session with id 'feedbeef'" in capsys.readouterr().err
