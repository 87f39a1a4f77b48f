"""Where a workspace lives, and the settings kept in it.

The workspace is a folder holding ``stagent.duckdb`` (every table), ``stagent.lock`` (the PID of
the process that owns it) and default project folders. Resolution order: ``Lab(home=...)``, the
``STAGENT_HOME`` environment variable, then the platform's user data dir.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

DB_FILENAME = "stagent.duckdb"
LOCK_FILENAME = "stagent.lock"

# Settings keys that look like secrets are refused: keys belong in the environment, named by
# reference (e.g. setting "anthropic.api_key_env" = "MY_ANTHROPIC_KEY"), never stored raw.
_SECRET_KEY_RE = re.compile(r"(api[_-]?key|token|secret|password|credential)$", re.IGNORECASE)


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    if home is not None:
        path = Path(home)
    elif os.environ.get("STAGENT_HOME"):
        path = Path(os.environ["STAGENT_HOME"])
    else:
        path = Path(platformdirs.user_data_dir("stagent-lab", appauthor=False))
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_secret_setting(key: str) -> bool:
    return bool(_SECRET_KEY_RE.search(key))


# Defaults an operator may change with lab.settings[...] (stored in the `settings` table).
DEFAULT_SETTINGS: dict[str, str] = {
    "engine.max_concurrent": "4",
    "engine.max_resumes": "3",
    "tools.bash_timeout_s": "120",
    "tools.output_cap_chars": "30000",
    "inbox.default_always_scope": "profile",
    "memory.enabled": "true",
    "memory.top_k": "8",
    "memory.max_chars": "2000",
    "memory.outcomes": "true",
    "handoffs.max_chain_depth": "5",
    "handoffs.ttl_hours": "72",
    "handoffs.require_approval": "false",
}
