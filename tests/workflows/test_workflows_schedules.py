"""A schedule that starts a real workflow run (RunWorkflow with trigger "schedule"): the firing
holds the run id, is skipped while that run is live, and ends with the run's outcome."""

from __future__ import annotations

import pytest

from tests.schedules.helpers import firings, wait_firings


def _pending_checkpoint(lab, run_id: str):
    df = lab.inbox()
    df = df[(df["kind"] == "checkpoint") & (df["subject_id"] == run_id)]
    return df["id"].iloc[0] if len(df) else None


def test_a_firing_starts_a_run_waits_on_its_checkpoint_and_succeeds_with_it(
    flab, clock, wait_until
):
    flab.workflows.create(
        "nightly",
        profile="tester",
        steps=[
            {"name": "Gather", "prompt": "Gather.", "script": [{"result": "notes"}]},
            {"name": "Publish", "prompt": "Publish.", "requires_approval": True,
             "script": [{"result": "published"}]},
        ],
    )  # fmt: skip
    sid = flab.schedules.add("nightly-run", workflow="nightly", when="5m")
    clock.advance(300)
    wait_until(lambda: firings(flab, sid)["workflow_run_id"].notna().any())
    df = firings(flab, sid)
    run_id = df["workflow_run_id"][0]
    run = flab.workflows.run_handle(run_id)
    view = run.view()
    assert (view.trigger, view.trigger_id) == ("schedule", df["id"][0])
    item = wait_until(lambda: _pending_checkpoint(flab, run_id))
    clock.advance(300)  # the run is live (waiting on its checkpoint): this firing is skipped
    df = wait_firings(flab, sid, 2, statuses=("running", "skipped"))
    assert list(df["status"].head(2)) == ["running", "skipped"]
    flab.decide(item, "allow")
    assert run.wait(30).status == "completed"
    df = wait_firings(flab, sid, 1)
    assert df["status"][0] == "succeeded"
    assert df["cost_usd"][0] == pytest.approx(run.cost_usd)


def test_a_failed_run_fails_the_firing_with_its_error(flab, clock, wait_until):
    flab.workflows.create(
        "broken",
        profile="tester",
        steps=[{"name": "Build", "prompt": "Build.", "script": [{"fail": "compiler crashed"}]}],
    )
    sid = flab.schedules.add("broken-run", workflow="broken", when="5m")
    clock.advance(300)
    df = wait_firings(flab, sid, 1)
    assert df["status"][0] == "failed"
    assert "compiler crashed" in df["reason"][0]
    assert flab.workflows.run_handle(df["workflow_run_id"][0]).status == "failed"
    assert flab.schedules.get(sid).failure_streak == 1
