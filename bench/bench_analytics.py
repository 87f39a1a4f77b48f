"""analytics: the questions an operator asks of a long-lived workspace, DuckDB vs SQLite.

Two queries over a generated history: ``ledger`` usage rows, ``logs`` agent_logs rows and
``ledger / 10`` tasks (eight profiles, 90 days). The quick run uses the issue's 1,000,000
ledger rows (and 1,000,000 log rows); ``--full`` adds ten times the log rows:

* cost by profile and day — ``usage_ledger`` grouped by profile and calendar day;
* success rate by profile — the terminal ``status`` events in ``agent_logs`` (their JSON
  payload's ``to``), joined to ``tasks`` for the profile.

Ours runs them through the workspace's read path (``Store.query_rows`` on a workspace created
by our migrations). The baseline is SQLite — the seeds' store — holding the very same rows
(copied with ``executemany``), with the same primary keys and the ``(task_id, seq)`` index, the
same SQL where the dialects agree. Both answers are compared, so a fast wrong answer cannot
pass. The data is generated inside DuckDB with ``range()``; no Python loop builds rows.

The ratio is SQLite's time / ours: how many times faster the query answers here.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from bench._common import median, metric, pick_sizes, safe_ratio, scratch_dir

QUICK = {"ledger": 1_000_000, "logs": 1_000_000, "repeat": 3}
FULL = {"ledger": 1_000_000, "logs": 10_000_000, "repeat": 3}
SMOKE = {"ledger": 2_000, "logs": 20_000, "repeat": 1}

PROFILES = [
    "code-reviewer",
    "researcher",
    "data-analyst",
    "devops-engineer",
    "technical-writer",
    "general",
    "security-auditor",
    "test-engineer",
]
DAYS = 90
EXPORT_BATCH = 50_000

COST_SQL = {
    # Grouped on the DATE, made text once per group (not once per row) for the comparison.
    "duckdb": (
        "SELECT profile_id, CAST(day AS VARCHAR) AS day, calls, tokens, cost FROM ("
        "SELECT profile_id, CAST(started_at AS DATE) AS day, count(*) AS calls, "
        "sum(input_tokens + output_tokens) AS tokens, sum(cost_usd) AS cost "
        "FROM usage_ledger GROUP BY profile_id, day) ORDER BY profile_id, day"
    ),
    "sqlite": (
        "SELECT profile_id, date(started_at) AS day, count(*) AS calls, "
        "sum(input_tokens + output_tokens) AS tokens, sum(cost_usd) AS cost "
        "FROM usage_ledger GROUP BY profile_id, day ORDER BY profile_id, day"
    ),
}
_SUCCESS = (
    "SELECT t.profile_id, count(*) AS finished, "
    "avg(CASE WHEN l.payload ->> '$.to' = 'completed' THEN 1.0 ELSE 0.0 END) AS success_rate "
    "FROM agent_logs l JOIN tasks t ON t.id = l.task_id "
    "WHERE l.event = 'status' AND l.payload ->> '$.to' IN ('completed', 'failed', 'cancelled') "
    "GROUP BY t.profile_id ORDER BY t.profile_id"
)
SUCCESS_SQL = {"duckdb": _SUCCESS, "sqlite": _SUCCESS}

SQLITE_DDL = (
    "CREATE TABLE tasks (id TEXT PRIMARY KEY, project_id TEXT, title TEXT NOT NULL, "
    "prompt TEXT NOT NULL, profile_id TEXT NOT NULL, runtime_id TEXT NOT NULL, model TEXT, "
    "status TEXT NOT NULL, created_at TEXT NOT NULL, finished_at TEXT)",
    "CREATE TABLE usage_ledger (id TEXT PRIMARY KEY, task_id TEXT, project_id TEXT, "
    "profile_id TEXT, activity TEXT NOT NULL, runtime_id TEXT, provider TEXT, model TEXT, "
    "input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, cost_usd REAL, "
    "pricing_source TEXT NOT NULL, status TEXT NOT NULL, started_at TEXT, finished_at TEXT)",
    "CREATE TABLE agent_logs (id INTEGER PRIMARY KEY, task_id TEXT NOT NULL, seq INTEGER NOT "
    "NULL, ts TEXT NOT NULL, runtime_id TEXT, event TEXT NOT NULL, tool_name TEXT, payload TEXT)",
)
SQLITE_INDEXES = ("CREATE INDEX agent_logs_task ON agent_logs (task_id, seq)",)


# The same columns, exported from DuckDB with timestamps as SQLite-style text.
def _ts(col: str) -> str:
    return f"strftime({col}, '%Y-%m-%d %H:%M:%S')"


EXPORTS: dict[str, list[str]] = {
    "tasks": [
        "id",
        "project_id",
        "title",
        "prompt",
        "profile_id",
        "runtime_id",
        "model",
        "status",
        _ts("created_at"),
        _ts("finished_at"),
    ],
    "usage_ledger": [
        "id",
        "task_id",
        "project_id",
        "profile_id",
        "activity",
        "runtime_id",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "pricing_source",
        "status",
        _ts("started_at"),
        _ts("finished_at"),
    ],
    "agent_logs": [
        "id",
        "task_id",
        "seq",
        _ts("ts"),
        "runtime_id",
        "event",
        "tool_name",
        "payload",
    ],
}


def _final_status(expr: str) -> str:
    """Deterministic terminal status for task number ``expr``: ~70% completed."""
    return (
        f"CASE WHEN hash({expr}) % 10 < 7 THEN 'completed' "
        f"WHEN hash({expr}) % 10 < 9 THEN 'failed' ELSE 'cancelled' END"
    )


def generate(con: Any, n_ledger: int, n_logs: int) -> int:
    """Fill tasks, usage_ledger and agent_logs with a plausible history; returns n_tasks."""
    n_tasks = max(len(PROFILES), n_ledger // 10)
    per_task = max(4, n_logs // n_tasks)
    profiles = "[" + ", ".join(f"'{p}'" for p in PROFILES) + "]"
    span = DAYS * 86_400
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""
        INSERT INTO tasks (id, project_id, title, prompt, profile_id, runtime_id, model, status,
                           created_at, started_at, finished_at, turns, cost_usd)
        SELECT 't' || i, 'p' || (i % 5), 'task ' || i, 'generated for the benchmark',
               {profiles}[1 + i % {len(PROFILES)}], 'anthropic-direct', 'claude-sonnet-4-5',
               {_final_status("i")},
               TIMESTAMP '2026-01-01' + to_seconds(i * {span} // {n_tasks}),
               TIMESTAMP '2026-01-01' + to_seconds(i * {span} // {n_tasks} + 5),
               TIMESTAMP '2026-01-01' + to_seconds(i * {span} // {n_tasks} + 300),
               10, 0
        FROM range({n_tasks}) r(i)
        """
    )
    con.execute(
        f"""
        INSERT INTO usage_ledger (id, task_id, project_id, profile_id, activity, runtime_id,
                                  provider, model, input_tokens, output_tokens, cost_usd,
                                  pricing_source, status, started_at, finished_at)
        SELECT 'u' || i, 't' || (i % {n_tasks}), 'p' || ((i % {n_tasks}) % 5),
               {profiles}[1 + (i % {n_tasks}) % {len(PROFILES)}], 'task_run',
               'anthropic-direct', 'anthropic', 'claude-sonnet-4-5', inp, outp,
               round((inp * 3 + outp * 15) / 1e6, 8), 'genai-prices', 'priced',
               TIMESTAMP '2026-01-01' + to_seconds(i * {span} // {n_ledger}),
               TIMESTAMP '2026-01-01' + to_seconds(i * {span} // {n_ledger} + 2)
        FROM (SELECT i, (500 + hash(i) % 5000)::BIGINT AS inp,
                     (50 + hash(i + 1) % 1500)::BIGINT AS outp
              FROM range({n_ledger}) r(i))
        """
    )
    n_log_rows = n_tasks * per_task
    con.execute(
        f"""
        INSERT INTO agent_logs
        SELECT i + 1, 't' || t, (s + 1)::INTEGER,
               TIMESTAMP '2026-01-01' + to_seconds(t * {span} // {n_tasks} + s),
               'anthropic-direct',
               CASE WHEN s IN (0, 1, {per_task - 1}) THEN 'status'
                    ELSE ['assistant_text', 'usage', 'tool_request', 'tool_result'][1 + s % 4]
               END,
               CASE WHEN s > 1 AND s < {per_task - 1} AND s % 4 IN (2, 3) THEN 'Read' END,
               CASE WHEN s = 0 THEN '{{"from": null, "to": "queued", "reason": null}}'
                    WHEN s = 1 THEN '{{"from": "queued", "to": "running", "reason": null}}'
                    WHEN s = {per_task - 1}
                        THEN '{{"from": "running", "to": "' || {_final_status("t")}
                             || '", "reason": null}}'
                    ELSE '{{"text": "step ' || s || ' of task ' || t || '"}}'
               END,
               'task'
        FROM (SELECT i, i // {per_task} AS t, i % {per_task} AS s FROM range({n_log_rows}) r(i))
        """
    )
    return n_tasks


def copy_to_sqlite(duck: Any, path: Path) -> None:
    """Copy the three tables into a SQLite file with executemany, batch by batch."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=OFF")  # loading time is not what we measure
        for ddl in SQLITE_DDL:
            con.execute(ddl)
        for table, cols in EXPORTS.items():
            marks = ",".join("?" * len(cols))
            reader = duck.sql(f"SELECT {', '.join(cols)} FROM {table}").to_arrow_reader(
                EXPORT_BATCH
            )
            for batch in reader:
                columns = [c.to_pylist() for c in batch.columns]
                con.executemany(f"INSERT INTO {table} VALUES ({marks})", zip(*columns, strict=True))
        for ddl in SQLITE_INDEXES:
            con.execute(ddl)
        con.commit()
        con.execute("PRAGMA synchronous=FULL")
        con.execute("ANALYZE")
    finally:
        con.close()


def _normalize(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Round floats so two engines' sums compare equal."""
    return [
        tuple(round(v, 6) if isinstance(v, float) else (str(v) if v is not None else v) for v in r)
        for r in rows
    ]


def _time_query(fn: Any, repeat: int) -> tuple[float, list[tuple[Any, ...]]]:
    times, rows = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        rows = fn()
        times.append(time.perf_counter() - t0)
    return median(times), rows


def run(quick: bool) -> list[dict[str, Any]]:
    from stagent_lab.store.db import Store

    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    repeat = sizes["repeat"]
    out = []
    with scratch_dir() as root:
        home = root / "ws"
        home.mkdir()
        store = Store(home)
        try:
            t0 = time.perf_counter()
            generate(store.con, sizes["ledger"], sizes["logs"])
            store.con.execute("CHECKPOINT")
            gen_s = time.perf_counter() - t0
            counts = dict(
                (t, store.query_rows(f"SELECT count(*) FROM {t}")[0][0])
                for t in ("tasks", "usage_ledger", "agent_logs")
            )
            t0 = time.perf_counter()
            copy_to_sqlite(store.con, root / "seeds.sqlite")
            copy_s = time.perf_counter() - t0
            lite = sqlite3.connect(root / "seeds.sqlite")
            try:
                size_note = (
                    f"{counts['usage_ledger']} ledger rows, {counts['agent_logs']} log rows, "
                    f"{counts['tasks']} tasks (generated in {gen_s:.1f} s, copied to sqlite in "
                    f"{copy_s:.1f} s); median of {repeat}"
                )
                for name, queries in (
                    ("cost_by_profile_day", COST_SQL),
                    ("success_rate", SUCCESS_SQL),
                ):
                    q_duck, q_lite = queries["duckdb"], queries["sqlite"]
                    ours, ours_rows = _time_query(lambda q=q_duck: store.query_rows(q), repeat)
                    base, base_rows = _time_query(
                        lambda q=q_lite: lite.execute(q).fetchall(), repeat
                    )
                    same = _normalize(ours_rows) == _normalize(base_rows)
                    if not same:
                        raise AssertionError(
                            f"{name}: duckdb and sqlite disagree "
                            f"({len(ours_rows)} vs {len(base_rows)} rows)"
                        )
                    out.append(
                        metric(
                            f"analytics.{name}",
                            ours * 1e3,
                            "ms",
                            baseline="sqlite, same rows",
                            ratio=safe_ratio(base, ours),
                            note=f"{size_note}; sqlite {base * 1e3:.1f} ms; {len(ours_rows)} "
                            f"result rows, identical answers; ratio = sqlite time / ours",
                        )
                    )
            finally:
                lite.close()
        finally:
            store.close()
    return out
