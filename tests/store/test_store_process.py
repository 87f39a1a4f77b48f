"""Store: migrations, the one-writer lock across processes, orphan reconciliation, batching."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import duckdb
import pytest

from stagent_lab import Lab, WorkspaceLockedError
from stagent_lab.api.requests import Ping
from stagent_lab.store import migrations as mig
from stagent_lab.store.db import Store

CORE_TABLES = {
    "schema_migrations",
    "projects",
    "tasks",
    "agent_logs",
    "inbox_items",
    "permission_rules",
    "usage_ledger",
    "settings",
    "task_transcripts",
    "profile_test_runs",
}


def _tables(con) -> set[str]:
    return {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }


def test_blank_store_gets_every_migration(tmp_path):
    store = Store(tmp_path)
    try:
        assert store.applied_migrations == [name for name, _ in mig.all_steps()]
        assert "memory.m001_agent_memory" in store.applied_migrations
        assert _tables(store.con) >= CORE_TABLES | {"agent_memory", "agent_messages"}
        assert mig.pending(store.con) == []
    finally:
        store.close()


def test_upgrade_applies_only_new_migrations_and_keeps_data(tmp_path):
    store = Store(tmp_path)
    store.con.execute("INSERT INTO settings VALUES ('k', 'v')")
    store.close()
    notes = mig.MigrationSet("notes")

    @notes
    def m001_add_notes(con):
        con.execute("CREATE TABLE notes (id INTEGER)")

    store = Store(tmp_path, migration_sets=[*mig.registered_sets(), notes])
    try:
        assert store.applied_migrations == ["notes.m001_add_notes"]
        assert "notes" in _tables(store.con)
        assert store.query_rows("SELECT value FROM settings WHERE key='k'") == [("v",)]
    finally:
        store.close()


def test_failed_migration_rolls_back(tmp_path):
    broken = mig.MigrationSet("broken")

    @broken
    def m001_broken(con):
        con.execute("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Store(tmp_path, migration_sets=[*mig.registered_sets(), broken])
    con = duckdb.connect(str(tmp_path / "stagent.duckdb"))
    assert "half" not in _tables(con)
    names = [r[0] for r in con.execute("SELECT name FROM schema_migrations").fetchall()]
    assert "broken.m001_broken" not in names and "m001_core" in names
    con.close()


def test_migration_names_are_unique_per_set_and_sets_unique_by_name():
    mset = mig.MigrationSet("dupes")

    @mset
    def m001_a(con):
        pass

    def m001_a_again(con):
        pass

    m001_a_again.__name__ = "m001_a"
    with pytest.raises(ValueError, match="already has a step named 'm001_a'"):
        mset(m001_a_again)
    with pytest.raises(ValueError, match="already registered"):
        mig.register_set(mig.MigrationSet("memory"))


def test_applied_is_read_only(tmp_path):
    con = duckdb.connect(str(tmp_path / "blank.duckdb"))
    assert mig.applied(con) == []
    assert "schema_migrations" not in _tables(con)  # reading created nothing
    con.close()


def test_workspace_from_before_feature_sets_upgrades_in_place(tmp_path):
    # An old workspace recorded core m001 and m002 (which made the memory and handoff
    # tables); opening it runs only the new steps and keeps every row.
    con = duckdb.connect(str(tmp_path / "stagent.duckdb"))
    mig.m001_core(con)
    con.execute("CREATE TABLE schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    con.execute(
        "CREATE TABLE agent_memory (id VARCHAR PRIMARY KEY, profile_id VARCHAR NOT NULL, "
        "project_id VARCHAR, category VARCHAR NOT NULL, content VARCHAR NOT NULL, "
        "confidence INTEGER NOT NULL DEFAULT 700, source_task_id VARCHAR, tags VARCHAR, "
        "last_accessed_at TIMESTAMP, access_count INTEGER NOT NULL DEFAULT 0, "
        "decay_rate INTEGER NOT NULL DEFAULT 10, status VARCHAR NOT NULL DEFAULT 'active', "
        "created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL)"
    )
    con.execute(
        "INSERT INTO agent_memory (id, profile_id, category, content, created_at, "
        "updated_at) VALUES ('m1', 'general', 'fact', 'kept', now(), now())"
    )
    con.execute(
        "INSERT INTO schema_migrations VALUES ('m001_core', now()), "
        "('m002_memory_and_handoffs', now())"
    )
    con.close()
    store = Store(tmp_path)
    try:
        assert "m001_core" not in store.applied_migrations
        assert "m003_subjects_and_origins" in store.applied_migrations
        assert store.query_rows("SELECT content FROM agent_memory") == [("kept",)]
        assert "agent_messages" in _tables(store.con)
    finally:
        store.close()


HOLDER = textwrap.dedent(
    """
    import sys, time
    from stagent_lab import Lab
    lab = Lab(home=sys.argv[1], profile_dirs=[sys.argv[2]])
    h = lab.submit("hold", profile="tester", project=sys.argv[3],
                   script=[{"say": "working"}, {"sleep": 600}, {"say": "never"}])
    h.wait_for("running", timeout=60)
    while lab.logs(task=h.id, event="assistant_text").empty:
        time.sleep(0.05)
    print(h.id, flush=True)
    time.sleep(600)
    """
)


def _start_holder(tmp_path, profiles_dir, project):
    home = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home), str(profiles_dir), str(project)],
        stdout=subprocess.PIPE,
        text=True,
    )
    task_id = proc.stdout.readline().strip()
    assert task_id, "holder process did not start"
    return proc, home, task_id


def test_second_process_gets_pid_error_then_orphans_reconciled_after_sigkill(
    tmp_path, profiles_dir, project
):
    proc, home, task_id = _start_holder(tmp_path, profiles_dir, project)
    try:
        with pytest.raises(WorkspaceLockedError) as info:
            Lab(home=home, profile_dirs=[profiles_dir])
        assert info.value.pid == proc.pid
        assert f"in use by process {proc.pid}" in str(info.value)
        assert f"kill {proc.pid}" in str(info.value)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        assert lab.call(Ping())["reconciled"] == [task_id]
        h = lab.task(task_id)
        assert h.status == "failed" and h.failure_reason == "engine stopped"
        last = lab.logs(task=task_id, event="status").iloc[-1]["payload"]
        assert last == {"from": "running", "to": "failed", "reason": "engine stopped"}
        # What was flushed before the kill is there, and the task stays resumable: the list
        # script was stored with the task, so a new process can replay and continue it.
        assert "working" in [
            p["text"] for p in h.logs().query("event=='assistant_text'")["payload"]
        ]
        h.resume()
        h.wait_for("running", timeout=60)
        h.cancel().wait(timeout=60)
        assert h.status == "cancelled"


def test_events_are_written_in_batches_not_row_by_row(lab, project):
    steps = [{"say": f"line {i}"} for i in range(400)]
    h = lab.submit("chatty", profile="tester", project=project, max_turns=500, script=steps)
    h.wait(timeout=60)
    assert h.status == "completed"
    w = lab.call(Ping())["writer"]
    n_rows = len(h.logs()) + len(h.usage())
    assert n_rows > 800
    assert w["rows_written"] >= n_rows
    assert w["batches_written"] * 10 < w["rows_written"]  # ≥10 rows per append on average


def test_secrets_never_reach_the_store(tmp_path, profiles_dir, project, monkeypatch):
    secret = "sk-ant-test-" + "9f8e7d6c5b4a" * 3
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    home = tmp_path / "ws-secret"
    with Lab(home=home, profile_dirs=[profiles_dir]) as lab:
        h = lab.submit(
            "x",
            profile="tester",
            project=project,
            script=[
                {"tool": "Bash", "input": {"command": f"echo {secret}; env | grep -c KEY || true"}},
                {"say": f"the key is {secret}"},
            ],
        )
        h.wait(timeout=60)
        texts = json.dumps(h.logs()["payload"].tolist())
        assert "[redacted:ANTHROPIC_API_KEY]" in texts
        with pytest.raises(Exception, match="refusing to store"):
            lab.set_setting("anthropic.api_key", secret)
    data = (home / "stagent.duckdb").read_bytes()
    wal = home / "stagent.duckdb.wal"
    if wal.exists():
        data += wal.read_bytes()
    assert secret.encode() not in data
