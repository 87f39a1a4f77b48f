"""What the agent-CLI runtimes (claude-code, codex) share: finding a binary, building the
child's environment, remembering its stderr, and stopping it without leaving orphans.

Why a marker: an agent CLI starts shells, which start their own children (a test runner, a
``sleep``), and some of those outlive their parent once it dies (they are re-parented to init).
Every CLI we start gets ``STAGENT_RUN_MARKER=<random>`` in its environment; children inherit it,
so on cancel we can find and stop every process of the run by reading ``/proc/<pid>/environ``
(only our own processes are readable), not just the direct child.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MARKER_VAR = "STAGENT_RUN_MARKER"

# Variables an outer agent session may have set; a CLI we start must not think it is nested.
_DROP_VARS = ("CLAUDECODE", "CLAUDE_CODE_SSE_PORT", "CODEX_SANDBOX", "CODEX_THREAD_ID")


def new_marker() -> str:
    return "stagent-" + secrets.token_hex(8)


def package_repo_root() -> Path:
    """The folder holding ``stagent_lab/`` (the repository root in a source checkout)."""
    return Path(__file__).resolve().parents[2]


def executable(path: str | os.PathLike[str] | None) -> str | None:
    """``path`` if it names an executable file, else None."""
    if not path:
        return None
    p = Path(path).expanduser()
    if p.is_file() and os.access(p, os.X_OK):
        return str(p)
    return None


def first_executable(candidates: Iterable[str | os.PathLike[str] | None]) -> str | None:
    for candidate in candidates:
        found = executable(candidate)
        if found:
            return found
    return None


def which(name: str) -> str | None:
    return shutil.which(name)


def child_env(
    overrides: Mapping[str, str | None],
    *,
    marker: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment for a CLI: ours, minus nesting markers, plus ``overrides``.

    A value of None in ``overrides`` removes the variable (e.g. a key the run must not see).
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _DROP_VARS}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    env[MARKER_VAR] = marker
    return env


def scrub(text: str, secret_values: Iterable[str | None]) -> str:
    """Replace every secret value (8+ chars) in ``text`` with ``[redacted]``."""
    for value in secret_values:
        if value and len(value) >= 8:
            text = text.replace(value, "[redacted]")
    return text


class StderrTail:
    """The last lines a CLI wrote to stderr, for error messages (never logged wholesale)."""

    def __init__(self, lines: int = 40) -> None:
        self._lines: deque[str] = deque(maxlen=lines)

    def add(self, line: str) -> None:
        line = line.rstrip()
        if line:
            self._lines.append(line)

    def text(self, secret_values: Iterable[str | None] = (), last: int = 12) -> str:
        shown = list(self._lines)[-last:]
        return scrub("\n".join(shown), list(secret_values))

    def lines(self) -> list[str]:
        return list(self._lines)


def profile_options(ctx: Any, runtime_id: str, allowed: frozenset[str]) -> dict[str, Any]:
    """The allow-listed keys of ``runtimeOverrides.<runtime_id>.options`` of the profile."""
    overrides = getattr(getattr(ctx, "profile", None), "runtime_overrides", None) or {}
    entry = overrides.get(runtime_id) if isinstance(overrides, dict) else None
    options = getattr(entry, "options", None) if entry is not None else None
    if not isinstance(options, dict):
        return {}
    return {k: v for k, v in options.items() if k in allowed}


# ---- processes ------------------------------------------------------------------------------


def _proc_root() -> Path:
    return Path("/proc")


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of live processes (readable by us) whose environment holds ``marker``."""
    root = _proc_root()
    if not root.is_dir():
        return []
    needle = f"{MARKER_VAR}={marker}".encode()
    found: list[int] = []
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in data.split(b"\0") and not _is_zombie(entry):
            found.append(int(entry.name))
    return found


def _is_zombie(entry: Path) -> bool:
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return True
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (Linux /proc; empty elsewhere)."""
    root = _proc_root()
    if not root.is_dir():
        return []
    children: dict[int, list[int]] = {}
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 2 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in out:
                out.append(child)
                stack.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    entry = _proc_root() / str(pid)
    return not (entry.is_dir() and _is_zombie(entry))


def stop_processes(
    pids: Iterable[int], *, grace_s: float = 1.5, own_pid: int | None = None
) -> list[int]:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL what is left. Returns the PIDs signalled.

    Never signals this Python process (``own_pid`` defaults to ``os.getpid()``).
    """
    me = os.getpid() if own_pid is None else own_pid
    targets = [p for p in dict.fromkeys(pids) if p > 1 and p != me]
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in targets):
        time.sleep(0.05)
    for pid in targets:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return targets


def stop_run(root_pid: int | None, marker: str, *, grace_s: float = 1.5) -> list[int]:
    """Stop a CLI, everything it started, and anything else carrying the run's marker."""
    pids: list[int] = []
    if root_pid:
        pids += [*descendants(root_pid), root_pid]
    pids += processes_with_marker(marker)
    return stop_processes(pids, grace_s=grace_s)


__all__ = [
    "MARKER_VAR",
    "StderrTail",
    "child_env",
    "descendants",
    "executable",
    "first_executable",
    "new_marker",
    "package_repo_root",
    "processes_with_marker",
    "profile_options",
    "scrub",
    "stop_processes",
    "stop_run",
    "which",
]
