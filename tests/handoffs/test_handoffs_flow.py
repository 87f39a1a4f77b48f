"""Handoffs end to end: loops cut at the depth limit, refusals, approvals, expiry, the chain."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from stagent_lab import HandoffError, InboxError, Lab, SettingError
from stagent_lab.engine.clock import FakeClock


def write_profile(root: Path, pid: str, yaml_text: str) -> None:
    """A profile folder (profile.yaml + SKILL.md); local so no conftest import is needed."""
    folder = root / pid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml_text)
    (folder / "SKILL.md").write_text(f"---\nname: {pid}\ndescription: test\n---\nYou are {pid}.\n")


HOP = """\
id: {pid}
name: {pid}
supportedRuntimes: [anthropic-direct]
allowedTools: [Read, Handoff]
canUseToolPolicy:
  autoApprove: [Read, Handoff]
"""
GATE = (
    HOP
    + """\
handoffPolicy:
  requireApprovalFrom: [hop-a]
"""
)
CLOSED = (
    HOP
    + """\
handoffPolicy:
  blockFrom: [hop-*]
"""
)
PICKY = (
    HOP
    + """\
handoffPolicy:
  acceptFrom: [hop-b]
"""
)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def hlab(tmp_path, profiles_dir, clock):
    for pid, text in (
        ("hop-a", HOP),
        ("hop-b", HOP),
        ("hop-c", HOP),
        ("gate", GATE),
        ("closed", CLOSED),
        ("picky", PICKY),
    ):
        write_profile(profiles_dir, pid, text.format(pid=pid))
    lab = Lab(home=tmp_path / "ws-hand", profile_dirs=[profiles_dir], clock=clock)
    try:
        yield lab
    finally:
        lab.close()


def chain_script(route: dict[str, str]):
    """Each profile in ``route`` hands off to the next; the others just finish. Child tasks of a
    scripted task play the same script, so one callable drives the whole chain."""

    def script(prompt, profile):
        if profile.id not in route:
            yield {"result": f"done by {profile.id}"}
            return
        out = yield {
            "tool": "Handoff",
            "input": {
                "to_profile": route[profile.id],
                "subject": "Pass it on",
                "body": f"Please continue the work {profile.id} started.",
            },
        }
        yield {"result": out}

    return script


def wait_tasks(lab: Lab, n: int, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        df = lab.tasks()
        if len(df) >= n and df["status"].isin(["completed", "failed", "cancelled"]).all():
            return df
        assert time.monotonic() < deadline, df[["profile_id", "status"]].to_string()
        time.sleep(0.05)


def test_a_b_c_a_loop_dies_at_the_depth_limit(hlab, project):
    loop = chain_script({"hop-a": "hop-b", "hop-b": "hop-c", "hop-c": "hop-a"})
    root = hlab.submit("start the loop", profile="hop-a", project=project, script=loop)
    tasks = wait_tasks(hlab, 6)
    assert len(tasks) == 6  # root + 5 handoffs (depths 0..4); the 6th hop is refused
    assert tasks["profile_id"].tolist() == ["hop-a", "hop-b", "hop-c", "hop-a", "hop-b", "hop-c"]
    assert (tasks["status"] == "completed").all()
    msgs = hlab.handoffs()
    assert msgs["chain_depth"].tolist() == [0, 1, 2, 3, 4]
    assert (msgs["status"] == "completed").all()
    # Each child was created by the task before it, through the message before it.
    ids = tasks["id"].tolist()
    assert tasks["parent_task_id"].tolist()[1:] == ids[:-1]
    assert tasks["source"].tolist() == ["manual"] + ["handoff"] * 5
    assert msgs["source_task_id"].tolist() == ids[:-1]
    assert msgs["target_task_id"].tolist() == ids[1:]
    assert msgs["parent_message_id"].tolist()[1:] == msgs["id"].tolist()[:-1]
    last = hlab.task(ids[-1])
    assert last.result.startswith("Handoff refused: handoff chain too deep")
    assert "hop-a → hop-b → hop-c → hop-a → hop-b → hop-c → hop-a" in last.result
    assert "the limit is 5" in last.result
    refused = last.logs().query("event == 'handoff_refused'").iloc[0]["payload"]
    assert refused["reason"] == "chain_depth" and refused["to_profile"] == "hop-a"
    assert hlab.handoffs(task=root.id)["target_task_id"].tolist() == [ids[1]]
    chain = hlab.handoff_chain(ids[-1])
    assert [m["chain_depth"] for m in chain] == [0, 1, 2, 3, 4]
    assert chain[0]["source_task_id"] == root.id


def test_depth_limit_is_a_setting(hlab, project):
    hlab.set_setting("handoffs.max_chain_depth", 2)
    loop = chain_script({"hop-a": "hop-b", "hop-b": "hop-c", "hop-c": "hop-a"})
    hlab.submit("start", profile="hop-a", project=project, script=loop)
    tasks = wait_tasks(hlab, 3)
    assert len(tasks) == 3 and len(hlab.handoffs()) == 2
    assert "the limit is 2" in hlab.task(tasks["id"].iloc[-1]).result


def test_self_handoff_is_refused_and_nothing_is_written(hlab, project):
    h = hlab.run(
        "x", profile="hop-a", project=project, timeout=30, script=chain_script({"hop-a": "hop-a"})
    )
    assert h.result.startswith("Handoff refused: hop-a cannot hand off to itself")
    assert hlab.handoffs().empty and len(hlab.tasks()) == 1
    result = h.logs().query("event == 'tool_result'").iloc[0]["payload"]
    assert result["is_error"] is True and result["meta"]["reason"] == "self_handoff"
    with pytest.raises(HandoffError, match="itself") as exc:
        hlab.handoff("hop-a", "s", "b", from_profile="hop-a")
    assert exc.value.reason == "self_handoff"


@pytest.mark.parametrize(
    ("to", "sender", "reason", "text"),
    [
        ("closed", "hop-a", "blocked", "blockFrom in profile closed's handoffPolicy names it"),
        ("picky", "hop-a", "not_accepted", "acceptFrom in profile picky's handoffPolicy"),
        ("nobody", "hop-a", "unknown_profile", "unknown profile 'nobody'"),
        ("hop-b", "ghost", "unknown_profile", "unknown profile 'ghost'"),
    ],
)
def test_policy_and_profile_refusals(hlab, to, sender, reason, text):
    with pytest.raises(HandoffError) as exc:
        hlab.handoff(to, "Please review", "Details here.", from_profile=sender)
    assert exc.value.reason == reason and text in str(exc.value)
    assert hlab.handoffs().empty and hlab.tasks().empty and hlab.inbox("all").empty


def test_accepted_sender_passes_and_empty_text_is_refused(hlab):
    out = hlab.handoff("picky", "Review", "Body.", from_profile="hop-b", script=[{"say": "ok"}])
    assert out["status"] == "in_progress" and out["target_task_id"]
    for subject, body in (("", "body"), ("subject", "   ")):
        with pytest.raises(HandoffError) as exc:
            hlab.handoff("hop-b", subject, body, from_profile="hop-a")
        assert exc.value.reason == "invalid"
    assert len(hlab.handoffs()) == 1


def test_policy_from_settings_overrides_the_profile(hlab):
    hlab.set_setting("handoffs.policy.hop-b", json.dumps({"blockFrom": ["hop-a"]}))
    with pytest.raises(HandoffError, match=r"setting handoffs\.policy\.hop-b") as exc:
        hlab.handoff("hop-b", "s", "b", from_profile="hop-a")
    assert exc.value.reason == "blocked"
    # A policy that does not parse is refused when it is set, naming the key.
    with pytest.raises(SettingError, match=r"handoffs\.policy\.hop-b"):
        hlab.set_setting("handoffs.policy.hop-b", "{not json")
    with pytest.raises(SettingError, match="acceptFrom"):
        hlab.set_setting("handoffs.policy.hop-b", json.dumps(["not", "a", "policy"]))
    # The profile's own policy: closed blocks hop-*; a setting can open it up.
    hlab.set_setting("handoffs.policy.closed", json.dumps({"acceptFrom": ["*"]}))
    out = hlab.handoff("closed", "s", "b", from_profile="hop-a", script=[{"say": "ok"}])
    assert out["status"] == "in_progress"


def test_approval_required_waits_in_inbox_and_child_starts_only_after_allow(hlab, project):
    src = hlab.run(
        "escalate",
        profile="hop-a",
        project=project,
        timeout=30,
        script=chain_script({"hop-a": "gate"}),
    )
    assert src.status == "completed"
    assert src.result.startswith("Handoff to gate is waiting for operator approval")
    assert len(hlab.tasks()) == 1  # no child yet
    msg = hlab.handoffs().iloc[0]
    assert msg["status"] == "pending" and bool(msg["requires_approval"])
    item = hlab.inbox().iloc[0]
    assert item["kind"] == "handoff" and item["id"] == msg["inbox_item_id"]
    assert item["task_id"] == src.id and item["profile_id"] == "hop-a"
    assert item["tool_input"]["to_profile"] == "gate"
    assert item["question"] == "hop-a wants to hand off to gate: Pass it on"
    with pytest.raises(InboxError, match="does not fit"):
        hlab.decide(item["id"], "always")
    hlab.decide(item["id"], "allow")
    tasks = wait_tasks(hlab, 2)
    child = tasks[tasks["profile_id"] == "gate"].iloc[0]
    assert child["source"] == "handoff" and child["parent_task_id"] == src.id
    assert child["project_id"] == tasks.iloc[0]["project_id"]
    assert hlab.task(child["id"]).result == "done by gate"
    msg = hlab.handoffs().iloc[0]
    assert msg["status"] == "completed" and msg["target_task_id"] == child["id"]
    events = src.logs()["event"].tolist()
    assert events.count("handoff_sent") == 1 and "handoff_decided" in events
    assert "handoff_result" in events
    received = hlab.task(child["id"]).logs().query("event == 'handoff_received'")
    assert received.iloc[0]["payload"]["message_id"] == msg["id"]
    assert hlab.inbox("decided").iloc[0]["decision"] == "allow"


def test_denied_handoff_is_rejected_without_a_child(hlab, project):
    hlab.run(
        "escalate",
        profile="hop-a",
        project=project,
        timeout=30,
        script=chain_script({"hop-a": "gate"}),
    )
    item = hlab.inbox().iloc[0]
    hlab.decide(item["id"], "deny", "handle it yourself")
    msg = hlab.handoffs().iloc[0]
    assert msg["status"] == "rejected" and msg["reason"] == "handle it yourself"
    assert len(hlab.tasks()) == 1


def test_stale_approvals_expire(hlab, project, clock):
    hlab.run(
        "escalate",
        profile="hop-a",
        project=project,
        timeout=30,
        script=chain_script({"hop-a": "gate"}),
    )
    item = hlab.inbox().iloc[0]
    clock.advance(timedelta(hours=73))
    msg = hlab.handoffs().iloc[0]
    assert msg["status"] == "expired" and msg["reason"] == "no decision within 72 h"
    assert hlab.inbox().empty and hlab.inbox("expired")["id"].tolist() == [item["id"]]
    with pytest.raises(InboxError, match="already expired"):
        hlab.decide(item["id"], "allow")
    assert len(hlab.tasks()) == 1


def test_expiry_is_checked_when_deciding(hlab, clock):
    out = hlab.handoff("gate", "s", "b", from_profile="hop-a")
    assert out["status"] == "pending"
    clock.advance(timedelta(hours=80))
    with pytest.raises(HandoffError, match="expired") as exc:
        hlab.decide(out["inbox_item_id"], "allow")
    assert exc.value.reason == "expired"
    assert hlab.inbox("expired")["id"].tolist() == [out["inbox_item_id"]]
    assert hlab.handoffs().iloc[0]["status"] == "expired" and hlab.tasks().empty


def test_expiry_is_checked_on_open(tmp_path, profiles_dir):
    write_profile(profiles_dir, "hop-a", HOP.format(pid="hop-a"))
    write_profile(profiles_dir, "gate", GATE.format(pid="gate"))
    home = tmp_path / "ws-reopen"
    sent = FakeClock(FakeClock().now() - timedelta(hours=100))  # sent 100 h ago
    with Lab(home=home, profile_dirs=[profiles_dir], clock=sent) as lab:
        out = lab.handoff("gate", "s", "b", from_profile="hop-a")
        assert lab.sql("SELECT status FROM agent_messages")["status"].tolist() == ["pending"]
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        assert lab.sql("SELECT status FROM agent_messages")["status"].tolist() == ["expired"]
        assert lab.inbox("expired")["id"].tolist() == [out["inbox_item_id"]]


def test_operator_handoff_and_source_task_checks(hlab, project):
    src = hlab.run("x", profile="hop-a", project=project, timeout=30, script=[{"say": "ok"}])
    with pytest.raises(HandoffError, match="belongs to profile hop-a") as exc:
        hlab.handoff("hop-c", "s", "b", from_profile="hop-b", source_task=src.id)
    assert exc.value.reason == "unknown_task"
    out = hlab.handoff(
        "hop-b",
        "Follow up",
        "Check the README.",
        source_task=src.id,
        script=[{"say": "followed up"}],
    )
    assert out["from_profile_id"] == "hop-a" and out["chain_depth"] == 0
    child = hlab.task(out["target_task_id"]).wait(timeout=30)
    assert child.result == "followed up"
    assert child.info()["parent_task_id"] == src.id
    assert hlab.handoffs().iloc[0]["status"] == "completed"
    assert "Handed off to you by the hop-a agent" in child.info()["prompt"]


def test_failed_child_marks_the_message_failed(hlab):
    out = hlab.handoff(
        "hop-b", "Try", "Do it.", from_profile="hop-a", script=[{"fail": "tool exploded"}]
    )
    hlab.task(out["target_task_id"]).wait(timeout=30)
    msg = hlab.handoffs().iloc[0]
    assert msg["status"] == "failed" and msg["reason"] == "tool exploded"


def test_handoff_tool_needs_allowed_tools(hlab, project):
    # tester's allowedTools has no Handoff: the cascade denies before the bus is reached.
    h = hlab.run(
        "x", profile="tester", project=project, timeout=30, script=chain_script({"tester": "hop-b"})
    )
    assert h.status == "completed"
    assert h.result.startswith("Permission denied (allowed_tools)")
    decision = h.logs().query("event == 'tool_decision'").iloc[0]["payload"]
    assert decision["tier"] == "allowed_tools" and decision["behavior"] == "deny"
    assert hlab.handoffs().empty and len(hlab.tasks()) == 1


def test_pending_handoff_follows_an_inbox_item_expired_elsewhere(hlab, tmp_path, profiles_dir):
    # Crash recovery expires the inbox items of tasks a dead process left running; the
    # handoff that waited on such an item must not stay pending forever.
    out = hlab.handoff("gate", "s", "b", from_profile="hop-a")
    hlab.close()
    con = duckdb.connect(str(tmp_path / "ws-hand" / "stagent.duckdb"))
    con.execute("UPDATE inbox_items SET status = 'expired' WHERE id = ?", [out["inbox_item_id"]])
    con.close()
    with Lab(home=tmp_path / "ws-hand", profile_dirs=[profiles_dir]) as again:
        msg = again.handoffs().iloc[0]
    assert msg["status"] == "expired"
    assert msg["reason"] == "its inbox item was expired before a decision"
