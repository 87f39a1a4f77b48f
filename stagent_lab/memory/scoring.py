"""The ranking formula lives beside the SQL that uses it: ``stagent_lab.store.memory_scoring``."""

from stagent_lab.store.memory_scoring import *  # noqa: F403
from stagent_lab.store.memory_scoring import __all__  # noqa: F401
