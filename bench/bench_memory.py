"""memory: top-10 retrieval for a run over one profile's 100,000 memories.

Data: ``memories`` active memories of one profile in a workspace-schema DuckDB file (our
migrations, so the same columns and index a Lab has), 12 words each drawn from a Zipf-like
vocabulary of everyday work words plus rare entity names (client ids, ticket numbers), random
confidence (300-1000), decay rate (0-40 ‰/day) and age (0-90 days), a few tags.

Ours: ``MemoryStore.retrieve`` — the query a run's instruction hook issues (filter, decayed
confidence, idf-weighted term coverage, recency, tags, top-k, all in one DuckDB query). It is
timed over a handful of realistic task prompts.

Baselines, measured in the same run on the same file:

* naive — fetch every active memory of the profile and score it row by row in Python with the
  reference scorer (``scoring.score_rows``, the same formula). Both answers are compared; the
  note says on how many prompts the top-10 ids agree.
* confidence-only — ``ORDER BY confidence DESC LIMIT 10`` with the same filter: what retrieval
  costs when it ignores the task (and decay) altogether. Its ratio shows the price of relevance.

Ratios are baseline time / ours: above 1 means ours answers faster.

``memory.remember_loop_ms`` is what an agent's remember costs the engine loop in a Lab over the
same memories: the loop time of the batch that writes it (alone, and in the note shared by many
tasks remembering at once), against ``MemoryStore.add`` (what the tool used to run on the loop).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from bench._common import median, metric, pick_sizes, safe_ratio, scratch_dir

QUICK = {"memories": 100_000, "repeat": 5, "naive_prompts": 2, "tasks": 50}
FULL = {"memories": 100_000, "repeat": 20, "naive_prompts": 5, "tasks": 200}
SMOKE = {"memories": 2_000, "repeat": 1, "naive_prompts": 1, "tasks": 3}

PROFILE = "researcher"
NOW = datetime(2025, 6, 1, 12, 0)
WORDS_PER_MEMORY = 12
_COMMON_TEXT = """
client customer invoice payment refund contract renewal meeting report quarter revenue
budget forecast team deadline project launch release deploy server database backup ticket
support answer email prefers short detailed weekly monthly review approval risk owner
vendor pricing discount order shipping delay issue bug fix test staging production account
login password policy security audit compliance data export import dashboard metric cost
usage plan roadmap milestone feature request feedback survey onboarding
"""
COMMON = _COMMON_TEXT.split()
PROMPTS = [
    "Draft the renewal email for client1234 about the invoice delay",
    "Summarise last quarter revenue and the forecast for the budget review",
    "Ticket 90210: customer cannot login after the password policy change",
    "Prepare the staging deploy checklist for the vendor pricing release",
    "What does client77 prefer for weekly report emails?",
]


def _vocabulary(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    rare = [f"client{i}" for i in range(2_000)] + [f"{i}" for i in range(90_000, 92_000)]
    vocab = np.array(COMMON + rare)
    ranks = np.arange(1, len(vocab) + 1, dtype=float)
    ranks[len(COMMON) :] += 40  # entities are rarer than the rarest common word
    p = 1.0 / ranks
    return vocab, p / p.sum()


def build(path: Path, n: int, seed: int = 7) -> duckdb.DuckDBPyConnection:
    from stagent_lab.store.migrations import apply_migrations

    con = duckdb.connect(str(path))
    apply_migrations(con)
    rng = np.random.default_rng(seed)
    vocab, p = _vocabulary(rng)
    picks = rng.choice(vocab, size=(n, WORDS_PER_MEMORY), p=p)
    contents = [" ".join(row) + "." for row in picks]
    updated = NOW - pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s")
    accessed = pd.Series(updated).where(rng.random(n) < 0.5, None)
    tag_pool = np.array(['["finance"]', '["support"]', '["ops"]', "[]", "[]", "[]"])
    df = pd.DataFrame(
        {
            "id": [f"m{i:07d}" for i in range(n)],
            "profile_id": PROFILE,
            "project_id": None,
            "category": np.array(["fact", "preference", "pattern", "outcome"])[np.arange(n) % 4],
            "content": contents,
            "confidence": rng.integers(300, 1001, n),
            "source_task_id": None,
            "tags": tag_pool[rng.integers(0, len(tag_pool), n)],
            "last_accessed_at": accessed,
            "access_count": 0,
            "decay_rate": rng.integers(0, 41, n),
            "status": "active",
            "created_at": updated,
            "updated_at": updated,
        }
    )
    con.register("_bench_memories", df)
    cols = ", ".join(df.columns)
    con.execute(f"INSERT INTO agent_memory ({cols}) SELECT {cols} FROM _bench_memories")
    con.unregister("_bench_memories")
    try:  # rows loaded behind MemoryStore's back: index them (the store before had none)
        from stagent_lab.store import memory_index
    except ImportError:
        pass
    else:
        memory_index.rebuild(con)
    con.execute("CHECKPOINT")
    return con


def naive_top10(con: duckdb.DuckDBPyConnection, prompt: str) -> list[str]:
    """Every active memory of the profile into Python, scored one by one."""
    import json

    from stagent_lab.memory.scoring import score_rows

    cur = con.execute(
        "SELECT id, content, confidence, decay_rate, last_accessed_at, updated_at, tags "
        "FROM agent_memory WHERE profile_id = ? AND status = 'active' AND project_id IS NULL",
        [PROFILE],
    )
    rows = [
        {
            "id": r[0],
            "content": r[1],
            "confidence": r[2],
            "decay_rate": r[3],
            "last_accessed_at": r[4],
            "updated_at": r[5],
            "tags_list": json.loads(r[6] or "[]"),
        }
        for r in cur.fetchall()
    ]
    return [r["id"] for r in score_rows(rows, prompt, now=NOW, k=10)]


def confidence_top10(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM agent_memory WHERE profile_id = ? AND status = 'active' "
            "AND project_id IS NULL ORDER BY confidence DESC, id LIMIT 10",
            [PROFILE],
        ).fetchall()
    ]


MEMO_PROFILE = """\
id: bench-memo
name: Bench memo
description: benchmark profile that remembers
supportedRuntimes: [scripted]
allowedTools: [Memory]
canUseToolPolicy:
  autoApprove: [Memory]
maxTurns: 50
"""


def remember_on_loop(root: Path, n_memories: int, n_tasks: int) -> tuple[float, float, int]:
    """Engine-loop time of the Memory tool's remember in a workspace of ``n_memories``.

    Returns (ms for one remember alone, ms per remember when ``n_tasks`` remember at once,
    remembers counted). What runs on the loop is timed where it runs: the batch that writes
    queued memories (or, without the queue, the synchronous write the tool used to do).
    """
    from bench._common import bench_lab, wait_all, write_profile
    from stagent_lab.config import DB_FILENAME

    (root / "ws").mkdir(parents=True, exist_ok=True)
    build(root / "ws" / DB_FILENAME, n_memories).close()
    write_profile(root / "profiles", "bench-memo", MEMO_PROFILE)
    spent: list[float] = []
    with bench_lab(root) as lab:
        lab.set_setting("memory.enabled", False)  # only the remembers write memories
        lab.set_setting("memory.outcomes", False)
        feature = next(f for f in lab.workspace.service.features if f.name == "memory")
        writes = getattr(feature, "writes", None)
        owner, name = (writes, "_apply") if writes is not None else (feature, "write")
        inner = getattr(owner, name)

        def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return inner(*args, **kw)
            finally:
                spent.append(time.perf_counter() - t0)

        setattr(owner, name, timed)

        def script(i: int) -> list[dict[str, Any]]:
            text = f"Finding {i}: client{i} renewal needs the signed order form {i * 7}."
            step = {"tool": "Memory", "input": {"action": "remember", "content": text}}
            return [step, {"result": "ok"}]

        lab.submit("alone", profile="bench-memo", script=script(0)).wait(60)
        alone = sum(spent)
        spent.clear()
        handles = [
            lab.submit(f"many {i}", profile="bench-memo", script=script(i))
            for i in range(1, n_tasks + 1)
        ]
        wait_all(handles, timeout=300)
        lab.memory.list("bench-memo")  # the last batch is written
        together = sum(spent) / max(1, n_tasks)
        counted = len(lab.sql("SELECT id FROM agent_memory WHERE content LIKE 'Finding %'"))
    return alone * 1000, together * 1000, counted


def _time(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run(quick: bool = True) -> list[dict[str, Any]]:
    from stagent_lab.memory.store import MemoryStore

    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    n, repeat = sizes["memories"], sizes["repeat"]
    with scratch_dir("stagent-bench-memory-") as tmp:
        con = build(tmp / "memory.duckdb", n)
        try:
            store = MemoryStore(con, clock=lambda: NOW)
            ours: list[float] = []
            answers: dict[str, list[str]] = {}
            for prompt in PROMPTS:
                store.retrieve(PROFILE, prompt, k=10)  # warm the file cache once
                ours += _time(lambda p=prompt: store.retrieve(PROFILE, p, k=10), repeat)
                answers[prompt] = store.retrieve(PROFILE, prompt, k=10)["id"].tolist()
            naive: list[float] = []
            agree = 0
            checked = PROMPTS[: sizes["naive_prompts"]]
            for prompt in checked:
                t0 = time.perf_counter()
                ids = naive_top10(con, prompt)
                naive.append(time.perf_counter() - t0)
                agree += ids == answers[prompt]
            plain = _time(lambda: confidence_top10(con), repeat * len(PROMPTS))
            t_ours, t_naive, t_plain = median(ours), median(naive), median(plain)
            remember = _time(
                lambda: store.add(PROFILE, f"New finding {time.perf_counter_ns()} about client9"),
                repeat,
            )
        finally:
            con.close()
        alone_ms, together_ms, counted = remember_on_loop(tmp / "lab", n, sizes["tasks"])
    size = f"{n:,} memories of one profile"
    add_ms = median(remember) * 1000
    return [
        metric(
            "memory.retrieve_top10_ms",
            t_ours * 1000,
            "ms",
            baseline="naive Python scoring of every row",
            ratio=safe_ratio(t_naive, t_ours),
            note=(
                f"{size}; median of {len(ours)} retrievals over {len(PROMPTS)} prompts; the naive "
                f"scorer took {t_naive * 1000:.0f} ms and its top-10 matched ours on {agree} of "
                f"{len(checked)} prompts; ratio = naive / ours"
            ),
        ),
        metric(
            "memory.retrieve_vs_confidence_only_ms",
            t_ours * 1000,
            "ms",
            baseline="ORDER BY confidence LIMIT 10 (ignores the task)",
            ratio=safe_ratio(t_plain, t_ours),
            note=(
                f"{size}; confidence-only top-10 took {t_plain * 1000:.2f} ms; ratio below 1 is "
                "the price of relevance, decay and recency; ratio = plain / ours"
            ),
        ),
        metric(
            "memory.remember_ms",
            add_ms,
            "ms",
            note=f"{size}; MemoryStore.add (near-duplicate check + insert + index), median of "
            f"{len(remember)}: what one remember costs wherever it runs",
        ),
        metric(
            "memory.remember_loop_ms",
            alone_ms,
            "ms",
            baseline="MemoryStore.add on the loop (how the tool used to write)",
            ratio=safe_ratio(alone_ms, add_ms),
            note=f"{size}; engine-loop time of one Memory-tool remember alone in its batch; "
            f"with {sizes['tasks']} tasks remembering at once: {together_ms:.2f} ms each "
            f"({counted} remembered); ratio = ours / old path",
        ),
    ]


if __name__ == "__main__":  # pragma: no cover - manual use
    for m in run(quick=True):
        print(m)
