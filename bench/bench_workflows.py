"""workflows: what orchestration costs per step, against submitting the same tasks by hand.

Data: a ``sequence`` workflow of ``steps`` steps (and a ``parallel`` one of ``branches``
branches plus a synthesis), each step a scripted child that answers at once, all on the
auto-approving benchmark profile. Every child goes through the normal path (queue, cascade,
memory, ledger), so the only difference between the two sides is the orchestration.

Ours: ``lab.workflows.run(wf).wait()`` — wall time from the call until the run is completed
(composed prompts, step-run rows, run events, the finish hook starting the next step).

Baselines, measured in the same run, interleaved with ours, on the same Lab:

* by hand, sequence — the same number of tasks, with prompts of the same length, each submitted
  when the previous one has finished (``lab.submit(...).wait()`` in a loop): what a script
  chaining tasks itself does.
* by hand, parallel — the branches submitted together, waited for, then the synthesis.

Ratios are ours / by hand (× slower; the goal is ≤ 1.1), the median of the per-round ratios
(each round measures both sides back to back, so a shared machine's drifting load cancels out).
``workflows.step_overhead`` is the median difference per step in milliseconds (no baseline).
"""

from __future__ import annotations

import time
from typing import Any

from bench._common import bench_lab, median, metric, pick_sizes, scratch_dir

QUICK = {"steps": 10, "branches": 4, "repeat": 9}
FULL = {"steps": 50, "branches": 5, "repeat": 9}
SMOKE = {"steps": 2, "branches": 2, "repeat": 1}
SCRIPT = [{"result": "done"}]
PROMPT_CHARS = 400  # about the size of a composed step prompt with a short previous output


def _prompt(i: int) -> str:
    text = f"Step {i}: carry on from the previous step's output and finish your part. "
    return (text * (PROMPT_CHARS // len(text) + 1))[:PROMPT_CHARS]


def _sequence(lab: Any, steps: int) -> None:
    lab.workflows.create(
        "bench-sequence",
        profile="bench",
        concurrent_runs=True,
        steps=[{"name": f"Step {i}", "prompt": _prompt(i), "script": SCRIPT} for i in range(steps)],
    )


def _parallel(lab: Any, branches: int) -> None:
    ids = [f"b{i}" for i in range(branches)]
    lab.workflows.create(
        "bench-parallel",
        pattern="parallel",
        profile="bench",
        concurrent_runs=True,
        parallel={"max_concurrent": min(branches, 5)},
        steps=[
            *({"id": b, "name": f"Branch {b}", "prompt": _prompt(i), "script": SCRIPT}
              for i, b in enumerate(ids)),
            {"name": "Synthesis", "prompt": _prompt(99), "depends_on": ids, "script": SCRIPT},
        ],
    )  # fmt: skip


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _run(lab: Any, name: str) -> None:
    run = lab.workflows.run(name).wait(600)
    if run.status != "completed":
        raise RuntimeError(f"{name} ended {run.status}: {run.failure_reason}")


def _by_hand_sequence(lab: Any, steps: int) -> None:
    for i in range(steps):
        lab.submit(_prompt(i), profile="bench", script=SCRIPT).wait(600)


def _by_hand_parallel(lab: Any, branches: int) -> None:
    handles = [lab.submit(_prompt(i), profile="bench", script=SCRIPT) for i in range(branches)]
    for h in handles:
        h.wait(600)
    lab.submit(_prompt(99), profile="bench", script=SCRIPT).wait(600)


def run(quick: bool = True) -> list[dict[str, Any]]:
    sizes = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)
    steps, branches, repeat = sizes["steps"], sizes["branches"], sizes["repeat"]
    with scratch_dir() as root, bench_lab(root, max_concurrent=max(branches, 4)) as lab:
        _sequence(lab, steps)
        _parallel(lab, branches)
        _run(lab, "bench-sequence")  # warm up both paths (imports, first project, caches)
        _by_hand_sequence(lab, 1)
        ours_seq, hand_seq, ours_par, hand_par = [], [], [], []
        for _ in range(repeat):
            hand_seq.append(_timed(lambda: _by_hand_sequence(lab, steps)))
            ours_seq.append(_timed(lambda: _run(lab, "bench-sequence")))
            ours_par.append(_timed(lambda: _run(lab, "bench-parallel")))
            hand_par.append(_timed(lambda: _by_hand_parallel(lab, branches)))
        children = int(
            lab.sql("SELECT count(*) AS n FROM tasks WHERE source = 'workflow'")["n"].iloc[0]
        )
    seq, base = median(ours_seq), median(hand_seq)
    par, pbase = median(ours_par), median(hand_par)
    seq_ratio = median([o / h for o, h in zip(ours_seq, hand_seq, strict=True)])
    par_ratio = median([o / h for o, h in zip(ours_par, hand_par, strict=True)])
    per_step = median([(o - h) / steps for o, h in zip(ours_seq, hand_seq, strict=True)])
    note = (
        f"{steps} steps, {repeat} rounds: run {seq * 1000:.0f} ms, by hand {base * 1000:.0f} ms "
        f"(medians; {base / steps * 1000:.1f} ms a task by hand); {children} child tasks"
    )
    return [
        metric(
            "workflows.sequence_wall",
            seq * 1000,
            "ms",
            baseline="the same tasks submitted by hand one after another",
            ratio=seq_ratio,
            note=note,
        ),
        metric(
            "workflows.step_overhead",
            per_step * 1000,
            "ms",
            note=f"(run - by hand) / {steps} steps, median of {repeat} rounds; negative: faster",
        ),
        metric(
            "workflows.parallel_wall",
            par * 1000,
            "ms",
            baseline="the branches submitted together by hand, then the synthesis",
            ratio=par_ratio,
            note=f"{branches} branches + synthesis, {repeat} rounds: run {par * 1000:.0f} ms, "
            f"by hand {pbase * 1000:.0f} ms (medians)",
        ),
    ]


if __name__ == "__main__":
    from bench._common import format_line

    for m in run(quick=True):
        print(format_line(m))
