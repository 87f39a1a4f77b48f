"""Memory writes of a run are queued and written together: the agent still gets its answer,
concurrent tasks see one another's memories as if written one by one."""

from __future__ import annotations

from pathlib import Path

import pytest

from stagent_lab import Lab

MEMO = """\
id: memo
name: Memo
supportedRuntimes: [scripted]
allowedTools: [Memory]
canUseToolPolicy:
  autoApprove: [Memory]
"""


@pytest.fixture
def mlab(tmp_path, profiles_dir):
    folder = Path(profiles_dir) / "memo"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(MEMO)
    (folder / "SKILL.md").write_text("---\nname: memo\ndescription: test\n---\nYou are memo.\n")
    lab = Lab(home=tmp_path / "ws-queue", profile_dirs=[profiles_dir])
    try:
        yield lab
    finally:
        lab.close()


def remember_then_recall(content: str):
    def script(prompt, profile):
        said = yield {"tool": "Memory", "input": {"action": "remember", "content": content}}
        found = yield {"tool": "Memory", "input": {"action": "recall", "content": content}}
        yield {"result": f"{said}\n{found}"}

    return script


def test_concurrent_remembers_are_answered_and_deduplicated(mlab, project):
    same = "The release train leaves on Thursdays."
    handles = [
        mlab.submit(f"t{i}", profile="memo", project=project, script=remember_then_recall(text))
        for i, text in enumerate([same, same, "Staging is reset every Monday.", same])
    ]
    for h in handles:
        assert h.wait(timeout=60).status == "completed"
    written = [h.logs().query("event == 'memory_written'").iloc[0]["payload"] for h in handles]
    actions = sorted(w["action"] for w in written)
    assert actions == ["added", "added", "reinforced", "reinforced"]
    same_ids = {
        w["memory_id"] for w, h in zip(written, handles, strict=True) if h.id != handles[2].id
    }
    assert len(same_ids) == 1  # three tasks, one memory
    mid = same_ids.pop()
    # each run recalled what it had just remembered (its own write was visible to its read)
    texts = [same, same, "Staging is reset every Monday.", same]
    for h, w, text in zip(handles, written, texts, strict=True):
        assert f"{text} (id {w['memory_id']})" in h.result
    assert mlab.memory.get(mid)["confidence"] == 900  # 700, then +100 twice
    facts = mlab.memory.list("memo")
    assert sorted(facts[facts["category"] == "fact"]["content"]) == [
        "Staging is reset every Monday.",
        same,
    ]
