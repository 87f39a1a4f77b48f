"""A small, hand-made store whose sums, rates and percentiles are worked out in the tests."""

from __future__ import annotations

import datetime as dt

import pytest

from stagent_lab.store.db import Store

D1 = dt.datetime(2026, 1, 1, 10, 0, 0)
D2 = dt.datetime(2026, 1, 2, 10, 0, 0)
D4 = dt.datetime(2026, 1, 4, 10, 0, 0)  # 2026-01-03 has no activity: a gap to zero-fill

# id, profile, model, project, status, failure_reason, start, seconds, turns
TASKS = [
    ("t1", "alpha-prof", "m-big", "p1", "completed", None, D1, 10, 2),
    ("t2", "alpha-prof", "m-big", "p1", "completed", None, D1, 20, 4),
    ("t3", "alpha-prof", "m-big", "p1", "failed", "max turns reached (3)", D2, 30, 3),
    ("t4", "alpha-prof", "m-big", "p1", "cancelled", None, D2, 40, 1),
    ("t5", "alpha-prof", "m-big", "p1", "running", None, D2, None, 1),
    ("t6", "beta-prof", "m-small", "p2", "failed", "max turns reached (5)", D1, 5, 5),
    (
        "t7",
        "beta-prof",
        "m-small",
        "p2",
        "failed",
        "budget exceeded: spent $0.0123 of $0.0100",
        D2,
        15,
        2,
    ),
    ("t8", "beta-prof", "m-small", "p2", "completed", None, D4, 25, 3),
]

# task, profile, project, activity, model, input, output, cache_read, cost, at
LEDGER = [
    ("t1", "alpha-prof", "p1", "task_run", "m-big", 100, 10, 50, 0.10, D1),
    ("t1", "alpha-prof", "p1", "task_run", "m-big", 200, 20, 0, 0.05, D1),
    ("t2", "alpha-prof", "p1", "task_run", "m-big", 300, 30, 0, 0.20, D1),
    ("t3", "alpha-prof", "p1", "task_run", "m-big", 400, 40, 0, 0.30, D2),
    ("t5", "alpha-prof", "p1", "task_run", "m-big", 500, 50, 0, None, D2),  # unpriced
    ("t6", "beta-prof", "p2", "task_run", "m-small", 10, 1, 0, 0.01, D1),
    ("t7", "beta-prof", "p2", "task_run", "m-small", 20, 2, 0, 0.02, D2),
    ("t8", "beta-prof", "p2", "task_run", "m-small", 40, 4, 0, 0.04, D4),
    (None, "alpha-prof", None, "profile_test", "m-big", 1000, 100, 0, 0.50, D4),  # no task
]


def fill(store: Store) -> None:
    con = store.con
    con.execute("INSERT INTO projects VALUES ('p1', 'alpha', '/tmp/a', NULL, 'active', ?)", [D1])
    con.execute("INSERT INTO projects VALUES ('p2', 'beta', '/tmp/b', NULL, 'active', ?)", [D1])
    for tid, prof, model, proj, status, reason, start, secs, turns in TASKS:
        end = start + dt.timedelta(seconds=secs) if secs is not None else None
        con.execute(
            "INSERT INTO tasks (id, project_id, title, prompt, profile_id, runtime_id, model, "
            "status, failure_reason, turns, created_at, started_at, finished_at) "
            "VALUES (?, ?, ?, 'p', ?, 'scripted', ?, ?, ?, ?, ?, ?, ?)",
            [tid, proj, tid, prof, model, status, reason, turns, start, start, end],
        )
    for i, (tid, prof, proj, act, model, inp, out, cr, cost, at) in enumerate(LEDGER):
        con.execute(
            "INSERT INTO usage_ledger (id, task_id, project_id, profile_id, activity, runtime_id, "
            "provider, model, input_tokens, output_tokens, cache_read_tokens, cost_usd, "
            "pricing_source, status, started_at, finished_at) "
            "VALUES (?, ?, ?, ?, ?, 'scripted', 'anthropic', ?, ?, ?, ?, ?, 'test', 'ok', ?, ?)",
            [
                f"u{i}",
                tid,
                proj,
                prof,
                act,
                model,
                inp,
                out,
                cr,
                cost,
                at + dt.timedelta(seconds=i),
                at + dt.timedelta(seconds=i),
            ],
        )
    decisions = [
        ("t1", "Read", "allow", "profile_auto_approve"),
        ("t1", "Bash", "deny", "profile_auto_deny"),
        ("t2", "Read", "allow", "profile_auto_approve"),
        ("t3", "Bash", "allow", "human"),
        ("t6", "Write", "deny", "allowed_tools"),
    ]
    for i, (tid, tool, behavior, tier) in enumerate(decisions, start=1):
        con.execute(
            "INSERT INTO agent_logs VALUES (?, ?, ?, ?, 'scripted', 'tool_decision', ?, ?, 'task')",
            [i, tid, i, D1, tool, f'{{"behavior": "{behavior}", "tier": "{tier}"}}'],
        )


@pytest.fixture
def store(tmp_path):
    s = Store(_mk(tmp_path))
    try:
        fill(s)
        yield s
    finally:
        s.close()


@pytest.fixture
def empty_store(tmp_path):
    s = Store(_mk(tmp_path, "empty"))
    try:
        yield s
    finally:
        s.close()


def _mk(tmp_path, name: str = "ws"):
    d = tmp_path / name
    d.mkdir()
    return d
