"""§1.9.7–§1.9.12: pause and cancel, retry, failure isolation, run budgets, queueing, busy runs
and updates during a run."""

from __future__ import annotations

import pytest

from stagent_lab.errors import WorkflowBusyError, WorkflowStateError


def s(text: str) -> list[dict]:
    return [{"result": text}]


def slow(text: str, seconds: float = 0.6) -> list[dict]:
    return [{"say": "working"}, {"sleep": seconds}, {"result": text}]


def step_status(run, step_id: str) -> str:
    df = run.steps()
    return df[df["step_id"] == step_id]["status"].iloc[-1]


def parallel(lab, name: str, a, b, join=None, **kw) -> None:
    lab.workflows.create(
        name,
        pattern="parallel",
        profile="tester",
        steps=[
            {"name": "A", "prompt": "A.", "script": a},
            {"name": "B", "prompt": "B.", "script": b},
            {"name": "Join", "prompt": "Join.", "depends_on": ["a", "b"],
             "script": join or s("joined")},
        ],
        **kw,
    )  # fmt: skip


# ---- §1.9.7 pause and cancel --------------------------------------------------------------


def test_pause_during_two_branches_lets_them_finish_and_resume_runs_the_synthesis(lab, wait_until):
    parallel(lab, "fan", slow("a"), slow("b"))
    run = lab.workflows.run("fan")
    wait_until(lambda: step_status(run, "a") == "running" and step_status(run, "b") == "running")
    run.pause()
    assert run.status == "paused"
    wait_until(
        lambda: step_status(run, "a") == "completed" and step_status(run, "b") == "completed"
    )
    steps = run.steps().set_index("step_id")
    assert steps.loc["a", "result"] == "a" and steps.loc["b", "result"] == "b"
    assert steps.loc["join", "status"] == "pending"
    assert run.status == "paused"
    assert len(lab.tasks()) == 2  # no synthesis task
    paused = run.logs().query("event == 'workflow_paused'")["payload"].iloc[0]
    assert paused["reason"] == "paused by the operator"
    run.resume()
    assert run.wait(30).status == "completed" and run.output == "joined"


def test_pause_with_stop_tasks_pauses_children_and_resume_resumes_them(lab, wait_until):
    lab.workflows.create(
        "long", profile="tester", steps=[{"name": "Work", "prompt": "W.", "script": slow("w", 2)}]
    )
    run = lab.workflows.run("long")
    wait_until(lambda: step_status(run, "work") == "running")
    task_id = run.steps()["task_id"].iloc[0]
    run.pause(stop_tasks=True)
    wait_until(lambda: lab.task(task_id).status == "paused")
    assert step_status(run, "work") == "running"  # the step waits for its paused child
    run.resume()
    assert run.wait(30).status == "completed"
    assert lab.task(task_id).view().resume_count == 1


def test_cancel_cancels_children_and_expires_the_pending_checkpoint(lab, wait_until):
    parallel(lab, "fan", slow("a", 5), s("b"))
    lab.workflows.update("fan", steps=[
        {"name": "A", "prompt": "A.", "script": slow("a", 5)},
        {"name": "B", "prompt": "B.", "requires_approval": True, "script": s("b")},
        {"name": "Join", "prompt": "Join.", "depends_on": ["a", "b"], "script": s("j")},
    ])  # fmt: skip
    run = lab.workflows.run("fan")
    wait_until(lambda: step_status(run, "a") == "running" and step_status(run, "b") == "waiting")
    item = lab.inbox().query("kind == 'checkpoint'")["id"].iloc[0]
    task_id = run.steps().set_index("step_id").loc["a", "task_id"]
    run.cancel()
    assert run.status == "cancelled"
    wait_until(lambda: lab.task(task_id).status == "cancelled")
    wait_until(lambda: step_status(run, "a") == "cancelled")
    assert lab.inbox("all").set_index("id").loc[item, "status"] == "expired"
    assert step_status(run, "b") == "cancelled" and step_status(run, "join") == "cancelled"
    with pytest.raises(WorkflowStateError, match="already cancelled"):
        run.cancel()
    final = run.logs().query("event == 'workflow_cancelled'")["payload"].iloc[0]
    assert final["status"] == "cancelled"


def test_a_child_cancelled_from_outside_fails_its_step(lab, wait_until):
    lab.workflows.create(
        "solo", profile="tester", steps=[{"name": "Work", "prompt": "W.", "script": slow("w", 5)}]
    )
    run = lab.workflows.run("solo")
    wait_until(lambda: step_status(run, "work") == "running")
    lab.task(run.steps()["task_id"].iloc[0]).cancel()
    assert run.wait(30).status == "failed"
    assert "child task cancelled" in run.failure_reason


# ---- §1.9.8 retry ------------------------------------------------------------------------


def test_retry_reruns_the_failed_step_with_the_same_input_then_continues(lab):
    attempts = {"n": 0}

    def flaky(prompt, profile):
        attempts["n"] += 1
        return [{"fail": "rate limited"}] if attempts["n"] == 1 else [{"result": "written"}]

    lab.workflows.create(
        "seq",
        profile="tester",
        steps=[
            {"name": "Research", "prompt": "Research.", "script": s("FACTS")},
            {"name": "Write", "prompt": "Write.", "script": flaky},
            {"name": "Edit", "prompt": "Edit.", "script": s("edited")},
        ],
    )
    run = lab.workflows.run("seq").wait(30)
    assert run.status == "failed" and "rate limited" in run.failure_reason
    assert step_status(run, "edit") == "cancelled"
    run.retry()
    assert run.wait(30).status == "completed" and run.output == "edited"
    write = run.steps().query("step_id == 'write'").sort_values("attempt")
    assert write["attempt"].tolist() == [1, 2]
    first, second = write["input_text"].tolist()
    assert first == second and "FACTS" in first
    assert run.view().run_number == 1
    assert len(lab.tasks()) == 4  # research, write ×2, edit


def test_retry_with_resume_resumes_the_failed_child(lab):
    calls = {"n": 0}

    def flaky(prompt, profile):
        calls["n"] += 1
        return [{"say": "hi"}, {"fail": "boom"} if calls["n"] == 1 else {"result": "resumed"}]

    lab.workflows.create(
        "seq", profile="tester", steps=[{"name": "Ask", "prompt": "A.", "script": flaky}]
    )
    run = lab.workflows.run("seq").wait(30)
    assert run.status == "failed"
    task_id = run.steps()["task_id"].iloc[0]
    run.retry(resume=True)
    assert run.wait(30).status == "completed" and run.output == "resumed"
    steps = run.steps()
    assert steps["task_id"].tolist() == [task_id, task_id]
    assert steps["attempt"].tolist() == [1, 2]
    assert lab.task(task_id).view().resume_count == 1
    assert len(lab.tasks()) == 1


def test_only_failed_or_partly_failed_runs_retry(lab):
    lab.workflows.create("ok", profile="tester", steps=[{"name": "A", "prompt": "A.",
                                                         "script": s("a")}])  # fmt: skip
    run = lab.workflows.run("ok").wait(30)
    with pytest.raises(WorkflowStateError, match="retry"):
        run.retry()


# ---- §1.9.9 isolation ----------------------------------------------------------------------


def test_a_failed_branch_blocks_the_synthesis_after_its_siblings_finish(lab):
    parallel(lab, "iso", [{"fail": "source offline"}], slow("b", 0.3))
    run = lab.workflows.run("iso").wait(30)
    assert run.status == "failed"
    steps = run.steps().set_index("step_id")
    assert steps.loc["a", "status"] == "failed"
    assert steps.loc["b", "status"] == "completed"
    assert steps.loc["join", "status"] == "blocked"
    assert steps.loc["join", "error"] == '1 of 2 failed: "A": source offline'
    assert "source offline" in run.failure_reason
    blocked = run.logs().query("event == 'workflow_step_blocked'")["payload"].iloc[0]
    assert blocked["step_id"] == "join"


def test_retry_of_a_parallel_run_reruns_the_failed_branch_then_the_synthesis(lab):
    state = {"down": True}

    def flaky(prompt, profile):
        return [{"fail": "down"}] if state["down"] else [{"result": "a"}]

    parallel(lab, "iso", flaky, s("b"))
    run = lab.workflows.run("iso").wait(30)
    assert run.status == "failed"
    state["down"] = False
    run.retry()
    assert run.wait(30).status == "completed"
    counts = run.steps().groupby("step_id")["attempt"].max().to_dict()
    assert counts == {"a": 2, "b": 1, "join": 2}


# ---- §1.9.10 run budget --------------------------------------------------------------------


def test_run_budget_pauses_with_a_notice_and_set_budget_then_resume_completes(lab, wait_until):
    long_say = "x" * 4000  # ~1,000 output tokens at a priced model: about $0.015 a call
    lab.workflows.create(
        "costly",
        profile="tester",
        budget_usd=0.02,
        steps=[
            {"name": "One", "prompt": "One.", "model": "claude-sonnet-4-5",
             "script": [{"say": long_say}, {"result": "one"}]},
            {"name": "Two", "prompt": "Two.", "model": "claude-sonnet-4-5",
             "script": [{"say": long_say}, {"say": long_say}, {"result": "two"}]},
        ],
    )  # fmt: skip
    run = lab.workflows.run("costly")
    run.wait(30)
    view = run.view()
    assert view.status == "paused" and view.stop_reason == "budget"
    assert view.cost_usd >= 0.02
    notices = lab.inbox().query("kind == 'notice' and subject_id == @run.id")
    assert len(notices) == 1 and "budget" in notices["body"].iloc[0]
    two = run.steps().set_index("step_id").loc["two"]
    assert two["status"] == "running"
    wait_until(lambda: lab.task(two["task_id"]).status == "paused")
    with pytest.raises(WorkflowStateError, match="set_budget"):
        run.resume()
    run.set_budget(1.0)
    run.resume()
    assert run.wait(30).status == "completed" and run.output == "two"
    assert run.view().cost_usd > 0.02


def test_the_child_cap_is_the_runs_remaining_budget(lab):
    lab.workflows.create(
        "capped", profile="tester", budget_usd=0.5,
        steps=[{"name": "A", "prompt": "A.", "budget_usd": 2.0, "script": s("a")},
               {"name": "B", "prompt": "B.", "budget_usd": 0.1, "script": s("b")}],
    )  # fmt: skip
    lab.workflows.run("capped").wait(30)
    caps = lab.sql("SELECT title, max_budget_usd FROM tasks ORDER BY created_at")
    assert caps["max_budget_usd"].tolist() == pytest.approx([0.5, 0.1])


# ---- §1.9.11 queueing ----------------------------------------------------------------------


def test_with_one_engine_slot_branches_run_one_at_a_time(lab):
    lab.set_setting("engine.max_concurrent", 1)
    lab.workflows.create(
        "q",
        pattern="parallel",
        profile="tester",
        steps=[
            {"name": "A", "prompt": "A.", "script": slow("a", 0.2)},
            {"name": "B", "prompt": "B.", "script": slow("b", 0.2)},
            {"name": "C", "prompt": "C.", "script": slow("c", 0.2)},
            {"name": "Join", "prompt": "J.", "depends_on": ["a", "b", "c"], "script": s("j")},
        ],
    )
    run = lab.workflows.run("q").wait(60)
    assert run.status == "completed"
    spans = lab.sql(
        "SELECT started_at, finished_at FROM tasks WHERE title LIKE 'q · _' ORDER BY started_at"
    )
    assert len(spans) == 3
    for prev, nxt in zip(spans.itertuples(), list(spans.itertuples())[1:], strict=False):
        assert nxt.started_at >= prev.finished_at
    queued = lab.sql(
        "SELECT count(*) AS n FROM agent_logs WHERE event = 'status' "
        "AND json_extract_string(payload, '$.to') = 'queued'"
    )["n"].iloc[0]
    assert queued == 4  # every child went through the queue


# ---- §1.9.12 busy runs and updates ---------------------------------------------------------


def test_a_second_run_while_one_is_live_is_refused(lab, wait_until):
    lab.workflows.create(
        "gate", profile="tester",
        steps=[{"name": "Ask", "prompt": "Ask.", "requires_approval": True, "script": s("ok")}],
    )  # fmt: skip
    run = lab.workflows.run("gate")
    run.wait(30, until=["waiting"])
    with pytest.raises(WorkflowBusyError) as info:
        lab.workflows.run("gate")
    assert info.value.run_id == run.id and info.value.status == "waiting"
    assert run.id in str(info.value) and "waiting" in str(info.value)
    with pytest.raises(WorkflowStateError, match="live run"):
        lab.workflows.delete("gate")
    lab.workflows.update("gate", concurrent_runs=True)
    second = lab.workflows.run("gate")
    assert second.view().run_number == 2


def test_an_update_during_a_run_leaves_that_run_unchanged(lab, wait_until):
    lab.workflows.create(
        "doc", profile="tester",
        steps=[{"name": "Gate", "prompt": "Gate.", "requires_approval": True, "script": s("g")},
               {"name": "Write", "prompt": "Write version ONE.", "script": s("v1")}],
    )  # fmt: skip
    run = lab.workflows.run("doc")
    run.wait(30, until=["waiting"])
    wf = lab.workflows.update(
        "doc",
        steps=[{"name": "Gate", "prompt": "Gate.", "script": s("g")},
               {"name": "Write", "prompt": "Write version TWO.", "script": s("v2")}],
    )  # fmt: skip
    assert wf.version == 2
    item = lab.inbox().query("kind == 'checkpoint'")["id"].iloc[0]
    lab.decide(item, "allow")
    assert run.wait(30).output == "v1"
    assert run.view().version == 1
    assert "version ONE" in run.steps().set_index("step_id").loc["write", "input_text"]
    second = lab.workflows.run("doc").wait(30)
    assert second.output == "v2" and second.view().version == 2


def test_delete_removes_definition_and_runs_but_keeps_tasks(lab):
    lab.workflows.create("tmp", profile="tester", steps=[{"name": "A", "prompt": "A.",
                                                          "script": s("a")}])  # fmt: skip
    lab.workflows.run("tmp").wait(30)
    lab.workflows.delete("tmp")
    assert lab.workflows.list().empty and lab.workflows.runs().empty
    assert len(lab.sql("SELECT * FROM workflow_step_runs")) == 0
    assert len(lab.tasks()) == 1
