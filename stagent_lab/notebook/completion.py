"""Tab completion for ``%stagent`` and ``%%stagent`` lines (an IPython matcher, API v2).

After ``%stagent`` it offers the subcommands (features' families included); after an option
that takes a name it offers the names that exist: ``--profile`` profile ids, ``--runtime``
runtime ids, ``--project`` project names, ``--session`` chat sessions, ``--script`` and
``--name`` notebook variables; after ``--`` the options of the command. When it recognises the
line it suppresses IPython's other matchers, so Tab after ``--profile co`` lists profiles and
not unrelated magics or Python names.

Names come from the kernel's Lab through the contract (cached for a few seconds, so holding
Tab does not hammer the workspace). A failure to reach the workspace completes nothing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from stagent_lab.notebook.options import COMMANDS, FEATURE_COMMANDS, LAUNCH_FLAGS

CACHE_S = 5.0
_LINE = re.compile(r"^\s*(%%?)stagent(?:\s|$)")
TASK_STATUSES = ("queued", "running", "waiting", "completed", "failed", "cancelled", "paused")
COST_DIMS = ("profile", "runtime", "model", "provider", "project", "activity", "task", "hour",
             "day", "week", "month")  # fmt: skip
CHAT_FLAGS = ("--profile", "--runtime", "--project", "--session", "--script", "--title", "--list")
VALUE_FLAGS = {"--profile", "--runtime", "--project", "--session", "--script", "--name"}

_cache: dict[str, tuple[float, list[str]]] = {}
_cache_lock = threading.Lock()


def _cached(key: str, fetch: Callable[[], list[str]]) -> list[str]:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
    try:
        values = sorted(set(fetch()))
    except Exception:  # the workspace is unreachable or locked: offer nothing
        values = []
    with _cache_lock:
        _cache[key] = (now, values)
    return values


def _lab() -> Any:
    from stagent_lab.notebook import get_lab

    return get_lab()


def profile_ids() -> list[str]:
    return _cached("profiles", lambda: _lab().profiles.ids())


def runtime_ids() -> list[str]:
    return _cached("runtimes", lambda: _lab().catalog.ids())


def project_names() -> list[str]:
    return _cached("projects", lambda: [str(n) for n in _lab().projects()["name"]])


def session_ids() -> list[str]:
    def fetch() -> list[str]:
        sessions = _lab().chat.sessions()
        return [str(s) for s in sessions["id"]] if len(sessions) else []

    return _cached("sessions", fetch)


def forget() -> None:
    """Drop cached names (a profile was added, a project created …)."""
    with _cache_lock:
        _cache.clear()


def candidates(before: str, namespace: dict[str, Any] | None = None) -> list[str] | None:
    """What may complete the text ``before`` the cursor on a ``%stagent`` line.

    None when the line is not ours (other matchers then run as usual); a list (maybe empty)
    when it is.
    """
    m = _LINE.match(before)
    if m is None:
        return None
    cell = m.group(1) == "%%"
    words = before[m.end() :].split()
    if before.endswith((" ", "\t")) or not words:
        words.append("")
    *done, partial = words
    if "=" in partial and partial.startswith("--"):
        done, partial = [*done, partial.split("=", 1)[0]], partial.split("=", 1)[1]
    command = done[0] if done and not done[0].startswith("-") else None
    previous = done[-1] if done else None
    if previous in VALUE_FLAGS:
        return _values(previous, namespace)
    if command is None:
        flags = list(LAUNCH_FLAGS) if cell else []
        if partial.startswith("-"):
            return flags
        return sorted({*COMMANDS, *FEATURE_COMMANDS}) + flags
    if command == "chat":
        return list(CHAT_FLAGS)
    if len(done) == 1:
        if command == "memory":
            return ["--table", *profile_ids()]
        if command in ("task", "cancel", "resume"):
            return _recent_tasks(command)
        if command == "tasks":
            return list(TASK_STATUSES)
    if command == "cost" and len(done) <= 4:
        return [d for d in COST_DIMS if d not in done]
    return []


def _values(flag: str, namespace: dict[str, Any] | None) -> list[str]:
    if flag == "--profile":
        return profile_ids()
    if flag == "--runtime":
        return runtime_ids()
    if flag == "--project":
        return project_names()
    if flag == "--session":
        return session_ids()
    names = [n for n in (namespace or {}) if n.isidentifier() and not n.startswith("_")]
    if flag == "--script":
        ns = namespace or {}
        return sorted(n for n in names if callable(ns[n]) or isinstance(ns[n], list | str))
    return sorted(names)


def _recent_tasks(command: str) -> list[str]:
    def fetch() -> list[str]:
        df = _lab().tasks(limit=50)
        if command == "cancel":
            df = df[df["status"].isin(["queued", "running", "waiting"])]
        elif command == "resume":
            df = df[df["status"].isin(["failed", "cancelled", "paused"])]
        return [str(t) for t in df["id"]]

    return _cached(f"tasks:{command}", fetch)


def make_matcher(shell: Any) -> Callable[[Any], dict[str, Any]]:
    """The matcher registered on ``shell.Completer`` (idempotent: see :func:`install`)."""
    from IPython.core.completer import SimpleCompletion, completion_matcher

    @completion_matcher(identifier="stagent", priority=100, api_version=2)
    def stagent_matcher(context: Any) -> dict[str, Any]:
        before = context.text_until_cursor
        if context.cursor_line != 0 and not _LINE.match(before):
            return {"completions": [], "suppress": False}
        found = candidates(before, getattr(shell, "user_ns", None))
        if found is None:
            return {"completions": [], "suppress": False}
        words = before.split()
        partial = "" if before.endswith((" ", "\t")) or not words else words[-1]
        if partial.startswith("--") and "=" in partial:
            partial = partial.split("=", 1)[1]
        matches = [c for c in found if c.startswith(partial)]
        kinds = "option" if partial.startswith("-") else "stagent"
        return {
            "completions": [SimpleCompletion(text=c, type=kinds) for c in matches],
            "matched_fragment": partial,
            "suppress": bool(matches),
            "ordered": True,
        }

    return stagent_matcher


def install(shell: Any) -> None:
    """Add the matcher to ``shell``'s completer, replacing an earlier one (``%reload_ext``)."""
    completer = getattr(shell, "Completer", None)
    if completer is None:
        return
    completer.custom_matchers[:] = [
        m for m in completer.custom_matchers if getattr(m, "matcher_identifier", "") != "stagent"
    ]
    completer.custom_matchers.append(make_matcher(shell))


__all__ = ["candidates", "forget", "install", "make_matcher"]
