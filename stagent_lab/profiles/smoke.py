"""Profile smoke tests: run each ``tests:`` entry as a task and check its expected keywords."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pandas as pd

from stagent_lab.engine.engine import new_id, utcnow

if TYPE_CHECKING:
    from stagent_lab.lab import Lab


def missing_keywords(text: str, expected: list[str]) -> list[str]:
    low = (text or "").lower()
    return [k for k in expected if k.lower() not in low]


def run_smoke_tests(
    lab: Lab, profile_id: str, *, runtime: str | None = None, timeout: float = 300
) -> pd.DataFrame:
    """Run every smoke test of a profile; store and return one row per test.

    Tool requests that would need a human are denied for smoke tests (they run unattended);
    the denial is logged like any other decision.
    """
    profile = lab.profiles.get(profile_id)
    if not profile.tests:
        raise ValueError(f"profile {profile_id} has no smoke tests (add a `tests:` list)")
    rows = []
    for index, test in enumerate(profile.tests):
        handle = lab.submit(
            test.task,
            profile=profile_id,
            runtime=runtime,
            source="profile_test",
            activity="profile_test",
            title=f"[smoke {index + 1}] {test.task[:60]}",
        )
        try:
            _drain_inbox_until_done(lab, handle.id, timeout)
        finally:
            if not handle.done:  # timed out: do not leave it running
                handle.cancel()
        result = handle.result or ""
        missing = missing_keywords(result, test.expected_keywords)
        passed = handle.status == "completed" and not missing
        row = {
            "id": new_id(),
            "profile_id": profile_id,
            "runtime_id": lab.engine.tasks[handle.id].runtime_id,
            "test_index": index,
            "task": test.task,
            "task_id": handle.id,
            "expected_keywords": json.dumps(test.expected_keywords),
            "missing_keywords": json.dumps(missing),
            "passed": passed,
            "created_at": utcnow(),
        }
        lab.engine.call(
            lambda r=row: lab.store.con.execute(
                "INSERT INTO profile_test_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                list(r.values()),
            )
        )
        rows.append({**row, "status": handle.status, "missing": missing})
    return pd.DataFrame(rows)


def _drain_inbox_until_done(lab: Lab, task_id: str, timeout: float) -> None:
    """Deny every approval the task asks for (nobody is watching) until it ends."""
    handle = lab.task(task_id)
    deadline = time.monotonic() + timeout
    while not handle.done:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"smoke test task {task_id} did not finish in {timeout}s")
        try:
            pending = lab.wait_inbox(timeout=min(left, 0.5), task=task_id)
        except TimeoutError:
            continue
        for item_id in pending["id"]:
            lab.decide(
                item_id,
                "deny",
                "Smoke tests run unattended: no human approvals.",
                decided_by="smoke-test",
            )
