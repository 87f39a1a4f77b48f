"""The monitor names tasks by title, shows limits, and renders feature panels generically;
log lines read as words, never raw JSON."""

from __future__ import annotations

import time

from stagent_lab.notebook import static
from stagent_lab.notebook.log_entries import log_entry
from stagent_lab.notebook.widgets import Monitor


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def service_of(lab):
    return lab.workspace.service


def test_feature_panels_render_as_titled_tables(lab):
    rows = [{"budget": "team", "spent_usd": 0.42, "limit_usd": 2.0, "tags": ["a", "b"]}]
    service_of(lab).add_monitor_section("budgets", lambda: rows)
    service_of(lab).add_monitor_section("broken_panel", lambda: 1 / 0)
    monitor = Monitor(lab)
    assert monitor.sections["budgets"] == rows
    assert monitor.sections["broken_panel"] == [{"error": "ZeroDivisionError: division by zero"}]
    rows.append({"budget": "ops", "spent_usd": 0.0, "limit_usd": 1.0, "tags": []})
    monitor._hub.poke(monitor)
    assert wait_until(lambda: len(monitor.sections["budgets"]) == 2)
    copy = static.monitor(monitor.stats, monitor.agents, monitor.sections)["text/html"]
    assert "<strong>Budgets</strong>" in copy and "<th>spent_usd</th>" in copy
    assert "<td>a, b</td>" in copy and "Broken panel" in copy
    assert static.section_title("workflow_runs") == "Workflow runs"
    monitor.close()


def test_monitor_names_tasks_by_title_and_shows_limits(lab, project):
    monitor = Monitor(lab)
    h = lab.submit(
        "Audit the billing module",
        profile="guarded",
        project=project,
        max_budget_usd=2.0,
        script=[{"tool": "Bash", "input": {"command": "echo hi"}}, {"say": "x"}],
    )
    assert wait_until(lambda: monitor.titles.get(h.id) == "Audit the billing module")
    assert wait_until(lambda: [a["id"] for a in monitor.agents] == [h.id])
    agent = monitor.agents[0]
    assert agent["max_turns"] == 20 and agent["max_budget_usd"] == 2.0
    copy = monitor.static_bundle()["text/html"]
    assert "Audit the billing module" in copy and "of 20 turns" in copy
    assert "$0.00 of $2.00" in copy
    h.cancel()
    h.wait(timeout=20)
    monitor.close()
    # A new monitor learns titles from the stored log as well.
    again = Monitor(lab)
    assert again.titles.get(h.id) == "Audit the billing module"
    again.close()


def test_log_lines_read_as_words():
    def line(event, payload, **kw):
        return log_entry({"event": event, "payload": payload, "seq": 1, **kw})["text"]

    recalled = {"memory_ids": ["m1", "m2"], "count": 2, "chars": 180, "scores": [0.9, 0.5]}
    assert line("memory_recalled", recalled) == (
        "recalled 2 memories (180 characters of instructions): m1, m2"
    )
    written = {"memory_id": "m9", "action": "added", "category": "fact", "confidence": 700}
    assert line("memory_written", written) == "added memory m9 (fact, confidence 700)"
    sent = {"to_profile": "researcher", "subject": "Dig", "status": "in_progress"}
    assert line("handoff_sent", sent) == 'handed off to researcher "Dig" (in_progress)'
    done = {"to_profile": "researcher", "status": "completed", "summary": "found it"}
    assert line("handoff_result", done) == "researcher completed: found it"
    decided = {"kind": "permission", "decision": "allow", "decided_by": "ana"}
    assert line("inbox_decided", decided) == "permission allow by ana"
    other = line("budget_warning", {"budget": "team", "spent": 0.4, "extra": None})
    assert other == "budget team · spent 0.4" and "{" not in other
    long = "First line of the answer\nsecond line"
    entry = log_entry({"event": "assistant_text", "payload": {"text": long}})
    assert entry["text"] == "First line of the answer …" and entry["detail"] == long
    assert log_entry({"event": "result", "payload": {"text": long}})["text"] == (
        "result: First line of the answer"
    )
