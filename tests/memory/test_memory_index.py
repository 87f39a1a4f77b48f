"""The ranking index and bulk memory writes: kept current by every write, same answers as
writing one by one, and built for memories stored before it existed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import duckdb
import pytest

from stagent_lab.memory.store import MemoryStore
from stagent_lab.store import memory_index as index
from stagent_lab.store.migrations import apply_migrations

T0 = datetime(2025, 3, 1, 9, 0)


@pytest.fixture
def con():
    c = duckdb.connect()
    apply_migrations(c)
    yield c
    c.close()


def indexed(con, memory_id: str) -> set[int]:
    return {
        r[0]
        for r in con.execute(
            "SELECT wid FROM agent_memory_words WHERE memory_id = ?", [memory_id]
        ).fetchall()
    }


def hashes(con, *ws: str) -> set[int]:
    return {con.execute("SELECT hash(?)", [w]).fetchall()[0][0] for w in ws}


def test_words_are_indexed_on_add_edit_and_dropped_on_delete(con):
    mem = MemoryStore(con, clock=lambda: T0)
    m = mem.add("p", "The invoices of ACME go to Dana.")
    # stop words ("the", "of", "to") and single letters are not indexed
    assert indexed(con, m.id) == hashes(con, "acme", "dana", "go", "invoices")
    mem.edit(m.id, content="Refunds of ACME need approval.")
    assert indexed(con, m.id) == hashes(con, "acme", "approval", "need", "refunds")
    assert mem.retrieve("p", "refund").iloc[0]["relevance"] == pytest.approx(1.0)
    assert mem.retrieve("p", "invoice").iloc[0]["relevance"] == 0.0
    mem.delete(m.id)
    assert indexed(con, m.id) == set()


def test_derived_decay_columns_follow_every_write(con):
    clock = [T0]
    mem = MemoryStore(con, clock=lambda: clock[0])
    m = mem.add("p", "Backups run nightly.", confidence=700, decay_rate=10)

    def derived():
        return con.execute(
            "SELECT decay_ln, anchor_day, fade_day FROM agent_memory WHERE id = ?", [m.id]
        ).fetchall()[0]

    _, anchor, fade = derived()
    assert anchor == pytest.approx(index.day_number(T0))
    # 700 * 0.99^d falls to 300 after ln(3/7)/ln(0.99) days
    assert fade - anchor == pytest.approx(84.30, abs=0.01)
    clock[0] = T0 + timedelta(days=10)
    mem.touch([m.id])  # folds 10 days of decay in and restarts the clock
    _, anchor2, fade2 = derived()
    assert anchor2 == pytest.approx(index.day_number(clock[0]))
    # the same fading day (up to the rounding of the folded confidence): nothing counted twice
    assert fade2 == pytest.approx(fade, abs=0.05)
    mem.edit(m.id, decay_rate=0)
    assert derived()[2] == index.NEVER
    mem.edit(m.id, confidence=200, status="decayed")
    assert derived()[2] == -index.NEVER


def test_write_many_equals_writing_one_by_one():
    rng = random.Random(3)
    vocab = ["acme", "invoice", "refund", "client", "deploy", "server", "budget", "q3"]
    texts = [" ".join(rng.choices(vocab, k=rng.randint(2, 5))) for _ in range(40)]
    texts += texts[:10]  # exact repeats: they reinforce
    results = []
    for bulk in (False, True):
        c = duckdb.connect()
        apply_migrations(c)
        mem = MemoryStore(c, clock=lambda: T0)
        items = [mem.prepare("p", t, tags=[f"t{i % 3}"]) for i, t in enumerate(texts)]
        out = mem.write_many(items) if bulk else [mem.write_many([it])[0] for it in items]
        rows = c.execute(
            "SELECT id, content, confidence, tags, status FROM agent_memory"
        ).fetchall()
        # ids are random: name each memory by the position of the text that created it
        name = {it.id: n for n, it in enumerate(items)}
        results.append(
            (
                [(name[o.id], o.action, o.confidence) for o in out],
                sorted((name[r[0]], *r[1:]) for r in rows),
            )
        )
        c.close()
    one_by_one, bulk = results
    assert bulk == one_by_one
    assert {a for _, a, _ in bulk[0]} >= {"added", "reinforced"}


def test_a_later_outcome_of_a_task_in_the_same_batch_replaces_the_first(con):
    mem = MemoryStore(con, clock=lambda: T0)
    first = mem.prepare_outcome(
        "p", "t1", 'Task "x" failed: boom', status="failed", project_id=None
    )
    again = mem.prepare_outcome("p", "t1", 'Task "x" completed: ok', status="completed",
                                project_id=None)  # fmt: skip
    out = mem.write_many([first, again])
    assert out[0].id == out[1].id
    rows = mem.list("p", category="outcome")
    assert rows["content"].tolist() == ['Task "x" completed: ok']
    assert rows.iloc[0]["tags"] == ["outcome", "completed"]
    assert indexed(con, out[0].id) == hashes(con, "completed", "ok", "task")


def test_a_text_in_a_batch_is_compared_with_the_replaced_outcome_text(con):
    """Words split when a memory is queued are replaced with its text: a later item of the
    same batch is matched against the outcome that replaced the first."""
    mem = MemoryStore(con, clock=lambda: T0)
    first = mem.prepare_outcome(
        "p", "t1", 'Task "x" failed: boom', status="failed", project_id=None
    )
    again = mem.prepare_outcome("p", "t1", 'Task "x" completed: ok', status="completed",
                                project_id=None)  # fmt: skip
    like_again = mem.prepare("p", "task X completed OK")
    like_first = mem.prepare("p", "task x failed boom")
    out = mem.write_many([first, again, like_again, like_first])
    assert [o.action for o in out] == ["added", "reinforced", "reinforced", "added"]
    assert out[2].id == out[0].id and out[3].id not in (out[0].id, None)


def test_text_of_stop_words_only_still_finds_its_duplicate(con):
    mem = MemoryStore(con, clock=lambda: T0)
    first = mem.add("p", "It is what it is.")
    assert index.near_duplicate_need(["it", "is", "what", "it", "is"]) == 0
    assert mem.add("p", "it is what it is").id == first.id


def test_migration_indexes_memories_stored_before_it(tmp_path):
    from stagent_lab.store import memory as memory_repo
    from stagent_lab.store.migrations import CORE, MigrationSet

    path = str(tmp_path / "old.duckdb")
    c = duckdb.connect(path)
    before = MigrationSet("memory")  # the memory set as it was: the table, no index
    before(memory_repo.m001_agent_memory)
    apply_migrations(c, [CORE, before])
    c.execute(
        "INSERT INTO agent_memory (id, profile_id, category, content, confidence, decay_rate, "
        "created_at, updated_at) VALUES ('old1', 'p', 'fact', 'Deploys need a change ticket.', "
        "800, 10, ?, ?)",
        [T0, T0],
    )
    c.close()
    c = duckdb.connect(path)
    assert "memory.m002_ranking_index" in apply_migrations(c)
    mem = MemoryStore(c, clock=lambda: T0 + timedelta(days=1))
    df = mem.retrieve("p", "deploy ticket")
    assert df["id"].tolist() == ["old1"]
    assert df.iloc[0]["relevance"] == pytest.approx(1.0)
    assert df.iloc[0]["effective_confidence"] == pytest.approx(800 * 0.99)
    c.close()
