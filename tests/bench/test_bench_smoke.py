"""Smoke tests for bench/: tiny sizes, output shape and the facts each benchmark counts.

No timing is asserted anywhere: these machines are shared, so only counts, answers and the
record format are checked. The numbers a smoke run prints mean nothing.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import types
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is a top-level folder, not part of the installed package
    sys.path.insert(0, str(REPO))

import bench.__main__ as harness  # noqa: E402
from bench import (  # noqa: E402
    bench_analytics,
    bench_concurrency,
    bench_governance,
    bench_ingest,
    bench_launch,
)
from bench._common import METRIC_KEYS, SMOKE_ENV, format_line, metric, percentile  # noqa: E402

LINE = re.compile(r"^[a-z_]+\.[a-z0-9_]+: -?[0-9.]+ \S+( \(ratio (?:[0-9.]+|n/a) vs .+\))?$")


@pytest.fixture(autouse=True)
def smoke_sizes(monkeypatch):
    monkeypatch.setenv(SMOKE_ENV, "1")


def check_shape(out: list[dict], names: list[str]) -> dict[str, dict]:
    """Every record follows the harness convention; returns them by name."""
    assert [m["name"] for m in out] == names
    for m in out:
        assert tuple(m) == METRIC_KEYS
        assert isinstance(m["value"], float) and math.isfinite(m["value"])
        assert isinstance(m["unit"], str) and m["unit"]
        if m["baseline"] is None:
            assert m["ratio"] is None
        else:
            assert isinstance(m["ratio"], float) and m["ratio"] > 0
        assert isinstance(m["note"], str) and m["note"]
        assert LINE.match(format_line(m)), format_line(m)
    return {m["name"]: m for m in out}


def number_after(text: str, label: str) -> float:
    match = re.search(re.escape(label) + r"\s*(-?[0-9.]+)", text)
    assert match, f"{label!r} not in {text!r}"
    return float(match.group(1))


# ---- the benchmark modules -----------------------------------------------------------------


def test_launch_submits_under_load_and_cancels_everything():
    by_name = check_shape(
        bench_launch.run(True),
        ["launch.submit_p50", "launch.submit_p95", "launch.submit_burst_p50"],
    )
    note = by_name["launch.submit_p50"]["note"]
    busy, submits = bench_launch.SMOKE["busy"], bench_launch.SMOKE["submits"]
    assert f"{busy} tasks running" in note
    # every background task and both rounds of timed submits were cancelled afterwards
    assert number_after(note, "ms apart;") == busy + 2 * submits
    assert all(
        m["unit"] == "ms" and m["baseline"] == "plain function call" for m in by_name.values()
    )


def test_ingest_persists_every_line_and_runs_every_baseline():
    by_name = check_shape(
        bench_ingest.run(True),
        [
            "ingest.events_per_s",
            "ingest.events_per_s_vs_limit",
            "ingest.writer_events_per_s",
            "ingest.writer_events_per_s_vs_limit",
        ],
    )
    note = by_name["ingest.events_per_s"]["note"]
    tasks, says = bench_ingest.SMOKE["tasks"], bench_ingest.SMOKE["says"]
    assert f"{tasks}/{tasks} completed" in note
    assert number_after(note, "assistant_text rows missing:") == 0
    # each line is at least an assistant_text and a usage row
    assert number_after(note, f"{says} lines =") >= 2 * tasks * says
    assert "synchronous=FULL" in by_name["ingest.events_per_s"]["baseline"]
    assert "synchronous=NORMAL" in by_name["ingest.writer_events_per_s"]["baseline"]
    assert (
        by_name["ingest.events_per_s"]["value"] == by_name["ingest.events_per_s_vs_limit"]["value"]
    )
    writer = by_name["ingest.writer_events_per_s_vs_limit"]
    assert writer["value"] == by_name["ingest.writer_events_per_s"]["value"]
    assert "limit" in writer["baseline"]


def test_ingest_chatty_script_yields_between_lines():
    steps = bench_ingest.chatty_script(12)
    assert sum("say" in s for s in steps) == 12
    assert sum("sleep" in s for s in steps) == 12 // bench_ingest.YIELD_EVERY
    assert steps[-1] == {"result": "done"}


def test_analytics_answers_match_sqlite():
    by_name = check_shape(
        bench_analytics.run(True), ["analytics.cost_by_profile_day", "analytics.success_rate"]
    )
    for m in by_name.values():
        assert "identical answers" in m["note"]
        assert m["baseline"] == "sqlite, same rows"
    # 8 profiles x 90 days of ledger rows spread evenly: every pair appears
    assert "720 result rows" in by_name["analytics.cost_by_profile_day"]["note"]
    assert (
        f"{len(bench_analytics.PROFILES)} result rows" in by_name["analytics.success_rate"]["note"]
    )


def test_analytics_generated_history_is_consistent(tmp_path):
    from stagent_lab.store.migrations import apply_migrations

    con = duckdb.connect(str(tmp_path / "gen.duckdb"))
    apply_migrations(con)
    n_tasks = bench_analytics.generate(con, 800, 4000)
    assert n_tasks == 80
    counts = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("tasks", "usage_ledger", "agent_logs")
    }
    assert counts == {"tasks": 80, "usage_ledger": 800, "agent_logs": 4000}
    # each task's last log row is a status event whose payload names the task's final status
    mismatched = con.execute(
        "SELECT count(*) FROM tasks t JOIN agent_logs l ON l.task_id = t.id "
        "WHERE l.seq = 50 AND (l.event <> 'status' OR l.payload ->> '$.to' <> t.status)"
    ).fetchone()[0]
    assert mismatched == 0
    statuses = dict(con.execute("SELECT status, count(*) FROM tasks GROUP BY 1").fetchall())
    assert set(statuses) == {"completed", "failed", "cancelled"}
    con.close()


def test_governance_rules_and_round_trips():
    by_name = check_shape(
        bench_governance.run(True),
        [
            "governance.cascade_p50",
            "governance.cascade_p95",
            "governance.approval_round_trip_p95",
            "governance.deny_400kb",
        ],
    )
    n = bench_governance.SMOKE["round_trips"]
    assert f"{n} approvals ({n} completed)" in by_name["governance.approval_round_trip_p95"]["note"]
    assert by_name["governance.cascade_p50"]["baseline"] == "cascade with 10 rules"


def test_governance_rule_mix_reaches_every_tier(tmp_path):
    rules = bench_governance.make_rules(1000)
    assert len(rules) == 1002
    assert {r.scope for r in rules} == {"global", "profile", "project"}
    assert {r.effect for r in rules} == {"allow", "deny"}
    assert {r.rule.split("(")[0] for r in rules} == {"Bash", "Read", "Edit", "WebFetch"}
    requests = bench_governance.make_requests(200)
    timings, outcomes = bench_governance._cascade_timings(rules, requests, tmp_path)
    assert len(timings) == 200
    assert sum(outcomes.values()) == 200
    # the mix exercises saved allow rules, saved deny rules and the fall-through to a human
    assert {"allow:rule", "deny:rule", "human"} <= set(outcomes)


def test_concurrency_loses_no_events():
    by_name = check_shape(
        bench_concurrency.run(True),
        ["concurrency.wall_time", "concurrency.peak_rss", "concurrency.events_lost"],
    )
    assert by_name["concurrency.events_lost"]["value"] == 0
    tasks = bench_concurrency.SMOKE["tasks"]
    assert f"{tasks}/{tasks} completed" in by_name["concurrency.wall_time"]["note"]
    lost_note = by_name["concurrency.events_lost"]["note"]
    published = float(lost_note.split()[0])
    assert published == number_after(lost_note, "subscribers,") > 0  # persisted
    assert by_name["concurrency.peak_rss"]["value"] > 0


# ---- helpers and the harness ---------------------------------------------------------------


def test_format_line_and_percentile():
    m = metric(
        "ingest.events_per_s", 181234.4, "events/s", baseline="sqlite row-by-row", ratio=45.234
    )
    assert (
        format_line(m) == "ingest.events_per_s: 181234 events/s (ratio 45.23 vs sqlite row-by-row)"
    )
    assert format_line(metric("x.peak_rss", 211.66, "MiB")) == "x.peak_rss: 211.7 MiB"
    assert format_line(metric("x.tiny", 0.000456, "s", baseline="b", ratio=0.00046)) == (
        "x.tiny: 0.000456 s (ratio 0.00046 vs b)"
    )
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5.0], 95) == 5.0
    assert percentile(list(range(101)), 95) == 95


def test_validate_metrics_rejects_bad_records():
    good = metric("a.b", 1, "s")
    assert harness.validate_metrics([good]) == [good]
    with pytest.raises(ValueError, match="lacks"):
        harness.validate_metrics([{"name": "a.b", "value": 1.0}])
    with pytest.raises(ValueError, match="must be a number"):
        harness.validate_metrics([{**good, "value": float("nan")}])
    with pytest.raises(ValueError, match="list"):
        harness.validate_metrics(good)


def test_discover_finds_every_module():
    names = harness.discover()
    assert {"analytics", "concurrency", "governance", "ingest", "launch"} <= set(names)
    assert names == sorted(names)


def _fake_module(monkeypatch, name, fn):
    mod = types.ModuleType(f"bench.bench_{name}")
    mod.run = fn
    monkeypatch.setitem(sys.modules, f"bench.bench_{name}", mod)


def test_harness_reports_a_failing_module_and_carries_on(monkeypatch, tmp_path, capsys):
    def boom(quick):
        raise RuntimeError("disk on fire")

    _fake_module(monkeypatch, "fakefail", boom)
    _fake_module(
        monkeypatch,
        "fakeok",
        lambda quick: [
            metric(
                "fakeok.speed", 10.0, "ops/s", baseline="nothing", ratio=2.0, note=f"quick={quick}"
            ),
            metric("fakeok.size", 3.0, "MiB"),
        ],
    )
    monkeypatch.setattr(harness, "discover", lambda: ["fakefail", "fakeok"])
    out_json = tmp_path / "res" / "r.json"
    code = harness.main(["--in-process", "--json", str(out_json)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "fakefail: ERROR RuntimeError: disk on fire",
        "fakeok.speed: 10 ops/s (ratio 2 vs nothing)",
        "fakeok.size: 3 MiB",
    ]
    data = json.loads(out_json.read_text())
    assert data["mode"] == "quick"
    assert {"cpu_count", "python", "duckdb"} <= set(data["machine"])
    assert data["machine"]["duckdb"] == duckdb.__version__
    assert [m["name"] for m in data["metrics"]] == ["fakeok.speed", "fakeok.size"]
    assert data["metrics"][0]["note"] == "quick=True"
    assert [(m["name"], m["ok"]) for m in data["modules"]] == [
        ("fakefail", False),
        ("fakeok", True),
    ]
    assert data["lines"] == lines


def test_harness_exit_code_is_nonzero_only_when_all_fail(monkeypatch, tmp_path, capsys):
    _fake_module(monkeypatch, "fakebad", lambda quick: [{"name": "no.value"}])
    monkeypatch.setattr(harness, "discover", lambda: ["fakebad"])
    assert harness.main(["--in-process", "--json", str(tmp_path / "r.json")]) == 1
    assert capsys.readouterr().out.startswith(
        "fakebad: ERROR ValueError: metric 'no.value' lacks value"
    )


def test_harness_only_and_unknown_names(monkeypatch, tmp_path, capsys):
    calls = []
    _fake_module(monkeypatch, "fakea", lambda quick: calls.append(("a", quick)) or [])
    _fake_module(monkeypatch, "fakeb", lambda quick: calls.append(("b", quick)) or [])
    monkeypatch.setattr(harness, "discover", lambda: ["fakea", "fakeb"])
    assert (
        harness.main(
            ["--in-process", "--full", "--only", "bench_fakeb", "--json", str(tmp_path / "r.json")]
        )
        == 0
    )
    assert calls == [("b", False)]
    assert harness.main(["--only", "nope", "--json", str(tmp_path / "r.json")]) == 2
    assert "unknown benchmark(s): nope" in capsys.readouterr().err


def test_isolated_child_reports_import_errors():
    result = harness.run_isolated("doesnotexist", True, smoke=True, timeout=120)
    assert not result.ok
    assert result.error.startswith("ModuleNotFoundError")


def test_python_m_bench_end_to_end(tmp_path):
    out_json = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "governance", "--json", str(out_json)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "governance.cascade_p50",
        "governance.cascade_p95",
        "governance.approval_round_trip_p95",
        "governance.deny_400kb",
    ]
    assert all(LINE.match(line) for line in lines), lines
    data = json.loads(out_json.read_text())
    assert data["mode"] == "smoke"
    assert data["lines"] == lines


# ---- streaming load and import time (appended modules) -------------------------------------


def test_stream_runs_every_task_and_stores_what_it_streamed():
    from bench import bench_stream

    by_name = check_shape(
        bench_stream.run(True),
        [
            "ingest.stream_events_per_s",
            "ingest.stream_loop_utilisation",
            "ingest.stream_store_latency_p95",
            "ingest.stream_delta_lag_p95",
            "ingest.stream_rows_vs_limit",
        ],
    )
    n = bench_stream.SMOKE["tasks"]
    note = by_name["ingest.stream_events_per_s"]["note"]
    assert f"({n}/{n} completed)" in note
    assert number_after(note, "stored events reached the subscriber;") > 0  # rows stored
    assert number_after(note, "s;") > 0  # delta batches reached the subscriber
    assert 0 <= by_name["ingest.stream_loop_utilisation"]["value"] <= 100
    latency = by_name["ingest.stream_store_latency_p95"]["note"]
    assert number_after(latency, "commit,") > 0  # stored events matched to their commit


def test_stream_latency_matches_each_event_to_the_first_commit_covering_it():
    from bench.bench_stream import _store_latencies

    published = {1: 0.0, 2: 0.5, 3: 1.0, 5: 2.0}
    commits = [(4, 3.0), (2, 1.0)]  # (highest committed id, when), out of order
    # 1 and 2 by the commit at 1.0; 3 by the one at 3.0; 4 was never published; 5 not committed
    assert _store_latencies([1, 2, 3, 4, 5], published, commits) == [1.0, 0.5, 2.0]


def test_import_reports_load_ext_against_import_json():
    from bench import bench_import

    by_name = check_shape(bench_import.run(True), ["launch.load_ext_ms", "launch.first_magic_ms"])
    note = by_name["launch.load_ext_ms"]["note"]
    assert "median of 1 fresh interpreters" in note
    # the data stack loads on first use, not with the extension
    assert "imported by %load_ext: none of pandas, pyarrow, duckdb" in note
