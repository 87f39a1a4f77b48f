"""The benchmark harness: ``python -m bench [--full] [--only NAME ...] [--json PATH]``.

It discovers every ``bench/bench_*.py`` module, runs each one's ``run(quick)`` in a fresh Python
process (so one module's memory, threads or crash cannot skew or stop the next one), prints one
line per metric on stdout::

    name: value unit (ratio R vs BASELINE)

(without the parenthesis when a metric has no baseline), or ``NAME: ERROR message`` for a module
that failed, and writes the same figures plus machine information as JSON (default
``bench/results/latest.json``). The exit code is non-zero only when every module failed.

``--smoke`` runs tiny sizes (numbers meaningless) to check the plumbing; ``--in-process`` runs
the modules in this process, which is handy under a profiler or debugger.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import METRIC_KEYS, SMOKE_ENV, format_line, machine_info

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_JSON = BENCH_DIR / "results" / "latest.json"
PREFIX = "bench_"
QUICK_TIMEOUT_S = 600
FULL_TIMEOUT_S = 4 * 3600


@dataclass
class ModuleResult:
    name: str
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    trace: str | None = None  # the traceback of a failure, shown on the child's stderr

    @property
    def ok(self) -> bool:
        return self.error is None


def discover() -> list[str]:
    """Short names (``ingest`` for ``bench_ingest.py``) of every benchmark module, sorted."""
    return sorted(
        p.stem[len(PREFIX) :] for p in BENCH_DIR.glob(f"{PREFIX}*.py") if p.stem != PREFIX
    )


def short_name(name: str) -> str:
    return name[len(PREFIX) :] if name.startswith(PREFIX) else name


def validate_metrics(out: Any) -> list[dict[str, Any]]:
    """Check a module's return value against the convention; raises ValueError saying what."""
    if not isinstance(out, list):
        raise ValueError(f"run() must return a list of metric dicts, got {type(out).__name__}")
    for i, m in enumerate(out):
        if not isinstance(m, dict):
            raise ValueError(f"metric {i} is a {type(m).__name__}, not a dict")
        missing = [k for k in METRIC_KEYS if k not in m]
        if missing:
            raise ValueError(f"metric {m.get('name', i)!r} lacks {', '.join(missing)}")
        if not isinstance(m["name"], str) or not m["name"]:
            raise ValueError(f"metric {i} has no name")
        for key in ("value", "ratio"):
            v = m[key]
            if v is None and key == "ratio":
                continue
            if isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
                raise ValueError(f"metric {m['name']!r}: {key} must be a number, got {v!r}")
    return out


def run_in_process(name: str, quick: bool) -> ModuleResult:
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{PREFIX}{name}")
        metrics = validate_metrics(module.run(quick))
    except Exception as exc:
        return ModuleResult(
            name,
            error=_describe(exc),
            seconds=time.perf_counter() - t0,
            trace=traceback.format_exc(),
        )
    return ModuleResult(name, metrics=metrics, seconds=time.perf_counter() - t0)


def run_isolated(name: str, quick: bool, *, smoke: bool, timeout: float) -> ModuleResult:
    """Run one module in a child ``python -m bench --child NAME`` and read its JSON answer."""
    t0 = time.perf_counter()
    env = dict(os.environ)
    if smoke:
        env[SMOKE_ENV] = "1"
    with tempfile.TemporaryDirectory(prefix="stagent-bench-child-") as tmp:
        out_path = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "bench", "--child", name, "--child-out", str(out_path)]
        if not quick:
            cmd.append("--full")
        try:
            proc = subprocess.run(
                cmd,
                cwd=BENCH_DIR.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return ModuleResult(
                name, error=f"timed out after {timeout:.0f} s", seconds=time.perf_counter() - t0
            )
        seconds = time.perf_counter() - t0
        try:
            answer = json.loads(out_path.read_text())
        except (OSError, ValueError):
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:]
            detail = f": {tail[0]}" if tail else ""
            return ModuleResult(
                name, error=f"exited with code {proc.returncode}{detail}", seconds=seconds
            )
    if answer.get("error"):
        return ModuleResult(name, error=answer["error"], seconds=seconds)
    try:
        metrics = validate_metrics(answer.get("metrics"))
    except ValueError as exc:
        return ModuleResult(name, error=str(exc), seconds=seconds)
    return ModuleResult(name, metrics=metrics, seconds=seconds)


def child_main(name: str, quick: bool, out_path: Path) -> int:
    """Inside the child: run the module, write ``{"metrics": [...]}`` or ``{"error": ...}``."""
    result = run_in_process(name, quick)
    if result.trace:
        print(result.trace, file=sys.stderr)
    payload = {"metrics": result.metrics, "error": result.error}
    out_path.write_text(json.dumps(payload))
    return 0 if result.ok else 1


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_line(result: ModuleResult) -> str:
    return f"{result.name}: ERROR {result.error}"


def write_json(
    path: Path,
    results: Sequence[ModuleResult],
    *,
    mode: str,
    started: datetime,
    seconds: float,
    lines: list[str],
) -> None:
    payload = {
        "schema": 1,
        "mode": mode,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(seconds, 3),
        "machine": machine_info(),
        "modules": [
            {
                "name": r.name,
                "ok": r.ok,
                "error": r.error,
                "seconds": round(r.seconds, 3),
                "metrics": [m["name"] for m in r.metrics],
            }
            for r in results
        ],
        "metrics": [m for r in results for m in r.metrics],
        "lines": lines,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the stagent_lab benchmarks; each figure comes with a baseline "
        "measured in the same run.",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="the sizes from the issue (1M ledger / 10M log rows, ...); slow",
    )
    p.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only these modules (e.g. ingest governance)"
    )
    p.add_argument(
        "--json",
        type=Path,
        default=DEFAULT_JSON,
        metavar="PATH",
        help="where to write the results (default bench/results/latest.json)",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes to check the plumbing; the numbers mean nothing",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run modules in this process instead of one child process each",
    )
    p.add_argument("--list", action="store_true", help="list the modules and exit")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quick = not args.full
    if args.child:
        return child_main(args.child, quick, args.child_out)
    available = discover()
    if args.list:
        print("\n".join(available))
        return 0
    names = available
    if args.only:
        wanted = [short_name(n) for n in args.only]
        unknown = [n for n in wanted if n not in available]
        if unknown:
            print(
                f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}",
                file=sys.stderr,
            )
            return 2
        names = [n for n in available if n in wanted]
    if not names:
        print("no benchmark modules found (bench/bench_*.py)", file=sys.stderr)
        return 1
    mode = "smoke" if args.smoke else ("quick" if quick else "full")
    info = machine_info()
    print(
        f"# bench: {mode} run of {', '.join(names)} on {info['cpu_count']} cpus, python "
        f"{info['python']}, duckdb {info['duckdb']}",
        file=sys.stderr,
    )
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    results: list[ModuleResult] = []
    lines: list[str] = []
    smoke_env = contextlib.nullcontext()
    if args.smoke and args.in_process:
        smoke_env = _env(SMOKE_ENV, "1")
    with smoke_env:
        for name in names:
            if args.in_process:
                result = run_in_process(name, quick)
            else:
                timeout = QUICK_TIMEOUT_S if quick else FULL_TIMEOUT_S
                result = run_isolated(name, quick, smoke=args.smoke, timeout=timeout)
            results.append(result)
            new = [format_line(m) for m in result.metrics] if result.ok else [error_line(result)]
            for line in new:
                print(line, flush=True)
            lines += new
    elapsed = time.perf_counter() - t0
    write_json(args.json, results, mode=mode, started=started, seconds=elapsed, lines=lines)
    failed = sum(not r.ok for r in results)
    print(
        f"# {len(results) - failed}/{len(results)} modules ok in {elapsed:.1f} s; "
        f"results in {args.json}",
        file=sys.stderr,
    )
    return 1 if failed == len(results) else 0


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


if __name__ == "__main__":
    sys.exit(main())
