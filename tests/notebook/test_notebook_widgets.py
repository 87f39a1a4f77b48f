"""Widget state and front-end actions, driven the way the JavaScript drives them.

A click in the browser arrives as a custom comm message; here we call the same handler with
the same content, on a separate thread (as a kernel subshell would).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest

from stagent_lab import Lab
from stagent_lab.api.requests import Ping
from stagent_lab.notebook import views
from stagent_lab.notebook.widgets import Inbox, Monitor, ProfilesView, TaskCard


def steps(*items):
    """A generator script (each ``yield`` receives the tool output or the operator's answer)."""

    def script(prompt, profile):
        # Not `yield from items`: the runtime .send()s each tool output into the generator,
        # and a tuple iterator has no .send().
        for item in items:
            yield item

    return script


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def click(widget, **content):
    """Send a front-end message from another thread and wait for its acknowledgement."""
    req = f"r{time.monotonic_ns()}"
    t = threading.Thread(target=widget._on_front_msg, args=(widget, {**content, "req": req}, []))
    t.start()
    t.join(30)
    assert wait_until(lambda: widget.last_action.get("req") == req), widget.last_action
    return widget.last_action


def entries(widget):
    return widget.log + widget.log_tail


ECHO = {"tool": "Bash", "input": {"command": "echo widget-ok"}}


def test_card_shows_pending_approval_and_allow_completes_the_task(lab, project):
    h = lab.submit("check", profile="guarded", project=project, script=steps(ECHO, {"say": "ok"}))
    card = TaskCard(h.id, lab)
    assert card.info["title"] == "check" and card.info["profile"] == "guarded"
    assert card.info["runtime"] == "scripted"
    assert wait_until(lambda: card.pending != [])
    (item,) = card.pending
    assert item["kind"] == "permission" and item["tool"] == "Bash"
    assert '"command": "echo widget-ok"' in item["input"]
    assert item["rule"] == "Bash(command:echo *)"
    assert wait_until(lambda: card.info["status"] == "waiting")

    ack = click(card, type="decide", item_id=item["id"], decision="allow")
    assert ack == {"req": ack["req"], "ok": True, "message": "allowed"}
    assert h.wait(timeout=20).status == "completed"
    assert wait_until(lambda: card.info["status"] == "completed" and card.pending == [])
    assert card.info["result"] == "ok" and card.info["finished_ms"] >= card.info["started_ms"]
    # the header may learn "completed" from a refresh before the log's last events arrive
    assert wait_until(lambda: "tool_result" in [e["event"] for e in entries(card)])
    kinds = [e["event"] for e in entries(card)]
    assert kinds.index("tool_request") < kinds.index("inbox") < kinds.index("tool_decision")
    result = next(e for e in entries(card) if e["event"] == "tool_result")
    assert result["tool"] == "Bash" and result["detail"] == "widget-ok\n"
    decision = next(e for e in entries(card) if e["event"] == "tool_decision")
    assert decision["text"] == "allow by human" and decision["level"] == "ok"
    assert wait_until(lambda: card.tokens["input"] > 0 and card.tokens["output"] > 0)
    decided = lab.inbox("decided").iloc[0]
    # the decider is the client's identity: notebook:<kernel id> in a kernel, python:<user> here
    from stagent_lab.client.remote import client_identity

    assert decided["decided_by"] == client_identity()
    assert decided["decided_by"].startswith("python:")
    card.close()


def test_always_saves_the_edited_rule_and_deny_carries_the_message(lab, project):
    h = lab.submit(
        "two",
        profile="guarded",
        project=project,
        script=steps(ECHO, {"tool": "Bash", "input": {"command": "ls -la"}}, {"say": "end"}),
    )
    card = TaskCard.for_task(h.id, lab)
    assert TaskCard.for_task(h.id, lab) is card  # one model per task
    assert wait_until(lambda: card.pending != [])
    ack = click(
        card,
        type="decide",
        item_id=card.pending[0]["id"],
        decision="always",
        rule="Bash(command:echo widget-*)",
        message="",
    )
    assert ack["ok"] and ack["message"] == "always allowed; saved rule Bash(command:echo widget-*)"
    assert lab.rules()["rule"].tolist() == ["Bash(command:echo widget-*)"]
    assert wait_until(lambda: card.pending != [] and "ls -la" in card.pending[0]["input"])
    ack = click(
        card,
        type="decide",
        item_id=card.pending[0]["id"],
        decision="deny",
        message="use the Glob tool instead",
    )
    assert ack["ok"] and ack["message"] == "denied"
    assert h.wait(timeout=20).status == "completed"
    assert wait_until(lambda: card.info["status"] == "completed")
    denied = [e for e in entries(card) if e["event"] == "tool_result" and e["level"] == "error"]
    assert denied[0]["text"].startswith("1 line(s): Permission denied (human): use the Glob")
    card.close()


def test_action_errors_come_back_as_messages(lab, project):
    h = lab.submit("x", profile="guarded", project=project, script=steps(ECHO, {"say": "ok"}))
    card = TaskCard(h.id, lab)
    assert wait_until(lambda: card.pending != [])
    item_id = card.pending[0]["id"]
    bad = click(card, type="decide", item_id=item_id, decision="always", rule="Bash(command:oops")
    assert bad["ok"] is False and "Bash(command:oops" in bad["message"]
    assert wait_until(lambda: card.info["status"] == "waiting")  # a bad rule leaves it pending
    assert click(card, type="decide", item_id=item_id, decision="allow")["ok"]
    again = click(card, type="decide", item_id=item_id, decision="deny")
    assert again["ok"] is False and "is already decided (allow by" in again["message"]
    nonsense = click(card, type="explode")
    assert nonsense == {"req": nonsense["req"], "ok": False, "message": "unknown action 'explode'"}
    h.wait(timeout=20)
    card.close()


def test_cancel_and_resume_buttons(lab, project):
    h = lab.submit("c", profile="guarded", project=project, script=steps(ECHO, {"say": "ok"}))
    card = TaskCard(h.id, lab)
    assert wait_until(lambda: card.pending != [])
    assert click(card, type="cancel")["message"] == "cancelling"
    assert h.wait(timeout=20).status == "cancelled"
    assert wait_until(lambda: card.info["status"] == "cancelled" and card.pending == [])
    assert click(card, type="resume")["message"] == "resumed"
    assert wait_until(lambda: card.info["status"] == "waiting" and card.pending != [])
    assert card.info["resume_count"] == 1 and card.info["finished_ms"] is None
    click(card, type="decide", item_id=card.pending[0]["id"], decision="allow")
    assert h.wait(timeout=20).status == "completed"
    late = click(card, type="cancel")
    assert late["ok"] is False and "only active tasks can be cancelled" in late["message"]
    card.close()


def test_question_is_answered_from_the_card(lab):
    seen = []

    def asker(prompt, profile):
        answer = yield {"ask": "Which branch?"}
        seen.append(answer)
        yield {"say": f"using {answer}"}

    h = lab.submit("q", profile="tester", script=asker)
    card = TaskCard(h.id, lab)
    assert wait_until(lambda: card.pending != [])
    item = card.pending[0]
    assert item["kind"] == "question" and item["question"] == "Which branch?"
    assert (
        click(card, type="decide", item_id=item["id"], decision="answer", message="release/2.0")[
            "message"
        ]
        == "answered"
    )
    assert h.wait(timeout=20).result == "using release/2.0"
    assert seen == ["release/2.0"]
    card.close()


def test_a_refresh_that_learns_the_end_brings_the_finish_time(lab):
    """The header can learn "completed" from a status refresh before the status event: it must
    carry the times with it (a finished card never shows a running clock)."""
    h = lab.submit("t", profile="tester", script=[{"say": "hi"}, {"result": "ok"}])
    assert h.wait(timeout=20).status == "completed"
    bare = views.live_info(lab, lab.call(views.TaskStatus(task_id=h.id)))
    assert bare["finished_ms"] is None  # a view's header alone has no times
    info = views.refresh_live(lab, bare)
    assert info["status"] == "completed"
    assert info["started_ms"] is not None and info["finished_ms"] >= info["started_ms"]
    # a running task has a start and no finish, even from a header that had one
    r = lab.submit("r", profile="tester", script=[{"sleep": 30}, {"result": "late"}])
    r.wait_for("running", timeout=20)
    live = views.refresh_live(lab, {**info, "id": r.id})
    assert live["status"] == "running" and live["finished_ms"] is None
    assert live["started_ms"] is not None
    r.cancel()


def test_card_of_a_finished_task_from_an_earlier_process(tmp_path, profiles_dir):
    home = tmp_path / "ws2"
    with Lab(home=home, profile_dirs=[profiles_dir]) as first:
        done = first.run(
            "old work", profile="tester", script=steps({"say": "from before"}), timeout=20
        )
        assert done.status == "completed"
    with Lab(home=home, profile_dirs=[profiles_dir]) as second:
        assert second.call(Ping())["reconciled"] == []  # nothing of the first run is live
        card = TaskCard(done.id, second)
        assert card.info["status"] == "completed" and card.info["result"] == "from before"
        assert card.tokens["input"] > 0
        assert [e["event"] for e in entries(card)][-1] == "status"
        assert any(e["text"] == "from before" for e in entries(card))
        card.close()
        with pytest.raises(KeyError, match="no task with id 'nope'"):
            TaskCard("nope", second)


def test_snapshot_and_live_stream_join_without_gaps_or_duplicates(lab):
    h = lab.submit("s", profile="tester", script=steps(*[{"say": f"line {i}"} for i in range(30)]))
    card = TaskCard(h.id, lab)  # built while the task is running
    h.wait(timeout=20)
    assert wait_until(lambda: card.info["status"] == "completed")
    # The header may turn "completed" one throttle round (≤ 100 ms) before the last log
    # entries arrive; wait for the final status entry, then check the join.
    assert wait_until(
        lambda: any(e["event"] == "status" and "completed" in str(e) for e in entries(card)[-2:])
    )
    seqs = [e["seq"] for e in entries(card)]
    assert seqs == sorted(set(seqs))
    said = [e["text"] for e in entries(card) if e["event"] == "assistant_text"]
    assert said == [f"line {i}" for i in range(30)]
    stored = lab.logs(h.id)
    shown_kinds = stored[~stored["event"].isin(["usage"])]
    assert len(seqs) == len(shown_kinds)
    card.close()


def test_inbox_lists_every_pending_item_and_records_who_decided(lab, project):
    a = lab.submit("alpha", profile="guarded", project=project, script=steps(ECHO, {"say": "a"}))
    b = lab.submit("beta", profile="guarded", project=project, script=steps(ECHO, {"say": "b"}))
    inbox = Inbox(lab)
    assert wait_until(lambda: len(inbox.items) == 2)
    assert {i["title"] for i in inbox.items} == {"alpha", "beta"}
    assert {i["profile"] for i in inbox.items} == {"guarded"}
    first = next(i for i in inbox.items if i["title"] == "alpha")
    assert click(inbox, type="decide", item_id=first["id"], decision="allow")["ok"]
    assert a.wait(timeout=20).status == "completed"
    assert wait_until(lambda: [i["title"] for i in inbox.items] == ["beta"])
    assert wait_until(lambda: len(inbox.recent) == 1)
    rec = inbox.recent[0]
    assert rec["decision"] == "allow" and rec["title"] == "alpha"
    assert rec["decided_by"].startswith("python:") and rec["decided_ms"] >= rec["created_ms"]
    b.cancel()
    b.wait(timeout=20)
    assert wait_until(lambda: inbox.items == [] and inbox.recent[0]["status"] == "expired")
    inbox.close()


def test_monitor_counts_agents_outcomes_and_streams_the_log(lab, project):
    monitor = Monitor(lab)
    assert monitor.stats["active"] == 0 and monitor.stats["success_rate"] is None
    waiting = lab.submit("w", profile="guarded", project=project, script=steps(ECHO, {"say": "x"}))
    lab.run("ok", profile="tester", script=steps({"say": "fine"}), timeout=20)
    lab.run("bad", profile="tester", script=steps({"fail": "broken"}), timeout=20)
    assert wait_until(
        lambda: monitor.stats.get("waiting") == 1 and monitor.stats.get("failed") == 1
    )
    stats = monitor.stats
    assert stats["active"] == 1 and stats["completed"] == 1 and stats["success_rate"] == 0.5
    assert stats["tasks_today"] == 3 and stats["pending_inbox"] == 1
    assert [a["id"] for a in monitor.agents] == [waiting.id]
    assert monitor.agents[0]["status"] == "waiting" and monitor.agents[0]["profile"] == "guarded"
    assert wait_until(lambda: any(e["text"] == "broken" for e in entries(monitor)))
    assert {e["profile"] for e in entries(monitor)} >= {"guarded", "tester"}
    assert {e["task"] for e in entries(monitor)} >= {waiting.id}
    waiting.cancel()
    waiting.wait(timeout=20)
    assert wait_until(lambda: monitor.agents == [] and monitor.stats["active"] == 0)
    monitor.close()


def test_profiles_view_shows_identity_coverage_tools_and_policy(lab):
    view = ProfilesView(lab)
    cards = {p["id"]: p for p in view.profiles}
    reviewer = cards["code-reviewer"]
    assert reviewer["name"] == "Code Reviewer" and reviewer["origin"] == "builtin"
    loaded = lab.profiles.get("code-reviewer")
    assert reviewer["tools"] == list(loaded.allowed_tools)
    assert {"Read", "Grep", "Glob", "Bash"} <= set(reviewer["tools"])
    assert reviewer["auto_approve"] == list(loaded.auto_approve)
    assert "Bash(command:rm *)" in reviewer["auto_deny"]
    assert "Bash(command:git log *)" in reviewer["auto_approve"]
    assert reviewer["preferred"] == "claude-code"
    runtimes = {r["id"]: r for r in reviewer["runtimes"]}
    assert runtimes["scripted"]["usable"] is True
    assert runtimes["anthropic-direct"]["usable"] is False
    assert runtimes["anthropic-direct"]["reason"]
    assert cards["guarded"]["origin"] == "user" and cards["guarded"]["max_turns"] == 20
    assert view.errors == []
    assert click(view, type="refresh")["message"] == f"{len(view.profiles)} profiles"
    view.close()


def test_log_entries_and_buffer_caps():
    entry = views.log_entry(
        {
            "task_id": "t1",
            "seq": 3,
            "ts": None,
            "event": "tool_request",
            "tool_name": "Read",
            "payload": '{"input": {"file_path": "a.py"}}',
            "profile_id": "p",
        }
    )
    assert entry["text"] == '{"file_path": "a.py"}' and entry["tool"] == "Read"
    assert '"file_path": "a.py"' in entry["detail"] and entry["profile"] == "p"
    status = views.log_entry(
        {"event": "status", "payload": {"from": "running", "to": "failed", "reason": "boom"}}
    )
    assert status["text"] == "running → failed (boom)" and status["level"] == "error"
    assert views.log_entry({"event": "usage", "payload": "{}"}) is None
    assert views.log_entry({"event": "assistant_delta", "payload": "x"}) is None

    buf = views.LogBuffer()
    buf.extend({"n": i} for i in range(1234))
    kept = buf.entries()
    assert kept[-1] == {"n": 1233} and [e["n"] for e in kept] == list(range(800, 1234))
    assert buf.dropped == 800 and len(buf.tail) == 34 and len(buf.head) == 400


def test_widget_comms_keep_the_subshell_the_front_end_chose():
    """ipykernel 7 pins a comm's inbound messages to the subshell that last sent on it; ours
    must follow the front end's choice, or a click waits for a busy cell."""
    from ipykernel.comm.comm import BaseComm

    from stagent_lab.notebook.widgets._base import keep_frontend_subshell

    comm = BaseComm(target_name="jupyter.widget", comm_id="c-1", primary=False)
    comm._reply_subshell_id = None  # as after publishing from a main-shell cell
    assert comm._reply_subshell_for({}, "sub-1") is None  # the kernel's own routing
    keep_frontend_subshell(comm)
    assert comm._reply_subshell_for({}, "sub-1") == "sub-1"
    assert comm._reply_subshell_for({"content": {"id": "r"}}, None) is None
    keep_frontend_subshell(None)  # no comm (closed widget): nothing to do


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("name", ["task_card", "inbox", "monitor", "profiles", "memory", "chat"])
def test_widget_modules_are_valid_javascript(tmp_path, name):
    from stagent_lab.notebook.widgets._base import bundle

    path = tmp_path / f"{name}.mjs"
    path.write_text(bundle(f"{name}.js"))
    out = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "export default" in path.read_text()


def test_a_status_event_wins_over_a_snapshot_that_lags_it(lab, project, monkeypatch):
    """The engine publishes the status event a moment before its snapshot moves: a round that
    reads the snapshot in between must not put the card back to "running" for good."""
    real = views.refresh_live
    lagging = {"left": 3}

    def refresh_live(lab_, info):
        out = real(lab_, info)
        if out.get("status") == "waiting" and lagging["left"] > 0:
            lagging["left"] -= 1
            return {**out, "status": "running"}  # as read just before the snapshot moved
        return out

    monkeypatch.setattr(views, "refresh_live", refresh_live)
    # The card must be watching before the task asks (a first step of 0.5 s): the lag is about
    # a live status event, not a card opened on a task already waiting.
    script = steps({"sleep": 0.5}, ECHO, {"say": "ok"})
    h = lab.submit("lag", profile="guarded", project=project, script=script)
    card = TaskCard(h.id, lab)
    assert wait_until(lambda: card.pending != [])
    assert wait_until(lambda: card.info["status"] == "waiting")
    assert wait_until(lambda: lagging["left"] == 0)  # it kept looking while the snapshot lagged
    assert wait_until(lambda: card.info["status"] == "waiting")
    h.cancel()
    card.close()


def test_overlay_live_keeps_the_event_status_for_a_bounded_number_of_rounds():
    state = views.CardState(task_id="t1")
    state.apply([{"event": "status", "seq": 1, "payload": '{"from": "running", "to": "waiting"}'}])
    shown, again = views.overlay_live(state, {"status": "running", "turns": 2})
    assert shown == {"status": "waiting", "turns": 2} and again
    shown, again = views.overlay_live(state, {"status": "waiting", "turns": 2})
    assert shown["status"] == "waiting" and not again and state.event_status is None
    state.event_status = ("waiting", 0)  # the snapshot never agreed: it wins
    shown, again = views.overlay_live(state, {"status": "completed"})
    assert shown["status"] == "completed" and not again
