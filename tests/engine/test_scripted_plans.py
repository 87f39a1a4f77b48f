"""The scripted runtime's default plans work from what the tools return."""

from __future__ import annotations

from stagent_lab.runtimes.scripted_plans import nested_loops


def test_nested_loops_found_from_grep_output():
    hits = [
        "app/report.py:13:    for inv in invoices:",
        "app/report.py:22:    for customer in customers:",
        "app/report.py:24:        for inv in invoices:",
        "app/report.py:35:    for i, a in enumerate(invoices):",
        "app/report.py:36:        for b in invoices[i + 1 :]:",
        "app/other.py:40:        for x in xs:",  # deeper, but the first loop of its file
        "app/report.py:90:        for y in ys:",  # deeper than line 36 but far below it
    ]
    assert nested_loops(hits) == [
        ("app/report.py:24", "for inv in invoices:"),
        ("app/report.py:36", "for b in invoices[i + 1 :]:"),
    ]


def test_default_review_plan_reports_what_the_tools_found(lab, project):
    (project / "src" / "slow.py").write_text(
        "def pairs(xs):\n    out = []\n    for a in xs:\n        for b in xs:\n"
        "            out.append((a, b))\n    return out\n"
    )
    h = lab.submit("review", profile="code-reviewer", runtime="scripted", project=project)
    item = lab.wait_inbox(task=h.id, timeout=60).iloc[0]
    assert item["tool_input"] == {"command": "git status --short"}
    lab.decide(item["id"], "allow")
    h.wait(timeout=60)
    report = h.result
    assert "SQL injection" in report and "src/app.py:4" in report
    assert "Nested loops: quadratic time" in report and "src/slow.py:4" in report
    assert "Uncommitted changes (1): ?? src/slow.py." in report
    tools = h.logs().query("event == 'tool_request'")["tool_name"].tolist()
    assert tools[:3] == ["Glob", "Grep", "Grep"] and tools[-2:] == ["Bash", "Bash"]
