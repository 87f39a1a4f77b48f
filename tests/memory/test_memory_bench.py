"""bench/bench_memory.py at smoke size: record shape, that ours and the naive scorer agree, and
that every remember of the loop measurement is stored.

No timing is asserted (shared machines); the numbers of a smoke run mean nothing.
"""

from __future__ import annotations

import math

from bench import bench_memory
from bench._common import METRIC_KEYS, SMOKE_ENV


def test_smoke_run_reports_three_metrics_and_agreement(monkeypatch):
    monkeypatch.setenv(SMOKE_ENV, "1")
    out = bench_memory.run(quick=True)
    assert [m["name"] for m in out] == [
        "memory.retrieve_top10_ms",
        "memory.retrieve_vs_confidence_only_ms",
        "memory.remember_ms",
        "memory.remember_loop_ms",
    ]
    for m in out:
        assert tuple(m) == METRIC_KEYS
        assert math.isfinite(m["value"]) and m["value"] > 0
        assert m["note"] and "2,000 memories" in m["note"]
    assert out[0]["ratio"] > 0 and out[1]["ratio"] > 0 and out[2]["ratio"] is None
    assert "matched ours on 1 of 1 prompts" in out[0]["note"]
    # one task remembered alone, then every task of the concurrent round: all stored
    tasks = bench_memory.SMOKE["tasks"]
    assert f"with {tasks} tasks remembering at once" in out[3]["note"]
    assert f"({tasks + 1} remembered)" in out[3]["note"]
    assert out[3]["ratio"] > 0


def test_generated_data_is_searchable(tmp_path):
    con = bench_memory.build(tmp_path / "m.duckdb", 500)
    try:
        n, profiles = con.execute(
            "SELECT count(*), count(DISTINCT profile_id) FROM agent_memory WHERE status='active'"
        ).fetchone()
        assert (n, profiles) == (500, 1)
        assert bench_memory.confidence_top10(con) == [
            r[0]
            for r in con.execute(
                "SELECT id FROM agent_memory ORDER BY confidence DESC, id LIMIT 10"
            ).fetchall()
        ]
        for prompt in bench_memory.PROMPTS:
            from stagent_lab.memory.store import MemoryStore

            ours = (
                MemoryStore(con, clock=lambda: bench_memory.NOW)
                .retrieve(bench_memory.PROFILE, prompt, k=10)["id"]
                .tolist()
            )
            assert ours == bench_memory.naive_top10(con, prompt)
    finally:
        con.close()
