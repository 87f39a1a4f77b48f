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
    df = lab.test_profile("tester")
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
        df = lab.test_profile("asks")
    finally:
        lab.catalog.options["scripted"].pop("script")
    row = df.iloc[0]
    assert row["status"] == "completed" and not row["passed"]
    assert row["missing"] == ["zebra"]
    decided = lab.inbox("decided")
    assert decided[["decision", "decided_by"]].values.tolist() == [["deny", "smoke-test"]]
    assert json.loads(lab.sql("SELECT missing_keywords FROM profile_test_runs").iloc[0, 0]) == [
        "zebra"
    ]


def test_profile_without_smoke_tests_says_so(lab):
    with pytest.raises(ValueError, match="has no smoke tests"):
        lab.test_profile("guarded")
