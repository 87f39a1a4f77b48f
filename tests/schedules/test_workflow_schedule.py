"""A schedule that starts a workflow run, against the RunWorkflow contract (a stand-in for the
workflows feature: the real cross-feature test comes with it)."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar, Literal

import pytest
from pydantic import BaseModel

from stagent_lab.api.requests import REQUESTS, Request
from tests.schedules.helpers import events, firings, wait_firings, wait_until


class FakeRunView(BaseModel):
    id: str
    status: str = "running"


class RunWorkflow(Request):
    kind: ClassVar[str] = "run_workflow"
    workflow: str
    inputs: dict[str, Any] | None = None
    trigger: Literal["manual", "schedule", "channel"] = "manual"
    trigger_id: str | None = None
    result: ClassVar[Any] = FakeRunView


@pytest.fixture
def workflows(slab):
    """Register RunWorkflow for this test only; runs end when the test says so."""
    if "run_workflow" in REQUESTS:
        pytest.skip("the workflows feature is installed; its own tests cover this")
    REQUESTS["run_workflow"] = RunWorkflow
    service = slab.workspace.service
    started: list[RunWorkflow] = []
    ids = itertools.count(1)

    def run(r: RunWorkflow) -> FakeRunView:
        if r.workflow == "missing":
            raise KeyError("no workflow named 'missing'")
        started.append(r)
        return FakeRunView(id=f"run{next(ids)}")

    service.on(RunWorkflow)(run)

    def end(run_id: str, event: str, **payload: Any) -> None:
        service.on_engine(lambda: service.log_subject("workflow_run", run_id, event, **payload))

    try:
        yield started, end
    finally:
        REQUESTS.pop("run_workflow", None)


def test_a_firing_starts_a_run_and_ends_with_it(slab, clock, workflows):
    started, end = workflows
    sid = slab.schedules.add("weekly-review", workflow="review-and-fix", when="5m")
    clock.advance(300)
    df = wait_firings(slab, sid, 1, statuses=("running",))
    wait_until(lambda: firings(slab, sid)["workflow_run_id"].notna()[0])
    df = firings(slab, sid)
    assert len(started) == 1
    request = started[0]
    assert (request.workflow, request.trigger, request.trigger_id) == (
        "review-and-fix",
        "schedule",
        df["id"][0],
    )
    assert df["workflow_run_id"][0] == "run1" and df["task_id"].isna()[0]
    clock.advance(300)  # the run is live: skip
    df = wait_firings(slab, sid, 2, statuses=("running", "skipped"))
    assert df["status"][1] == "skipped"
    end("run1", "workflow_completed", status="completed", cost_usd=0.42, output="all fixed")
    df = wait_firings(slab, sid, 1)
    assert df["status"][0] == "succeeded" and df["cost_usd"][0] == pytest.approx(0.42)
    fired = events(slab, "schedule_fired")["payload"][0]
    assert fired["workflow_run_id"] == "run1"


def test_a_failed_run_fails_the_firing_with_its_error(slab, clock, workflows):
    started, end = workflows
    sid = slab.schedules.add("wf", workflow="review-and-fix", when="5m")
    clock.advance(300)
    wait_until(lambda: started)
    end("run1", "workflow_failed", status="failed", error="step Fix failed: tests red")
    df = wait_firings(slab, sid, 1)
    assert df["status"][0] == "failed" and df["reason"][0] == "step Fix failed: tests red"
    assert slab.schedules.get(sid).failure_streak == 1


def test_replace_is_refused_for_workflow_schedules(slab, workflows):
    from stagent_lab.errors import ScheduleError

    with pytest.raises(ScheduleError, match="replace"):
        slab.schedules.add("wf", workflow="x", when="5m", overlap="replace")


def test_a_run_that_cannot_start_fails_the_firing_and_counts(slab, clock, workflows):
    sid = slab.schedules.add("gone", workflow="missing", when="5m")
    clock.advance(300)
    df = wait_firings(slab, sid, 1)
    assert df["status"][0] == "failed"
    assert df["reason"][0].startswith("could not start: KeyError")
    assert slab.schedules.get(sid).failure_streak == 1
