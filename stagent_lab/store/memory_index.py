"""The memory ranking index: what lets DuckDB rank 100,000 memories without reading their text.

Two things are kept up to date with every write of ``agent_memory`` (by ``MemoryStore``):

* **Precomputed decay.** ``decay_ln`` (the log of a day's decay factor), ``anchor_day`` and
  ``updated_day`` (epoch days of the decay anchor and of the last update) and ``fade_day`` (the
  day the memory's decayed confidence falls below ``DECAYED_BELOW``). Whether a memory is still
  live is then one comparison, ``fade_day >= now``, and its decayed confidence one ``exp`` —
  no ``pow`` or date arithmetic per row.
* **A word index.** ``agent_memory_words`` holds one row per distinct indexed word of each
  memory (its 64-bit hash, ``wid``) and ``agent_memory_vocab`` every indexed word once. A query
  term matches the words of the vocabulary it starts (``refund`` → ``refund``, ``refunds``), and
  their postings say which memories contain it: relevance and document frequencies come from a
  join on integers, and the text of a memory is read only for the k winners. Stop words and
  one-letter words are not indexed (no query term is one).

The same words make near-duplicate detection an index lookup: a memory within Jaccard 0.8 of a
new text shares at least ``need`` of its indexed words (:func:`near_duplicate_need`), so the
candidates are the memories with that many postings among the new text's words.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import duckdb

from stagent_lab.store.memory_scoring import (
    DECAYED_BELOW,
    NEAR_DUPLICATE,
    RECENCY_DAYS,
    STOPWORDS,
    WEIGHTS,
    indexed_words,
)

EPOCH = datetime(1970, 1, 1)
US_PER_DAY = 86_400_000_000.0
NEVER = 1e300  # fade_day of a memory that does not decay
FADE_SLACK_DAYS = 1e-6  # the fade_day test only prefilters; the decayed confidence decides


def derived_sql(
    confidence: str = "confidence",
    decay_rate: str = "decay_rate",
    anchor: str = "coalesce(last_accessed_at, updated_at)",
    updated: str = "updated_at",
) -> dict[str, str]:
    """SQL for the derived columns, given SQL for the base values they come from (the row's
    own columns by default; an UPDATE passes the new values it sets)."""
    decay_ln = (
        f"(CASE WHEN {decay_rate} >= 1000 THEN -1e15 WHEN {decay_rate} <= 0 THEN 0.0 "
        f"ELSE ln(1 - {decay_rate} / 1000.0) END)"
    )
    anchor_day = f"(epoch_us({anchor}) / {US_PER_DAY})"
    fade_day = (
        f"CASE WHEN {confidence} < {DECAYED_BELOW} THEN -{NEVER} "
        f"WHEN {decay_rate} <= 0 THEN {NEVER} "
        f"ELSE {anchor_day} + (ln({DECAYED_BELOW}) - ln({confidence})) / {decay_ln} END"
    )
    return {
        "decay_ln": decay_ln,
        "anchor_day": anchor_day,
        "updated_day": f"(epoch_us({updated}) / {US_PER_DAY})",
        "fade_day": fade_day,
    }


DERIVED_COLUMNS = tuple(derived_sql())
DERIVED_SET = ", ".join(f"{col} = {expr}" for col, expr in derived_sql().items())


def day_number(ts: datetime) -> float:
    """Epoch days of a naive UTC timestamp (what ``anchor_day`` and ``updated_day`` hold)."""
    return (ts - EPOCH) / _ONE_DAY


_ONE_DAY = datetime(1970, 1, 2) - EPOCH


def near_duplicate_need(text_words: Sequence[str]) -> int:
    """How many indexed words a memory within Jaccard ``NEAR_DUPLICATE`` of a text with
    ``text_words`` must share with it (0: the index cannot narrow the search).

    J(A, B) >= t means |A ∩ B| >= t·|A ∪ B| >= t·|A|; at most the unindexed words of A are
    shared without an index entry.
    """
    distinct = set(text_words)
    need = math.ceil(NEAR_DUPLICATE * len(distinct) - 1e-9)
    unindexed = sum(1 for w in distinct if len(w) < 2 or w in STOPWORDS)
    return max(0, need - unindexed)


# ---- the migration and rebuilding ----------------------------------------------------------


def create_index(con: duckdb.DuckDBPyConnection) -> None:
    """Add the derived columns and the word tables, then fill them from the stored rows."""
    for col in DERIVED_COLUMNS:
        con.execute(f"ALTER TABLE agent_memory ADD COLUMN IF NOT EXISTS {col} DOUBLE")
    con.execute(
        "CREATE TABLE IF NOT EXISTS agent_memory_words "
        "(memory_id VARCHAR NOT NULL, wid UBIGINT NOT NULL)"
    )
    con.execute("CREATE TABLE IF NOT EXISTS agent_memory_vocab (word VARCHAR PRIMARY KEY)")
    rebuild(con)


def rebuild(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute every derived column and the whole word index from ``agent_memory``.

    For the migration and for bulk loads that bypass ``MemoryStore`` (the benchmarks).
    Returns the number of memories indexed.
    """
    con.execute(f"UPDATE agent_memory SET {DERIVED_SET}")
    con.execute("DELETE FROM agent_memory_words")
    rows = con.execute("SELECT id, content FROM agent_memory").fetchall()
    add_words(con, [(mid, indexed_words(content)) for mid, content in rows])
    return len(rows)


def refresh_derived(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> None:
    """Recompute the derived columns of these memories (after their base columns changed)."""
    if ids:
        con.execute(
            f"UPDATE agent_memory SET {DERIVED_SET} FROM (SELECT unnest($ids) AS id) t "
            "WHERE agent_memory.id = t.id",
            {"ids": list(ids)},
        )


def add_words(con: duckdb.DuckDBPyConnection, entries: Iterable[tuple[str, list[str]]]) -> None:
    """Index the words of memories: ``(memory_id, indexed_words)`` pairs (two statements)."""
    ids: list[str] = []
    found: list[str] = []
    for mid, ws in entries:
        ids.extend([mid] * len(ws))
        found.extend(ws)
    if not found:
        return
    # Lists bound as parameters and unnested: cheaper than registering a table for the
    # handful of rows a batch usually brings.
    con.execute(
        "INSERT INTO agent_memory_words SELECT unnest($ids), hash(unnest($words))",
        {"ids": ids, "words": found},
    )
    con.execute(
        "INSERT OR IGNORE INTO agent_memory_vocab SELECT DISTINCT unnest($words)",
        {"words": found},
    )


def drop_words(con: duckdb.DuckDBPyConnection, ids: Sequence[str]) -> None:
    if ids:
        con.execute("DELETE FROM agent_memory_words WHERE memory_id = ANY($ids)", {"ids": ids})


# ---- near-duplicate candidates -------------------------------------------------------------


def duplicate_candidates(
    con: duckdb.DuckDBPyConnection,
    probes: Sequence[tuple[int, str, str | None, list[str], int]],
    now: datetime,
) -> dict[int, list[tuple[str, str, str, str | None, float]]]:
    """Memories that may be near-duplicates of several texts, in one statement.

    ``probes``: ``(n, profile_id, project_id, indexed_words, need)``. Returns, per ``n``, the
    memories of that profile and project scope holding at least ``need`` of the words, as
    ``(id, content, status, tags, effective_confidence)``; the caller checks the exact Jaccard.
    """
    out: dict[int, list[tuple[str, str, str, str | None, float]]] = {}
    nums: list[int] = []
    profiles: list[str] = []
    projects: list[str | None] = []
    needs: list[int] = []
    found: list[str] = []
    for n, profile_id, project_id, ws, need in probes:
        out[n] = []
        for w in ws:
            nums.append(n)
            profiles.append(profile_id)
            projects.append(project_id)
            needs.append(need)
            found.append(w)
    if not found:
        return out
    rows = con.execute(
        f"""
        WITH probe AS (
            SELECT unnest($nums) AS n, unnest($profiles) AS profile_id,
                   unnest($projects) AS project_id, unnest($needs) AS need,
                   hash(unnest($words)) AS wid
        ), hits AS (
            SELECT p.n, w.memory_id, any_value(p.profile_id) AS profile_id,
                   any_value(p.project_id) AS project_id
            FROM probe p JOIN agent_memory_words w ON w.wid = p.wid
            GROUP BY p.n, w.memory_id
            HAVING count(*) >= any_value(p.need)
        )
        SELECT h.n, m.id, m.content, m.status, m.tags, {effective_sql("m.")} AS eff
        FROM hits h JOIN agent_memory m ON m.id = h.memory_id
        WHERE m.profile_id = h.profile_id AND m.project_id IS NOT DISTINCT FROM h.project_id
        ORDER BY h.n, m.id
        """,
        {
            "nums": nums,
            "profiles": profiles,
            "projects": projects,
            "needs": needs,
            "words": found,
            "now_day": day_number(now),
        },
    ).fetchall()
    for n, mid, content, status, tags, eff in rows:
        out[n].append((mid, content, status, tags, eff))
    return out


# ---- ranking -------------------------------------------------------------------------------


def effective_sql(prefix: str = "") -> str:
    """Decayed confidence at ``$now_day`` from the precomputed columns."""
    p = prefix
    return f"({p}confidence * exp({p}decay_ln * greatest($now_day - {p}anchor_day, 0)))"


def recency_sql(prefix: str = "") -> str:
    return f"exp(-greatest($now_day - {prefix}updated_day, 0) / {RECENCY_DAYS})"


def ranked_sql(*, project: bool, tags: bool, columns: str) -> str:
    """The top-k query: live memories of a profile, scored, best first.

    Parameters: ``$profile``, ``$now_day``, ``$k``, ``$terms`` (the query terms, possibly
    empty), and ``$project`` / ``$tagpat`` when asked for. ``columns`` are selected from ``m``
    (the memory row) for the k winners, before the score columns. The expressions stay small
    whatever the number of terms: per (memory, term) pairs and per-term document frequencies
    are rows, not columns (planning a wide expression costs more than running it).
    """
    project_sql = (
        "(m.project_id IS NULL OR m.project_id = $project)" if project else "m.project_id IS NULL"
    )
    tag_sql = (
        "CASE WHEN length(m.tags) > 2 AND regexp_matches(m.tags, $tagpat) THEN 1.0 ELSE 0.0 END"
        if tags
        else "0.0"
    )
    return f"""
        WITH live AS MATERIALIZED (
            SELECT id, eff, rec, tag_match FROM (
                SELECT m.id, {effective_sql("m.")} AS eff, {recency_sql("m.")} AS rec,
                       {tag_sql} AS tag_match
                FROM agent_memory m
                WHERE m.profile_id = $profile AND m.status = 'active' AND {project_sql}
                  AND m.fade_day >= $now_day - {FADE_SLACK_DAYS}
            ) WHERE eff >= {DECAYED_BELOW}
        ), terms AS (
            SELECT unnest($terms) AS term, generate_subscripts($terms, 1) AS i
        ), pairs AS (
            SELECT DISTINCT w.memory_id, tw.i
            FROM agent_memory_words w JOIN (
                SELECT hash(v.word) AS wid, t.i
                FROM agent_memory_vocab v JOIN terms t ON starts_with(v.word, t.term)
            ) tw ON w.wid = tw.wid
            WHERE w.memory_id IN (SELECT id FROM live)
        ), weights AS (
            SELECT t.i, ln(1 + (n.n - coalesce(d.df, 0) + 0.5) / (coalesce(d.df, 0) + 0.5)) AS w
            FROM terms t
            CROSS JOIN (SELECT count(*) AS n FROM live) n
            LEFT JOIN (SELECT i, count(*) AS df FROM pairs GROUP BY i) d ON d.i = t.i
        ), relevance AS (
            SELECT p.memory_id, sum(w.w) / (SELECT sum(w) FROM weights) AS relevance
            FROM pairs p JOIN weights w ON w.i = p.i
            GROUP BY p.memory_id
        ), best AS (
            SELECT live.*, coalesce(r.relevance, 0.0) AS relevance,
                   {WEIGHTS["relevance"]} * coalesce(r.relevance, 0.0)
                   + {WEIGHTS["confidence"]} * eff / 1000.0
                   + {WEIGHTS["recency"]} * rec + {WEIGHTS["tag"]} * tag_match AS score
            FROM live LEFT JOIN relevance r ON r.memory_id = live.id
            ORDER BY score DESC, id
            LIMIT $k
        )
        SELECT {columns}, best.eff AS effective_confidence, best.rec AS recency,
               best.tag_match, best.relevance, best.score
        FROM best JOIN agent_memory m ON m.id = best.id
        ORDER BY best.score DESC, best.id
    """


def live_rows_sql(*, project: bool) -> str:
    """The live memories of a scope, unranked, at most ``$limit`` (the ``live`` filter of
    :func:`ranked_sql` before the exact decayed-confidence test, which the scorer applies).

    The text is not read: ``content_hash`` (DuckDB's 64-bit ``hash``) tells a reader whether
    the words it split earlier are still that memory's (see :func:`contents_sql`).
    Parameters: ``$profile``, ``$now_day``, ``$limit``, and ``$project`` when asked for."""
    project_sql = (
        "(m.project_id IS NULL OR m.project_id = $project)" if project else "m.project_id IS NULL"
    )
    return f"""
        SELECT m.id, m.category, hash(m.content) AS content_hash, m.confidence, m.decay_rate,
               m.last_accessed_at, m.updated_at, m.tags
        FROM agent_memory m
        WHERE m.profile_id = $profile AND m.status = 'active' AND {project_sql}
          AND m.fade_day >= $now_day - {FADE_SLACK_DAYS}
        LIMIT $limit
    """


def contents_sql() -> str:
    """The text and its ``content_hash`` of the memories ``$ids``."""
    return "SELECT id, hash(content), content FROM agent_memory WHERE id = ANY($ids)"


def ranked_params(
    profile_id: str,
    terms: list[str],
    now: datetime,
    k: int,
    *,
    project_id: str | None = None,
    tagpat: str | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "profile": profile_id,
        "now_day": day_number(now),
        "k": int(k),
        "terms": list(terms),
    }
    if project_id is not None:
        params["project"] = project_id
    if tagpat is not None:
        params["tagpat"] = tagpat
    return params


__all__ = [
    "DERIVED_COLUMNS",
    "add_words",
    "contents_sql",
    "create_index",
    "day_number",
    "derived_sql",
    "drop_words",
    "duplicate_candidates",
    "indexed_words",
    "live_rows_sql",
    "near_duplicate_need",
    "ranked_params",
    "ranked_sql",
    "rebuild",
    "refresh_derived",
]
