"""Profile smoke tests: run each ``tests:`` entry as a task and check its expected keywords."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stagent_lab.api.requests import RecordProfileTest

if TYPE_CHECKING:
    import pandas as pd

    from stagent_lab.client.lab import Lab


def missing_keywords(text: str, expected: list[str]) -> list[str]:
    low = (text or "").lower()
    return [k for k in expected if k.lower() not in low]


def run_smoke_tests(
    lab: Lab, profile_id: str, *, runtime: str | None = None, timeout: float = 300
) -> pd.DataFrame:
    """Run every smoke test of a profile; store and return one row per test.

    Smoke tests run unattended: a tool request that would need a person is denied at once
    (tier ``unattended``), and the denial is logged like any other decision.
    """
    import pandas as pd

    profile = lab.profiles.get(profile_id)
    tests = _tests(lab, profile_id)
    if not tests:
        raise ValueError(f"profile {profile_id} has no smoke tests (add a `tests:` list)")
    rows = []
    for index, (task, expected) in enumerate(tests):
        handle = lab.submit(
            task,
            profile=profile.id,
            runtime=runtime,
            source="profile_test",
            activity="profile_test",
            title=f"[smoke {index + 1}] {task[:60]}",
            unattended=True,
        )
        try:
            handle.wait(timeout)
        except TimeoutError:
            handle.cancel()
            handle.wait(30)
        view = handle.view()
        missing = missing_keywords(view.result or "", expected)
        passed = view.status == "completed" and not missing
        lab.call(
            RecordProfileTest(
                profile_id=profile.id,
                runtime_id=view.runtime_id or "",
                test_index=index,
                task=task,
                task_id=handle.id,
                expected_keywords=expected,
                missing_keywords=missing,
                passed=passed,
            )
        )
        rows.append(
            {
                "profile_id": profile.id,
                "runtime_id": view.runtime_id,
                "test_index": index,
                "task": task,
                "task_id": handle.id,
                "expected_keywords": expected,
                "missing": missing,
                "passed": passed,
                "status": view.status,
            }
        )
    return pd.DataFrame(rows)


def _tests(lab: Lab, profile_id: str) -> list[tuple[str, list[str]]]:
    """The profile's smoke tests: (task, expected keywords)."""
    view = lab.profiles.get(profile_id)
    return [(t["task"], list(t["expected_keywords"])) for t in view.smoke_tests]
