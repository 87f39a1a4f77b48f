"""Episodic memory: what a profile learned in earlier tasks, fed into its next runs.

* ``store.MemoryStore`` — every read/write of ``agent_memory`` (decay, dedupe, retrieval in SQL)
* ``scoring`` — the ranking formula and its row-at-a-time reference
* ``tool.MemoryTool`` — the governed ``Memory`` tool (remember / recall)
* ``wiring.attach(lab)`` — the engine hooks (instructions, tool service, outcome on finish)
* ``api.LabMemory`` — ``lab.memory``: list, add, edit, reject, delete, recall, preview

See docs/memory.md.
"""

from __future__ import annotations

from stagent_lab.memory.api import LabMemory
from stagent_lab.memory.scoring import (
    ARCHIVED_BELOW,
    CATEGORIES,
    DECAYED_BELOW,
    STATUSES,
    WEIGHTS,
    effective_confidence,
    query_terms,
)
from stagent_lab.memory.store import MemoryStore, Remembered
from stagent_lab.memory.tool import MemoryTool
from stagent_lab.memory.wiring import attach

__all__ = [
    "ARCHIVED_BELOW",
    "CATEGORIES",
    "DECAYED_BELOW",
    "STATUSES",
    "WEIGHTS",
    "LabMemory",
    "MemoryStore",
    "MemoryTool",
    "Remembered",
    "attach",
    "effective_confidence",
    "query_terms",
]
