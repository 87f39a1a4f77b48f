"""§1.9.1: each of the six patterns, on the scripted runtime, produces the documented child
tasks (source, origin, parent, activity, title), prompts with the specified parts, and output."""

from __future__ import annotations

import json


def s(text: str) -> list[dict]:
    return [{"result": text}]


def tasks_of(lab, run) -> list[dict]:
    """The run's child tasks in creation order, with their step run."""
    df = lab.sql(
        "SELECT t.id, t.title, t.prompt, t.source, t.origin_id, t.parent_task_id, t.activity, "
        "t.status, t.profile_id, s.step_id, s.iteration, s.input_text FROM tasks t "
        "JOIN workflow_step_runs s ON s.id = t.origin_id WHERE s.run_id = ? "
        "ORDER BY t.created_at, t.id",
        [run.id],
    )
    return df.astype(object).where(df.notna(), None).to_dict("records")


def check_children(rows: list[dict]) -> None:
    for r in rows:
        assert r["source"] == "workflow"
        assert r["activity"] == "workflow_step"
        assert r["status"] == "completed"
        assert r["prompt"] == r["input_text"]  # the full prompt is kept on the step run


def test_sequence_passes_each_output_on_by_name(lab):
    lab.workflows.create(
        "notes",
        steps=[
            {"name": "Collect", "prompt": "List the changes in {{inputs.version}}.",
             "profile": "tester", "script": s("three changes")},
            {"name": "Write", "prompt": "Write the notes.", "profile": "tester",
             "script": s("the notes")},
            {"name": "Check", "prompt": "Proofread.", "profile": "tester", "script": s("ok notes")},
        ],
    )  # fmt: skip
    run = lab.workflows.run("notes", inputs={"version": "2.1"}).wait(30)
    assert run.status == "completed" and run.output == "ok notes"
    rows = tasks_of(lab, run)
    check_children(rows)
    assert [r["title"] for r in rows] == ["notes · Collect", "notes · Write", "notes · Check"]
    assert [r["step_id"] for r in rows] == ["collect", "write", "check"]
    assert rows[0]["parent_task_id"] is None
    assert rows[1]["parent_task_id"] == rows[0]["id"]
    assert rows[2]["parent_task_id"] == rows[1]["id"]
    assert "List the changes in 2.1." in rows[0]["prompt"]
    assert "## Your task\nWrite the notes." in rows[1]["prompt"]
    assert '## Output of the previous step, "Collect"\nthree changes' in rows[1]["prompt"]
    assert '"Write"\nthe notes' in rows[2]["prompt"]
    assert "three changes" not in rows[2]["prompt"]  # only the previous step's output


def test_checkpoint_runs_as_a_sequence_after_approval(lab, wait_until):
    lab.workflows.create(
        "review",
        pattern="checkpoint",
        steps=[
            {"name": "Review", "prompt": "Review.", "profile": "tester", "script": s("2 bugs")},
            {"name": "Fix", "prompt": "Fix them.", "profile": "tester", "script": s("fixed")},
        ],
    )
    run = lab.workflows.run("review")
    run.wait(30, until=["waiting"])
    item = wait_until(lambda: lab.inbox().query("kind == 'checkpoint'").to_dict("records"))[0]
    assert item["subject"] == "workflow_run" and item["subject_id"] == run.id
    lab.decide(item["id"], "allow")
    run.wait(30)
    assert run.status == "completed" and run.output == "fixed"
    rows = tasks_of(lab, run)
    check_children(rows)
    assert rows[1]["parent_task_id"] == rows[0]["id"]
    assert '"Review"\n2 bugs' in rows[1]["prompt"]


def test_planner_executor_gives_each_executor_the_plan_not_the_others(lab):
    lab.workflows.create(
        "brief",
        pattern="planner-executor",
        profile="tester",
        steps=[
            {"name": "Plan", "prompt": "Plan a brief on DuckDB.", "script": s("1. intro 2. uses")},
            {"name": "Intro", "prompt": "Write part 1.", "script": s("INTRO TEXT")},
            {"name": "Uses", "prompt": "Write part 2.", "script": s("USES TEXT")},
        ],
    )
    run = lab.workflows.run("brief").wait(30)
    assert run.status == "completed"
    assert run.output == "## Intro\nINTRO TEXT\n\n## Uses\nUSES TEXT"
    rows = tasks_of(lab, run)
    check_children(rows)
    planner, intro, uses = rows
    assert "Plan a brief on DuckDB." in planner["prompt"]
    for ex in (intro, uses):
        assert ex["parent_task_id"] == planner["id"]
        assert "## The plan" in ex["prompt"] and "1. intro 2. uses" in ex["prompt"]
        assert "one part of the plan" in ex["prompt"]
    assert "## Your part of the plan\nWrite part 2." in uses["prompt"]
    assert "INTRO TEXT" not in uses["prompt"]


def test_parallel_branches_then_synthesis_in_definition_order(lab):
    lab.workflows.create(
        "compare",
        pattern="parallel",
        profile="tester",
        steps=[
            {"name": "Pandas", "prompt": "Study pandas.", "script": s("pandas notes")},
            {"name": "Polars", "prompt": "Study polars.", "script": s("polars notes")},
            {"name": "DuckDB", "prompt": "Study duckdb.", "script": s("duckdb notes")},
            {"name": "Compare", "prompt": "Compare them.",
             "depends_on": ["pandas", "polars", "duckdb"], "script": s("the comparison")},
        ],
    )  # fmt: skip
    run = lab.workflows.run("compare").wait(30)
    assert run.status == "completed" and run.output == "the comparison"
    rows = tasks_of(lab, run)
    check_children(rows)
    synth = next(r for r in rows if r["step_id"] == "compare")
    assert synth["parent_task_id"] is None  # it consumes three outputs
    body = synth["prompt"]
    assert "## Results of the parallel branches" in body
    assert body.index("### Pandas\npandas notes") < body.index("### Polars\npolars notes")
    assert body.index("### Polars") < body.index("### DuckDB\nduckdb notes")
    assert body.index("### DuckDB") < body.index("## Your task\nCompare them.")
    branch = next(r for r in rows if r["step_id"] == "polars")
    assert (
        "## Your task\nStudy polars." in branch["prompt"] and "pandas notes" not in branch["prompt"]
    )


def test_swarm_workers_get_the_mayors_plan_and_stay_in_their_assignment(lab):
    lab.workflows.create(
        "triage",
        pattern="swarm",
        profile="tester",
        steps=[
            {"name": "Mayor", "prompt": "Split the incident.", "script": s("logs; metrics")},
            {"name": "Logs", "prompt": "Read the logs.", "script": s("log findings")},
            {"name": "Metrics", "prompt": "Read the metrics.", "script": s("metric findings")},
            {"name": "Refinery", "prompt": "Merge the reports.", "script": s("merged report")},
        ],
    )
    run = lab.workflows.run("triage").wait(30)
    assert run.status == "completed" and run.output == "merged report"
    rows = tasks_of(lab, run)
    check_children(rows)
    by_step = {r["step_id"]: r for r in rows}
    mayor, logs_, metrics, refinery = (by_step[k] for k in ("mayor", "logs", "metrics", "refinery"))
    for w in (logs_, metrics):
        assert w["parent_task_id"] == mayor["id"]
        assert "logs; metrics" in w["prompt"]
        assert "Stay within your assignment" in w["prompt"]
        assert "combine" in w["prompt"]
    assert "## Your assignment\nRead the logs." in logs_["prompt"]
    body = refinery["prompt"]
    assert "logs; metrics" in body
    assert "### Logs\nlog findings" in body and "### Metrics\nmetric findings" in body
    assert body.rstrip().endswith("Merge the reports.")


def test_loop_carries_the_previous_iteration_and_strips_the_signal(lab):
    def play(prompt, profile):  # each iteration answers from what it was given
        if "None: this is the first iteration." in prompt:
            return [{"result": "draft 1"}]
        if "draft 1" in prompt:
            return [{"result": "draft 2"}]
        return [{"result": "final draft\nLOOP_DONE"}]

    lab.workflows.create(
        "polish",
        pattern="loop",
        loop={"max_iterations": 5},
        steps=[{"name": "Improve", "prompt": "Improve the draft.", "profile": "tester",
                "script": play}],
    )  # fmt: skip
    run = lab.workflows.run("polish").wait(30)
    assert run.status == "completed"
    assert run.stop_reason == "signal"
    assert run.output == "final draft"
    rows = tasks_of(lab, run)
    check_children(rows)
    assert [r["title"] for r in rows] == [f"polish · Improve · iteration {n}" for n in (1, 2, 3)]
    assert rows[1]["parent_task_id"] == rows[0]["id"]
    second = rows[1]["prompt"]
    assert "iteration 2 of at most 5" in second
    assert "## Output of the previous iteration\ndraft 1" in second
    assert "LOOP_DONE" in second and "alone on its own line" in second
    events = run.logs()
    its = events[events["event"] == "loop_iteration"]["payload"].tolist()
    assert [(e["n"], e["stop_reason"]) for e in its] == [(1, None), (2, None), (3, "signal")]


def test_rows_run_every_step_per_row_with_templates(lab):
    lab.workflows.create(
        "enrich",
        pattern="loop",
        loop={"max_iterations": 10, "items": [{"name": "Ada", "lang": "en"},
                                              {"name": "Bob", "lang": "fr"}]},
        profile="tester",
        steps=[
            {"name": "Describe", "prompt": "Describe {{item.name}} ({{item.lang}}).",
             "script": s("a person")},
            {"name": "Translate", "prompt": "Translate '{{previous}}' to {{item.lang}}; "
             "first was {{steps.describe}}.", "script": s("une personne")},
        ],
    )  # fmt: skip
    run = lab.workflows.run("enrich").wait(30)
    assert run.status == "completed" and run.view().failed_items == 0
    assert run.output is None
    rows = tasks_of(lab, run)
    check_children(rows)
    assert [r["title"] for r in rows] == [
        "enrich · Describe · row 1", "enrich · Translate · row 1",
        "enrich · Describe · row 2", "enrich · Translate · row 2",
    ]  # fmt: skip
    describe2, translate2 = rows[2], rows[3]
    assert "row 2 of 2" in describe2["prompt"]
    assert json.dumps({"name": "Bob", "lang": "fr"}, indent=2) in describe2["prompt"]
    assert "## Your task\nDescribe Bob (fr)." in describe2["prompt"]
    assert translate2["parent_task_id"] == describe2["id"]
    assert "Translate 'a person' to fr; first was a person." in translate2["prompt"]
    assert '"Describe"\na person' in translate2["prompt"]
    results = run.results()
    assert results[["row", "name", "describe", "translate", "status"]].values.tolist() == [
        [1, "Ada", "a person", "une personne", "completed"],
        [2, "Bob", "a person", "une personne", "completed"],
    ]


def test_the_workflows_channels_reach_every_child_and_the_final_event(lab):
    lab.workflows.create(
        "bound", steps=[{"name": "A", "prompt": "A.", "profile": "tester", "script": s("x")}],
        channels=["ops-slack"],
    )  # fmt: skip
    run = lab.workflows.run("bound").wait(30)
    assert lab.sql("SELECT channels FROM tasks")["channels"].tolist() == ['["ops-slack"]']
    final = run.logs().query("event == 'workflow_completed'")["payload"].iloc[0]
    assert final["channels"] == ["ops-slack"]
    assert final["workflow"] == "bound" and final["run_number"] == 1
    assert final["output"] == "x" and final["status"] == "completed"
    assert set(final) >= {"stop_reason", "cost_usd", "failed_step", "error", "failed_items"}
