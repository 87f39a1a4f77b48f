"""Named, append-only migrations, one set per feature, applied in order on open.

Each feature (core, memory, handoffs, workflows, …) owns a :class:`MigrationSet`; its steps are
functions registered with ``@the_set`` and recorded in ``schema_migrations`` once applied, as
``<set>.<step>`` (the core set keeps its historical bare names, so workspaces created before
sets existed upgrade in place). Never edit or reorder a released step: add a new one. A set
refuses a second step with the same name, and the registry refuses a second set with the same
name, so two features cannot silently shadow each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import duckdb

from stagent_lab.store.rows import first_row

Migration = Callable[[duckdb.DuckDBPyConnection], None]


class MigrationSet:
    def __init__(self, name: str) -> None:
        if not name or not name.replace("_", "").isalnum():
            raise ValueError(f"migration set names are identifiers, got {name!r}")
        self.name = name
        self.steps: list[tuple[str, Migration]] = []

    def __call__(self, fn: Migration) -> Migration:
        step = fn.__name__
        if any(s == step for s, _ in self.steps):
            raise ValueError(f"migration set {self.name!r} already has a step named {step!r}")
        self.steps.append((step, fn))
        return fn

    def qualified(self, step: str) -> str:
        return step if self.name == "core" else f"{self.name}.{step}"

    def names(self) -> list[str]:
        return [self.qualified(s) for s, _ in self.steps]

    def __repr__(self) -> str:
        return f"<MigrationSet {self.name} ({len(self.steps)} steps)>"


CORE = MigrationSet("core")
_SETS: dict[str, MigrationSet] = {}


def register_set(mset: MigrationSet) -> MigrationSet:
    """Add a feature's set to the registry every Store applies (duplicate names refused)."""
    current = _SETS.get(mset.name)
    if current is not None and current is not mset:
        raise ValueError(f"a migration set named {mset.name!r} is already registered")
    _SETS[mset.name] = mset
    return mset


def registered_sets() -> list[MigrationSet]:
    """Every registered set, core first (other features may reference core tables)."""
    return [_SETS["core"], *(s for n, s in _SETS.items() if n != "core")]


register_set(CORE)


def applied(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of applied migrations, in the order they ran. Read-only: creates nothing."""
    exists = first_row(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        )
    )
    if not exists or not exists[0]:
        return []
    return [
        r[0]
        for r in con.execute(
            "SELECT name FROM schema_migrations ORDER BY applied_at, name"
        ).fetchall()
    ]


def all_steps(sets: Iterable[MigrationSet] | None = None) -> list[tuple[str, Migration]]:
    return [
        (mset.qualified(step), fn)
        for mset in (registered_sets() if sets is None else sets)
        for step, fn in mset.steps
    ]


def pending(
    con: duckdb.DuckDBPyConnection, sets: Iterable[MigrationSet] | None = None
) -> list[str]:
    done = set(applied(con))
    return [name for name, _ in all_steps(sets) if name not in done]


def apply_migrations(
    con: duckdb.DuckDBPyConnection, sets: Iterable[MigrationSet] | None = None
) -> list[str]:
    """Apply every pending step, each in its own transaction. Returns the names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
    )
    done = set(applied(con))
    ran = []
    for name, fn in all_steps(sets):
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


# ---- core ---------------------------------------------------------------------------------


@CORE
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


@CORE
def m003_subjects_and_origins(con: duckdb.DuckDBPyConnection) -> None:
    """Events and inbox items about things other than tasks (workflow runs, schedules,
    budgets, channels), and where a task came from (the row that created it)."""
    con.execute("ALTER TABLE agent_logs ADD COLUMN subject VARCHAR DEFAULT 'task'")
    con.execute("ALTER TABLE tasks ADD COLUMN origin_id VARCHAR")
    con.execute("ALTER TABLE tasks ADD COLUMN activity VARCHAR DEFAULT 'task_run'")
    con.execute("ALTER TABLE tasks ADD COLUMN unattended BOOLEAN DEFAULT false")
    con.execute("ALTER TABLE tasks ADD COLUMN channels VARCHAR")  # JSON list: bound channels
    con.execute("ALTER TABLE inbox_items ADD COLUMN subject VARCHAR DEFAULT 'task'")
    con.execute("ALTER TABLE inbox_items ADD COLUMN subject_id VARCHAR")
    con.execute("ALTER TABLE inbox_items ADD COLUMN body VARCHAR")
