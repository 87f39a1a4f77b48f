"""The trust boundary end to end: cascade tiers, the inbox, decisions that wake tasks."""

from __future__ import annotations

import threading

import pytest

from stagent_lab import InboxError, RuleSyntaxError


def _decisions(handle):
    return [p for p in handle.logs().query("event == 'tool_decision'")["payload"]]


def test_waiting_task_resumes_right_after_decide_from_another_thread(lab, project):
    handle = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[
            {"tool": "Bash", "input": {"command": "echo approved-run"}},
            {"say": "done"},
        ],
    )
    items = lab.wait_inbox(timeout=60, task=handle.id)
    assert handle.status == "waiting"
    item = items.iloc[0]
    assert item["kind"] == "permission" and item["tool_name"] == "Bash"
    assert item["tool_input"] == {"command": "echo approved-run"}
    assert item["suggested_rule"] == "Bash(command:echo *)"
    t = threading.Thread(target=lab.decide, args=(item["id"], "allow"))
    t.start()
    t.join(10)
    handle.wait(timeout=60)
    assert handle.status == "completed"
    outputs = [p["output"] for p in handle.logs().query("event == 'tool_result'")["payload"]]
    assert outputs == ["approved-run\n"] or outputs[0].startswith("approved-run")
    assert _decisions(handle)[0]["tier"] == "human"
    decided = lab.inbox("decided")
    assert decided.iloc[0]["decision"] == "allow" and decided.iloc[0]["decided_by"]
    statuses = [p["to"] for p in handle.logs().query("event == 'status'")["payload"]]
    assert statuses == ["queued", "running", "waiting", "running", "completed"]


def test_always_saves_rule_and_next_identical_request_skips_inbox(lab, project):
    script = [{"tool": "Bash", "input": {"command": "git log --oneline -1"}}, {"say": "ok"}]
    first = lab.submit("x", profile="guarded", project=project, script=script)
    item = lab.wait_inbox(timeout=60, task=first.id).iloc[0]
    assert item["suggested_rule"] == "Bash(command:git log *)"
    out = lab.decide(item["id"], "always")
    assert out["rule"] == "Bash(command:git log *)"
    first.wait(timeout=60)
    rules = lab.rules()
    assert rules[["rule", "effect", "scope", "scope_id", "created_from"]].values.tolist() == [
        ["Bash(command:git log *)", "allow", "profile", "guarded", item["id"]]
    ]
    second = lab.submit("x", profile="guarded", project=project, script=script)
    second.wait(timeout=60)
    assert second.status == "completed"
    assert second.inbox("all").empty
    d = _decisions(second)[0]
    assert d["tier"] == "rule" and d["rule"] == "Bash(command:git log *)"
    # ...but the rule never covers a compound command hiding something else.
    third = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[{"tool": "Bash", "input": {"command": "git log -1 && touch pwned"}}, {"say": "ok"}],
    )
    item3 = lab.wait_inbox(timeout=60, task=third.id).iloc[0]
    lab.decide(item3["id"], "deny", "no")
    third.wait(timeout=60)
    assert not (project / "pwned").exists()


def test_always_with_edited_rule_and_bad_rule(lab, project):
    h = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[{"tool": "Bash", "input": {"command": "ls src"}}, {"say": "ok"}],
    )
    item = lab.wait_inbox(timeout=60, task=h.id).iloc[0]
    with pytest.raises(RuleSyntaxError):
        lab.decide(item["id"], "always", rule="Bash(command:ls *")
    assert h.status == "waiting"  # a bad rule leaves the item pending
    out = lab.decide(item["id"], "always", rule="Bash(command:ls *)", scope="global")
    assert out["rule"] == "Bash(command:ls *)"
    h.wait(timeout=60)
    assert lab.rules().iloc[0]["scope"] == "global"


def test_deny_message_reaches_the_agent(lab, project):
    seen = {}

    def script(prompt, profile):
        out = yield {"tool": "Bash", "input": {"command": "curl http://example.invalid"}}
        seen["output"] = out
        yield {"say": "used the safer path"}

    h = lab.submit("x", profile="guarded", project=project, script=script)
    item = lab.wait_inbox(timeout=60, task=h.id).iloc[0]
    lab.decide(item["id"], "deny", "Do not fetch from the network; read docs/ instead.")
    h.wait(timeout=60)
    assert h.status == "completed"
    assert "Do not fetch from the network; read docs/ instead." in seen["output"]
    assert seen["output"].startswith("Permission denied (human)")
    result = h.logs().query("event == 'tool_result'").iloc[0]["payload"]
    assert result["is_error"] is True and "read docs/ instead" in result["output"]


def test_cascade_tiers_are_logged(lab, project):
    lab.add_rule("Bash(command:echo *)", "deny", scope="profile", scope_id="guarded")
    h = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[
            {
                "tool": "Write",
                "input": {"file_path": "x.txt", "content": "x"},
            },  # not allowed? allowed
            {"tool": "Edit", "input": {"file_path": "x.txt", "old_string": "x", "new_string": "y"}},
            {"tool": "Bash", "input": {"command": "rm -rf src"}},
            {"tool": "Glob", "input": {"pattern": "*"}},
            {"tool": "Bash", "input": {"command": "echo hi"}},
            {"say": "done"},
        ],
    )
    item = lab.wait_inbox(timeout=60, task=h.id).iloc[0]
    assert item["tool_name"] == "Write"
    lab.decide(item["id"], "allow")
    h.wait(timeout=60)
    tiers = [(d["behavior"], d["tier"]) for d in _decisions(h)]
    assert tiers == [
        ("allow", "human"),
        ("deny", "allowed_tools"),
        ("deny", "profile_auto_deny"),
        ("allow", "profile_auto_approve"),
        ("deny", "rule"),
    ]
    assert (project / "src").is_dir()


def test_question_answer_flow(lab, project):
    seen = {}

    def script(prompt, profile):
        seen["answer"] = yield {"ask": "Which branch should I review?"}
        yield {"say": f"Reviewing {seen['answer']}"}

    h = lab.submit("x", profile="tester", project=project, script=script)
    item = lab.wait_inbox(timeout=60, task=h.id).iloc[0]
    assert item["kind"] == "question" and item["question"] == "Which branch should I review?"
    with pytest.raises(InboxError, match="does not fit a question item"):
        lab.decide(item["id"], "allow")
    with pytest.raises(InboxError, match="needs the answer text"):
        lab.decide(item["id"], "answer")
    lab.decide(item["id"], "answer", "release/2.0")
    h.wait(timeout=60)
    assert h.result == "Reviewing release/2.0"


def test_decide_errors(lab, project):
    with pytest.raises(InboxError, match="no inbox item with id 'nope'"):
        lab.decide("nope", "allow")
    h = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[{"tool": "Bash", "input": {"command": "echo 1"}}, {"say": "ok"}],
    )
    item = lab.wait_inbox(timeout=60, task=h.id).iloc[0]
    with pytest.raises(InboxError, match="'answer' does not fit a permission item"):
        lab.decide(item["id"], "answer", "x")
    lab.decide(item["id"], "allow")
    with pytest.raises(InboxError, match="already decided \\(allow by"):
        lab.decide(item["id"], "deny")
    h.wait(timeout=60)


def test_cancel_while_waiting_expires_the_item(lab, project):
    h = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[{"tool": "Bash", "input": {"command": "echo 1"}}, {"say": "ok"}],
    )
    item = lab.wait_inbox(timeout=60, task=h.id).iloc[0]
    h.cancel().wait(timeout=60)
    assert h.status == "cancelled"
    assert lab.inbox("expired")["id"].tolist() == [item["id"]]
    with pytest.raises(InboxError, match="already expired"):
        lab.decide(item["id"], "allow")


def test_deny_policies_fire_on_any_part_of_a_compound_line(lab, project):
    lab.add_rule("Bash(command:curl *)", "deny")
    h = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[
            {"tool": "Bash", "input": {"command": "git status && rm -rf src"}},
            {"tool": "Bash", "input": {"command": "echo ok; sudo curl http://example.invalid"}},
            {"say": "done"},
        ],
    )
    h.wait(timeout=60)
    tiers = [(d["behavior"], d["tier"]) for d in _decisions(h)]
    assert tiers == [("deny", "profile_auto_deny"), ("deny", "rule")]
    assert h.inbox("all").empty
    assert (project / "src").is_dir()


def test_the_task_moves_on_before_the_decision_commits_and_a_second_decision_is_refused(
    lab, project
):
    """decide() wakes the task first and commits the decision right after the task's next
    step; until that commit, the item is still 'pending' in the store, yet a second decision
    must be refused (kept in memory), and after decide() returns every read sees it decided."""
    engine = lab.workspace.service.engine
    h = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[{"tool": "Bash", "input": {"command": "echo 1"}}, {"say": "ok"}],
    )
    item_id = lab.wait_inbox(timeout=60, task=h.id).iloc[0]["id"]

    def both() -> tuple[dict, str, str]:
        first = engine.decide(item_id, "allow", decided_by="first")
        stored = engine.store.con.execute(
            "SELECT status FROM inbox_items WHERE id = ?", [item_id]
        ).fetchone()[0]
        try:
            engine.decide(item_id, "deny", decided_by="second")
        except InboxError as exc:
            return first, stored, str(exc)
        return first, stored, "second decision accepted"

    first, stored_between, second = engine.call(both)
    assert first["decision"] == "allow"
    assert stored_between == "pending"  # not committed inside the deciding call
    assert "already decided (allow by first)" in second
    h.wait(timeout=60)
    assert h.status == "completed"
    row = lab.inbox("decided").set_index("id").loc[item_id]
    assert (row["decision"], row["decided_by"]) == ("allow", "first")


def test_after_decide_returns_the_store_shows_the_decision(lab, project):
    h = lab.submit(
        "x",
        profile="guarded",
        project=project,
        script=[{"tool": "Bash", "input": {"command": "sleep 2"}}, {"say": "ok"}],
    )
    item_id = lab.wait_inbox(timeout=60, task=h.id).iloc[0]["id"]
    lab.decide(item_id, "allow")
    # A read on another connection right away (no flush, no wait): committed already.
    cur = lab.workspace.service.store.reader()
    got = cur.execute("SELECT status, decision FROM inbox_items WHERE id = ?", [item_id])
    assert got.fetchone() == ("decided", "allow")
    h.cancel()
