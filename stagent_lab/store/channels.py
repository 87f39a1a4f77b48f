"""Repository: ``channel_configs``, ``channel_deliveries`` (the outbox and the inbound record)
and ``channel_cursors`` (where each poller stopped reading).

Writes run inside the engine writer's transactions (``service.writer_flush``), so an inbound
message's effect, its row and the poller's cursor commit together.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.migrations import MigrationSet, register_set
from stagent_lab.store.rows import first_row

MIGRATIONS = register_set(MigrationSet("channels"))

CONFIG_COLUMNS = (
    "id, name, type, direction, status, status_reason, settings, secrets, events, filter, "
    "allowed_senders, approvers, allow_always, default_profile, default_project, "
    "default_runtime, last_ok_at, last_error, created_at, updated_at"
)
DELIVERY_COLUMNS = (
    "id, channel_id, direction, event, subject_type, subject_id, dedupe_key, status, attempts, "
    "next_attempt_at, last_error, http_status, external_id, thread_ref, sender_id, text, "
    "outcome, payload, held_at, request_sig, created_at, done_at"
)
_CONFIG_COLS = [c.strip() for c in CONFIG_COLUMNS.split(",")]
_DELIVERY_COLS = [c.strip() for c in DELIVERY_COLUMNS.split(",")]
OPEN_OUT = ("pending", "retrying", "held")
ACTIVE_TASK = ("queued", "running", "waiting")


@MIGRATIONS
def m001_channels(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE channel_configs (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL,
            type VARCHAR NOT NULL,
            direction VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            status_reason VARCHAR,
            settings VARCHAR NOT NULL,
            secrets VARCHAR NOT NULL,
            events VARCHAR NOT NULL,
            filter VARCHAR,
            allowed_senders VARCHAR NOT NULL,
            approvers VARCHAR,
            allow_always BOOLEAN NOT NULL DEFAULT false,
            default_profile VARCHAR,
            default_project VARCHAR,
            default_runtime VARCHAR,
            last_ok_at TIMESTAMP,
            last_error VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE channel_deliveries (
            id VARCHAR PRIMARY KEY,
            channel_id VARCHAR NOT NULL,
            direction VARCHAR NOT NULL,
            event VARCHAR NOT NULL,
            subject_type VARCHAR,
            subject_id VARCHAR,
            dedupe_key VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMP,
            last_error VARCHAR,
            http_status INTEGER,
            external_id VARCHAR,
            thread_ref VARCHAR,
            sender_id VARCHAR,
            text VARCHAR,
            outcome VARCHAR,
            payload VARCHAR,
            held_at TIMESTAMP,
            request_sig VARCHAR,
            created_at TIMESTAMP NOT NULL,
            done_at TIMESTAMP
        )"""
    )
    con.execute(
        "CREATE UNIQUE INDEX channel_deliveries_dedupe "
        "ON channel_deliveries (channel_id, dedupe_key)"
    )
    con.execute(
        """
        CREATE TABLE channel_cursors (
            channel_id VARCHAR NOT NULL,
            stream VARCHAR NOT NULL,
            cursor VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (channel_id, stream)
        )"""
    )


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def _one(cur: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    rows = _dicts(cur)
    return rows[0] if rows else None


# ---- configs -------------------------------------------------------------------------------


def all_configs(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _dicts(con.execute(f"SELECT {CONFIG_COLUMNS} FROM channel_configs ORDER BY name"))


def insert_config(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    marks = ", ".join("?" * len(_CONFIG_COLS))
    con.execute(
        f"INSERT INTO channel_configs ({CONFIG_COLUMNS}) VALUES ({marks})",
        [row.get(c) for c in _CONFIG_COLS],
    )


def update_config(con: duckdb.DuckDBPyConnection, channel_id: str, fields: dict[str, Any]) -> None:
    bad = set(fields) - set(_CONFIG_COLS)
    if bad:
        raise ValueError(f"unknown channel_configs columns: {sorted(bad)}")
    sets = ", ".join(f"{k} = ?" for k in fields)
    con.execute(f"UPDATE channel_configs SET {sets} WHERE id = ?", [*fields.values(), channel_id])


def delete_config(con: duckdb.DuckDBPyConnection, channel_id: str, now: datetime) -> None:
    """Remove a channel: its cursors go, its open deliveries become dead (history stays)."""
    con.execute("DELETE FROM channel_cursors WHERE channel_id = ?", [channel_id])
    con.execute(
        "UPDATE channel_deliveries SET status = 'dead', last_error = 'channel removed', "
        "done_at = ? WHERE channel_id = ? AND direction = 'out' "
        "AND status IN ('pending', 'retrying', 'held')",
        [now, channel_id],
    )
    con.execute("DELETE FROM channel_configs WHERE id = ?", [channel_id])


# ---- deliveries ----------------------------------------------------------------------------


def insert_delivery(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> bool:
    """Insert unless (channel, dedupe_key) exists; True when the row is new."""
    marks = ", ".join("?" * len(_DELIVERY_COLS))
    values = [_value(row.get(c)) for c in _DELIVERY_COLS]
    out = first_row(
        con.execute(
            f"INSERT INTO channel_deliveries ({DELIVERY_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT DO NOTHING",
            values,
        )
    )
    return bool(out and out[0])


def _value(v: Any) -> Any:
    return json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v


def get_delivery(con: duckdb.DuckDBPyConnection, delivery_id: str) -> dict[str, Any] | None:
    return _one(
        con.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM channel_deliveries WHERE id = ?", [delivery_id]
        )
    )


def delivery_ids_with_prefix(con: duckdb.DuckDBPyConnection, prefix: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM channel_deliveries WHERE starts_with(id, ?) LIMIT 3", [prefix]
        ).fetchall()
    ]


def update_delivery(
    con: duckdb.DuckDBPyConnection, delivery_id: str, fields: dict[str, Any]
) -> None:
    bad = set(fields) - set(_DELIVERY_COLS)
    if bad:
        raise ValueError(f"unknown channel_deliveries columns: {sorted(bad)}")
    sets = ", ".join(f"{k} = ?" for k in fields)
    con.execute(
        f"UPDATE channel_deliveries SET {sets} WHERE id = ?",
        [*(_value(v) for v in fields.values()), delivery_id],
    )


def by_key(con: duckdb.DuckDBPyConnection, channel_id: str, key: str) -> dict[str, Any] | None:
    return _one(
        con.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM channel_deliveries "
            "WHERE channel_id = ? AND dedupe_key = ?",
            [channel_id, key],
        )
    )


def by_signature(
    con: duckdb.DuckDBPyConnection, channel_id: str, signature: str
) -> dict[str, Any] | None:
    return _one(
        con.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM channel_deliveries "
            "WHERE channel_id = ? AND request_sig = ? LIMIT 1",
            [channel_id, signature],
        )
    )


def open_deliveries(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Outbound deliveries still to send (pending, retrying) or held, oldest first."""
    return _dicts(
        con.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM channel_deliveries WHERE direction = 'out' "
            "AND status IN ('pending', 'retrying', 'held') ORDER BY created_at, id"
        )
    )


def held_ids(con: duckdb.DuckDBPyConnection, channel_id: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT id FROM channel_deliveries WHERE channel_id = ? AND status = 'held' "
            "ORDER BY created_at, id",
            [channel_id],
        ).fetchall()
    ]


def deliveries_arrow(
    con: duckdb.DuckDBPyConnection,
    channel_id: str | None,
    direction: str | None,
    status: str | None,
    limit: int | None,
) -> Any:
    clauses, params = [], []
    for col, value in (("d.channel_id", channel_id), ("d.direction", direction)):
        if value:
            clauses.append(f"{col} = ?")
            params.append(value)
    if status:
        clauses.append("d.status = ?")
        params.append(status)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    cols = ", ".join(f"d.{c}" for c in _DELIVERY_COLS if c not in ("payload", "request_sig"))
    base = (
        f"SELECT {cols}, c.name AS channel FROM channel_deliveries d "
        f"LEFT JOIN channel_configs c ON c.id = d.channel_id {where}"
    )
    if limit:
        sql = (
            f"SELECT * FROM ({base} ORDER BY d.created_at DESC, d.id DESC LIMIT ?) "
            "ORDER BY created_at, id"
        )
        params.append(int(limit))
    else:
        sql = f"{base} ORDER BY d.created_at, d.id"
    return con.sql(sql, params=params).to_arrow_table()


def health(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, int]]:
    """Outbound delivery counts per channel and status."""
    out: dict[str, dict[str, int]] = {}
    for cid, status, n in con.execute(
        "SELECT channel_id, status, count(*) FROM channel_deliveries WHERE direction = 'out' "
        "GROUP BY ALL"
    ).fetchall():
        out.setdefault(cid, {})[status] = int(n)
    return out


# ---- routing reads -------------------------------------------------------------------------


def task_info(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    return _one(
        con.execute(
            "SELECT t.id, t.title, t.profile_id, t.runtime_id, t.model, t.status, t.result, "
            "t.failure_reason, t.turns, t.cost_usd, t.started_at, t.finished_at, t.source, "
            "t.origin_id, t.channels, t.resume_count, t.project_id, p.name AS project "
            "FROM tasks t LEFT JOIN projects p ON p.id = t.project_id WHERE t.id = ?",
            [task_id],
        )
    )


def item_code(con: duckdb.DuckDBPyConnection, item_id: str, minimum: int = 6) -> str:
    """The shortest prefix of ``item_id`` (at least ``minimum`` characters) no other inbox item
    starts with."""
    size = minimum
    while size < len(item_id):
        row = first_row(
            con.execute(
                "SELECT count(*) FROM inbox_items WHERE starts_with(id, ?)", [item_id[:size]]
            )
        )
        if row and int(row[0]) <= 1:
            break
        size += 1
    return item_id[:size]


def out_for_subject(
    con: duckdb.DuckDBPyConnection, event: str, subject_id: str, channel_id: str | None = None
) -> list[dict[str, Any]]:
    clause = " AND channel_id = ?" if channel_id else ""
    params = [event, subject_id] + ([channel_id] if channel_id else [])
    return _dicts(
        con.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM channel_deliveries WHERE direction = 'out' "
            f"AND event = ? AND subject_id = ?{clause} ORDER BY created_at",
            params,
        )
    )


def unresolved_items(
    con: duckdb.DuckDBPyConnection, task_id: str | None = None
) -> list[tuple[str, str]]:
    """(channel id, item id) of delivered items that expired and got no inbox.resolved."""
    clause = " AND i.task_id = ?" if task_id else ""
    return [
        (r[0], r[1])
        for r in con.execute(
            "SELECT d.channel_id, d.subject_id FROM channel_deliveries d "
            "JOIN inbox_items i ON i.id = d.subject_id "
            "WHERE d.direction = 'out' AND d.event = 'inbox.pending' AND i.status = 'expired' "
            f"{clause} AND NOT EXISTS (SELECT 1 FROM channel_deliveries r "
            "WHERE r.channel_id = d.channel_id AND r.event = 'inbox.resolved' "
            "AND r.subject_id = d.subject_id)",
            [task_id] if task_id else [],
        ).fetchall()
    ]


# ---- inbound reads -------------------------------------------------------------------------


def out_by_external(
    con: duckdb.DuckDBPyConnection, channel_id: str, external_id: str
) -> dict[str, Any] | None:
    return _one(
        con.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM channel_deliveries WHERE channel_id = ? "
            "AND direction = 'out' AND external_id = ? AND status = 'sent' LIMIT 1",
            [channel_id, external_id],
        )
    )


def in_by_external(
    con: duckdb.DuckDBPyConnection, channel_id: str, external_id: str
) -> dict[str, Any] | None:
    return _one(
        con.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM channel_deliveries WHERE channel_id = ? "
            "AND direction = 'in' AND external_id = ? ORDER BY created_at LIMIT 1",
            [channel_id, external_id],
        )
    )


def delivered_items(con: duckdb.DuckDBPyConnection, channel_id: str, prefix: str) -> list[str]:
    """Ids of inbox items starting with ``prefix`` that were delivered to this channel."""
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT subject_id FROM channel_deliveries WHERE channel_id = ? "
            "AND direction = 'out' AND event = 'inbox.pending' AND status = 'sent' "
            "AND starts_with(subject_id, ?) LIMIT 3",
            [channel_id, prefix],
        ).fetchall()
    ]


def pending_items_of_task(
    con: duckdb.DuckDBPyConnection, channel_id: str, task_id: str
) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT d.subject_id FROM channel_deliveries d "
            "JOIN inbox_items i ON i.id = d.subject_id WHERE d.channel_id = ? "
            "AND d.direction = 'out' AND d.event = 'inbox.pending' AND d.status = 'sent' "
            "AND i.status = 'pending' AND i.task_id = ?",
            [channel_id, task_id],
        ).fetchall()
    ]


def tasks_started_since(
    con: duckdb.DuckDBPyConnection, channel_id: str, sender: str, since: datetime
) -> int:
    row = first_row(
        con.execute(
            "SELECT count(*) FROM channel_deliveries WHERE channel_id = ? AND direction = 'in' "
            "AND sender_id = ? AND created_at >= ? AND json_extract_string(outcome, '$.task_id') "
            "IS NOT NULL",
            [channel_id, sender, since],
        )
    )
    return int(row[0]) if row else 0


def watched_threads(con: duckdb.DuckDBPyConnection, channel_id: str, limit: int) -> list[str]:
    """Slack thread roots to read: our messages for pending inbox items, and the threads of
    live tasks started from this channel; newest first, at most ``limit``."""
    rows = con.execute(
        "SELECT root, max(created_at) AS newest FROM ("
        "  SELECT coalesce(d.thread_ref, d.external_id) AS root, d.created_at "
        "  FROM channel_deliveries d JOIN inbox_items i ON i.id = d.subject_id "
        "  WHERE d.channel_id = ? AND d.direction = 'out' AND d.event = 'inbox.pending' "
        "  AND d.status = 'sent' AND i.status = 'pending' "
        "  UNION ALL "
        "  SELECT d.thread_ref AS root, d.created_at FROM channel_deliveries d "
        "  JOIN tasks t ON t.id = json_extract_string(d.outcome, '$.task_id') "
        "  WHERE d.channel_id = ? AND d.direction = 'in' AND t.status IN ('queued', 'running', "
        "  'waiting')"
        ") WHERE root IS NOT NULL GROUP BY root ORDER BY newest DESC LIMIT ?",
        [channel_id, channel_id, limit],
    ).fetchall()
    return [r[0] for r in rows]


def notice_since(con: duckdb.DuckDBPyConnection, channel_id: str, since: datetime) -> bool:
    """True when a notice about this channel was created since ``since``."""
    row = first_row(
        con.execute(
            "SELECT count(*) FROM inbox_items WHERE kind = 'notice' AND subject = 'channel' "
            "AND subject_id = ? AND created_at >= ?",
            [channel_id, since],
        )
    )
    return bool(row and row[0])


# ---- cursors -------------------------------------------------------------------------------


def get_cursor(con: duckdb.DuckDBPyConnection, channel_id: str, stream: str) -> str | None:
    row = first_row(
        con.execute(
            "SELECT cursor FROM channel_cursors WHERE channel_id = ? AND stream = ?",
            [channel_id, stream],
        )
    )
    return row[0] if row else None


def set_cursor(
    con: duckdb.DuckDBPyConnection, channel_id: str, stream: str, cursor: str, now: datetime
) -> None:
    con.execute(
        "INSERT OR REPLACE INTO channel_cursors VALUES (?, ?, ?, ?)",
        [channel_id, stream, cursor, now],
    )


def cursors(con: duckdb.DuckDBPyConnection, channel_id: str) -> dict[str, str]:
    return dict(
        con.execute(
            "SELECT stream, cursor FROM channel_cursors WHERE channel_id = ?", [channel_id]
        ).fetchall()
    )
