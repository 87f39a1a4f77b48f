"""Smaller promises of the spec: settings, carried-text caps, unusable runtimes, archived
workflows, a child waiting on the inbox, decisions while paused, restarts of waiting and paused
runs, the monitor panel, secrets."""

from __future__ import annotations

import pytest

from stagent_lab import Lab, SettingError
from stagent_lab.api.requests import MonitorSnapshot
from stagent_lab.errors import WorkflowStateError


def s(text: str) -> list[dict]:
    return [{"result": text}]


def test_unknown_workflows_settings_are_refused_listing_the_valid_ones(lab):
    with pytest.raises(SettingError) as info:
        lab.set_setting("workflows.max_chars", 10)
    text = str(info.value)
    for key in ("workflows.max_context_chars", "workflows.resume_on_open",
                "workflows.parallel_max_concurrent", "workflows.swarm_max_concurrent",
                "workflows.blueprint_dirs"):  # fmt: skip
        assert key in text
    with pytest.raises(SettingError, match="1 to 5"):
        lab.set_setting("workflows.parallel_max_concurrent", 9)
    with pytest.raises(SettingError, match="JSON"):
        lab.set_setting("workflows.blueprint_dirs", "not-a-list")
    with pytest.raises(SettingError, match="a JSON list of folder paths"):
        lab.set_setting("workflows.blueprint_dirs", {"a": 1})


def test_carried_text_is_cut_with_a_marker_and_kept_whole_in_the_store(lab):
    lab.set_setting("workflows.max_context_chars", 1000)
    long = "x" * 4000
    lab.workflows.create(
        "big", profile="tester",
        steps=[{"name": "Make", "prompt": "Make.", "script": s(long)},
               {"name": "Use", "prompt": "Use.", "script": s("ok")}],
    )  # fmt: skip
    run = lab.workflows.run("big").wait(30)
    steps = run.steps().set_index("step_id")
    assert steps.loc["make", "result"] == long
    prompt = steps.loc["use", "input_text"]
    assert "x" * 1000 in prompt and "x" * 1001 not in prompt
    assert "[… 3,000 more characters cut here" in prompt


def test_parallel_concurrency_defaults_to_the_setting(lab):
    lab.set_setting("workflows.parallel_max_concurrent", 2)
    lab.workflows.create(
        "p", pattern="parallel", profile="tester",
        steps=[{"name": "A", "prompt": "A.", "script": s("a")},
               {"name": "B", "prompt": "B.", "script": s("b")},
               {"name": "J", "prompt": "J.", "depends_on": ["a", "b"], "script": s("j")}],
    )  # fmt: skip
    run = lab.workflows.run("p").wait(30)
    snapshot = lab.sql("SELECT definition FROM workflow_runs WHERE id = ?", [run.id])
    assert '"parallel": {"max_concurrent": 2}' in snapshot["definition"].iloc[0]


def test_an_unusable_runtime_fails_the_step_with_the_catalogs_reason(lab):
    lab.workflows.create(
        "remote", profile="tester",
        steps=[{"name": "Ask", "prompt": "Ask the API.", "runtime": "anthropic-direct"}],
    )  # fmt: skip
    run = lab.workflows.run("remote").wait(30)
    assert run.status == "failed"
    assert "runtime anthropic-direct is not usable" in run.failure_reason
    assert lab.tasks().empty  # never a silent fallback to scripted


def test_an_archived_workflow_does_not_run(lab):
    lab.workflows.create("old", profile="tester", steps=[{"name": "A", "prompt": "A."}])
    lab.workflows.archive("old")
    with pytest.raises(WorkflowStateError, match="archived"):
        lab.workflows.run("old")
    assert lab.workflows.list("archived")["name"].tolist() == ["old"]


def test_the_step_stays_running_while_its_child_waits_on_the_inbox(lab, wait_until):
    lab.workflows.create(
        "ask", profile="guarded",
        steps=[{"name": "Shell", "prompt": "Run it.",
                "script": [{"tool": "Bash", "input": {"command": "echo hi"}}, {"result": "ran"}]}],
    )  # fmt: skip
    run = lab.workflows.run("ask")
    item = lab.wait_inbox(30)
    assert item["kind"].tolist() == ["permission"]
    steps = run.steps()
    assert steps["status"].tolist() == ["running"] and run.status == "running"
    lab.decide(item["id"].iloc[0], "allow")
    assert run.wait(30).status == "completed" and run.output == "ran"


def test_a_decision_made_while_paused_applies_on_resume(lab, wait_until):
    lab.workflows.create(
        "gate", profile="tester",
        steps=[{"name": "Go", "prompt": "Go.", "requires_approval": True, "script": s("went")}],
    )  # fmt: skip
    run = lab.workflows.run("gate")
    run.wait(30, until=["waiting"])
    run.pause()
    item = lab.inbox().query("kind == 'checkpoint'")["id"].iloc[0]
    lab.decide(item, "allow", "after the pause")
    assert run.status == "paused" and lab.tasks().empty
    run.resume()
    assert run.wait(30).status == "completed"
    assert "after the pause" in run.steps()["input_text"].iloc[0]


def test_waiting_and_paused_runs_survive_a_reopen(home, profiles_dir):
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    lab.workflows.create(
        "gate", profile="tester", concurrent_runs=True,
        steps=[{"name": "Go", "prompt": "Go.", "requires_approval": True, "script": s("went")}],
    )  # fmt: skip
    waiting = lab.workflows.run("gate").wait(30, until=["waiting"])
    paused = lab.workflows.run("gate").wait(30, until=["waiting"]).pause()
    lab.close()
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    try:
        waiting = lab.workflows.run_handle(waiting.id)
        paused = lab.workflows.run_handle(paused.id)
        assert waiting.status == "waiting" and paused.status == "paused"
        items = lab.inbox().query("kind == 'checkpoint'")
        assert len(items) == 2  # the checkpoints were not expired by the restart
        for item in items.itertuples():
            lab.decide(item.id, "allow")
        assert waiting.wait(30).status == "completed"
        assert paused.status == "paused"
        assert paused.resume().wait(30).status == "completed"
    finally:
        lab.close()


def test_the_monitor_shows_active_runs(lab):
    lab.workflows.create(
        "gate", profile="tester",
        steps=[{"name": "Go", "prompt": "Go.", "requires_approval": True, "script": s("x")}],
    )  # fmt: skip
    run = lab.workflows.run("gate").wait(30, until=["waiting"])
    rows = lab.call(MonitorSnapshot(recent=0))["sections"]["workflow runs"]
    assert [(r["id"], r["workflow"], r["status"]) for r in rows] == [(run.id, "gate", "waiting")]
    run.cancel()
    assert lab.call(MonitorSnapshot(recent=0))["sections"]["workflow runs"] == []


def test_secrets_in_outputs_and_notes_are_redacted_in_the_store(lab, monkeypatch, wait_until):
    secret = "sk-ant-api03-" + "Q" * 40
    lab.configure_runtime("anthropic-direct", api_key=secret)  # joins redaction
    lab.workflows.create(
        "leak", profile="tester",
        steps=[{"name": "Leak", "prompt": "Leak.", "script": s(f"the key is {secret}")},
               {"name": "Next", "prompt": "Next.", "requires_approval": True, "script": s("ok")}],
    )  # fmt: skip
    run = lab.workflows.run("leak")
    item = wait_until(lambda: lab.inbox().query("kind == 'checkpoint'")["id"].tolist())[0]
    lab.decide(item, "allow", f"use {secret}")
    run.wait(30)
    dump = lab.sql(
        "SELECT string_agg(coalesce(result, '') || coalesce(input_text, '') || "
        "coalesce(operator_note, ''), ' ') AS t FROM workflow_step_runs"
    )["t"].iloc[0]
    assert secret not in dump and secret[:20] not in dump
    body = lab.inbox("all").query("kind == 'checkpoint'")["body"].iloc[0]
    assert secret not in body


def test_a_python_function_script_lives_only_in_the_process_that_gave_it(home, profiles_dir):
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    lab.workflows.create(
        "fn", profile="tester",
        steps=[{"name": "Say", "prompt": "Say.", "script": lambda p, prof: [{"result": "fn"}]}],
    )  # fmt: skip
    assert lab.workflows.run("fn").wait(30).output == "fn"
    stored = lab.workflows.get("fn").steps[0]["script"]
    assert set(stored) == {"python_callable"}  # a token, never the code
    lab.close()
    lab = Lab(home=home, profile_dirs=[profiles_dir])
    try:
        run = lab.workflows.run("fn").wait(30)
        assert run.status == "failed"
        assert "Python function given in another process" in run.failure_reason
    finally:
        lab.close()


def test_run_inputs_are_checked_at_the_boundary(lab):
    from stagent_lab import InvalidInput

    lab.workflows.create("in", profile="tester", steps=[{"name": "A", "prompt": "A."}])
    with pytest.raises(InvalidInput, match="identifiers"):
        lab.workflows.run("in", inputs={"bad name": 1})
    with pytest.raises(InvalidInput, match="identifiers"):
        lab.workflows.run("in", inputs={"_rows": []})
    with pytest.raises(InvalidInput, match="limited to 1,000,000"):
        lab.workflows.run("in", inputs={"big": "x" * 1_000_001})
    assert lab.workflows.runs().empty


def test_run_workflow_from_the_engine_thread_as_a_schedule_does(lab):
    from stagent_lab.api.workflows import RunWorkflow, WorkflowRunView

    lab.workflows.create(
        "nightly", profile="tester", steps=[{"name": "A", "prompt": "A.", "script": s("a")}]
    )
    service = lab.workspace.service
    view = service.on_engine(
        lambda: service.handle(
            RunWorkflow(workflow="nightly", trigger="schedule", trigger_id="firing-7")
        )
    )
    assert isinstance(view, WorkflowRunView) and view.workflow == "nightly"
    run = lab.workflows.run_handle(view.id).wait(30)
    v = run.view()
    assert (v.status, v.trigger, v.trigger_id, v.run_number) == (
        "completed",
        "schedule",
        "firing-7",
        1,
    )
    started = run.logs().query("event == 'workflow_started'")["payload"].iloc[0]
    assert started["trigger"] == "schedule" and started["version"] == 1
