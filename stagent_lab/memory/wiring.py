"""Plugging memory into the engine: what a run is told, what its tool may do, what it leaves.

Three engine hooks, all called on the engine thread (the store's owner):

* instruction hook — retrieves the profile's best memories for the task and appends a
  "## What you remember" section within a character budget; logs ``memory_recalled``.
* tool service hook — gives the ``Memory`` tool a service bound to the task's profile.
* finish hook — writes one short ``outcome`` memory when a task completes or fails.

Settings (``lab.set_setting``): ``memory.enabled`` (true), ``memory.top_k`` (8),
``memory.max_chars`` (2000), ``memory.outcomes`` (true).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from stagent_lab.memory.store import MemoryStore, Remembered
from stagent_lab.memory.tool import MemoryTool
from stagent_lab.tools import register_tool

if TYPE_CHECKING:
    from stagent_lab.engine.engine import Engine, TaskState
    from stagent_lab.lab import Lab
    from stagent_lab.memory.api import LabMemory

SECTION_TITLE = "## What you remember"
SECTION_INTRO = (
    "Notes kept from your earlier tasks (category, confidence out of 1000). Use them instead "
    "of redoing work; say so when one looks out of date."
)
MAX_LINE_CHARS = 400
SWEEP_EVERY = timedelta(hours=1)
NO_MEMORY_SOURCES = frozenset({"profile_test"})


def _flag(engine: Engine, key: str, default: bool = True) -> bool:
    value = str(engine.settings.get(key, "true" if default else "false")).strip().lower()
    return value not in ("0", "false", "no", "off")


def _int_setting(engine: Engine, key: str, default: int) -> int:
    try:
        return max(0, int(str(engine.settings.get(key, default)).strip()))
    except ValueError:
        return default


def run_query(title: str, prompt: str) -> str:
    """The text a run's memories are matched against: its title and the start of its prompt."""
    return f"{title}\n{prompt[:4000]}"


def summarize(text: str, limit: int = 200) -> str:
    """One line from a result: the first line of prose (headings and fences skipped)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and ln.strip() != "```"]
    prose = [ln for ln in lines if not ln.startswith(("#", "```", "|", "---"))]
    line = (prose or lines or [""])[0].lstrip("#*->• ").strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def format_line(category: str, confidence: float, content: str) -> str:
    """One memory as one line: newlines collapsed so stored text cannot add prompt structure."""
    text = " ".join(content.split())
    if len(text) > MAX_LINE_CHARS:
        text = text[: MAX_LINE_CHARS - 1] + "…"
    return f"- [{category} {round(confidence)}] {text}"


def build_section(memories: pd.DataFrame, max_chars: int) -> tuple[str | None, list[str]]:
    """The instruction section from scored memories, best first, within ``max_chars``.

    A memory that does not fit is skipped and smaller ones after it may still fit. Returns the
    text (None when nothing fits) and the ids used.
    """
    head = f"{SECTION_TITLE}\n{SECTION_INTRO}"
    used: list[str] = []
    lines: list[str] = []
    size = len(head)
    for row in memories.itertuples():
        line = format_line(row.category, row.effective_confidence, row.content)
        if size + 1 + len(line) > max_chars:
            continue
        lines.append(line)
        used.append(row.id)
        size += 1 + len(line)
    if not lines:
        return None, []
    return "\n".join([head, *lines]), used


class TaskMemory:
    """The ``Memory`` tool's view of the store: one task's profile, nothing else."""

    def __init__(self, hooks: MemoryHooks, st: TaskState) -> None:
        self._hooks = hooks
        self._st = st

    def remember(
        self,
        content: Any,
        *,
        category: str = "fact",
        tags: Iterable[str] | None = None,
        confidence: int | None = None,
    ) -> Remembered:
        st = self._st
        out = self._hooks.store.add(
            st.profile_id,
            content,
            category=category,
            tags=tags,
            confidence=confidence,
            source_task_id=st.id,
        )
        self._hooks.engine.log(
            st,
            "memory_written",
            tool_name="Memory",
            memory_id=out.id,
            action=out.action,
            category=category,
            confidence=out.confidence,
            reason=out.reason,
        )
        return out

    def recall(self, query: str, *, tags: Iterable[str] = (), k: int | None = None) -> pd.DataFrame:
        hooks, st = self._hooks, self._st
        limit = k if k is not None else _int_setting(hooks.engine, "memory.top_k", 8)
        now = hooks.store.now()
        df = hooks.store.retrieve(
            st.profile_id, query, project_id=st.project_id, tags=tags, k=limit, now=now
        )
        hooks.store.touch(df["id"].tolist(), now)
        return df


class MemoryHooks:
    def __init__(self, engine: Engine, store: MemoryStore) -> None:
        self.engine = engine
        self.store = store
        self._last_sweep: datetime | None = None

    def maybe_sweep(self, now: datetime) -> None:
        if self._last_sweep is None or not (timedelta(0) <= now - self._last_sweep < SWEEP_EVERY):
            self.store.apply_decay(now)
            self._last_sweep = now

    def section_for(
        self, profile_id: str, query: str, project_id: str | None, now: datetime
    ) -> tuple[str | None, list[str], pd.DataFrame]:
        top_k = _int_setting(self.engine, "memory.top_k", 8)
        max_chars = _int_setting(self.engine, "memory.max_chars", 2000)
        if top_k == 0 or max_chars == 0:
            return None, [], pd.DataFrame()
        df = self.store.retrieve(profile_id, query, project_id=project_id, k=top_k, now=now)
        text, used = build_section(df, max_chars)
        return text, used, df

    # ---- engine hooks -------------------------------------------------------------------

    def instructions(self, st: TaskState) -> str | None:
        if st.source in NO_MEMORY_SOURCES or not _flag(self.engine, "memory.enabled"):
            return None
        now = self.store.now()
        self.maybe_sweep(now)
        query = run_query(st.title, st.prompt)
        text, used, df = self.section_for(st.profile_id, query, st.project_id, now)
        if text is None:
            return None
        self.store.touch(used, now)
        scores = dict(zip(df["id"], df["score"], strict=True))
        self.engine.log(
            st,
            "memory_recalled",
            memory_ids=used,
            count=len(used),
            chars=len(text),
            scores=[round(float(scores[i]), 4) for i in used],
        )
        return text

    def services(self, st: TaskState) -> dict[str, Any]:
        return {"memory": TaskMemory(self, st)}

    def on_finish(self, st: TaskState) -> None:
        status = str(st.status)
        if status not in ("completed", "failed") or st.source in NO_MEMORY_SOURCES:
            return
        if not (_flag(self.engine, "memory.enabled") and _flag(self.engine, "memory.outcomes")):
            return
        detail = st.result if status == "completed" else st.failure_reason
        summary = summarize(detail or "")
        title = " ".join(st.title.split())[:120]
        content = f'Task "{title}" {status}' + (f": {summary}" if summary else ".")
        self.store.record_outcome(
            st.profile_id, st.id, content, status=status, project_id=st.project_id
        )


def attach(lab: Lab) -> LabMemory:
    """Wire memory into a Lab's engine (call before the engine starts). Returns ``lab.memory``."""
    from stagent_lab.memory.api import LabMemory

    register_tool(MemoryTool())
    engine = lab.engine
    store = MemoryStore(lab.store.con, redact=engine.redact)
    hooks = MemoryHooks(engine, store)
    engine.instruction_hooks.append(hooks.instructions)
    engine.tool_service_hooks.append(hooks.services)
    engine.finish_hooks.append(hooks.on_finish)
    if engine.writer is None:  # not started: this thread still owns the connection
        hooks.maybe_sweep(store.now())
    return LabMemory(lab, store, hooks)


__all__ = [
    "SECTION_TITLE",
    "MemoryHooks",
    "TaskMemory",
    "attach",
    "build_section",
    "run_query",
    "summarize",
]
