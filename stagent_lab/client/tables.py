"""Arrow answers as pandas DataFrames (imported when a tabular answer arrives)."""

from __future__ import annotations

import json
from typing import Any


def frame(table: Any) -> Any:
    """A pyarrow Table (or something already a DataFrame) as a pandas DataFrame."""
    import pandas as pd

    if isinstance(table, pd.DataFrame):
        return table
    return table.to_pandas(date_as_object=False)


def parse_payloads(df: Any) -> Any:
    """``agent_logs`` rows with their JSON ``payload`` parsed into dicts."""
    if "payload" in df.columns:
        df["payload"] = df["payload"].map(lambda v: json.loads(v) if isinstance(v, str) else v)
    return df
