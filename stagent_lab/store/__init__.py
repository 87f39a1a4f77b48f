"""DuckDB storage: one file per workspace, one writer (the engine), many readers.

Every SQL statement of the package lives in this folder: the connection and lock (``db``),
named migrations per feature (``migrations``), the batched writer (``writer``), and one
repository module per aggregate (tasks, logs, inbox, rules, projects, settings, memory,
handoffs, views for the notebook, analytics, read-only SQL for clients).
"""

from stagent_lab.store import budgets as _budgets  # noqa: F401  (registers its migrations)
from stagent_lab.store import channels as _channels  # noqa: F401  (registers its migrations)
from stagent_lab.store import chat as _chat  # noqa: F401  (registers its migrations)
from stagent_lab.store import handoffs as _handoffs  # noqa: F401  (registers its migrations)
from stagent_lab.store import memory as _memory  # noqa: F401  (registers its migrations)
from stagent_lab.store import schedules as _schedules  # noqa: F401  (registers its migrations)
from stagent_lab.store import workflows as _workflows  # noqa: F401  (registers its migrations)
from stagent_lab.store.db import Store
from stagent_lab.store.migrations import CORE, MigrationSet, register_set
from stagent_lab.store.writer import EventWriter

__all__ = ["CORE", "EventWriter", "MigrationSet", "Store", "register_set"]
