"""§1.9.3: ``requires_approval`` is honoured in every pattern, as a ``checkpoint`` inbox item
with no timeout; allow carries the operator's note into the step, deny fails the run."""

from __future__ import annotations

from datetime import timedelta

from stagent_lab.workflows.prompts import NOTE_LABEL


def s(text: str) -> list[dict]:
    return [{"result": text}]


def pending_checkpoints(lab, run_id: str) -> list[dict]:
    df = lab.inbox()
    df = df[(df["kind"] == "checkpoint") & (df["subject_id"] == run_id)]
    return df.to_dict("records")


def step_status(run, step_id: str, iteration: int = 0) -> str | None:
    df = run.steps()
    df = df[(df["step_id"] == step_id) & (df["iteration"] == iteration)]
    return df["status"].iloc[-1] if len(df) else None


def test_sequence_checkpoint_body_allow_with_note(lab, wait_until):
    lab.workflows.create(
        "deploy",
        profile="tester",
        steps=[
            {"name": "Build", "prompt": "Build it.", "script": s("artifact v7")},
            {"name": "Ship", "prompt": "Ship the artifact.", "requires_approval": True,
             "script": s("shipped")},
        ],
    )  # fmt: skip
    run = lab.workflows.run("deploy")
    item = wait_until(lambda: pending_checkpoints(lab, run.id))[0]
    assert run.wait(10, until=["waiting"]).status == "waiting"
    assert step_status(run, "ship") == "waiting"
    body = item["body"]
    assert 'Workflow "deploy", run #1' in body
    assert "Step: Ship (profile tester)" in body
    assert "Prompt: Ship the artifact." in body
    assert "Previous output: artifact v7" in body
    assert "Cost so far: $0.0000" in body
    assert (
        run.logs().query("event == 'workflow_checkpoint'")["payload"].iloc[0]["item_id"]
        == (item["id"])
    )
    lab.decide(item["id"], "allow", "use the blue-green slot")
    run.wait(30)
    assert run.status == "completed"
    steps = run.steps()
    ship = steps[steps["step_id"] == "ship"].iloc[0]
    assert ship["operator_note"] == "use the blue-green slot"
    assert f"{NOTE_LABEL}\nuse the blue-green slot" in ship["input_text"]


def test_deny_fails_the_run_with_the_message(lab, wait_until):
    lab.workflows.create(
        "deploy",
        pattern="checkpoint",
        profile="tester",
        steps=[
            {"name": "Build", "prompt": "Build.", "script": s("built")},
            {"name": "Ship", "prompt": "Ship.", "script": s("shipped")},
            {"name": "Announce", "prompt": "Announce.", "requires_approval": False,
             "script": s("announced")},
        ],
    )  # fmt: skip
    run = lab.workflows.run("deploy")
    item = wait_until(lambda: pending_checkpoints(lab, run.id))[0]
    lab.decide(item["id"], "deny", "not on a Friday")
    run.wait(30)
    assert run.status == "failed"
    assert "not on a Friday" in run.failure_reason
    steps = run.steps().set_index("step_id")
    assert steps.loc["ship", "status"] == "failed"
    assert steps.loc["ship", "error"] == "not on a Friday"
    assert steps.loc["announce", "status"] == "cancelled"
    final = run.logs().query("event == 'workflow_failed'")["payload"].iloc[0]
    assert final["failed_step"] == "ship" and final["error"] == "not on a Friday"
    assert len(lab.tasks()) == 1  # the denied step never started a task


def test_a_checkpoint_pending_for_a_day_does_not_expire(flab, clock, wait_until):
    flab.workflows.create(
        "slow",
        profile="tester",
        steps=[{"name": "Ask", "prompt": "Go.", "requires_approval": True, "script": s("done")}],
    )
    run = flab.workflows.run("slow")
    item = wait_until(lambda: pending_checkpoints(flab, run.id))[0]
    clock.advance(timedelta(hours=24))
    clock.advance(timedelta(hours=1))
    assert flab.inbox("pending")["id"].tolist() == [item["id"]]
    assert run.status == "waiting"
    flab.decide(item["id"], "allow")
    assert run.wait(30).status == "completed"


def test_planner_executor_asks_before_an_executor(lab, wait_until):
    lab.workflows.create(
        "plan",
        pattern="planner-executor",
        profile="tester",
        steps=[
            {"name": "Plan", "prompt": "Plan.", "script": s("the plan")},
            {"name": "Do", "prompt": "Do part 1.", "requires_approval": True, "script": s("did")},
        ],
    )
    run = lab.workflows.run("plan")
    item = wait_until(lambda: pending_checkpoints(lab, run.id))[0]
    assert "Previous output: the plan" in item["body"]
    lab.decide(item["id"], "allow", "keep it short")
    assert run.wait(30).status == "completed"
    do = run.steps().set_index("step_id").loc["do"]
    assert "keep it short" in do["input_text"] and "the plan" in do["input_text"]


def test_parallel_branch_waits_while_its_siblings_run(lab, wait_until):
    lab.workflows.create(
        "fan",
        pattern="parallel",
        profile="tester",
        steps=[
            {"name": "A", "prompt": "A.", "script": s("a")},
            {"name": "B", "prompt": "B.", "requires_approval": True, "script": s("b")},
            {"name": "C", "prompt": "C.", "script": s("c")},
            {"name": "Join", "prompt": "Join.", "depends_on": ["a", "b", "c"], "script": s("abc")},
        ],
    )  # fmt: skip
    run = lab.workflows.run("fan")
    item = wait_until(lambda: pending_checkpoints(lab, run.id))[0]
    wait_until(
        lambda: step_status(run, "a") == "completed" and step_status(run, "c") == "completed"
    )
    assert step_status(run, "b") == "waiting"
    assert step_status(run, "join") == "pending"
    assert run.wait(10, until=["waiting"]).status == "waiting"  # nothing else runs now
    lab.decide(item["id"], "allow")
    assert run.wait(30).status == "completed" and run.output == "abc"


def test_swarm_worker_asks(lab, wait_until):
    lab.workflows.create(
        "swarm",
        pattern="swarm",
        profile="tester",
        steps=[
            {"name": "Mayor", "prompt": "Split.", "script": s("plan")},
            {"name": "W1", "prompt": "One.", "script": s("one")},
            {"name": "W2", "prompt": "Two.", "requires_approval": True, "script": s("two")},
            {"name": "Merge", "prompt": "Merge.", "script": s("merged")},
        ],
    )
    run = lab.workflows.run("swarm")
    item = wait_until(lambda: pending_checkpoints(lab, run.id))[0]
    assert "Step: W2" in item["body"]
    lab.decide(item["id"], "allow")
    assert run.wait(30).status == "completed" and run.output == "merged"


def test_loop_asks_before_every_iteration(lab, wait_until):
    lab.workflows.create(
        "loop",
        pattern="loop",
        loop={"max_iterations": 2},
        profile="tester",
        steps=[{"name": "Step", "prompt": "Again.", "requires_approval": True, "script": s("x")}],
    )
    run = lab.workflows.run("loop")
    first = wait_until(lambda: pending_checkpoints(lab, run.id))[0]
    lab.decide(first["id"], "allow")
    second = wait_until(
        lambda: [i for i in pending_checkpoints(lab, run.id) if i["id"] != first["id"]]
    )[0]
    assert step_status(run, "step", 2) == "waiting"
    lab.decide(second["id"], "allow", "last one")
    run.wait(30)
    assert run.status == "completed" and run.stop_reason == "max_iterations"
    assert len(lab.inbox("decided").query("kind == 'checkpoint'")) == 2


def test_rows_ask_per_row(lab, wait_until):
    lab.workflows.create(
        "rows",
        pattern="loop",
        loop={"max_iterations": 5, "items": [{"n": 1}, {"n": 2}]},
        profile="tester",
        steps=[{"name": "Do", "prompt": "Row {{item.n}}.", "requires_approval": True,
                "script": s("ok")}],
    )  # fmt: skip
    run = lab.workflows.run("rows")
    seen: set[str] = set()
    for _ in range(2):
        item = wait_until(
            lambda: [i for i in pending_checkpoints(lab, run.id) if i["id"] not in seen]
        )[0]
        seen.add(item["id"])
        lab.decide(item["id"], "allow")
    assert run.wait(30).status == "completed"
    assert run.results()["status"].tolist() == ["completed", "completed"]
