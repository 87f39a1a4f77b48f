"""Episodic memory: what a profile learned in earlier tasks, fed into its next runs.

* ``stagent_lab.store.memory.MemoryStore`` — every read/write of ``agent_memory`` (decay,
  dedupe, retrieval in SQL); ``scoring`` — the ranking formula
* ``tool.MemoryTool`` — the governed ``Memory`` tool (remember / recall)
* ``feature.MemoryFeature`` — the engine hooks (instructions, tool service, outcome on finish)
  and the requests behind ``lab.memory``
* ``stagent_lab.client.memory.MemoryClient`` — ``lab.memory``: list, add, edit, reject, …

See docs/memory.md.
"""

from __future__ import annotations

from stagent_lab.store.memory import MemoryStore, Remembered
from stagent_lab.store.memory_scoring import (
    ARCHIVED_BELOW,
    CATEGORIES,
    DECAYED_BELOW,
    STATUSES,
    WEIGHTS,
    effective_confidence,
    query_terms,
)

__all__ = [
    "ARCHIVED_BELOW",
    "CATEGORIES",
    "DECAYED_BELOW",
    "STATUSES",
    "WEIGHTS",
    "MemoryStore",
    "Remembered",
    "effective_confidence",
    "query_terms",
]
