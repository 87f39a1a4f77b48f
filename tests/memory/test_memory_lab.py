"""Memory wired into real runs: what the runtime received, the governed tool, outcomes, control."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from stagent_lab import Lab, ProfileNotFoundError
from stagent_lab.engine.clock import utcnow


def write_profile(root: Path, pid: str, yaml_text: str) -> None:
    """A profile folder (profile.yaml + SKILL.md); local so no conftest import is needed."""
    folder = root / pid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml_text)
    (folder / "SKILL.md").write_text(f"---\nname: {pid}\ndescription: test\n---\nYou are {pid}.\n")


MEMO = """\
id: memo
name: Memo
supportedRuntimes: [anthropic-direct]
allowedTools: [Read, Memory]
canUseToolPolicy:
  autoApprove: [Read, Memory]
"""
MEMO_ASK = """\
id: memo-ask
name: Memo ask
supportedRuntimes: [anthropic-direct]
allowedTools: [Read, Memory]
canUseToolPolicy:
  autoApprove: [Read]
"""
NO_MEMO = """\
id: no-memo
name: No memo
supportedRuntimes: [anthropic-direct]
allowedTools: [Read]
canUseToolPolicy:
  autoApprove: [Read]
"""


@pytest.fixture
def mlab(tmp_path, profiles_dir):
    for pid, text in (("memo", MEMO), ("memo-ask", MEMO_ASK), ("no-memo", NO_MEMO)):
        write_profile(profiles_dir, pid, text)
    lab = Lab(home=tmp_path / "ws-mem", profile_dirs=[profiles_dir])
    try:
        yield lab
    finally:
        lab.close()


def capture(into: dict):
    """A scripted-runtime script that records the instructions the run received."""

    def script(prompt, profile, ctx):
        into["instructions"] = ctx.instructions
        return [{"say": "ok"}]

    return script


def remember(content: str, **extra):
    def script(prompt, profile):
        out = yield {"tool": "Memory", "input": {"action": "remember", "content": content, **extra}}
        yield {"result": out}

    return script


def facts(lab: Lab, profile: str, status: str | None = "active"):
    df = lab.memory.list(profile, status=status)
    return df[df["category"] != "outcome"]


def test_memory_from_run_one_is_in_run_two_instructions(mlab, project):
    first = mlab.run(
        "Look into Globex",
        profile="memo",
        project=project,
        timeout=30,
        script=remember(
            "Globex wants short answers, no tables.", category="preference", tags=["globex"]
        ),
    )
    assert first.status == "completed"
    assert first.result.startswith("Remembered (id ")
    stored = facts(mlab, "memo")
    assert stored["content"].tolist() == ["Globex wants short answers, no tables."]
    mid = stored.iloc[0]["id"]
    assert stored.iloc[0]["source_task_id"] == first.id

    seen: dict = {}
    second = mlab.run(
        "Draft a reply to Globex", profile="memo", project=project, timeout=30, script=capture(seen)
    )
    assert second.status == "completed"
    text = seen["instructions"]
    assert "## What you remember" in text
    assert "- [preference 700] Globex wants short answers, no tables." in text
    recalled = second.logs().query("event == 'memory_recalled'")["payload"].tolist()
    assert len(recalled) == 1 and mid in recalled[0]["memory_ids"]
    assert recalled[0]["chars"] == len(text.split("## What you remember")[1]) + len(
        "## What you remember"
    )
    row = mlab.memory.get(mid)
    assert row["access_count"] == 1 and row["last_accessed_at"] is not None
    # Another profile's run is not told.
    other: dict = {}
    mlab.run(
        "Draft a reply to Globex",
        profile="tester",
        project=project,
        timeout=30,
        script=capture(other),
    )
    assert "Globex wants short answers" not in other["instructions"]


def test_memory_tool_needs_allowed_tools(mlab, project):
    h = mlab.run(
        "x", profile="no-memo", project=project, timeout=30, script=remember("Sneaky fact to keep.")
    )
    assert h.status == "completed"
    assert h.result.startswith("Permission denied (allowed_tools)")
    decision = h.logs().query("event == 'tool_decision'").iloc[0]["payload"]
    assert decision["tier"] == "allowed_tools" and decision["behavior"] == "deny"
    assert facts(mlab, "no-memo", status=None).empty


def test_memory_tool_waits_for_a_human_when_not_pre_approved(mlab, project):
    h = mlab.submit(
        "x", profile="memo-ask", project=project, script=remember("Billing contact is Dana.")
    )
    item = mlab.wait_inbox(timeout=20, task=h.id).iloc[0]
    assert item["tool_name"] == "Memory" and item["kind"] == "permission"
    assert item["tool_input"]["content"] == "Billing contact is Dana."
    assert item["suggested_rule"] == "Memory(content:Billing contact is Dana.)"
    assert facts(mlab, "memo-ask", status=None).empty  # nothing written while waiting
    mlab.decide(item["id"], "deny", "not that one")
    h.wait(timeout=20)
    assert "not that one" in h.result
    assert facts(mlab, "memo-ask", status=None).empty

    h2 = mlab.submit(
        "x", profile="memo-ask", project=project, script=remember("Billing contact is Dana.")
    )
    item2 = mlab.wait_inbox(timeout=20, task=h2.id).iloc[0]
    mlab.decide(item2["id"], "allow")
    h2.wait(timeout=20)
    assert facts(mlab, "memo-ask")["content"].tolist() == ["Billing contact is Dana."]
    tiers = [p["tier"] for p in h2.logs().query("event == 'tool_decision'")["payload"]]
    assert tiers == ["human"]


def test_rejected_memory_never_returns_in_runs(mlab, project):
    mid = mlab.memory.add(
        profile_id="memo", content="Always answer in French.", category="preference"
    )
    mlab.memory.reject(mid)
    seen: dict = {}
    mlab.run(
        "Answer the customer", profile="memo", project=project, timeout=30, script=capture(seen)
    )
    assert "Always answer in French" not in seen["instructions"]
    again = mlab.run(
        "x",
        profile="memo",
        project=project,
        timeout=30,
        script=remember("Always answer in French."),
    )
    assert again.result.startswith("Not remembered: the operator rejected")
    written = again.logs().query("event == 'memory_written'").iloc[0]["payload"]
    assert written["action"] == "refused" and written["memory_id"] == mid
    assert mlab.memory.list("memo", status="rejected")["id"].tolist() == [mid]
    assert facts(mlab, "memo").empty


def test_decay_with_a_simulated_clock_drops_memories_from_runs(mlab, project):
    keep = mlab.memory.add("memo", "Reports go to the ops channel.", decay_rate=5)
    fade = mlab.memory.add("memo", "The staging server is called zebra.", decay_rate=100)
    seen: dict = {}
    mlab.run(
        "Where do reports go? staging?",
        profile="memo",
        project=project,
        timeout=30,
        script=capture(seen),
    )
    assert "zebra" in seen["instructions"] and "ops channel" in seen["instructions"]
    start = utcnow()
    mlab.memory.clock = lambda: start + timedelta(days=10)  # zebra: 700 * 0.9^10 = 244
    seen2: dict = {}
    mlab.run(
        "Where do reports go? staging?",
        profile="memo",
        project=project,
        timeout=30,
        script=capture(seen2),
    )
    assert "zebra" not in seen2["instructions"] and "ops channel" in seen2["instructions"]
    assert mlab.memory.get(fade)["status"] == "decayed"  # the run's sweep moved it
    assert mlab.memory.get(keep)["status"] == "active"


def test_budget_and_top_k_settings(mlab, project):
    for i in range(6):
        mlab.memory.add("memo", f"Fact {i}: the vendor portal code is P{i}X{i}.")
    mlab.set_setting("memory.top_k", 3)
    seen: dict = {}
    mlab.run(
        "vendor portal code", profile="memo", project=project, timeout=30, script=capture(seen)
    )
    section = seen["instructions"].split("## What you remember")[1]
    assert section.count("\n- [fact") == 3
    mlab.set_setting("memory.top_k", 8)
    mlab.set_setting("memory.max_chars", 300)
    seen = {}
    mlab.run(
        "vendor portal code", profile="memo", project=project, timeout=30, script=capture(seen)
    )
    section = "## What you remember" + seen["instructions"].split("## What you remember")[1]
    assert len(section) <= 300 and section.count("\n- [") >= 1
    mlab.set_setting("memory.enabled", "false")
    seen = {}
    mlab.run(
        "vendor portal code", profile="memo", project=project, timeout=30, script=capture(seen)
    )
    assert "What you remember" not in seen["instructions"]


def test_outcome_memory_on_finish_but_not_for_profile_tests(mlab, project):
    ok = mlab.run(
        "Summarise the README",
        profile="memo",
        project=project,
        timeout=30,
        script=[{"say": "## Summary\nThe README describes a tiny demo project."}],
    )
    bad = mlab.run(
        "Fetch the numbers",
        profile="memo",
        project=project,
        timeout=30,
        script=[{"fail": "the data source is down"}],
    )
    mlab.run(
        "smoke",
        profile="memo",
        project=project,
        timeout=30,
        source="profile_test",
        script=[{"say": "hello"}],
    )
    outcomes = mlab.memory.list("memo", category="outcome").sort_values("content")
    assert outcomes["content"].tolist() == [
        'Task "Fetch the numbers" failed: the data source is down',
        'Task "Summarise the README" completed: The README describes a tiny demo project.',
    ]
    assert set(outcomes["source_task_id"]) == {ok.id, bad.id}
    assert outcomes["project_id"].notna().all()
    # The next run in the same project is told how the last ones went.
    seen: dict = {}
    mlab.run(
        "Fetch the numbers again", profile="memo", project=project, timeout=30, script=capture(seen)
    )
    assert '[outcome 500] Task "Fetch the numbers" failed' in seen["instructions"]


def test_recall_action_lists_and_counts_access(mlab, project):
    mid = mlab.memory.add("memo", "The VPN needs the hardware token.", tags=["vpn"])

    def script(prompt, profile):
        out = yield {"tool": "Memory", "input": {"action": "recall", "content": "vpn access"}}
        yield {"result": out}

    h = mlab.run("x", profile="memo", project=project, timeout=30, script=script)
    assert f"The VPN needs the hardware token. (id {mid})" in h.result
    assert mlab.memory.get(mid)["access_count"] == 2  # the run's instructions, then recall


def test_lab_memory_operator_api(mlab):
    with pytest.raises(ProfileNotFoundError):
        mlab.memory.add("nobody", "text")
    mid = mlab.memory.add("memo", "Quarter closes on the 5th.", tags=["finance"])
    assert mlab.memory.add("memo", "quarter closes on the 5th") == mid  # reinforced
    assert mlab.memory.get(mid)["confidence"] == 800
    row = mlab.memory.edit(mid, content="Quarter closes on the 7th.", category="fact")
    assert row["content"] == "Quarter closes on the 7th."
    assert mlab.memory.recall("memo", "quarter close").iloc[0]["id"] == mid
    preview = mlab.memory.preview("memo", "When does the quarter close?")
    assert preview.startswith("## What you remember") and "Quarter closes on the 7th." in preview
    assert mlab.memory.get(mid)["access_count"] == 0  # recall and preview are read-only
    with pytest.raises(ValueError, match="unknown project"):
        mlab.memory.list(project="nope")
    mlab.memory.delete(mid)
    assert mlab.memory.list("memo").empty
    assert mlab.memory.decay() == {"decayed": 0, "archived": 0}


def test_saved_rule_on_another_field_allows_recall_only(mlab, project):
    mlab.add_rule("Memory(action:recall)", scope="profile", scope_id="memo-ask")
    mlab.memory.add("memo-ask", "The wiki lives at wiki.example.invalid.")

    def recall(prompt, profile):
        out = yield {"tool": "Memory", "input": {"action": "recall", "content": "wiki"}}
        yield {"result": out}

    h = mlab.run("x", profile="memo-ask", project=project, timeout=30, script=recall)
    assert "wiki.example.invalid" in h.result
    decision = h.logs().query("event == 'tool_decision'").iloc[0]["payload"]
    assert decision["tier"] == "rule" and decision["rule"] == "Memory(action:recall)"
    # The rule does not cover remembering: that still asks.
    h2 = mlab.submit("x", profile="memo-ask", project=project, script=remember("New fact here."))
    item = mlab.wait_inbox(timeout=20, task=h2.id).iloc[0]
    assert item["tool_input"]["action"] == "remember"
    mlab.decide(item["id"], "deny")
    h2.wait(timeout=20)


def test_a_remember_asks_for_the_next_commit_instead_of_the_timed_one(mlab, project):
    """The Memory tool waits for its batch: it asks the writer to commit at the next tick
    (≤ 0.1 s) rather than with the timed commit (≤ 0.25 s)."""
    service = mlab.workspace.service
    asked: list[bool] = []
    real = service.commit_soon

    def spy() -> None:
        asked.append(True)
        real()

    service.commit_soon = spy
    run = mlab.run(
        "Note it", profile="memo", project=project, timeout=30,
        script=remember("The deploy window is Tuesday 10:00."),
    )  # fmt: skip
    assert run.status == "completed" and run.result.startswith("Remembered (id ")
    assert asked == [True]
