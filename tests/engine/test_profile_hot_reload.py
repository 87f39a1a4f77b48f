"""Editing a profile on disk changes the next run's behaviour, with no restart."""

from __future__ import annotations

from tests.conftest import write_profile

PROFILE = """\
id: hot
name: Hot
supportedRuntimes: [anthropic-direct]
allowedTools: [Bash]
canUseToolPolicy:
  autoApprove: [{approve}]
"""


def test_edit_profile_changes_next_run(lab, profiles_dir, project):
    write_profile(profiles_dir, "hot", PROFILE.format(approve="Bash"))
    script = [{"tool": "Bash", "input": {"command": "echo hi"}}, {"say": "ok"}]
    first = lab.submit("x", profile="hot", project=project, script=script).wait(timeout=60)
    assert first.status == "completed" and first.inbox("all").empty
    # Now Bash needs a human.
    write_profile(profiles_dir, "hot", PROFILE.format(approve="Read") + "# edited\n")
    second = lab.submit("x", profile="hot", project=project, script=script)
    item = lab.wait_inbox(timeout=60, task=second.id).iloc[0]
    assert item["tool_name"] == "Bash"
    lab.decide(item["id"], "deny", "not today")
    second.wait(timeout=60)
    assert second.status == "completed"


def test_broken_profile_is_reported_and_others_still_work(lab, profiles_dir, project):
    bad = profiles_dir / "broken"
    bad.mkdir()
    (bad / "profile.yaml").write_text("id: broken\nname: Broken\nmaxTurns: many\n")
    (bad / "SKILL.md").write_text("x")
    errors = lab.profile_errors()
    assert [(e.profile_id or "broken", e.line) for e in errors] == [("broken", 3)]
    assert "maxTurns" in str(errors[0]) and str(bad / "profile.yaml") in str(errors[0])
    ok = lab.submit("x", profile="tester", project=project, script=[{"say": "fine"}])
    assert ok.wait(timeout=60).status == "completed"
