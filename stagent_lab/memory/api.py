"""``lab.memory``: the operator's view of what agents remember, and the controls over it.

Every call hops to the engine thread (the store's only writer) with ``engine.call``, so it is
safe from a notebook cell or any thread — but not from an engine callback (subscribers,
``on_finish``), where it would deadlock and raises instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from stagent_lab.memory.store import MemoryStore
from stagent_lab.memory.wiring import run_query

if TYPE_CHECKING:
    from stagent_lab.lab import Lab
    from stagent_lab.memory.wiring import MemoryHooks

DEFAULT_PROJECT = "default"  # the project a task runs in when it names none (see Lab.submit)


class LabMemory:
    """List, add, edit, reject and delete memories; preview what a run would be told."""

    def __init__(self, lab: Lab, store: MemoryStore, hooks: MemoryHooks) -> None:
        self._lab = lab
        self._store = store
        self._hooks = hooks

    def __repr__(self) -> str:
        return f"<LabMemory of {self._lab.home}>"

    # ---- time ---------------------------------------------------------------------------

    @property
    def clock(self) -> Callable[[], datetime]:
        """What "now" is for decay (naive UTC). Replace it to simulate days passing."""
        return self._store.clock

    @clock.setter
    def clock(self, fn: Callable[[], datetime]) -> None:
        self._store.clock = fn

    # ---- reading ------------------------------------------------------------------------

    def list(
        self,
        profile_id: str | None = None,
        *,
        status: str | None = "active",
        project: str | None = None,
        category: str | None = None,
    ) -> pd.DataFrame:
        """Memories with ``effective_confidence`` (decay applied), strongest first per profile.

        ``status``: active (default) | decayed | archived | rejected | None for all.
        """
        project_id = self._project_id(project)
        return self._call(
            self._store.list, profile_id, status=status, project_id=project_id, category=category
        )

    def get(self, memory_id: str) -> dict[str, Any]:
        return self._call(self._store.get, memory_id)

    def recall(
        self,
        profile_id: str,
        query: str = "",
        *,
        k: int = 8,
        project: str | None = None,
        tags: Iterable[str] = (),
    ) -> pd.DataFrame:
        """Score a profile's active memories against ``query`` (read-only: no access counted).

        Like a run, ``project=None`` means the default project.
        """
        self._lab.profiles.get(profile_id)
        project_id = self._project_id(project, run_default=True)
        return self._call(
            self._store.retrieve, profile_id, query, project_id=project_id, tags=list(tags), k=k
        )

    def preview(
        self,
        profile_id: str,
        prompt: str,
        *,
        project: str | None = None,
        title: str | None = None,
    ) -> str | None:
        """The "## What you remember" section a run of ``prompt`` would get now (read-only).

        Like a run, ``project=None`` means the default project.
        """
        self._lab.profiles.get(profile_id)
        project_id = self._project_id(project, run_default=True)
        query = run_query(title or "", prompt)

        def build() -> str | None:
            text, _, _ = self._hooks.section_for(profile_id, query, project_id, self._store.now())
            return text

        return self._call(build)

    # ---- writing ------------------------------------------------------------------------

    def add(
        self,
        profile_id: str,
        content: str,
        category: str = "fact",
        tags: Iterable[str] | str | None = None,
        *,
        confidence: int | None = None,
        decay_rate: int | None = None,
        project: str | None = None,
    ) -> str:
        """Add a memory for a profile and return its id.

        Near-identical content (same words, Jaccard >= 0.8) reinforces the existing memory
        instead (its id is returned). Content like a rejected memory is added as a new row:
        the operator may overrule an earlier rejection; the rejected row stays rejected.
        """
        self._lab.profiles.get(profile_id)  # unknown profile → ProfileNotFoundError
        project_id = self._project_id(project)
        out = self._call(
            self._store.add,
            profile_id,
            content,
            category=category,
            tags=tags,
            confidence=confidence,
            decay_rate=decay_rate,
            project_id=project_id,
            allow_rejected=True,
        )
        return out.id

    def edit(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        category: str | None = None,
        tags: Iterable[str] | str | None = None,
        confidence: int | None = None,
        decay_rate: int | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Change a memory's fields; returns the updated row."""
        return self._call(
            self._store.edit,
            memory_id,
            content=content,
            category=category,
            tags=tags,
            confidence=confidence,
            decay_rate=decay_rate,
            status=status,
        )

    def reject(self, memory_id: str) -> dict[str, Any]:
        """Mark a memory wrong: never retrieved again, and agents cannot re-learn it."""
        return self._call(self._store.reject, memory_id)

    def delete(self, memory_id: str) -> None:
        """Remove a memory for good (no trace; prefer reject to keep agents from re-learning)."""
        self._call(self._store.delete, memory_id)

    def decay(self, now: datetime | None = None) -> dict[str, int]:
        """Apply the status thresholds now (runs by itself on open and hourly at run start)."""
        return self._call(self._store.apply_decay, now)

    # ---- helpers ------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return self._lab.engine.call(fn, *args, **kw)

    def _project_id(self, project: str | None, *, run_default: bool = False) -> str | None:
        if project is None:
            if not run_default:
                return None
            project = DEFAULT_PROJECT
            rows = self._lab.store.query_rows("SELECT id FROM projects WHERE name = ?", [project])
            return rows[0][0] if rows else None
        rows = self._lab.store.query_rows(
            "SELECT id FROM projects WHERE id = ? OR name = ? ORDER BY name = ? DESC",
            [project, project, project],
        )
        if not rows:
            raise ValueError(f"unknown project {project!r} (give a project name or id)")
        return rows[0][0]


__all__ = ["LabMemory"]
