"""DuckDB storage: one file per workspace, one writer (the engine), many readers."""

from stagent_lab.store.db import Store
from stagent_lab.store.migrations import MIGRATIONS, migration
from stagent_lab.store.writer import EventWriter

__all__ = ["MIGRATIONS", "EventWriter", "Store", "migration"]
