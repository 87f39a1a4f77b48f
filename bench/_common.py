"""Helpers every benchmark module shares: metric records, sizes, statistics, workspaces.

A metric is a plain dict so the harness can print it and dump it to JSON without knowing the
module that made it::

    {"name": str, "value": float, "unit": str, "baseline": str | None,
     "ratio": float | None, "note": str | None}

Sizes come in three sets: ``quick`` (the default; the whole suite stays under two minutes on two
cores), ``full`` (``--full``, the sizes the issue names) and ``smoke`` (tiny; chosen when the
``STAGENT_BENCH_SMOKE`` environment variable is set, so tests and ``--smoke`` can check the
plumbing in seconds — its numbers mean nothing).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stagent_lab import Lab
    from stagent_lab.client.handle import TaskHandle

SMOKE_ENV = "STAGENT_BENCH_SMOKE"
METRIC_KEYS = ("name", "value", "unit", "baseline", "ratio", "note")

# A profile whose every tool is auto-approved: the benchmarks that measure the engine itself
# should never stop at the inbox.
BENCH_PROFILE = """\
id: bench
name: Bench
description: benchmark profile, every tool auto-approved
tags: [benchmark]
supportedRuntimes: [scripted]
allowedTools: [Read, Grep, Glob, Bash, Write, Edit]
canUseToolPolicy:
  autoApprove: [Read, Grep, Glob, Bash, Write, Edit]
maxTurns: 500
"""

# Bash needs a human; used for the approval round trip.
GUARDED_PROFILE = """\
id: bench-guarded
name: Bench guarded
description: benchmark profile, Bash needs approval
tags: [benchmark]
supportedRuntimes: [scripted]
allowedTools: [Read, Glob, Bash]
canUseToolPolicy:
  autoApprove: [Read, Glob]
  autoDeny: ["Bash(command:rm *)"]
maxTurns: 50
"""


# ---- metric records ----------------------------------------------------------------------


def metric(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: str | None = None,
    ratio: float | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Build one metric record (the harness convention), with plain floats for JSON."""
    return {
        "name": name,
        "value": float(value),
        "unit": unit,
        "baseline": baseline,
        "ratio": None if ratio is None else float(ratio),
        "note": note,
    }


def safe_ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None when the denominator is zero (nothing to compare)."""
    if denominator <= 0 or math.isnan(denominator) or math.isnan(numerator):
        return None
    return numerator / denominator


def format_number(value: float) -> str:
    """Short, exponent-free text with about three significant digits: 181234, 452.3, 3.14,
    0.0123, 0.00046."""
    if value is None or math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 999.95:  # would print as 1000.0 with one decimal
        return f"{value:.0f}"
    if mag >= 100:
        return f"{value:.1f}"
    if mag >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    decimals = 2 - math.floor(math.log10(mag))  # three significant digits
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


def format_line(m: dict[str, Any]) -> str:
    """``name: value unit (ratio R vs BASELINE)``; no parenthesis without a baseline."""
    line = f"{m['name']}: {format_number(m['value'])} {m['unit']}"
    if m.get("baseline"):
        ratio = m.get("ratio")
        shown = "n/a" if ratio is None else format_number(ratio)
        line += f" (ratio {shown} vs {m['baseline']})"
    return line


# ---- sizes -------------------------------------------------------------------------------


def smoke_mode() -> bool:
    return os.environ.get(SMOKE_ENV, "").strip() not in ("", "0", "false", "no")


def pick_sizes(
    quick: bool,
    *,
    quick_sizes: dict[str, Any],
    full_sizes: dict[str, Any],
    smoke_sizes: dict[str, Any],
) -> dict[str, Any]:
    """The size set for this run: smoke (env var) beats quick beats full."""
    if smoke_mode():
        return dict(smoke_sizes)
    return dict(quick_sizes if quick else full_sizes)


# ---- statistics --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def time_calls(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Seconds taken by each of ``repeat`` calls of ``fn`` (perf_counter)."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def time_per_call(fn: Callable[[], Any], *, inner: int, repeat: int) -> list[float]:
    """Seconds per call, from ``repeat`` batches of ``inner`` calls (for sub-µs operations)."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        out.append((time.perf_counter() - t0) / inner)
    return out


# ---- memory ------------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (getrusage: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


# ---- workspaces --------------------------------------------------------------------------


def write_profile(root: Path, pid: str, yaml_text: str) -> Path:
    folder = root / pid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml_text)
    (folder / "SKILL.md").write_text(
        f"---\nname: {pid}\ndescription: benchmark profile\n---\nYou are a benchmark agent.\n"
    )
    return folder


@contextlib.contextmanager
def scratch_dir(prefix: str = "stagent-bench-") -> Iterator[Path]:
    """A temporary folder removed afterwards (even when the benchmark fails)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def bench_lab(root: Path, **lab_kwargs: Any) -> Iterator[Lab]:
    """A Lab in ``root/ws`` with the benchmark profiles; closed on exit.

    In-process unless ``in_process=False`` is passed: the engine benchmarks measure the engine;
    bench_service.py measures the service transport against it."""
    from stagent_lab import Lab

    profiles = root / "profiles"
    write_profile(profiles, "bench", BENCH_PROFILE)
    write_profile(profiles, "bench-guarded", GUARDED_PROFILE)
    lab_kwargs.setdefault("in_process", True)
    lab = Lab(home=root / "ws", profile_dirs=[profiles], **lab_kwargs)
    try:
        yield lab
    finally:
        lab.close()


def wait_all(handles: Sequence[TaskHandle], timeout: float) -> None:
    """Wait for every task to finish, sharing one deadline; TimeoutError names the stragglers."""
    deadline = time.monotonic() + timeout
    for h in handles:
        h.wait(max(0.0, deadline - time.monotonic()))


def cancel_all(handles: Sequence[TaskHandle], timeout: float = 30) -> None:
    """Cancel tasks that are still active and wait until they have stopped."""
    for h in handles:
        if not h.done:
            with contextlib.suppress(Exception):  # it may finish between the check and cancel
                h.cancel()
    wait_all(handles, timeout)


def task_ids_sql(n: int) -> str:
    return ",".join("?" * n)


# ---- machine -----------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """What the figures were measured on; shared machines make this part of every result."""
    import duckdb
    import numpy
    import pandas
    import pyarrow

    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = None
    try:
        from importlib.metadata import version

        lab_version = version("stagent-lab")
    except Exception:
        lab_version = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "load_avg": load,
        "memory_gib": None if mem_gib is None else round(mem_gib, 1),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "sqlite": sqlite3.sqlite_version,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "pyarrow": pyarrow.__version__,
        "stagent_lab": lab_version,
    }
