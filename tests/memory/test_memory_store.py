"""MemoryStore against a real DuckDB: dedupe, rejection, decay over simulated days, retrieval."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime, timedelta

import duckdb
import pytest

from stagent_lab.errors import StagentError
from stagent_lab.memory.scoring import score_rows
from stagent_lab.memory.store import MemoryStore
from stagent_lab.store.migrations import apply_migrations

T0 = datetime(2025, 3, 1, 9, 0)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def mem(clock):
    con = duckdb.connect()
    apply_migrations(con)
    yield MemoryStore(con, clock=clock)
    con.close()


def _ids(df) -> list[str]:
    return df["id"].tolist()


def test_add_then_near_identical_reinforces_instead_of_adding(mem):
    first = mem.add("p", "ACME's fiscal year ends in March.", tags=["acme"])
    assert first.action == "added" and first.confidence == 700
    again = mem.add("p", "  acme's FISCAL year ends in march ", tags=["finance"])
    assert again.action == "reinforced" and again.id == first.id and again.confidence == 800
    rows = mem.list("p")
    assert len(rows) == 1
    assert rows.iloc[0]["tags"] == ["acme", "finance"]
    # Different facts with overlapping words stay separate (Jaccard below 0.8).
    other = mem.add("p", "ACME's fiscal year ends in June.")
    assert other.action == "added" and other.id != first.id


def test_dedupe_is_per_profile_and_project(mem):
    a = mem.add("p", "Deploys happen on Tuesdays.")
    assert mem.add("q", "Deploys happen on Tuesdays.").id != a.id
    assert mem.add("p", "Deploys happen on Tuesdays.", project_id="proj1").id != a.id
    assert len(mem.list(status=None)) == 3


def test_rejected_memory_never_returns_and_blocks_relearning(mem):
    bad = mem.add("p", "The client wants long detailed answers.", category="preference")
    mem.reject(bad.id)
    assert mem.retrieve("p", "client answers").empty
    refused = mem.add("p", "The client wants long, detailed answers!")
    assert refused.action == "refused" and refused.id == bad.id
    assert "rejected" in refused.reason
    assert mem.get(bad.id)["status"] == "rejected"
    with pytest.raises(StagentError, match="stay rejected"):
        mem.edit(bad.id, status="active", confidence=900)
    # The operator may overrule: a new row, the rejected one stays rejected.
    new = mem.add("p", "The client wants long detailed answers.", allow_rejected=True)
    assert new.action == "added" and new.id != bad.id
    assert mem.get(bad.id)["status"] == "rejected"
    assert _ids(mem.retrieve("p", "client answers")) == [new.id]


def test_decay_over_simulated_days_changes_ranking_and_status(mem, clock):
    fast = mem.add("p", "Old pricing page lists three tiers.", confidence=900, decay_rate=50)
    slow = mem.add("p", "Support hours are nine to five.", confidence=700, decay_rate=5)
    assert _ids(mem.retrieve("p", "")) == [fast.id, slow.id]
    clock.advance(days=10)
    # 900 * 0.95^10 = 538.9 < 700 * 0.995^10 = 665.6: the ranking flips.
    df = mem.retrieve("p", "")
    assert _ids(df) == [slow.id, fast.id]
    assert df.iloc[1]["effective_confidence"] == pytest.approx(900 * 0.95**10, rel=1e-6)
    assert mem.apply_decay() == {"decayed": 0, "archived": 0}
    clock.advance(days=10)  # fast: 900 * 0.95^20 = 322.6, still active
    assert mem.apply_decay() == {"decayed": 0, "archived": 0}
    clock.advance(days=2)  # 291.2: below 300
    assert _ids(mem.retrieve("p", "")) == [slow.id]  # filtered even before the sweep
    assert mem.apply_decay() == {"decayed": 1, "archived": 0}
    assert mem.get(fast.id)["status"] == "decayed"
    clock.advance(days=25)  # 900 * 0.95^47 = 80.9: below 100
    assert mem.apply_decay() == {"decayed": 0, "archived": 1}
    assert mem.get(fast.id)["status"] == "archived"
    assert mem.get(slow.id)["status"] == "active"


def test_remembering_a_decayed_memory_revives_it(mem, clock):
    m = mem.add("p", "Backups run nightly at two.", confidence=400, decay_rate=100)
    clock.advance(days=5)  # 400 * 0.9^5 = 236
    mem.apply_decay()
    assert mem.get(m.id)["status"] == "decayed"
    again = mem.add("p", "Backups run nightly at two.")
    assert again.action == "reinforced" and again.id == m.id
    row = mem.get(m.id)
    assert row["status"] == "active" and row["confidence"] == 800  # max(236, 700) + 100


def test_touch_folds_decay_in_and_counts_access(mem, clock):
    m = mem.add("p", "Invoices are due in 30 days.", confidence=800, decay_rate=10)
    clock.advance(days=10)
    mem.touch([m.id])
    row = mem.get(m.id)
    assert row["confidence"] == round(800 * 0.99**10)
    assert row["access_count"] == 1 and row["last_accessed_at"] == clock.now
    # The clock restarts at the access: decay is not counted twice.
    clock.advance(days=10)
    assert mem.get(m.id)["effective_confidence"] == pytest.approx(round(800 * 0.99**10) * 0.99**10)


def test_relevance_brings_the_matching_memory_first(mem):
    strong = mem.add("p", "The office coffee machine is on floor two.", confidence=950)
    match = mem.add("p", "ACME Corp invoices must quote the PO number.", confidence=500)
    df = mem.retrieve("p", "Prepare the invoice for ACME")
    assert _ids(df) == [match.id, strong.id]
    # Two of three terms (prepare, invoice, acme): "invoice" matches "invoices" by prefix.
    # idf over 2 memories: a term in 1 of them ln(2), a term in none ln(6).
    expected = 2 * math.log(2) / (2 * math.log(2) + math.log(6))
    assert df.iloc[0]["relevance"] == pytest.approx(expected)
    assert df.iloc[1]["relevance"] == 0.0
    assert mem.retrieve("p", "ACME invoice").iloc[0]["relevance"] == pytest.approx(1.0)


def test_prefix_match_is_at_word_start_only(mem):
    m = mem.add("p", "We restarted the server.")
    df = mem.retrieve("p", "start")
    assert df.iloc[0]["id"] == m.id and df.iloc[0]["relevance"] == 0.0
    df = mem.retrieve("p", "restart")
    assert df.iloc[0]["relevance"] == pytest.approx(1.0)


def test_tag_match_counts(mem):
    tagged = mem.add("p", "Quarterly numbers come from the finance sheet.", tags=["acme"])
    plain = mem.add("p", "Quarterly numbers come from the board deck.")
    df = mem.retrieve("p", "anything", tags=["acme"])
    assert _ids(df) == [tagged.id, plain.id]
    assert df["tag_match"].tolist() == [1.0, 0.0]
    df = mem.retrieve("p", "what does acme need")  # a query word equal to a tag counts too
    assert df.iloc[0]["tag_match"] == 1.0


def test_project_scoping(mem):
    everywhere = mem.add("p", "Use British spelling.")
    here = mem.add("p", "This repo uses poetry.", project_id="proj1")
    elsewhere = mem.add("p", "That repo uses npm.", project_id="proj2")
    assert set(_ids(mem.retrieve("p", "", project_id="proj1"))) == {everywhere.id, here.id}
    assert _ids(mem.retrieve("p", "")) == [everywhere.id]
    assert elsewhere.id not in _ids(mem.retrieve("p", "repo", project_id="proj1"))


def test_top_k_limit_and_other_profiles_excluded(mem):
    for i in range(12):
        mem.add("p", f"Fact number {i} about topic{i}.")
    mem.add("q", "A fact of another profile about topic1.")
    df = mem.retrieve("p", "topic1", k=5)
    assert len(df) == 5 and set(df["profile_id"]) == {"p"}
    assert "topic1" in df.iloc[0]["content"]


def test_sql_scores_match_the_reference_scorer(mem, clock):
    rng = random.Random(7)
    vocab = [f"term{i}" for i in range(40)] + ["acme", "invoice", "refund", "client"]
    for i in range(150):
        text = " ".join(rng.choices(vocab, k=rng.randint(3, 12))) + f" item{i}."
        mem.add(
            "p",
            text,
            confidence=rng.randint(300, 1000),
            decay_rate=rng.randint(0, 40),
            tags=rng.sample(["acme", "billing", "ops"], rng.randint(0, 2)),
        )
        clock.advance(hours=rng.randint(1, 30))
    clock.advance(days=3)
    rows = mem.con.execute(
        "SELECT id, content, confidence, decay_rate, last_accessed_at, updated_at, tags, status "
        "FROM agent_memory"
    ).fetchall()
    dicts = [
        {
            "id": r[0],
            "content": r[1],
            "confidence": r[2],
            "decay_rate": r[3],
            "last_accessed_at": r[4],
            "updated_at": r[5],
            "tags_list": json.loads(r[6]),
        }
        for r in rows
    ]
    for query, tags in (("acme invoice refund", ()), ("client term3 term7", ("ops",)), ("", ())):
        sql = mem.retrieve("p", query, tags=tags, k=10)
        ref = score_rows(dicts, query, now=clock.now, tags=tags, k=10)
        assert _ids(sql) == [r["id"] for r in ref]
        assert sql["score"].tolist() == pytest.approx([r["score"] for r in ref], rel=1e-6)
        assert sql["relevance"].tolist() == pytest.approx([r["relevance"] for r in ref], abs=1e-9)


def test_edit_delete_and_validation(mem, clock):
    m = mem.add("p", "Standup is at ten.")
    clock.advance(days=3)
    row = mem.edit(m.id, content="Standup is at half past nine.", tags=["team"], confidence=900)
    assert row["content"] == "Standup is at half past nine." and row["tags"] == ["team"]
    assert row["confidence"] == 900 and row["effective_confidence"] == pytest.approx(900)
    with pytest.raises(ValueError, match="confidence >= 300"):
        mem.edit(m.id, confidence=100, status="active")
    with pytest.raises(ValueError, match="category"):
        mem.add("p", "x y z", category="gossip")
    with pytest.raises(ValueError, match="empty"):
        mem.add("p", "   ")
    with pytest.raises(ValueError, match="under 2000"):
        mem.add("p", "word " * 500)
    with pytest.raises(ValueError, match="confidence"):
        mem.add("p", "fine text", confidence=1001)
    mem.delete(m.id)
    with pytest.raises(KeyError):
        mem.get(m.id)
    with pytest.raises(KeyError):
        mem.delete(m.id)


def test_outcome_memory_is_one_per_task(mem):
    first = mem.record_outcome("p", "t1", 'Task "x" failed: boom', status="failed", project_id="j")
    second = mem.record_outcome(
        "p", "t1", 'Task "x" completed: ok', status="completed", project_id="j"
    )
    assert second.id == first.id
    rows = mem.list("p", category="outcome")
    assert rows["content"].tolist() == ['Task "x" completed: ok']
    assert rows.iloc[0]["confidence"] == 600 and rows.iloc[0]["tags"] == ["outcome", "completed"]


def _fill(mem, clock, n: int, *, seed: int = 11, project: str | None = None) -> None:
    rng = random.Random(seed)
    vocab = [f"word{i}" for i in range(30)] + ["acme", "invoice", "refund", "deploy"]
    items = []
    for i in range(n):
        text = " ".join(rng.choices(vocab, k=rng.randint(3, 10))) + f" note{i}."
        items.append(
            mem.prepare(
                "p",
                text,
                project_id=project if i % 3 == 0 else None,
                confidence=rng.randint(300, 1000),
                decay_rate=rng.randint(0, 40),
                tags=rng.sample(["acme", "deploy", "ops"], rng.randint(0, 2)),
                now=clock.now,
            )
        )
        clock.advance(hours=rng.randint(1, 20))
    mem.write_many(items)  # in order, each checked against the ones before: as n adds
    clock.advance(days=2)


@pytest.mark.parametrize(("n", "project"), [(40, None), (40, "proj-1"), (240, "proj-1")])
def test_top_lines_of_a_small_scope_equal_the_ranked_query(mem, clock, n, project):
    """Up to ``small_set`` live memories are scored in Python (no query planning); the answer
    is the ranked query's, row for row."""
    _fill(mem, clock, n, project=project)
    for query in ("acme invoice refund", "word3 word7 deploy", "", "nothing matches this"):
        few = mem.top_lines("p", query, project_id=project, k=8)
        mem.small_set = 0  # the ranked query
        try:
            ranked = mem.top_lines("p", query, project_id=project, k=8)
        finally:
            del mem.small_set
        assert [r[0] for r in few] == [r[0] for r in ranked]
        assert [r[1] for r in few] == [r[1] for r in ranked]
        assert [r[3] for r in few] == [r[3] for r in ranked]
        assert [r[2] for r in few] == pytest.approx([r[2] for r in ranked], rel=1e-9)
        assert [r[4] for r in few] == pytest.approx([r[4] for r in ranked], rel=1e-9)
        assert len(few) == 8


def test_top_lines_ranks_in_sql_beyond_the_small_set(mem, clock, monkeypatch):
    import stagent_lab.store.memory as memory_mod

    _fill(mem, clock, 30)
    scored = []
    real = memory_mod.score_rows
    monkeypatch.setattr(
        memory_mod, "score_rows", lambda *a, **kw: scored.append(1) or real(*a, **kw)
    )
    live = len(mem.retrieve("p", "", k=1000))
    assert live > 20
    mem.small_set = live
    assert len(mem.top_lines("p", "acme", k=5)) == 5
    assert scored == [1]  # as many live memories as the small set: scored in Python
    mem.small_set = live - 1
    assert len(mem.top_lines("p", "acme", k=5)) == 5
    assert scored == [1]  # one more than the small set: the ranked query


def test_top_lines_sees_an_edited_text_at_once(mem, clock):
    """Words split from a memory's text are kept by (id, text hash): an edit is a new text."""
    _fill(mem, clock, 30)
    assert all("zebra" not in r[3] for r in mem.top_lines("p", "zebra crossing", k=30))
    target = mem.retrieve("p", "", k=1).iloc[0]["id"]
    mem.edit(target, content="Use the zebra crossing by the office.")
    best = mem.top_lines("p", "zebra crossing", k=3)[0]
    assert best[0] == target and best[3] == "Use the zebra crossing by the office."
    mem.small_set = 0
    assert mem.top_lines("p", "zebra crossing", k=3)[0][:4] == best[:4]  # the ranked query


def test_top_lines_splits_each_text_once(mem, clock, monkeypatch):
    import stagent_lab.store.memory as memory_mod

    split = []
    real = memory_mod.SPLIT_TEXTS.put
    monkeypatch.setattr(
        memory_mod.SPLIT_TEXTS, "put", lambda key, text: split.append(key[0]) or real(key, text)
    )
    _fill(mem, clock, 25)
    live = len(mem.retrieve("p", "", k=1000))
    mem.top_lines("p", "acme", k=5)
    assert len(split) == live  # every live memory's text read and split once
    mem.top_lines("p", "deploy refund", k=5)
    assert len(split) == live  # then none again
    added = mem.add("p", "Deploys wait for the refund audit to finish.")
    assert mem.top_lines("p", "deploy refund", k=1)[0][0] == added.id
    assert split[live:] == [added.id]  # only the new one


def test_top_lines_skips_a_memory_deleted_between_its_two_reads(mem, clock):
    _fill(mem, clock, 12)
    gone = mem.retrieve("p", "acme", k=1).iloc[0]["id"]
    real = mem.con

    class DeletesFirst:  # the memory is deleted after the scope's rows were read
        def execute(self, sql, params=None):
            if "hash(content), content" in sql:
                real.execute("DELETE FROM agent_memory WHERE id = ?", [gone])
            return real.execute(sql, params)

    mem.con = DeletesFirst()
    try:
        found = mem.top_lines("p", "acme", k=50)
    finally:
        mem.con = real
    assert found and gone not in [r[0] for r in found]


def test_split_texts_keeps_the_most_recently_used():
    from stagent_lab.store.memory import SplitTexts

    held = SplitTexts(2)
    held.put(("a", 1), "alpha words")
    held.put(("b", 2), "beta words")
    assert held.get_many([("a", 1)]) == {("a", 1): ("alpha words", frozenset({"alpha", "words"}))}
    held.put(("c", 3), "gamma")  # "b" was used least recently
    assert set(held.get_many([("a", 1), ("b", 2), ("c", 3)])) == {("a", 1), ("c", 3)}
    assert len(held) == 2
    assert held.get_many([("a", 9)]) == {}  # another text of "a": not held


class CountsScopeReads:
    """A connection that counts the reads of a scope's live memories."""

    def __init__(self, con) -> None:
        self.con = con
        self.scope_reads = 0

    def execute(self, sql, params=None):
        if "AS content_hash" in sql:
            self.scope_reads += 1
        return self.con.execute(sql, params)


def test_a_ranked_scope_is_kept_until_the_next_commit(mem, clock):
    from stagent_lab.store.memory import ScopeRows

    _fill(mem, clock, 20)
    commits = [0]
    reads = CountsScopeReads(mem.con)
    runs = MemoryStore(reads, clock=clock, scopes=ScopeRows(lambda: commits[0]))
    first = runs.top_lines("p", "acme invoice", k=5)
    clock.advance(hours=1)
    assert runs.top_lines("p", "deploy", k=5) and reads.scope_reads == 1  # kept
    added = mem.add("p", "The acme invoice run moved to Fridays.", confidence=1000)
    again = runs.top_lines("p", "acme invoice", k=5)  # not committed, as far as it knows
    assert [r[0] for r in again] == [r[0] for r in first] and added.id not in [r[0] for r in again]
    commits[0] += 1
    assert runs.top_lines("p", "acme invoice", k=1)[0][0] == added.id
    assert reads.scope_reads == 2
    runs.top_lines("p", "acme", k=5, project_id="proj-9")
    assert reads.scope_reads == 3  # another scope: read on its own
    clock.advance(hours=-2)  # a clock that runs backwards reads again
    runs.top_lines("p", "acme invoice", k=5)
    assert reads.scope_reads == 4


def test_a_scope_too_large_to_rank_in_python_is_remembered_as_such(mem, clock):
    from stagent_lab.store.memory import ScopeRows

    _fill(mem, clock, 20)
    reads = CountsScopeReads(mem.con)
    runs = MemoryStore(reads, clock=clock, scopes=ScopeRows(lambda: 0))
    runs.small_set = 5
    ranked = runs.top_lines("p", "acme", k=3)
    assert ranked == runs.top_lines("p", "acme", k=3) and len(ranked) == 3  # the ranked query
    assert reads.scope_reads == 1


def test_scope_rows_hold_one_generation_and_a_bounded_number_of_rows():
    from stagent_lab.store.memory import MISSING, ScopeRows

    held = ScopeRows(lambda: 0, max_rows=10)
    held.put(("p", None, 500), 3, 100.0, [{"id": "a"}] * 4)
    held.put(("q", None, 500), 3, 100.0, [{"id": "b"}] * 4)
    assert held.get(("p", None, 500), 3, 100.5) == [{"id": "a"}] * 4
    held.put(("r", None, 500), 3, 100.0, [{"id": "c"}] * 4)  # 12 rows: "q" used least lately
    assert held.get(("q", None, 500), 3, 100.0) is MISSING and len(held) == 2
    held.put(("s", None, 500), 2, 100.0, [])  # read before the last commit: never served
    assert held.get(("s", None, 500), 2, 100.0) is MISSING and len(held) == 2
    held.put(("s", None, 500), 4, 100.0, None)  # a newer commit: the rest can go
    assert len(held) == 1 and held.get(("s", None, 500), 4, 100.0) is None
    assert held.get(("p", None, 500), 4, 100.0) is MISSING
