"""import: what ``%load_ext stagent_lab`` costs a fresh kernel, against ``import json``.

Each sample is a fresh interpreter (a new kernel's import state): it builds an IPython
``InteractiveShell`` untimed (a kernel already has one), then times, in random order within
the same process,

* ours — ``%load_ext stagent_lab`` through the shell;
* the baseline — ``import json`` after dropping ``json`` and its submodules from
  ``sys.modules`` (IPython already imported it; the C accelerator stays cached, as it would).

``launch.load_ext_ms`` is the median over the samples; the ratio is ours / ``import json``
(how many plain imports the extension costs). The note says whether the data stack (pandas,
pyarrow, DuckDB) was imported by ``%load_ext`` — it should load on first use only — and the
median interpreter + IPython start-up for scale. ``launch.first_magic_ms`` is the first
``%stagent help`` after it (the magic's own cost, still with no workspace).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench._common import median, metric, pick_sizes, safe_ratio

QUICK = {"samples": 7}
FULL = {"samples": 25}
SMOKE = {"samples": 1}
HEAVY = ("pandas", "pyarrow", "duckdb")

CHILD = f"""
import json as _j, sys, time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
config = Config()
config.HistoryManager.enabled = False
sh = InteractiveShell.instance(config=config)
startup = time.perf_counter() - t0

def plain():
    for name in [m for m in sys.modules if m == "json" or m.startswith("json.")]:
        del sys.modules[name]
    t = time.perf_counter()
    import json  # noqa: F401
    return time.perf_counter() - t

def ours():
    t = time.perf_counter()
    sh.run_line_magic("load_ext", "stagent_lab")
    return time.perf_counter() - t

order = [plain, ours] if int(sys.argv[1]) % 2 else [ours, plain]
out = {{f.__name__: f() for f in order}}
heavy = [m for m in {HEAVY!r} if m in sys.modules]
import io, contextlib
t = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    sh.run_line_magic("stagent", "help")
out.update(startup=startup, heavy=heavy, magic=time.perf_counter() - t)
print("RESULT:" + _j.dumps(out))
"""


def sample(i: int) -> dict[str, Any]:
    """One fresh interpreter's timings (seconds) and the heavy modules ``%load_ext`` loaded."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(i)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT:")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"import sample failed: {proc.stderr.strip()[-500:]}")
    return json.loads(lines[-1].removeprefix("RESULT:"))


def run(quick: bool) -> list[dict[str, Any]]:
    n = pick_sizes(quick, quick_sizes=QUICK, full_sizes=FULL, smoke_sizes=SMOKE)["samples"]
    samples = [sample(i) for i in range(n)]
    ours = median([s["ours"] for s in samples]) * 1000
    plain = median([s["plain"] for s in samples]) * 1000
    magic = median([s["magic"] for s in samples]) * 1000
    startup = median([s["startup"] for s in samples]) * 1000
    heavy = sorted({m for s in samples for m in s["heavy"]})
    loaded = ", ".join(heavy) if heavy else "none of pandas, pyarrow, duckdb"
    note = (
        f"median of {n} fresh interpreters; `import json` {plain:.2f} ms; interpreter + IPython "
        f"start-up {startup:.0f} ms (untimed, the kernel's own); imported by %load_ext: {loaded}"
    )
    return [
        metric(
            "launch.load_ext_ms",
            ours,
            "ms",
            baseline="import json in the same fresh interpreter",
            ratio=safe_ratio(ours, plain),
            note=f"{note}; ratio = ours / import json",
        ),
        metric(
            "launch.first_magic_ms",
            magic,
            "ms",
            baseline="import json in the same fresh interpreter",
            ratio=safe_ratio(magic, plain),
            note=f"the first %stagent help after %load_ext (no workspace); {note}",
        ),
    ]
