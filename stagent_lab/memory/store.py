"""``MemoryStore`` lives with the other repositories in ``stagent_lab.store.memory``."""

from stagent_lab.store.memory import EFFECTIVE_SQL, MAX_CONTENT_CHARS, MemoryStore, Remembered

__all__ = ["EFFECTIVE_SQL", "MAX_CONTENT_CHARS", "MemoryStore", "Remembered"]
