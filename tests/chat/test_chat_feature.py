"""Chat sessions through the contract: turns are governed tasks, history is stored."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from stagent_lab import Lab
from stagent_lab.api.chat import ChatSend
from stagent_lab.api.requests import build
from stagent_lab.chat.mentions import MentionError
from stagent_lab.chat.prompt import HISTORY_CHARS, compose, history_lines
from stagent_lab.errors import InvalidInput, ProfileNotFoundError, RuntimeNotAvailableError

SALES = pd.DataFrame({"region": ["north", "south", None], "amount": [1.5, 2.0, 3.25]})


def answers(text):
    def script(prompt, profile):
        yield {"result": text}

    return script


def test_a_turn_is_a_governed_chat_task_with_its_approval_and_cost(lab, project):
    session = lab.chat.open(profile="guarded", runtime="scripted", project=project)
    assert session.profile_id == "guarded" and session.runtime_id == "scripted"
    seen = []

    def plan(prompt, profile):
        seen.append(prompt)
        out = yield {"tool": "Bash", "input": {"command": "echo from-chat"}}
        yield {"result": f"## Answer\nthe shell said {out.strip()}"}

    turn = lab.chat.send(session, "What is in @df:sales?", namespace={"sales": SALES}, script=plan)
    info = turn.task.info()
    assert info["source"] == "chat" and info["origin_id"] == session.id
    assert info["title"] == "chat: What is in @df:sales?"
    item = lab.wait_inbox(task=turn.task.id, timeout=30).iloc[0]  # through the cascade
    assert item["tool_name"] == "Bash" and item["tool_input"] == {"command": "echo from-chat"}
    lab.decide(item["id"], "allow")
    assert turn.task.wait(timeout=30).status == "completed"
    (message,) = lab.chat.history(session.id)
    assert message.role == "user" and message.content == "What is in @df:sales?"
    assert message.status == "completed" and message.result.startswith("## Answer\nthe shell")
    assert message.context == [
        {
            "kind": "df",
            "ref": "sales",
            "note": "3 rows × 2 columns",
            "chars": message.context[0]["chars"],
        }
    ]
    assert message.input_tokens > 0 and message.turns >= 1
    prompt = seen[0]
    assert "### DataFrame sales (3 rows × 2 columns)" in prompt
    assert f"- region: {SALES['region'].dtype}, 2 non-null" in prompt and "north" in prompt
    assert "- amount: float64, 3 non-null" in prompt
    assert prompt.endswith("## The operator's message\n\nWhat is in @df:sales?")


def test_the_next_turn_sees_the_conversation_and_waits_for_the_previous_one(lab):
    session = lab.chat.open(profile="tester", runtime="scripted")
    first = lab.chat.send(session, "remember 42", script=[{"sleep": 0.5}, {"result": "noted 42"}])
    with pytest.raises(InvalidInput, match=r"the previous turn is still (queued|running)"):
        lab.chat.send(session, "too soon", script=[{"result": "x"}])
    first.task.wait(timeout=30)
    seen = []

    def plan(prompt, profile):
        seen.append(prompt)
        yield {"result": "it was 42"}

    lab.chat.send(session.id, "what number?", script=plan).task.wait(timeout=30)
    assert "Operator: remember 42\nYou: noted 42" in seen[0]
    history = lab.chat.history(session.id)
    assert [m.content for m in history] == ["remember 42", "what number?"]
    assert [m.result for m in history] == ["noted 42", "it was 42"]
    df = lab.chat.cost(session)
    assert df["kind"].tolist() == ["turn", "turn"] and (df["cost_usd"] >= 0).all()


def test_history_is_bounded_and_says_what_it_left_out():
    turns = [{"content": f"q{i} " + "x" * 2000, "result": "a" * 2000} for i in range(30)]
    lines = history_lines(turns)
    assert lines[0].startswith("(") and lines[0].endswith("earlier turns left out)")
    assert sum(len(x) for x in lines[1:]) <= HISTORY_CHARS + 4100
    assert "q29" in lines[-1]
    failed = [{"content": "q", "result": None, "status": "failed", "failure_reason": "boom"}]
    assert "(no answer: the turn failed: boom)" in compose("next", failed, [])
    fenced = compose("m", [], [{"kind": "file", "ref": "a.md", "text": "```\ncode\n```"}])
    assert "````\n```\ncode\n```\n````" in fenced  # a fence inside cannot end the block


def test_mentions_attach_files_tasks_and_frames_or_say_why_not(lab, tmp_path, project):
    session = lab.chat.open(profile="tester", runtime="scripted", project=project)
    notes = tmp_path / "notes.txt"
    notes.write_text("alpha\nbeta\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01binary")
    done = lab.run(
        "earlier", profile="tester", script=[{"result": "the earlier result"}], timeout=30
    )
    blocks = lab.chat.context(
        session,
        f"see @file:{notes} and @file:src/app.py and @task:{done.id[:6]}, then @df:sales.",
        namespace={"sales": SALES},
    )
    assert [(b["kind"], b["ref"]) for b in blocks] == [
        ("file", str(notes)), ("file", "src/app.py"), ("task", done.id), ("df", "sales")
    ]  # fmt: skip
    assert blocks[0]["text"] == "alpha\nbeta\n" and blocks[0]["note"] == "2 lines"
    assert "SELECT * FROM users" in blocks[1]["text"]  # found in the session's project
    assert "the earlier result" in blocks[2]["text"] and blocks[2]["note"] == "completed"
    for text, why in [
        ("@file:nowhere.txt", "@file:nowhere.txt: no such file"),
        (f"@file:{tmp_path / 'blob.bin'}", "looks binary"),
        (f"@file:{tmp_path}", "is not a regular file"),
        ("@task:feedbeef", "@task:feedbeef: no task with id"),
        ("@df:missing", "@df:missing: no variable named missing"),
        ("@df:number", "@df:number: number is a int, not a DataFrame"),
    ]:
        with pytest.raises(MentionError, match=why):
            lab.chat.context(session, text, namespace={"number": 3})
    with pytest.raises(MentionError, match="at most 10 mentions"):
        lab.chat.context(session, " ".join(f"@df:v{i}" for i in range(11)), namespace={})
    assert lab.tasks(limit=10)["source"].tolist() == ["manual"]  # nothing sent


def test_sessions_are_stored_and_reopen_from_another_process(tmp_path, profiles_dir):
    home = tmp_path / "ws"
    with Lab(home=home, profile_dirs=[profiles_dir]) as first:
        session = first.chat.open(profile="tester", runtime="scripted", title="Numbers")
        first.chat.send(session, "hello", script=answers("hi there")).task.wait(timeout=30)
        handle = first.chat.launch(session, "count the files", script=answers("3 files"))
        handle.wait(timeout=30)
        first.chat.configure(session, profile="general")
    with Lab(home=home, profile_dirs=[profiles_dir]) as second:
        again = second.chat.open(session.id[:5])  # a unique prefix is enough
        assert again.id == session.id and again.title == "Numbers"
        assert again.profile_id == "general" and again.turns == 1
        history = second.chat.history(session.id)
        assert [(m.role, m.content) for m in history] == [
            ("user", "hello"),
            ("task", "count the files"),
            ("note", "profile set to general"),
        ]
        assert history[0].result == "hi there" and history[1].result == "3 files"
        assert second.tasks()["source"].tolist() == ["chat", "chat"]
        sessions = second.chat.sessions()
        assert sessions["id"].tolist() == [session.id] and sessions["turns"].tolist() == [1]


def test_bad_sessions_profiles_runtimes_and_messages_are_refused(lab):
    with pytest.raises(ProfileNotFoundError):
        lab.chat.open(profile="nobody")
    with pytest.raises(RuntimeNotAvailableError, match="unknown runtime 'warp'"):
        lab.chat.open(profile="tester", runtime="warp")
    with pytest.raises(InvalidInput, match="no chat session with id 'feedbeef'"):
        lab.chat.open("feedbeef")
    session = lab.chat.open(profile="tester")  # no runtime: routing decides per turn
    with pytest.raises(RuntimeNotAvailableError, match="no usable runtime for profile tester"):
        lab.chat.send(session, "hello")
    assert lab.chat.history(session.id) == []  # a refused turn leaves no message
    with pytest.raises(InvalidInput, match="message"):
        build(ChatSend, session_id=session.id, message="")
    with pytest.raises(InvalidInput, match="context"):
        build(
            ChatSend,
            session_id=session.id,
            message="m",
            context=[{"kind": "url", "ref": "x", "text": ""}],
        )
    lab.chat.configure(session, runtime="scripted")
    turn = lab.chat.send(session, "now offline", script=answers("ok"))
    assert turn.task.wait(timeout=30).view().runtime_id == "scripted"
    assert lab.chat.configure(session, clear_runtime=True).runtime_id is None


def test_a_chat_survives_many_quick_turns_in_order(lab):
    session = lab.chat.open(profile="tester", runtime="scripted")
    for i in range(5):
        lab.chat.send(session, f"turn {i}", script=answers(f"reply {i}")).task.wait(timeout=30)
    history = lab.chat.history(session.id)
    assert [m.seq for m in history] == [1, 2, 3, 4, 5]
    assert [m.result for m in history] == [f"reply {i}" for i in range(5)]
    assert lab.chat.history(session.id, limit=2)[0].content == "turn 3"
    deadline = time.monotonic() + 5
    while lab.chat.open(session.id).turns != 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lab.chat.open(session.id).turns == 5
