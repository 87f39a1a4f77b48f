"""Repository: ``agent_memory`` — every read and write of episodic memory, in DuckDB SQL.

A ``MemoryStore`` wraps one connection or cursor: the engine's writer connection for writes
(inside the writer's transaction, in order with the task's other writes), a reader cursor for
reads. Time is injectable: every method takes ``now=`` and the store has a ``clock``, so decay
can be tested over simulated days without sleeping.

Retrieval pushes everything into one query: the profile/status/project filter, decayed
confidence, the term matches (a substring test per term, confirmed as a word start by a regular
expression only where the substring occurs), idf weights from the candidates' document
frequencies, and the top-k; the text of the k winners is read last. Nothing loops over rows in
Python.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from stagent_lab._text import repair_text
from stagent_lab.errors import StagentError
from stagent_lab.store.memory_scoring import (
    ARCHIVED_BELOW,
    CATEGORIES,
    DECAYED_BELOW,
    DEFAULT_CONFIDENCE,
    DEFAULT_DECAY,
    NEAR_DUPLICATE,
    RECENCY_DAYS,
    WEIGHTS,
    WORD_CHARS_RE2,
    jaccard,
    normalize_tags,
    prefilter_words,
    query_terms,
    words,
)
from stagent_lab.store.migrations import MigrationSet, register_set
from stagent_lab.store.rows import first_row

MAX_CONTENT_CHARS = 2000
REINFORCE = 100  # confidence added when a near-identical memory is remembered again
WORD_START = f"(?:^|[^{WORD_CHARS_RE2}])"  # RE2: the match begins a word (see scoring.py)
WORD_END = f"(?:$|[^{WORD_CHARS_RE2}])"  # ... and ends one

_DAYS = "greatest(date_diff('millisecond', {col}, $now), 0) / 86400000.0"
EFFECTIVE_SQL = (
    "(confidence * pow(1 - least(greatest(decay_rate, 0), 1000) / 1000.0, "
    + _DAYS.format(col="coalesce(last_accessed_at, updated_at)")
    + "))"
)
RECENCY_SQL = f"exp(-{_DAYS.format(col='updated_at')} / {RECENCY_DAYS})"

COLUMNS = (
    "id, profile_id, project_id, category, content, confidence, source_task_id, tags, "
    "last_accessed_at, access_count, decay_rate, status, created_at, updated_at"
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Remembered:
    """What a write did: ``added`` a row, ``reinforced`` a near-identical one, or ``refused``."""

    id: str | None
    action: Literal["added", "reinforced", "refused"]
    confidence: int | None = None
    reason: str | None = None


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


class MemoryStore:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        clock: Callable[[], datetime] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.con = con
        self.clock: Callable[[], datetime] = clock or utcnow
        self._redact = redact or (lambda s: s)

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
        now = self.now(now)
        text = self._clean_content(content)
        _check_category(category)
        tag_list = normalize_tags(tags)
        conf = DEFAULT_CONFIDENCE if confidence is None else _check_int(confidence, "confidence")
        rate = (
            DEFAULT_DECAY[category] if decay_rate is None else _check_int(decay_rate, "decay_rate")
        )
        dup_live, dup_rejected = self._near_duplicates(profile_id, project_id, text, now)
        if dup_live is not None:
            new_conf = min(1000, max(round(float(dup_live["eff"])), conf) + REINFORCE)
            merged = normalize_tags([*_tags(dup_live["tags"]), *tag_list])
            self.con.execute(
                "UPDATE agent_memory SET confidence = ?, status = 'active', tags = ?, "
                "last_accessed_at = ?, updated_at = ? WHERE id = ?",
                [new_conf, json.dumps(merged, ensure_ascii=False), now, now, dup_live["id"]],
            )
            return Remembered(dup_live["id"], "reinforced", new_conf)
        if dup_rejected is not None and not allow_rejected:
            return Remembered(
                dup_rejected["id"],
                "refused",
                None,
                f"the operator rejected a memory like this one ({dup_rejected['id']})",
            )
        mid = uuid.uuid4().hex[:12]
        self.con.execute(
            f"INSERT INTO agent_memory ({COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, NULL, 0, ?, 'active', ?, ?)",
            [
                mid,
                profile_id,
                project_id,
                category,
                text,
                conf,
                source_task_id,
                json.dumps(tag_list, ensure_ascii=False),
                rate,
                now,
                now,
            ],
        )
        return Remembered(mid, "added", conf)

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
        now = self.now(now)
        text = self._clean_content(content)
        confidence = 600 if status == "completed" else 500
        row = first_row(
            self.con.execute(
                "SELECT id, status FROM agent_memory WHERE source_task_id = ? "
                "AND category = 'outcome' ORDER BY created_at LIMIT 1",
                [task_id],
            )
        )
        tags = json.dumps(["outcome", status])
        if row is not None:
            if row[1] == "rejected":
                return Remembered(row[0], "refused", None, "the operator rejected this outcome")
            self.con.execute(
                "UPDATE agent_memory SET content = ?, confidence = ?, tags = ?, status = 'active', "
                "last_accessed_at = NULL, updated_at = ? WHERE id = ?",
                [text, confidence, tags, now, row[0]],
            )
            return Remembered(row[0], "reinforced", confidence)
        return self.add(
            profile_id,
            text,
            category="outcome",
            tags=["outcome", status],
            confidence=confidence,
            project_id=project_id,
            source_task_id=task_id,
            now=now,
        )

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
        return self.get(memory_id, now=now)

    def reject(self, memory_id: str, *, now: datetime | None = None) -> dict[str, Any]:
        """Mark a memory wrong: it is never retrieved again and blocks agents re-learning it."""
        now = self.now(now)
        self.get(memory_id, now=now)
        self.con.execute(
            "UPDATE agent_memory SET status = 'rejected', updated_at = ? WHERE id = ?",
            [now, memory_id],
        )
        return self.get(memory_id, now=now)

    def delete(self, memory_id: str) -> None:
        gone = self.con.execute(
            "DELETE FROM agent_memory WHERE id = ? RETURNING id", [memory_id]
        ).fetchall()
        if not gone:
            raise KeyError(f"no memory with id {memory_id!r}")

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
        if not ids:
            return
        now = self.now(now)
        self.con.execute(
            f"UPDATE agent_memory SET confidence = CAST(round({EFFECTIVE_SQL}) AS INTEGER), "
            "last_accessed_at = $now, access_count = access_count + 1 "
            "WHERE list_contains($ids, id)",
            {"now": now, "ids": list(ids)},
        )

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
        params: dict[str, Any] = {"now": now, "profile": profile_id, "k": int(k)}
        project_sql = "project_id IS NULL"
        if project_id is not None:
            project_sql = "(project_id IS NULL OR project_id = $project)"
            params["project"] = project_id
        hit_cols, df_cols, weights, totals = [], [], [], []
        for i, term in enumerate(terms):
            # A cheap substring test first; the word-start regex only where it can match.
            params[f"s{i}"] = term
            params[f"t{i}"] = WORD_START + re.escape(term)
            hit_cols.append(
                f"CASE WHEN contains(lc, $s{i}) THEN regexp_matches(lc, $t{i}) "
                f"ELSE false END AS h{i}"
            )
            df_cols.append(f"count_if(h{i}) AS d{i}")
            w = f"ln(1 + (n - d{i} + 0.5) / (d{i} + 0.5))"
            weights.append(f"h{i}::DOUBLE * {w}")
            totals.append(w)
        if wanted:
            params["tagpat"] = '"(?:' + "|".join(re.escape(t) for t in wanted) + ')"'
            tag_sql = (
                "CASE WHEN length(tags) > 2 AND regexp_matches(tags, $tagpat) THEN 1.0 ELSE 0.0 END"
            )
        else:
            tag_sql = "0.0"
        relevance = f"(({' + '.join(weights)}) / ({' + '.join(totals)}))" if terms else "0.0"
        hits = "".join(f", {c}" for c in hit_cols)
        stats = "".join(f", {c}" for c in df_cols)
        full = ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))
        # Scores are computed on ids and numbers only; the text of the k winners is joined
        # back at the end, so no string column is carried through the pipeline.
        sql = f"""
            WITH h AS MATERIALIZED (
                SELECT id, effective_confidence, recency, tag_match{hits}
                FROM (
                    SELECT id, lower(content) AS lc, {tag_sql} AS tag_match,
                           {EFFECTIVE_SQL} AS effective_confidence, {RECENCY_SQL} AS recency
                    FROM agent_memory
                    WHERE profile_id = $profile AND status = 'active' AND {project_sql}
                )
                WHERE effective_confidence >= {DECAYED_BELOW}
            ), st AS (SELECT count(*) AS n{stats} FROM h),
            r AS (
                SELECT id, effective_confidence, recency, tag_match, {relevance} AS relevance
                FROM h, st
            ), best AS (
                SELECT *, {WEIGHTS["relevance"]} * relevance
                          + {WEIGHTS["confidence"]} * effective_confidence / 1000.0
                          + {WEIGHTS["recency"]} * recency
                          + {WEIGHTS["tag"]} * tag_match AS score
                FROM r
                ORDER BY score DESC, id
                LIMIT $k
            )
            SELECT {full}, best.effective_confidence, best.recency, best.tag_match,
                   best.relevance, best.score
            FROM best JOIN agent_memory m ON m.id = best.id
            ORDER BY best.score DESC, best.id
            """
        df = self.con.execute(sql, params).df()
        df["tags"] = df["tags"].map(_tags)
        return df.reset_index(drop=True)

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

    def _near_duplicates(
        self, profile_id: str, project_id: str | None, text: str, now: datetime
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Best live and best rejected near-duplicate in the same profile and project scope.

        SQL narrows the candidates with whole-word matches (any of the pigeonhole probe words
        and, for short texts, at least as many of the text's words as a near-duplicate must
        share); Python computes the exact Jaccard similarity on what is left.
        """
        mine = words(text)
        distinct = sorted(set(mine))
        probe = prefilter_words(mine)
        params: dict[str, Any] = {
            "now": now,
            "profile": profile_id,
            "project": project_id,
            "probe": WORD_START + "(?:" + "|".join(re.escape(w) for w in probe) + ")" + WORD_END,
        }
        # CASE fixes the order: the cheap tests first, the per-word count only for survivors.
        test = "regexp_matches(lc, $probe)"
        if len(probe) <= 4:
            for i, w in enumerate(probe):
                params[f"p{i}"] = w
            gate = " OR ".join(f"contains(lc, $p{i})" for i in range(len(probe)))
            test = f"CASE WHEN {gate} THEN {test} ELSE false END"
        if len(distinct) <= 16:
            need = math.ceil(NEAR_DUPLICATE * len(distinct) - 1e-9)
            parts = []
            for i, w in enumerate(distinct):
                params[f"w{i}"] = WORD_START + re.escape(w) + WORD_END
                parts.append(f"regexp_matches(lc, $w{i})::INT")
            test = f"CASE WHEN {test} THEN ({' + '.join(parts)}) >= {need} ELSE false END"
        rows = self.con.execute(
            "SELECT id, content, status, tags, "
            f"{EFFECTIVE_SQL} AS eff FROM ("
            "  SELECT *, lower(content) AS lc FROM agent_memory"
            "  WHERE profile_id = $profile AND project_id IS NOT DISTINCT FROM $project"
            f") WHERE {test}",
            params,
        ).fetchall()
        live: tuple[float, dict[str, Any]] | None = None
        rejected: tuple[float, dict[str, Any]] | None = None
        rank = {"active": 0, "decayed": 1, "archived": 2}
        for mid, content, status, tags, eff in rows:
            sim = jaccard(mine, words(content))
            if sim < NEAR_DUPLICATE:
                continue
            row = {"id": mid, "status": status, "tags": tags, "eff": eff}
            if status == "rejected":
                if rejected is None or sim > rejected[0]:
                    rejected = (sim, row)
            elif live is None or (rank[status], -sim) < (rank[live[1]["status"]], -live[0]):
                live = (sim, row)
        return (live[1] if live else None), (rejected[1] if rejected else None)


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


__all__ = ["EFFECTIVE_SQL", "MAX_CONTENT_CHARS", "MemoryStore", "Remembered"]
