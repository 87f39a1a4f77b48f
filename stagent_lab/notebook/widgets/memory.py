"""The memory browser: what every profile remembers, filtered, and the operator's controls.

The table shows each memory's decayed ("effective") confidence as retrieval sees it now, not
the stored number. Filters are synced traits (``profile``, ``category``, ``status``,
``search``) that the front end writes and Python code may set too; a change asks the hub for a
refresh, so the rows are read and written by the hub thread only.
Edit, Reject, Delete and Add are custom messages handled with ``lab.memory`` (thread-safe: each
call hops to the engine thread), and a refusal comes back as the action's message.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import traitlets

from stagent_lab.api.requests import MemoryBrowserRows
from stagent_lab.memory.scoring import CATEGORIES, STATUSES
from stagent_lab.notebook import static
from stagent_lab.notebook.views import epoch_ms
from stagent_lab.notebook.widgets._base import LiveWidget, bundle

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

ROW_LIMIT = 500  # rows sent to the page; the header says how many more matched
# Events after which memories (or their access counts) may have changed.
MEMORY_EVENTS = frozenset({"memory_written", "memory_recalled", "status"})
STATUS_FILTERS = ("", "all", *STATUSES)  # "": everything but rejected


def read_memories(
    lab: Lab,
    *,
    profile: str = "",
    category: str = "",
    status: str = "",
    search: str = "",
    limit: int = ROW_LIMIT,
) -> tuple[list[dict[str, Any]], int]:
    """The rows the browser shows and how many matched in all (decay as of the workspace
    clock, after the engine's latest writes)."""
    rows = lab.call(
        MemoryBrowserRows(
            profile_id=profile or None,
            category=category or None,
            status=status or None,
            search=search or None,
            limit=int(limit),
        )
    )
    total = int(rows[0]["total"]) if rows else 0
    return [_row(r) for r in rows], total


def _row(r: dict[str, Any]) -> dict[str, Any]:
    try:
        tags = json.loads(r["tags"]) if r["tags"] else []
    except ValueError:
        tags = []
    return {
        "id": r["id"],
        "profile": r["profile_id"],
        "project": r["project"],
        "category": r["category"],
        "content": r["content"],
        "confidence": int(r["confidence"]),
        "effective": int(r["effective"]),
        "decay_rate": int(r["decay_rate"]),
        "status": r["status"],
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "access_count": int(r["access_count"] or 0),
        "last_access_ms": epoch_ms(r["last_accessed_at"]),
        "created_ms": epoch_ms(r["created_at"]),
        "updated_ms": epoch_ms(r["updated_at"]),
        "source_task": r["source_task_id"],
        "source_title": r["source_title"],
    }


def _memory_owners(lab: Lab) -> set[str]:
    return set(lab.memory.profiles())


def _check_profile(lab: Lab, profile_id: str) -> None:
    """A loaded profile, or one whose file is gone but whose memories remain."""
    if profile_id in lab.profiles.ids():
        return
    if profile_id not in _memory_owners(lab):
        lab.profiles.get(profile_id)  # raises, listing the valid ids


def _tags(value: Any) -> list[str]:
    """Tags from the page: a list, or one comma-separated string ("" clears them)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list | tuple):
        return [str(t).strip() for t in value if str(t).strip()]
    raise ValueError(f"tags must be a comma-separated list, got {value!r}")


def _confidence(value: Any) -> int | None:
    """A confidence from a form field: blank means unchanged; otherwise a whole number."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError(f"confidence must be a whole number from 0 to 1000, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    raise ValueError(f"confidence must be a whole number from 0 to 1000, got {value!r}")


class MemoryBrowser(LiveWidget):
    """``MemoryBrowser(profile_id=None)``: every memory with its effective confidence, status,
    tags, use and source task; filters by profile, category, status and text; Edit, Reject,
    Delete per row and an Add form. Rejected memories show with the status filter
    ("all" or "rejected") and are marked as such."""

    _esm = bundle("memory.js")
    memories = traitlets.List().tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)  # rows matching the filters (may exceed the shown)
    profiles = traitlets.List().tag(sync=True)
    categories = traitlets.List(list(CATEGORIES)).tag(sync=True)
    statuses = traitlets.List(list(STATUSES)).tag(sync=True)
    # Filters, written by the page or by Python; a change triggers a refresh.
    profile = traitlets.Unicode("").tag(sync=True)
    category = traitlets.Enum(("", *CATEGORIES), default_value="").tag(sync=True)
    status = traitlets.Enum(STATUS_FILTERS, default_value="").tag(sync=True)
    search = traitlets.Unicode("").tag(sync=True)
    live_poll = True  # `lab.memory` calls in other cells and decay announce no event

    def __init__(
        self,
        lab: Lab | None = None,
        profile_id: str | None = None,
        *,
        category: str = "",
        status: str = "",
        search: str = "",
        limit: int = ROW_LIMIT,
        **kwargs: Any,
    ) -> None:
        lab = self._bind_lab(lab)
        if profile_id:
            _check_profile(lab, profile_id)
        if category not in ("", *CATEGORIES):
            raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        if status not in STATUS_FILTERS:
            raise ValueError(
                f"status must be one of {', '.join(STATUS_FILTERS[1:])}, got {status!r}"
            )
        self._limit = limit
        filters = {
            "profile": profile_id or "",
            "category": category,
            "status": status,
            "search": search,
        }
        self._start_live(lab)
        try:
            rows, total, owners = self._hub.read(self._read_store, filters)
            profiles = self._profile_ids(owners)
        except BaseException:
            self._hub.detach(self)
            raise
        super().__init__(memories=rows, total=total, profiles=profiles, **filters, **kwargs)
        self._go_live()

    @classmethod
    def shared(cls, lab: Lab | None = None, profile_id: str | None = None) -> MemoryBrowser:
        """The Lab's one browser, showing ``profile_id`` (or every profile)."""
        if lab is None:
            from stagent_lab.notebook import get_lab

            lab = get_lab()
        if profile_id:
            _check_profile(lab, profile_id)
        widget = super().shared(lab)
        widget.profile = profile_id or ""
        return widget

    # ---- state (hub thread) ------------------------------------------------------------

    @traitlets.observe("profile", "category", "status", "search")
    def _filter_changed(self, _change: Any) -> None:
        if getattr(self, "_ready", False):
            self._hub.poke(self)

    def _filters(self) -> dict[str, str]:
        return {
            "profile": self.profile,
            "category": self.category,
            "status": self.status,
            "search": self.search,
        }

    def update_state(self, events: list[dict[str, Any]], *, poked: bool, polled: bool) -> None:
        relevant = any(ev.get("event") in MEMORY_EVENTS for ev in events)
        if not (poked or polled or relevant):
            return
        rows, total, owners = self._hub.read(self._read_store, self._filters())
        profiles = self._profile_ids(owners)
        if rows != self.memories:
            self.memories = rows
        if total != self.total:
            self.total = total
        if profiles != self.profiles:
            self.profiles = profiles

    def _read_store(self, filters: dict[str, str]) -> tuple[list[dict[str, Any]], int, set[str]]:
        rows, total = read_memories(self.lab, limit=self._limit, **filters)
        return rows, total, _memory_owners(self.lab)

    def _profile_ids(self, owners: set[str]) -> list[str]:
        """Profiles to filter on or add to: the loaded ones plus any that still own memories
        (the registry stats profile folders, so this runs here rather than on the engine)."""
        return sorted(set(self.lab.profiles.ids()) | owners)

    # ---- the static copy ---------------------------------------------------------------

    def static_bundle(self) -> dict[str, str]:
        return static.memories(list(self.memories), int(self.total))

    def static_key(self) -> Any:
        return (self.total, tuple((m["id"], m["status"], m["effective"]) for m in self.memories))

    # ---- front-end actions (shell or subshell thread) ----------------------------------

    def handle_action(self, kind: str, content: dict[str, Any]) -> str:
        if kind == "add":
            return self.add(content)
        if kind == "edit":
            return self.edit(content)
        if kind == "reject":
            mid = self._memory_id(content)
            self.lab.memory.reject(mid)
            return f"rejected memory {mid}"
        if kind == "delete":
            mid = self._memory_id(content)
            self.lab.memory.delete(mid)
            return f"deleted memory {mid}"
        if kind == "refresh":
            return "refreshed"  # the outcome's poke re-reads the store
        raise ValueError(f"unknown action {kind!r}")

    def add(self, content: dict[str, Any]) -> str:
        profile = str(content.get("profile") or "").strip()
        if not profile:
            raise ValueError("choose a profile for the new memory")
        mid = self.lab.memory.add(
            profile,
            content.get("content") or "",
            str(content.get("category") or "fact"),
            _tags(content.get("tags")),
            confidence=_confidence(content.get("confidence")),
        )
        row = self.lab.memory.get(mid)
        if row["created_at"] != row["updated_at"]:
            return f"reinforced memory {mid}: near-identical content (now {row['confidence']})"
        return f"added memory {mid}"

    def edit(self, content: dict[str, Any]) -> str:
        mid = self._memory_id(content)
        changes: dict[str, Any] = {}
        if content.get("content") is not None:
            changes["content"] = content["content"]
        if content.get("category"):
            changes["category"] = str(content["category"])
        if content.get("tags") is not None:
            changes["tags"] = _tags(content["tags"])
        confidence = _confidence(content.get("confidence"))
        if confidence is not None:
            changes["confidence"] = confidence
        if not changes:
            raise ValueError("nothing to change")
        self.lab.memory.edit(mid, **changes)
        return f"saved memory {mid}"

    @staticmethod
    def _memory_id(content: dict[str, Any]) -> str:
        mid = str(content.get("id") or "").strip()
        if not mid:
            raise ValueError("no memory id given")
        return mid


__all__ = ["MemoryBrowser", "read_memories"]
