"""notebook: how long a ``%%stagent`` cell holds the kernel, against a plain Python cell.

An IPython ``InteractiveShell`` in this process runs cells the way a kernel does (``run_cell``:
input transforms, compile, execute, display hook). ``launch.cell`` is the median time of a
``%%stagent`` cell that submits a scripted task and displays its live task card; the baseline
is the median time of a plain Python cell (``x = 1``) run by the same shell, interleaved with
the launches so both see the same machine load. The ratio is how many plain cells one launch
costs; the task itself runs on the engine thread after the cell has returned (and, untimed,
runs out before the next launch, as between cells a person runs; ``bench_launch`` covers
submits into a busy engine).

``launch.cell_own`` is the same minus the time spent inside ``lab.submit()`` (the engine's
share, measured on its own by ``bench_launch``): what the notebook surface itself adds.

``launch.cell_first`` is the first launch of the process, which also imports ipywidgets and
anywidget (what an operator waits for once per kernel), against the same baseline.

Without a kernel the widget's comm is a stand-in that sends nothing, so the figures leave out
handing the opening message to ipykernel's IOPub thread (a queue put; the send is off-thread).
"""

from __future__ import annotations

import contextlib
import io
import time
from typing import Any

from bench._common import (
    bench_lab,
    cancel_all,
    median,
    metric,
    percentile,
    pick_sizes,
    safe_ratio,
    scratch_dir,
)

QUICK = {"cells": 40}
FULL = {"cells": 200}
SMOKE = {"cells": 3}
LAUNCH = (
    "%%stagent --profile bench --runtime scripted --script plan --name last\n"
    "Say that the launch worked."
)
PLAIN = "x = 1"


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database in the user's IPython dir
    return InteractiveShell.instance(config=config)


def _timed(shell: Any, source: str) -> float:
    start = time.perf_counter()
    result = shell.run_cell(source, store_history=False)
    elapsed = time.perf_counter() - start
    if not result.success:
        raise RuntimeError(f"cell failed: {result.error_before_exec or result.error_in_exec}")
    return elapsed


def run(quick: bool) -> list[dict[str, Any]]:
    from stagent_lab.notebook import set_lab
    from stagent_lab.notebook.handle import NotebookTaskHandle

    n = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)["cells"]
    shell = _shell()
    with scratch_dir() as root, bench_lab(root) as lab:
        set_lab(lab)
        try:
            shell.run_line_magic("load_ext", "stagent_lab")
            shell.user_ns["plan"] = [{"say": "The launch worked."}]
            ours: list[float] = []
            plain: list[float] = []
            submits: list[float] = []
            submit = lab.submit

            def timed_submit(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return submit(*args, **kwargs)
                finally:
                    submits.append(time.perf_counter() - start)

            lab.submit = timed_submit  # type: ignore[method-assign]
            with contextlib.redirect_stdout(io.StringIO()):  # the cards' text reprs
                _timed(shell, PLAIN)  # warm the shell's own caches
                first = _timed(shell, LAUNCH)
                for _ in range(n):
                    plain.append(_timed(shell, PLAIN))
                    ours.append(_timed(shell, LAUNCH))
                    # Like an operator between cells: the task runs out before the next launch
                    # (untimed), so each launch meets an idle engine.
                    shell.user_ns["last"].wait(timeout=60)
            handles = [
                NotebookTaskHandle(lab, tid)
                for tid in lab.sql("SELECT id FROM tasks")["id"].tolist()
            ]
            if len(handles) != n + 1:
                raise RuntimeError(f"expected {n + 1} tasks, found {len(handles)}")
            cancel_all(handles, timeout=120)
        finally:
            set_lab(None)
    base = median(plain)
    ours_ms, base_ms = median(ours) * 1e3, base * 1e3
    own = [cell - sub for cell, sub in zip(ours, submits[1:], strict=True)]
    own_ms = median(own) * 1e3
    note = (
        f"{n} %%stagent cells vs {n} plain cells in one InteractiveShell; "
        f"p95 {percentile(ours, 95) * 1e3:.2f} ms vs {percentile(plain, 95) * 1e3:.3f} ms"
    )
    return [
        metric(
            "launch.cell",
            ours_ms,
            "ms",
            baseline=f"plain Python cell ({base_ms:.3f} ms)",
            ratio=safe_ratio(ours_ms, base_ms),
            note=note,
        ),
        metric(
            "launch.cell_own",
            own_ms,
            "ms",
            baseline=f"plain Python cell ({base_ms:.3f} ms)",
            ratio=safe_ratio(own_ms, base_ms),
            note=f"launch.cell minus lab.submit() (median submit {median(submits) * 1e3:.1f} ms):"
            " parsing, interpolation, the card and its display",
        ),
        metric(
            "launch.cell_first",
            first * 1e3,
            "ms",
            baseline=f"plain Python cell ({base_ms:.3f} ms)",
            ratio=safe_ratio(first * 1e3, base_ms),
            note="first launch of the process: includes importing ipywidgets and anywidget",
        ),
    ]
