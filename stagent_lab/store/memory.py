"""Repository: ``agent_memory`` — every read and write of episodic memory, in DuckDB SQL.

A ``MemoryStore`` wraps one connection or cursor: the engine's writer connection for writes
(inside the writer's transaction, in order with the task's other writes), a reader cursor for
reads. Time is injectable: every method takes ``now=`` and the store has a ``clock``, so decay
can be tested over simulated days without sleeping.

Retrieval ranks in one query over the ranking index (``memory_index.py``): precomputed decay
terms decide which memories are live and how strong, the word index says which query terms
each contains and how common they are (idf), and the text of the k winners is read last.
Nothing loops over a large set of rows in Python. The one exception is the run path
(``top_lines``) when a scope has at most ``SMALL_SET`` live memories (500, the usual case):
planning the ranked query costs DuckDB 10–20 ms of CPU however few rows it ranks, so those
memories are read with one plain query (without their text, which ``SplitTexts`` holds split
into words by id and text hash) and scored by the reference scorer (the same formula,
``memory_scoring.score_rows``; a test holds the two answers equal). A ``ScopeRows`` given to
the store keeps what a scope read returned until the writer's next commit. Writes go through
``memory_writes.py``, which applies many of them in a few statements and keeps the index
current.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from stagent_lab._text import repair_text
from stagent_lab.errors import StagentError
from stagent_lab.store import memory_index as index
from stagent_lab.store.memory_scoring import (
    ARCHIVED_BELOW,
    CATEGORIES,
    DECAYED_BELOW,
    DEFAULT_CONFIDENCE,
    DEFAULT_DECAY,
    indexed_words,
    normalize_tags,
    query_terms,
    score_rows,
    words,
)
from stagent_lab.store.memory_writes import (
    EFFECTIVE_SQL,
    REINFORCE,
    NewMemory,
    Remembered,
    touch_many,
    write_many,
)
from stagent_lab.store.migrations import MigrationSet, register_set

MAX_CONTENT_CHARS = 2000
# Live memories of one scope up to which ``top_lines`` reads them all and scores them in
# Python: ~2 ms plus ~14 µs a row on the build machine (6.4 ms for 300), against 18–22 ms
# for the ranked query. Beyond ~1,000 the ranked query is cheaper.
SMALL_SET = 500

COLUMNS = (
    "id, profile_id, project_id, category, content, confidence, source_task_id, tags, "
    "last_accessed_at, access_count, decay_rate, status, created_at, updated_at"
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


MIGRATIONS = register_set(MigrationSet("memory"))


@MIGRATIONS
def m001_agent_memory(con: duckdb.DuckDBPyConnection) -> None:
    # Workspaces from before feature migrations got this table from core m002.
    con.execute(
        """
        CREATE TABLE IF NOT EXISTS agent_memory (
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
    con.execute(
        "CREATE INDEX IF NOT EXISTS agent_memory_profile ON agent_memory (profile_id, status)"
    )


@MIGRATIONS
def m002_ranking_index(con: duckdb.DuckDBPyConnection) -> None:
    # Precomputed decay terms and the word index, filled from the rows already stored.
    index.create_index(con)


class MemoryStore:
    small_set = SMALL_SET

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        clock: Callable[[], datetime] | None = None,
        redact: Callable[[str], str] | None = None,
        scopes: ScopeRows | None = None,
    ) -> None:
        """``scopes``: where ``top_lines`` keeps the scopes it read (only for a reader that
        sees committed rows alone: never the writer's connection inside its transaction)."""
        self.con = con
        self.clock: Callable[[], datetime] = clock or utcnow
        self._redact = redact or (lambda s: s)
        self.scopes = scopes

    def now(self, now: datetime | None = None) -> datetime:
        return now if now is not None else self.clock()

    # ---- writing ------------------------------------------------------------------------

    def add(
        self,
        profile_id: str,
        content: str,
        *,
        category: str = "fact",
        tags: Iterable[str] | str | None = None,
        confidence: int | None = None,
        decay_rate: int | None = None,
        project_id: str | None = None,
        source_task_id: str | None = None,
        allow_rejected: bool = False,
        now: datetime | None = None,
    ) -> Remembered:
        """Store a memory, or reinforce a near-identical one (word-set Jaccard >= 0.8).

        A near-identical memory the operator rejected blocks the write (``refused``) unless
        ``allow_rejected`` (the operator's own ``lab.memory.add``), which adds a new row and
        leaves the rejected one rejected.
        """
        item = self.prepare(
            profile_id,
            content,
            category=category,
            tags=tags,
            confidence=confidence,
            decay_rate=decay_rate,
            project_id=project_id,
            source_task_id=source_task_id,
            allow_rejected=allow_rejected,
            now=now,
        )
        return write_many(self.con, [item])[0]

    def prepare(
        self,
        profile_id: str,
        content: Any,
        *,
        category: str = "fact",
        tags: Iterable[str] | str | None = None,
        confidence: int | None = None,
        decay_rate: int | None = None,
        project_id: str | None = None,
        source_task_id: str | None = None,
        allow_rejected: bool = False,
        now: datetime | None = None,
    ) -> NewMemory:
        """Check and clean a memory to write later with ``write_many`` (no SQL; raises
        ValueError naming the problem)."""
        text = self._clean_content(content)
        _check_category(category)
        conf = DEFAULT_CONFIDENCE if confidence is None else _check_int(confidence, "confidence")
        rate = (
            DEFAULT_DECAY[category] if decay_rate is None else _check_int(decay_rate, "decay_rate")
        )
        return NewMemory(
            id=uuid.uuid4().hex[:12],
            profile_id=profile_id,
            content=text,
            category=category,
            tags=normalize_tags(tags),
            confidence=conf,
            decay_rate=rate,
            at=self.now(now),
            project_id=project_id,
            source_task_id=source_task_id,
            allow_rejected=allow_rejected,
        )

    def prepare_outcome(
        self,
        profile_id: str,
        task_id: str,
        content: str,
        *,
        status: str,
        project_id: str | None,
        now: datetime | None = None,
    ) -> NewMemory:
        """The outcome memory of a task, to write with ``write_many`` (one per task)."""
        item = self.prepare(
            profile_id,
            content,
            category="outcome",
            tags=["outcome", status],
            confidence=600 if status == "completed" else 500,
            project_id=project_id,
            source_task_id=task_id,
            now=now,
        )
        item.outcome_status = status
        return item

    def write_many(self, items: list[NewMemory]) -> list[Remembered]:
        """Write prepared memories in order, each checked against the ones before it."""
        return write_many(self.con, items)

    def touch_many(self, accesses: dict[str, tuple[datetime, int]]) -> None:
        """Record uses: ``{id: (when, times)}`` (see ``touch``), in one statement."""
        touch_many(self.con, accesses)

    def record_outcome(
        self,
        profile_id: str,
        task_id: str,
        content: str,
        *,
        status: str,
        project_id: str | None,
        now: datetime | None = None,
    ) -> Remembered:
        """One outcome memory per task: a resumed task's later outcome replaces the earlier."""
        item = self.prepare_outcome(
            profile_id, task_id, content, status=status, project_id=project_id, now=now
        )
        return write_many(self.con, [item])[0]

    def edit(
        self,
        memory_id: str,
        *,
        content: str | None = None,
        category: str | None = None,
        tags: Iterable[str] | str | None = None,
        confidence: int | None = None,
        decay_rate: int | None = None,
        status: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Change a memory. Decay so far is folded in first, so the edit starts a fresh clock."""
        now = self.now(now)
        row = self.get(memory_id, now=now)
        if row["status"] == "rejected":
            raise StagentError(
                f"memory {memory_id} was rejected; rejected memories stay rejected. Add a new "
                "memory with lab.memory.add(...) if it is right after all."
            )
        if status is not None and status not in ("active", "decayed", "archived"):
            raise ValueError(
                f"status must be active, decayed or archived (use reject() to reject), got "
                f"{status!r}"
            )
        fields: dict[str, Any] = {
            "confidence": round(float(row["effective_confidence"])),
            "last_accessed_at": now,
        }
        if content is not None:
            fields["content"] = self._clean_content(content)
            fields["updated_at"] = now
        if category is not None:
            fields["category"] = _check_category(category)
        if tags is not None:
            fields["tags"] = json.dumps(normalize_tags(tags), ensure_ascii=False)
        if confidence is not None:
            fields["confidence"] = _check_int(confidence, "confidence")
        if decay_rate is not None:
            fields["decay_rate"] = _check_int(decay_rate, "decay_rate")
        if status is not None:
            fields["status"] = status
        target = fields.get("status", row["status"])
        if target == "active" and fields["confidence"] < DECAYED_BELOW:
            raise ValueError(
                f"an active memory needs confidence >= {DECAYED_BELOW} (it has "
                f"{fields['confidence']} after decay); pass confidence= as well"
            )
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.con.execute(
            f"UPDATE agent_memory SET {cols} WHERE id = ?", [*fields.values(), memory_id]
        )
        if "content" in fields:
            index.drop_words(self.con, [memory_id])
            index.add_words(self.con, [(memory_id, indexed_words(fields["content"]))])
        index.refresh_derived(self.con, [memory_id])
        return self.get(memory_id, now=now)

    def reject(self, memory_id: str, *, now: datetime | None = None) -> dict[str, Any]:
        """Mark a memory wrong: it is never retrieved again and blocks agents re-learning it."""
        now = self.now(now)
        self.get(memory_id, now=now)
        self.con.execute(
            "UPDATE agent_memory SET status = 'rejected', updated_at = ? WHERE id = ?",
            [now, memory_id],
        )
        index.refresh_derived(self.con, [memory_id])
        return self.get(memory_id, now=now)

    def delete(self, memory_id: str) -> None:
        gone = self.con.execute(
            "DELETE FROM agent_memory WHERE id = ? RETURNING id", [memory_id]
        ).fetchall()
        if not gone:
            raise KeyError(f"no memory with id {memory_id!r}")
        index.drop_words(self.con, [memory_id])

    def apply_decay(self, now: datetime | None = None) -> dict[str, int]:
        """Move memories whose decayed confidence fell below a threshold: active → decayed
        (< 300) → archived (< 100). Returns how many rows changed to each status."""
        now = self.now(now)
        rows = self.con.execute(
            f"UPDATE agent_memory SET status = CASE WHEN {EFFECTIVE_SQL} < {ARCHIVED_BELOW} "
            f"THEN 'archived' ELSE 'decayed' END "
            f"WHERE (status = 'active' AND {EFFECTIVE_SQL} < {DECAYED_BELOW}) "
            f"OR (status = 'decayed' AND {EFFECTIVE_SQL} < {ARCHIVED_BELOW}) RETURNING status",
            {"now": now},
        ).fetchall()
        out = {"decayed": 0, "archived": 0}
        for (status,) in rows:
            out[status] += 1
        return out

    def touch(self, ids: Sequence[str], now: datetime | None = None) -> None:
        """Record that memories were used: fold decay into confidence, restart its clock."""
        if ids:
            at = self.now(now)
            touch_many(self.con, {mid: (at, 1) for mid in dict.fromkeys(ids)})

    # ---- reading ------------------------------------------------------------------------

    def retrieve(
        self,
        profile_id: str,
        query: str = "",
        *,
        project_id: str | None = None,
        tags: Iterable[str] = (),
        k: int = 8,
        now: datetime | None = None,
    ) -> pd.DataFrame:
        """The ``k`` best active memories of a profile for ``query`` (see scoring.py).

        Memories without a project apply everywhere; with ``project_id`` that project's
        memories join them. Columns: the table's, plus effective_confidence, relevance,
        recency, tag_match and score; ``tags`` is a list.
        """
        now = self.now(now)
        terms = query_terms(query)
        wanted = sorted(set(terms) | set(normalize_tags(list(tags))))
        tagpat = None
        if wanted:
            tagpat = '"(?:' + "|".join(re.escape(t) for t in wanted) + ')"'
        full = ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))
        sql = index.ranked_sql(project=project_id is not None, tags=bool(wanted), columns=full)
        params = index.ranked_params(
            profile_id, terms, now, k, project_id=project_id, tagpat=tagpat
        )
        df = self.con.execute(sql, params).df()
        df["tags"] = df["tags"].map(_tags)
        return df.reset_index(drop=True)

    def top_lines(
        self,
        profile_id: str,
        query: str,
        *,
        project_id: str | None = None,
        k: int = 8,
        now: datetime | None = None,
    ) -> list[tuple[str, str, float, str, float]]:
        """What a run's instructions need of the best ``k`` memories, as plain tuples
        ``(id, category, effective_confidence, content, score)``, best first (no DataFrame)."""
        now = self.now(now)
        few = self._rank_few(profile_id, query, project_id=project_id, k=k, now=now)
        if few is not None:
            return [
                (r["id"], r["category"], float(r["effective_confidence"]), r["content"],
                 float(r["score"]))
                for r in few
            ]  # fmt: skip
        terms = query_terms(query)
        tagpat = '"(?:' + "|".join(re.escape(t) for t in terms) + ')"' if terms else None
        sql = index.ranked_sql(
            project=project_id is not None, tags=bool(terms), columns="m.id, m.category, m.content"
        )
        params = index.ranked_params(
            profile_id, terms, now, k, project_id=project_id, tagpat=tagpat
        )
        rows = self.con.execute(sql, params).fetchall()
        return [(r[0], r[1], float(r[3]), r[2], float(r[7])) for r in rows]

    def _rank_few(
        self, profile_id: str, query: str, *, project_id: str | None, k: int, now: datetime
    ) -> list[dict[str, Any]] | None:
        """The best ``k`` when the scope has at most ``small_set`` live memories (scored in
        Python, the same formula as the ranked query); None when it has more."""
        if self.small_set <= 0:
            return None
        now_day = index.day_number(now)
        key = (profile_id, project_id, self.small_set)
        scopes = self.scopes
        if scopes is not None:
            generation = scopes.generation()
            kept = scopes.get(key, generation, now_day)
            if kept is not MISSING:
                found = kept
            else:
                found = self._read_scope(profile_id, project_id, now_day)
                scopes.put(key, generation, now_day, found)
        else:
            found = self._read_scope(profile_id, project_id, now_day)
        return None if found is None else score_rows(found, query, now=now, k=k)

    def _read_scope(
        self, profile_id: str, project_id: str | None, now_day: float
    ) -> list[dict[str, Any]] | None:
        """The live memories of a scope as rows for ``score_rows`` (None: more than
        ``small_set``)."""
        params: dict[str, Any] = {
            "profile": profile_id,
            "now_day": now_day,
            "limit": self.small_set + 1,
        }
        if project_id is not None:
            params["project"] = project_id
        rows = self.con.execute(
            index.live_rows_sql(project=project_id is not None), params
        ).fetchall()
        if len(rows) > self.small_set:
            return None
        texts = SPLIT_TEXTS.get_many([(r[0], r[2]) for r in rows])
        missing = [r[0] for r in rows if (r[0], r[2]) not in texts]
        fetched: dict[str, tuple[str, frozenset[str]]] = {}
        if missing:
            for mid, digest, content in self.con.execute(
                index.contents_sql(), {"ids": missing}
            ).fetchall():
                fetched[mid] = SPLIT_TEXTS.put((mid, digest), content)
        found = []
        for r in rows:
            # Changed or deleted between the two reads: its newer text, or nothing.
            text = texts.get((r[0], r[2])) or fetched.get(r[0])
            if text is None:
                continue
            found.append(
                {
                    "id": r[0],
                    "category": r[1],
                    "content": text[0],
                    "words": text[1],
                    "confidence": r[3],
                    "decay_rate": r[4],
                    "last_accessed_at": r[5],
                    "updated_at": r[6],
                    "tags_list": _tag_tuple(r[7]),
                }
            )
        return found

    def get(self, memory_id: str, *, now: datetime | None = None) -> dict[str, Any]:
        now = self.now(now)
        df = self.con.execute(
            f"SELECT {COLUMNS}, {EFFECTIVE_SQL} AS effective_confidence FROM agent_memory "
            "WHERE id = $id",
            {"id": memory_id, "now": now},
        ).df()
        if df.empty:
            raise KeyError(f"no memory with id {memory_id!r}")
        row = df.iloc[0].to_dict()
        row["tags"] = _tags(row["tags"])
        return {k: _plain(v) for k, v in row.items()}

    def list(
        self,
        profile_id: str | None = None,
        *,
        status: str | None = "active",
        project_id: str | None = None,
        category: str | None = None,
        now: datetime | None = None,
    ) -> pd.DataFrame:
        """Memories with their effective confidence, strongest first. ``status=None``: all."""
        now = self.now(now)
        clauses, params = [], {"now": now}
        for col, value in (
            ("profile_id", profile_id),
            ("status", status),
            ("project_id", project_id),
            ("category", category),
        ):
            if value is not None:
                clauses.append(f"{col} = ${col}")
                params[col] = value
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        df = self.con.execute(
            f"SELECT {COLUMNS}, {EFFECTIVE_SQL} AS effective_confidence FROM agent_memory "
            f"{where} ORDER BY profile_id, effective_confidence DESC, id",
            params,
        ).df()
        df["tags"] = df["tags"].map(_tags)
        return df

    # ---- helpers ------------------------------------------------------------------------

    def _clean_content(self, content: Any) -> str:
        if not isinstance(content, str) or not content.strip():
            raise ValueError("memory content is empty: give one self-contained sentence")
        text = content.strip()
        if len(text) > MAX_CONTENT_CHARS:
            raise ValueError(
                f"memory content is {len(text)} characters; keep it under {MAX_CONTENT_CHARS} "
                "(one fact per memory)"
            )
        if not words(text):
            raise ValueError("memory content has no words")
        return self._redact(repair_text(text))


_BROWSER_SQL = f"""
    SELECT m.id, m.profile_id, p.name AS project, m.category, m.content, m.confidence,
           CAST(round(m.eff) AS INTEGER) AS effective, m.decay_rate, m.status, m.tags,
           m.access_count, m.last_accessed_at, m.created_at, m.updated_at, m.source_task_id,
           t.title AS source_title, count(*) OVER () AS total
    FROM (SELECT *, {EFFECTIVE_SQL} AS eff FROM agent_memory) m
    LEFT JOIN tasks t ON t.id = m.source_task_id
    LEFT JOIN projects p ON p.id = m.project_id
    WHERE {{where}}
    ORDER BY m.status = 'rejected', m.profile_id, m.eff DESC, m.id
    LIMIT $limit
"""


def browser_rows(
    con: duckdb.DuckDBPyConnection,
    now: datetime,
    *,
    profile: str | None = None,
    category: str | None = None,
    status: str | None = None,
    search: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The memory browser's rows (each with ``total``: how many matched in all)."""
    clauses = ["true"]
    params: dict[str, Any] = {"now": now, "limit": int(limit)}
    if profile:
        clauses.append("m.profile_id = $profile")
        params["profile"] = profile
    if category:
        clauses.append("m.category = $category")
        params["category"] = category
    if not status:
        clauses.append("m.status <> 'rejected'")
    elif status != "all":
        clauses.append("m.status = $status")
        params["status"] = status
    if search and search.strip():
        clauses.append(
            "contains(lower(concat_ws(' ', m.content, m.tags, m.id, m.category, "
            "m.source_task_id, t.title, p.name)), $search)"
        )
        params["search"] = search.strip().lower()
    cur = con.execute(_BROWSER_SQL.format(where=" AND ".join(clauses)), params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, values, strict=True)) for values in cur.fetchall()]


def profiles_with_memories(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT profile_id FROM agent_memory ORDER BY profile_id"
        ).fetchall()
    ]


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value:
        return []
    try:
        out = json.loads(value)
    except ValueError:
        return []
    return [str(t) for t in out] if isinstance(out, list) else []


class SplitTexts:
    """Memories' texts and their indexed words, by ``(id, content hash)``, least recently
    used first out.

    Splitting texts into words is most of what ranking a scope in Python costs, and a memory's
    text seldom changes; when it does (an edit, a resumed task's new outcome) its hash changes
    and the old entry is never asked for again. The hash is DuckDB's ``hash(content)``, read
    with the memory's other columns, so a hit needs no text from the database. Shared by the
    stores of one process (the run path reads from worker threads, hence the lock).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._held: OrderedDict[tuple[str, int], tuple[str, frozenset[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def get_many(
        self, keys: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[str, frozenset[str]]]:
        out = {}
        with self._lock:
            held = self._held
            for key in keys:
                text = held.get(key)
                if text is not None:
                    held.move_to_end(key)
                    out[key] = text
        return out

    def put(self, key: tuple[str, int], content: str) -> tuple[str, frozenset[str]]:
        text = (content, frozenset(indexed_words(content)))
        with self._lock:
            self._held[key] = text
            self._held.move_to_end(key)
            while len(self._held) > self.size:
                self._held.popitem(last=False)
        return text

    def __len__(self) -> int:
        return len(self._held)


SPLIT_TEXTS = SplitTexts(20_000)

MISSING: Any = object()


class ScopeRows:
    """The live memories of recently ranked scopes, as read at a store generation.

    ``generation()`` is the writer's count of committed transactions; every write of
    ``agent_memory`` goes through that writer, so while the count stands still the rows are
    what the store holds. Rows are kept under the count seen before reading them: a commit
    during the read moves the count on, so they are never served after it. Rows read at one
    moment serve later moments too: the query's fade test only drops memories sooner than
    the scorer's exact test would, and time only makes more of them fade. A clock that runs
    backwards reads again.
    """

    def __init__(self, generation: Callable[[], int], max_rows: int = 20_000) -> None:
        self.generation = generation
        self.max_rows = max_rows
        self._held: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()
        self._generation = -1  # what everything held was read at
        self._rows = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], generation: int, now_day: float) -> Any:
        """The rows kept for ``key`` (None: too many to rank in Python), or ``MISSING``."""
        with self._lock:
            kept = self._held.get(key)
            if kept is None or generation != self._generation or now_day < kept[0]:
                return MISSING
            self._held.move_to_end(key)
            return kept[1]

    def put(self, key: tuple[Any, ...], generation: int, now_day: float, rows: Any) -> None:
        """Keep ``rows`` (read at ``generation``). Rows of an older generation can never be
        served again: a newer one drops them all, and a read older than them is not kept.
        At most ``max_rows`` rows are held, the scopes used least recently leave first."""
        with self._lock:
            if generation < self._generation:
                return
            if generation > self._generation:
                self._held.clear()
                self._generation, self._rows = generation, 0
            old = self._held.pop(key, None)
            if old is not None:
                self._rows -= _count(old[1])
            self._held[key] = (now_day, rows)
            self._rows += _count(rows)
            while self._rows > self.max_rows and len(self._held) > 1:
                _, (_, gone) = self._held.popitem(last=False)
                self._rows -= _count(gone)

    def __len__(self) -> int:
        return len(self._held)


def _count(rows: list[Any] | None) -> int:
    return 1 if rows is None else max(len(rows), 1)


@functools.lru_cache(maxsize=4096)
def _tag_tuple(value: str | None) -> tuple[str, ...]:
    """A stored tag list as a tuple (few distinct values, so remembered)."""
    return tuple(_tags(value))


def _plain(value: Any) -> Any:
    """Plain Python values for a row dict: None for NULL/NaT, datetime, int, float."""
    if value is None or isinstance(value, list | dict | str):
        return value
    if _isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _isna(value: Any) -> bool:
    if isinstance(value, list | dict | str):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
    return category


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise ValueError(f"{name} must be an integer from 0 to 1000, got {value!r}")
    return value


__all__ = [
    "EFFECTIVE_SQL",
    "MAX_CONTENT_CHARS",
    "REINFORCE",
    "MemoryStore",
    "Remembered",
    "ScopeRows",
    "SplitTexts",
]
