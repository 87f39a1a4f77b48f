"""docs/data-model.md names every table a workspace has (with every default feature)."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-model.md"


def test_every_table_of_a_workspace_is_in_the_data_model_page(lab):
    tables = set(
        lab.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'")[
            "table_name"
        ]
    )
    assert {"tasks", "agent_logs", "workflow_runs", "channel_deliveries", "chat_sessions"} <= tables
    documented = set(re.findall(r"`([a-z_]+)`", DOC.read_text()))
    assert sorted(tables - documented) == []
