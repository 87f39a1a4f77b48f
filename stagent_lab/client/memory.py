"""``lab.memory``: the operator's view of what agents remember, and the controls over it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagent_lab.api import requests as rq
from stagent_lab.errors import StagentError

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab


class MemoryClient:
    """List, add, edit, reject and delete memories; preview what a run would be told."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def __repr__(self) -> str:
        return f"<memory of {self._lab.home}>"

    # ---- time ---------------------------------------------------------------------------

    def _feature(self) -> Any:
        service = getattr(self._lab.workspace, "service", None)
        if service is None:
            raise StagentError(
                "the memory clock can be replaced only in-process (Lab(in_process=True)); the "
                "workspace service uses its own clock"
            )
        for feature in service.features:
            if feature.name == "memory":
                return feature
        raise StagentError("this workspace has no memory feature")

    @property
    def clock(self) -> Callable[[], datetime]:
        """What "now" is for decay (naive UTC). Replace it to simulate days passing
        (in-process only; or give the whole workspace a FakeClock)."""
        return self._feature().now

    @clock.setter
    def clock(self, fn: Callable[[], datetime] | None) -> None:
        self._feature().clock = fn

    # ---- reading ------------------------------------------------------------------------

    def list(
        self,
        profile_id: str | None = None,
        *,
        status: str | None = "active",
        project: str | None = None,
        category: str | None = None,
    ) -> Any:
        """Memories with ``effective_confidence`` (decay applied), strongest first per profile.

        ``status``: active (default) | decayed | archived | rejected | None for all.
        """
        return self._lab._req(
            rq.MemoryList, profile_id=profile_id, status=status, project=project, category=category
        )

    def get(self, memory_id: str) -> dict[str, Any]:
        return self._lab._req(rq.MemoryGet, memory_id=memory_id)

    def recall(
        self,
        profile_id: str,
        query: str = "",
        *,
        k: int = 8,
        project: str | None = None,
        tags: Iterable[str] = (),
    ) -> Any:
        """Score a profile's active memories against ``query`` (read-only: no access counted).

        Like a run, ``project=None`` means the default project.
        """
        return self._lab._req(
            rq.MemoryRecall, profile_id=profile_id, query=query, k=k, project=project,
            tags=list(tags),
        )  # fmt: skip

    def preview(
        self,
        profile_id: str,
        prompt: str,
        *,
        project: str | None = None,
        title: str | None = None,
    ) -> str | None:
        """The "## What you remember" section a run of ``prompt`` would get now (read-only)."""
        return self._lab._req(
            rq.MemoryPreview, profile_id=profile_id, prompt=prompt, project=project, title=title
        )

    def profiles(self) -> list[str]:
        """Profiles that have memories."""
        return self._lab._req(rq.MemoryProfiles)

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
        if tags is not None and not isinstance(tags, str):
            tags = list(tags)
        return self._lab._req(
            rq.MemoryAdd,
            profile_id=profile_id,
            content=content,
            category=category,
            tags=tags,
            confidence=confidence,
            decay_rate=decay_rate,
            project=project,
        )

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
        if tags is not None and not isinstance(tags, str):
            tags = list(tags)
        return self._lab._req(
            rq.MemoryEdit,
            memory_id=memory_id,
            content=content,
            category=category,
            tags=tags,
            confidence=confidence,
            decay_rate=decay_rate,
            status=status,
        )

    def reject(self, memory_id: str) -> dict[str, Any]:
        """Mark a memory wrong: never retrieved again, and agents cannot re-learn it."""
        return self._lab._req(rq.MemoryReject, memory_id=memory_id)

    def delete(self, memory_id: str) -> None:
        """Remove a memory for good (no trace; prefer reject to keep agents from re-learning)."""
        self._lab._req(rq.MemoryDelete, memory_id=memory_id)

    def decay(self, now: datetime | None = None) -> dict[str, int]:
        """Apply the status thresholds now (runs by itself on open and hourly at run start)."""
        if now is not None:
            feature = self._feature()
            old = feature.clock
            feature.clock = lambda: now
            try:
                return self._lab._req(rq.MemoryDecay)
            finally:
                feature.clock = old
        return self._lab._req(rq.MemoryDecay)
