"""§1.9.5 plain loops (signals on their own line, failure, time budget) and §1.9.6 rows
(``items_sql``, a failing row, ``results()``, ``retry()`` of only that row)."""

from __future__ import annotations

from datetime import timedelta

import pytest


def loop_workflow(lab, name: str, script, **loop) -> None:
    lab.workflows.create(
        name,
        pattern="loop",
        loop={"max_iterations": 4, **loop},
        profile="tester",
        steps=[{"name": "Work", "prompt": "Work on it.", "script": script}],
    )


def test_a_signal_on_its_own_line_stops_the_loop(lab):
    loop_workflow(lab, "stop", [{"result": "All done.\n  loop_done  \n"}])
    run = lab.workflows.run("stop").wait(30)
    assert run.status == "completed" and run.stop_reason == "signal"
    assert run.output == "All done."
    assert len(lab.tasks()) == 1


def test_a_signal_quoted_in_a_sentence_does_not(lab):
    loop_workflow(lab, "quoted", [{"result": "I will write LOOP_DONE when I am done."}])
    run = lab.workflows.run("quoted").wait(30)
    assert run.status == "completed" and run.stop_reason == "max_iterations"
    assert len(lab.tasks()) == 4
    assert run.output == "I will write LOOP_DONE when I am done."


def test_custom_signals(lab):
    loop_workflow(lab, "custom", [{"result": "ok\nSHIP IT"}], signals=["SHIP IT", "STOP"])
    run = lab.workflows.run("custom").wait(30)
    assert run.stop_reason == "signal" and run.output == "ok"


def test_a_failed_iteration_fails_the_run(lab):
    def play(prompt, profile):
        if "iteration 2 of" in prompt:
            return [{"fail": "the API is down"}]
        return [{"result": "step"}]

    loop_workflow(lab, "broken", play)
    run = lab.workflows.run("broken").wait(30)
    assert run.status == "failed" and run.stop_reason == "error"
    assert "the API is down" in run.failure_reason
    its = run.logs().query("event == 'loop_iteration'")["payload"].tolist()
    assert [(e["n"], e["stop_reason"]) for e in its] == [(1, None), (2, "error")]


def test_the_time_budget_ends_the_loop_completed(flab, clock, wait_until):
    loop_workflow(flab, "timed", [{"result": "more"}], time_budget_s=600, delay_between="5m")
    run = flab.workflows.run("timed")
    run.wait(30, until=["delayed"])
    clock.advance(timedelta(minutes=6))
    wait_until(lambda: len(flab.tasks()) == 2)
    run.wait(30, until=["delayed"])
    clock.advance(timedelta(minutes=6))  # 12 minutes since the start: over the 10
    run.wait(30)
    assert run.status == "completed" and run.stop_reason == "time_budget"
    assert len(flab.tasks()) == 2
    assert run.output == "more"


ORDERS = """
CREATE TABLE orders AS SELECT * FROM (VALUES
  (1, 'Ada', 30.0), (2, 'Bob', 12.5), (3, 'Cy', 99.0), (4, 'Di', 7.0), (5, 'Ed', 45.0)
) t(order_id, customer, total)
"""


def seed_orders(lab) -> None:
    """A user table in the workspace (as an analyst's own import would make it)."""
    service = lab.workspace.service
    service.on_engine(lambda: service.writer_flush(lambda con: con.execute(ORDERS)))


def test_rows_from_sql_with_one_failing_row_then_retry_only_it(lab):
    seed_orders(lab)
    broken = {"Cy": True}
    calls: list[str] = []

    def play(prompt, profile):
        who = next(n for n in ("Ada", "Bob", "Cy", "Di", "Ed") if f'"customer": "{n}"' in prompt)
        calls.append(who)
        if broken.get(who) and "Score" in prompt:
            return [{"fail": f"no data for {who}"}]
        return [{"result": f"{'score' if 'Score' in prompt else 'note'} for {who}"}]

    lab.workflows.create(
        "enrich",
        pattern="loop",
        loop={"max_iterations": 100,
              "items_sql": "SELECT order_id, customer, total FROM orders ORDER BY order_id"},
        profile="tester",
        steps=[
            {"name": "Score", "prompt": "Score order {{item.order_id}}.", "script": play},
            {"name": "Note", "prompt": "Note on {{previous}}.", "script": play},
        ],
    )  # fmt: skip
    run = lab.workflows.run("enrich").wait(60)
    view = run.view()
    assert view.status == "completed" and view.failed_items == 1
    results = run.results()
    assert len(results) == 5
    assert results.columns.tolist() == [
        "row", "order_id", "customer", "total", "score", "note", "status", "error",
    ]  # fmt: skip
    cy = results.set_index("customer").loc["Cy"]
    assert cy["status"] == "failed" and cy["error"] == "no data for Cy"
    assert results["status"].tolist().count("completed") == 4
    steps = run.steps()
    skipped = steps[(steps["iteration"] == 3) & (steps["step_id"] == "note")]
    assert skipped["status"].tolist() == ["skipped"]
    final = run.logs().query("event == 'workflow_completed'")["payload"].iloc[0]
    assert final["failed_items"] == [3]

    broken.clear()
    calls.clear()
    run.retry()
    run.wait(60)
    assert calls == ["Cy", "Cy"]  # only the failed row ran again
    view = run.view()
    assert view.status == "completed" and view.failed_items == 0
    assert run.results()["status"].tolist() == ["completed"] * 5
    attempts = run.steps().query("iteration == 3 and step_id == 'score'")["attempt"].tolist()
    assert attempts == [1, 2]


def test_every_row_failing_fails_the_run(lab):
    lab.workflows.create(
        "all-bad",
        pattern="loop",
        loop={"max_iterations": 10, "items": [{"x": 1}, {"x": 2}]},
        profile="tester",
        steps=[{"name": "Do", "prompt": "Do {{item.x}}.", "script": [{"fail": "nope"}]}],
    )
    run = lab.workflows.run("all-bad").wait(30)
    assert run.status == "failed" and "every row failed" in run.failure_reason


def test_on_item_error_stop_fails_at_the_first_bad_row(lab):
    def play(prompt, profile):
        return [{"fail": "bad"}] if "row 2 of" in prompt else [{"result": "ok"}]

    lab.workflows.create(
        "stop",
        pattern="loop",
        loop={"max_iterations": 10, "items": [{"x": 1}, {"x": 2}, {"x": 3}],
              "on_item_error": "stop"},
        profile="tester",
        steps=[{"name": "Do", "prompt": "Do {{item.x}}.", "script": play}],
    )  # fmt: skip
    run = lab.workflows.run("stop").wait(30)
    assert run.status == "failed"
    assert run.results()["status"].tolist() == ["completed", "failed", "not run"]


def test_rows_are_cut_to_max_iterations_and_missing_fields_warn(lab):
    lab.workflows.create(
        "cut",
        pattern="loop",
        loop={"max_iterations": 2, "items": [{"a": 1}, {"b": 2}, {"a": 3}]},
        profile="tester",
        steps=[{"name": "Do", "prompt": "Value {{item.a}}.", "script": [{"result": "ok"}]}],
    )
    run = lab.workflows.run("cut").wait(30)
    assert len(run.results()) == 2
    steps = run.steps().sort_values("iteration")
    assert not isinstance(steps["warnings"].iloc[0], str)
    assert "no field 'a'" in steps["warnings"].iloc[1]
    assert "## Your task\nValue ." in steps["input_text"].iloc[1]


def test_a_bad_items_sql_or_unknown_input_fails_at_run_start(lab):
    from stagent_lab.errors import WorkflowDefinitionError

    lab.workflows.create(
        "bad-sql",
        pattern="loop",
        loop={"max_iterations": 2, "items_sql": "DELETE FROM tasks"},
        profile="tester",
        steps=[{"name": "Do", "prompt": "Do.", "script": [{"result": "ok"}]}],
    )
    with pytest.raises(WorkflowDefinitionError, match=r"loop\.items_sql"):
        lab.workflows.run("bad-sql")
    lab.workflows.create(
        "needs",
        profile="tester",
        steps=[{"name": "Do", "prompt": "Fix {{inputs.ticket}}.", "script": [{"result": "ok"}]}],
    )
    with pytest.raises(WorkflowDefinitionError, match="no input named 'ticket'"):
        lab.workflows.run("needs", inputs={"other": 1})
    assert lab.workflows.runs().empty
