"""Writing memories in bulk: many remembers, outcomes and accesses in a few statements.

Agents remember things and tasks leave outcomes while the engine loop is busy with everything
else, and the writer runs on that loop. So memory writes are queued and applied together
(``write_many``, ``touch_many``): one query finds the near-duplicate candidates of every new
text through the word index, the decisions are made in Python in queue order (a text can
reinforce a memory added earlier in the same batch), and the rows go in as one Arrow append
plus one update per kind. The result is what writing them one by one would have given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import duckdb
import pyarrow as pa

from stagent_lab.store import memory_index as index
from stagent_lab.store.memory_scoring import (
    NEAR_DUPLICATE,
    WORD_CHARS_RE2,
    indexed_words,
    jaccard,
    normalize_tags,
    prefilter_words,
    words,
)

REINFORCE = 100  # confidence added when a near-identical memory is remembered again
WORD_START = f"(?:^|[^{WORD_CHARS_RE2}])"  # RE2: the match begins a word (see scoring.py)
WORD_END = f"(?:$|[^{WORD_CHARS_RE2}])"  # ... and ends one
_DAYS = "greatest(date_diff('millisecond', {col}, $now), 0) / 86400000.0"
# Decayed confidence from the base columns (for reads that do not rank: get, list, sweeps).
EFFECTIVE_SQL = (
    "(confidence * pow(1 - least(greatest(decay_rate, 0), 1000) / 1000.0, "
    + _DAYS.format(col="coalesce(last_accessed_at, updated_at)")
    + "))"
)
BASE_COLUMNS = (
    "id",
    "profile_id",
    "project_id",
    "category",
    "content",
    "confidence",
    "source_task_id",
    "tags",
    "last_accessed_at",
    "access_count",
    "decay_rate",
    "status",
    "created_at",
    "updated_at",
)


@dataclass(frozen=True)
class Remembered:
    """What a write did: ``added`` a row, ``reinforced`` a near-identical one, or ``refused``."""

    id: str | None
    action: Literal["added", "reinforced", "refused"]
    confidence: int | None = None
    reason: str | None = None


@dataclass
class NewMemory:
    """One memory to write; its text is already cleaned and checked (``MemoryStore.prepare``).

    ``id`` is chosen when the memory is queued, so a batch that is retried after a failed
    commit writes the same row. ``outcome_status`` marks the outcome memory of
    ``source_task_id``: one per task, a later outcome replaces the earlier one.
    """

    id: str
    profile_id: str
    content: str
    category: str
    tags: list[str]
    confidence: int
    decay_rate: int
    at: datetime
    project_id: str | None = None
    source_task_id: str | None = None
    allow_rejected: bool = False
    outcome_status: str | None = None
    replace_outcome: bool = True  # look for an earlier outcome (False: a task's first run)
    words: list[str] = field(default_factory=list)
    word_set: frozenset[str] = frozenset()


Candidate = tuple[str, str, str, Any, float]  # id, content, status, tags, effective confidence


def write_many(con: duckdb.DuckDBPyConnection, items: Sequence[NewMemory]) -> list[Remembered]:
    """Write ``items`` in order with their near-duplicate checks, in a few statements."""
    if not items:
        return []
    now = max(it.at for it in items)
    outcomes = _existing_outcomes(
        con, [it.source_task_id for it in items if it.outcome_status and it.replace_outcome]
    )
    probes = []
    scanned: dict[int, list[Candidate]] = {}
    for n, it in enumerate(items):
        it.words = words(it.content)
        it.word_set = frozenset(it.words)
        if it.outcome_status and it.source_task_id in outcomes:
            continue
        need = index.near_duplicate_need(it.words)
        if need > 0:
            found = indexed_words(it.content)
            probes.append((n, it.profile_id, it.project_id, found, need))
        else:  # only stop words and letters: the index cannot narrow it, scan the profile
            scanned[n] = scan_candidates(con, it.profile_id, it.project_id, it.words, now)
    candidates = index.duplicate_candidates(con, probes, now)
    plan = _Plan()
    results: list[Remembered] = []
    for n, it in enumerate(items):
        if it.outcome_status and it.source_task_id in outcomes:
            results.append(plan.replace_outcome(it, *outcomes[it.source_task_id]))
            continue
        found = [*candidates.get(n, ()), *scanned.get(n, ())]
        out = plan.add(it, found)
        if it.outcome_status and out.action == "added":  # a later outcome replaces this one
            outcomes[it.source_task_id or ""] = (out.id or "", "active")
        results.append(out)
    plan.write(con)
    return results


def touch_many(
    con: duckdb.DuckDBPyConnection, accesses: Mapping[str, tuple[datetime, int]]
) -> None:
    """Record uses of memories: ``{id: (when, times)}``. Decay so far is folded into the
    confidence and its clock restarts at ``when`` (one statement, plus the derived columns)."""
    if not accesses:
        return
    ids = list(accesses)
    tbl = pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "at": pa.array([accesses[i][0] for i in ids], pa.timestamp("us")),
            "n": pa.array([accesses[i][1] for i in ids], pa.int32()),
        }
    )
    folded = f"CAST(round({EFFECTIVE_SQL.replace('$now', 't.at')}) AS INTEGER)"
    derived = index.derived_sql(confidence=folded, anchor="t.at")
    con.register("_memory_touch", tbl)
    try:
        con.execute(
            f"UPDATE agent_memory SET confidence = {folded}, last_accessed_at = t.at, "
            "access_count = access_count + t.n, "
            + ", ".join(f"{col} = {expr}" for col, expr in derived.items())
            + " FROM _memory_touch t WHERE agent_memory.id = t.id"
        )
    finally:
        con.unregister("_memory_touch")


def scan_candidates(
    con: duckdb.DuckDBPyConnection,
    profile_id: str,
    project_id: str | None,
    text_words: list[str],
    now: datetime,
) -> list[Candidate]:
    """Near-duplicate candidates by scanning the profile's texts (for texts the word index
    cannot narrow): memories holding any of the pigeonhole probe words."""
    probe = prefilter_words(text_words)
    if not probe:
        return []
    params: dict[str, Any] = {
        "now": now,
        "profile": profile_id,
        "project": project_id,
        "probe": WORD_START + "(?:" + "|".join(re.escape(w) for w in probe) + ")" + WORD_END,
    }
    rows = con.execute(
        f"SELECT id, content, status, tags, {EFFECTIVE_SQL} AS eff FROM agent_memory "
        "WHERE profile_id = $profile AND project_id IS NOT DISTINCT FROM $project "
        "AND regexp_matches(lower(content), $probe)",
        params,
    ).fetchall()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _existing_outcomes(
    con: duckdb.DuckDBPyConnection, task_ids: list[str | None]
) -> dict[str, tuple[str, str]]:
    wanted = sorted({t for t in task_ids if t})
    if not wanted:
        return {}
    rows = con.execute(
        "SELECT source_task_id, arg_min(id, created_at), arg_min(status, created_at) "
        "FROM agent_memory WHERE category = 'outcome' AND source_task_id = ANY($ids) "
        "GROUP BY source_task_id",
        {"ids": wanted},
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


class _Plan:
    """Decisions of one batch, and the rows they write."""

    RANK = {"active": 0, "decayed": 1, "archived": 2}

    def __init__(self) -> None:
        self.new_rows: list[NewMemory] = []
        self.updates: dict[str, dict[str, Any]] = {}  # id -> fields, in decision order
        self.content_changed: list[tuple[str, str]] = []
        # What this batch changed so far, for later decisions: id -> (status, tags, eff).
        self.state: dict[str, tuple[str, Any, float]] = {}

    def add(self, it: NewMemory, found: list[Candidate]) -> Remembered:
        live: tuple[float, str, str, Any, float] | None = None
        rejected: tuple[float, str] | None = None
        seen: set[str] = set()
        pool = [
            (mid, frozenset(words(content)), status, tags, eff)
            for mid, content, status, tags, eff in found
        ]
        # Memories added earlier in this batch, with the words split when they were queued.
        pool += [
            (r.id, r.word_set, "active", r.tags, float(r.confidence))
            for r in self.new_rows
            if r.profile_id == it.profile_id and r.project_id == it.project_id
        ]
        for mid, held, status, tags, eff in pool:
            if mid in seen:
                continue
            seen.add(mid)
            if mid in self.state:
                status, tags, eff = self.state[mid]
            sim = jaccard(it.word_set, held)
            if sim < NEAR_DUPLICATE:
                continue
            if status == "rejected":
                if rejected is None or sim > rejected[0]:
                    rejected = (sim, mid)
            elif live is None or (self.RANK[status], -sim) < (self.RANK[live[2]], -live[0]):
                live = (sim, mid, status, tags, eff)
        if live is not None:
            _, mid, _, tags, eff = live
            conf = min(1000, max(round(float(eff)), it.confidence) + REINFORCE)
            merged = normalize_tags([*_tag_list(tags), *it.tags])
            tag_text = json.dumps(merged, ensure_ascii=False)
            self._update(
                mid,
                confidence=conf,
                status="active",
                tags=tag_text,
                last_accessed_at=it.at,
                updated_at=it.at,
            )
            self.state[mid] = ("active", tag_text, float(conf))
            return Remembered(mid, "reinforced", conf)
        if rejected is not None and not it.allow_rejected:
            mid = rejected[1]
            return Remembered(
                mid, "refused", None, f"the operator rejected a memory like this one ({mid})"
            )
        self.new_rows.append(it)
        return Remembered(it.id, "added", it.confidence)

    def replace_outcome(self, it: NewMemory, mid: str, status: str) -> Remembered:
        if status == "rejected" or self.state.get(mid, ("",))[0] == "rejected":
            return Remembered(mid, "refused", None, "the operator rejected this outcome")
        tag_text = json.dumps(it.tags)
        new_row = next((r for r in self.new_rows if r.id == mid), None)
        if new_row is not None:  # added earlier in this batch: write the later outcome instead
            new_row.content, new_row.confidence, new_row.tags = it.content, it.confidence, it.tags
            new_row.words, new_row.word_set = it.words, it.word_set
            new_row.at = it.at
            return Remembered(mid, "reinforced", it.confidence)
        self._update(
            mid,
            content=it.content,
            confidence=it.confidence,
            tags=tag_text,
            status="active",
            last_accessed_at=None,
            updated_at=it.at,
        )
        self.content_changed.append((mid, it.content))
        self.state[mid] = ("active", tag_text, float(it.confidence))
        return Remembered(mid, "reinforced", it.confidence)

    def _update(self, mid: str, **fields: Any) -> None:
        if any(r.id == mid for r in self.new_rows):  # not written yet: change the new row
            row = next(r for r in self.new_rows if r.id == mid)
            row.confidence = fields.get("confidence", row.confidence)
            if "tags" in fields:
                row.tags = json.loads(fields["tags"])
            return
        self.updates.setdefault(mid, {}).update(fields)

    # ---- the statements ------------------------------------------------------------------

    def write(self, con: duckdb.DuckDBPyConnection) -> None:
        rows = self.new_rows
        if rows:
            derived = index.derived_sql()  # from the new row's own columns
            cols = ", ".join([*BASE_COLUMNS, *derived])
            values = ", ".join([*BASE_COLUMNS, *derived.values()])
            unnested = ", ".join(f"unnest(${c}) AS {c}" for c in BASE_COLUMNS)
            con.execute(
                f"INSERT INTO agent_memory ({cols}) SELECT {values} FROM (SELECT {unnested})",
                {
                    "id": [r.id for r in rows],
                    "profile_id": [r.profile_id for r in rows],
                    "project_id": [r.project_id for r in rows],
                    "category": [r.category for r in rows],
                    "content": [r.content for r in rows],
                    "confidence": [r.confidence for r in rows],
                    "source_task_id": [r.source_task_id for r in rows],
                    "tags": [json.dumps(r.tags, ensure_ascii=False) for r in rows],
                    "last_accessed_at": [None] * len(rows),
                    "access_count": [0] * len(rows),
                    "decay_rate": [r.decay_rate for r in rows],
                    "status": ["active"] * len(rows),
                    "created_at": [r.at for r in rows],
                    "updated_at": [r.at for r in rows],
                },
            )
            index.add_words(con, [(r.id, indexed_words(r.content)) for r in rows])
        for mid, fields in self.updates.items():
            sets = ", ".join(f"{k} = ?" for k in fields)
            con.execute(f"UPDATE agent_memory SET {sets} WHERE id = ?", [*fields.values(), mid])
        if self.content_changed:
            index.drop_words(con, [mid for mid, _ in self.content_changed])
            index.add_words(con, [(mid, indexed_words(c)) for mid, c in self.content_changed])
        index.refresh_derived(con, list(self.updates))


def _tag_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value:
        return []
    try:
        out = json.loads(value)
    except ValueError:
        return []
    return [str(t) for t in out] if isinstance(out, list) else []


__all__ = [
    "EFFECTIVE_SQL",
    "REINFORCE",
    "NewMemory",
    "Remembered",
    "scan_candidates",
    "touch_many",
    "write_many",
]
