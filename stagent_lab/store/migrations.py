"""Named, append-only migrations, applied in order on open.

Each migration is a function registered with ``@migration``; its name is recorded in
``schema_migrations`` once applied. Never edit or reorder a released migration: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def applied(con: duckdb.DuckDBPyConnection) -> list[str]:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
    )
    return [r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()]


def pending(con: duckdb.DuckDBPyConnection) -> list[str]:
    done = set(applied(con))
    return [name for name, _ in MIGRATIONS if name not in done]


def apply_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every pending migration, each in its own transaction. Returns the names applied."""
    done = set(applied(con))
    ran = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?)",
                [name, datetime.now(UTC).replace(tzinfo=None)],
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        ran.append(name)
    return ran


@migration
def m001_core(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE projects (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            working_directory VARCHAR NOT NULL,
            instructions VARCHAR,
            status VARCHAR NOT NULL DEFAULT 'active',
            created_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE tasks (
            id VARCHAR PRIMARY KEY,
            project_id VARCHAR,
            title VARCHAR NOT NULL,
            prompt VARCHAR NOT NULL,
            profile_id VARCHAR NOT NULL,
            runtime_id VARCHAR NOT NULL,
            model VARCHAR,
            status VARCHAR NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            result VARCHAR,
            failure_reason VARCHAR,
            session_id VARCHAR,
            resume_count INTEGER NOT NULL DEFAULT 0,
            max_turns INTEGER,
            max_budget_usd DOUBLE,
            parent_task_id VARCHAR,
            source VARCHAR NOT NULL DEFAULT 'manual',
            options VARCHAR,
            turns INTEGER NOT NULL DEFAULT 0,
            cost_usd DOUBLE NOT NULL DEFAULT 0,
            created_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            finished_at TIMESTAMP
        )"""
    )
    con.execute(
        """
        CREATE TABLE agent_logs (
            id BIGINT PRIMARY KEY,
            task_id VARCHAR NOT NULL,
            seq INTEGER NOT NULL,
            ts TIMESTAMP NOT NULL,
            runtime_id VARCHAR,
            event VARCHAR NOT NULL,
            tool_name VARCHAR,
            payload VARCHAR
        )"""
    )
    con.execute("CREATE INDEX agent_logs_task ON agent_logs (task_id, seq)")
    con.execute(
        """
        CREATE TABLE inbox_items (
            id VARCHAR PRIMARY KEY,
            task_id VARCHAR,
            kind VARCHAR NOT NULL,
            tool_name VARCHAR,
            tool_input VARCHAR,
            question VARCHAR,
            suggested_rule VARCHAR,
            status VARCHAR NOT NULL DEFAULT 'pending',
            decision VARCHAR,
            response VARCHAR,
            decided_by VARCHAR,
            created_at TIMESTAMP NOT NULL,
            decided_at TIMESTAMP
        )"""
    )
    con.execute(
        """
        CREATE TABLE permission_rules (
            id VARCHAR PRIMARY KEY,
            rule VARCHAR NOT NULL,
            effect VARCHAR NOT NULL,
            scope VARCHAR NOT NULL DEFAULT 'global',
            scope_id VARCHAR,
            created_from VARCHAR,
            created_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE usage_ledger (
            id VARCHAR PRIMARY KEY,
            task_id VARCHAR,
            project_id VARCHAR,
            profile_id VARCHAR,
            activity VARCHAR NOT NULL,
            runtime_id VARCHAR,
            provider VARCHAR,
            model VARCHAR,
            input_tokens BIGINT NOT NULL DEFAULT 0,
            output_tokens BIGINT NOT NULL DEFAULT 0,
            cache_read_tokens BIGINT NOT NULL DEFAULT 0,
            cache_write_tokens BIGINT NOT NULL DEFAULT 0,
            reasoning_tokens BIGINT NOT NULL DEFAULT 0,
            cost_usd DOUBLE,
            pricing_source VARCHAR NOT NULL,
            estimated BOOLEAN NOT NULL DEFAULT false,
            status VARCHAR NOT NULL,
            started_at TIMESTAMP,
            finished_at TIMESTAMP
        )"""
    )
    con.execute("CREATE TABLE settings (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(
        """
        CREATE TABLE task_transcripts (
            task_id VARCHAR PRIMARY KEY,
            data VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute(
        """
        CREATE TABLE profile_test_runs (
            id VARCHAR PRIMARY KEY,
            profile_id VARCHAR NOT NULL,
            runtime_id VARCHAR NOT NULL,
            test_index INTEGER NOT NULL,
            task VARCHAR NOT NULL,
            task_id VARCHAR,
            expected_keywords VARCHAR,
            missing_keywords VARCHAR,
            passed BOOLEAN NOT NULL,
            created_at TIMESTAMP NOT NULL
        )"""
    )


@migration
def m002_memory_and_handoffs(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE agent_memory (
            id VARCHAR PRIMARY KEY,
            profile_id VARCHAR NOT NULL,
            project_id VARCHAR,
            category VARCHAR NOT NULL,
            content VARCHAR NOT NULL,
            confidence INTEGER NOT NULL DEFAULT 700,
            source_task_id VARCHAR,
            tags VARCHAR,
            last_accessed_at TIMESTAMP,
            access_count INTEGER NOT NULL DEFAULT 0,
            decay_rate INTEGER NOT NULL DEFAULT 10,
            status VARCHAR NOT NULL DEFAULT 'active',
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
    con.execute("CREATE INDEX agent_memory_profile ON agent_memory (profile_id, status)")
    con.execute(
        """
        CREATE TABLE agent_messages (
            id VARCHAR PRIMARY KEY,
            from_profile_id VARCHAR NOT NULL,
            to_profile_id VARCHAR NOT NULL,
            source_task_id VARCHAR,
            target_task_id VARCHAR,
            subject VARCHAR NOT NULL,
            body VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            requires_approval BOOLEAN NOT NULL DEFAULT false,
            inbox_item_id VARCHAR,
            parent_message_id VARCHAR,
            chain_depth INTEGER NOT NULL DEFAULT 0,
            reason VARCHAR,
            expires_at TIMESTAMP,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )"""
    )
