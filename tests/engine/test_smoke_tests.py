"""Profile smoke tests run as real tasks, unattended, and their results are stored."""

from __future__ import annotations

import json

import pytest

from tests.conftest import write_profile

ASKS = """\
id: asks
name: Asks
supportedRuntimes: [anthropic-direct]
allowedTools: [Glob, Bash]
tests:
  - task: "count the files"
    expectedKeywords: [files, zebra]
"""


def test_smoke_tests_store_results(lab):
    df = lab.test_profile("tester", runtime="scripted")
    assert df[["test_index", "status", "passed"]].values.tolist() == [[0, "completed", True]]
    stored = lab.sql(
        "SELECT profile_id, runtime_id, passed, missing_keywords FROM profile_test_runs"
    )
    assert stored.values.tolist() == [["tester", "scripted", True, "[]"]]
    usage = lab.usage()
    assert set(usage["activity"]) == {"profile_test"}


def test_unattended_approvals_are_denied_and_missing_keywords_named(lab, profiles_dir):
    write_profile(profiles_dir, "asks", ASKS)

    def script(prompt, profile):
        out = yield {"tool": "Bash", "input": {"command": "ls | wc -l"}}
        yield {"say": f"I could not count the files: {out}"}

    lab.catalog.configure("scripted", script=script)
    try:
        df = lab.test_profile("asks", runtime="scripted")
    finally:
        lab.catalog.configure("scripted", script=None)
    row = df.iloc[0]
    assert row["status"] == "completed" and not row["passed"]
    assert row["missing"] == ["zebra"]
    # Unattended: the request that needed a person was denied at once, with no inbox item.
    assert lab.inbox("all").empty
    decision = lab.logs(task=row["task_id"], event="tool_decision").iloc[0]["payload"]
    assert (decision["behavior"], decision["tier"]) == ("deny", "unattended")
    assert json.loads(lab.sql("SELECT missing_keywords FROM profile_test_runs").iloc[0, 0]) == [
        "zebra"
    ]


def test_profile_without_smoke_tests_says_so(lab):
    with pytest.raises(ValueError, match="has no smoke tests"):
        lab.test_profile("guarded")
