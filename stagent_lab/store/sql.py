"""Read-only SQL for clients (``lab.sql``): the workspace is queried, never changed, this way.

DuckDB parses the text first; only statements that read (SELECT and its forms: WITH, FROM,
DESCRIBE, SHOW, SUMMARIZE; EXPLAIN; read-only PRAGMAs) run. Anything else is refused with the
statement type named, because every write must go through the engine's writer, in order.
"""

from __future__ import annotations

from typing import Any

import duckdb

from stagent_lab.errors import InvalidInput

_READ_PRAGMAS = ("version", "table_info", "show_tables", "database_size", "storage_info", "show")


BATCH_ROWS = 122_880  # rows per Arrow batch of a streamed answer (DuckDB's row group size)


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise InvalidInput unless every statement of ``query`` only reads."""
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as exc:
        raise InvalidInput(f"SQL does not parse: {exc}") from None
    if not statements:
        raise InvalidInput("SQL is empty")
    for st in statements:
        kind = st.type
        if kind in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
            continue
        if kind == duckdb.StatementType.PRAGMA:
            name = st.query.strip().split()[1].split("(")[0].lower() if st.query.split() else ""
            if name in _READ_PRAGMAS:
                continue
        raise InvalidInput(
            f"lab.sql runs read-only queries; a {kind.name} statement is not allowed "
            "(the workspace changes only through the engine: use the Lab API)"
        )


def read_only_sql(
    con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | dict[str, Any] | None
) -> Any:
    """The answer as one pyarrow Table."""
    check_read_only(con, query)
    return con.sql(query, params=params or None).to_arrow_table()


def read_only_batches(
    con: duckdb.DuckDBPyConnection,
    query: str,
    params: list[Any] | dict[str, Any] | None,
    rows: int = BATCH_ROWS,
) -> Any:
    """The answer as a pyarrow RecordBatchReader that DuckDB fills while it is read, so the
    first rows can travel while the last are computed. ``con`` must stay open, and used by
    nobody else, until the reader is done."""
    check_read_only(con, query)
    return con.sql(query, params=params or None).to_arrow_reader(rows)
