"""How memories are ranked: the pure half (no database), shared by the SQL and by tests.

A memory's score for a task is a weighted sum of four parts, each in [0, 1]::

    score = 0.45 * relevance + 0.30 * effective / 1000 + 0.15 * recency + 0.10 * tag_match

* ``effective`` — decayed confidence: ``confidence * (1 - decay_rate / 1000) ** days`` where
  ``days`` counts from ``last_accessed_at`` (or ``updated_at`` when never accessed). Retrieving a
  memory folds the decay so far into ``confidence`` and restarts the clock, so reading a memory
  neither refreshes nor double-counts its decay.
* ``relevance`` — IDF-weighted coverage of the task's query terms: the sum of the BM25 idf of
  every query term the memory contains, divided by the sum over all query terms. A term is
  contained when some indexed word of the memory *starts with* it ("refund" finds "refunds");
  indexed words are the memory's words without stop words and single letters (no query term
  is either), exactly what the word index in ``memory_index.py`` holds.
* ``recency`` — ``exp(-days_since(updated_at) / 30)``: knowledge written or confirmed lately.
* ``tag_match`` — 1 when one of the memory's tags equals a query term or a requested tag.

The SQL in ``memory_index.py`` computes the same numbers over a whole profile in one query; the
plain-Python functions here are the reference (tests compare the two), what a run uses for a
scope of at most ``memory.SMALL_SET`` memories, and the benchmark's naive baseline.
"""

from __future__ import annotations

import heapq
import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import datetime

CATEGORIES: tuple[str, ...] = ("fact", "preference", "pattern", "outcome")
STATUSES: tuple[str, ...] = ("active", "decayed", "archived", "rejected")

# Default decay per category, in thousandths per day: preferences last, outcomes fade.
DEFAULT_DECAY: dict[str, int] = {"fact": 10, "preference": 5, "pattern": 10, "outcome": 20}
DEFAULT_CONFIDENCE = 700

# Effective confidence below these moves an active memory to decayed / archived.
DECAYED_BELOW = 300
ARCHIVED_BELOW = 100

WEIGHTS: dict[str, float] = {"relevance": 0.45, "confidence": 0.30, "recency": 0.15, "tag": 0.10}
RECENCY_DAYS = 30.0
MAX_QUERY_TERMS = 8
NEAR_DUPLICATE = 0.8  # Jaccard similarity of word sets at or above which two memories are one

_WORD = re.compile(r"[^\W_]+")
_STOPWORD_TEXT = """
a about after again all also am an and any are as at be been before being but by can could
did do does doing done for from had has have having he her here hers him his how i if in
into is it its itself just me more most my no nor not now of off on once only or other our
ours out over own please same she should so some such than that the their theirs them then
there these they this those through to too under until up us very was we were what when
where which while who whom why will with would you your yours
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def words(text: str) -> list[str]:
    """Lower-cased letter/digit runs: the unit every comparison works on."""
    return _WORD.findall(text.lower())


def query_terms(text: str, limit: int = MAX_QUERY_TERMS) -> list[str]:
    """The few words of a task worth matching: no stop words, longest (most specific) first.

    Short words count only when they carry a digit ("q3", "v2"). The cap keeps retrieval
    cost flat for long prompts.
    """
    seen: dict[str, int] = {}
    for i, w in enumerate(words(text)):
        if w in STOPWORDS or w in seen:
            continue
        if len(w) >= 3 or (len(w) == 2 and any(c.isdigit() for c in w)):
            seen[w] = i
    ranked = sorted(seen, key=lambda w: (-len(w), seen[w]))
    return ranked[:limit]


def indexed_words(text: str) -> list[str]:
    """The distinct words a memory is found by: no stop words, no single letters; sorted."""
    return sorted({w for w in words(text) if len(w) >= 2 and w not in STOPWORDS})


def normalize_tags(tags: Iterable[str] | str | None) -> list[str]:
    """Tags are short lower-case labels; spaces become '-', quotes are not allowed."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError(f"a tag must be text, got {tag!r}")
        t = "-".join(tag.strip().lower().split())
        if not t:
            continue
        if len(t) > 40 or any(c in t for c in '"\\\x00'):
            raise ValueError(f"invalid tag {tag!r}: at most 40 characters, no quotes")
        if t not in out:
            out.append(t)
    if len(out) > 20:
        raise ValueError("at most 20 tags per memory")
    return out


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    sa = a if isinstance(a, set | frozenset) else set(a)
    sb = b if isinstance(b, set | frozenset) else set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def prefilter_words(content_words: Sequence[str], threshold: float = NEAR_DUPLICATE) -> list[str]:
    """Words of which any near-duplicate must contain at least one (pigeonhole).

    A memory B with jaccard(A, B) >= t shares at least ceil(t * |A|) of A's distinct words, so
    it contains at least one of any |A| - ceil(t * |A|) + 1 of them. The longest are chosen:
    they are the rarest, so the database prefilter lets few rows through.
    """
    distinct = sorted(set(content_words), key=lambda w: (-len(w), w))
    need = math.ceil(threshold * len(distinct) - 1e-9)
    return distinct[: max(1, len(distinct) - need + 1)]


# ---- the reference scorer (plain Python) -----------------------------------------------


def days_between(start: datetime | None, end: datetime) -> float:
    if start is None:
        return 0.0
    return max((end - start).total_seconds(), 0.0) / 86400.0


def effective_confidence(
    confidence: float,
    decay_rate: float,
    anchor: datetime | None,
    now: datetime,
) -> float:
    """``confidence * (1 - decay_rate/1000) ** days`` with days since ``anchor``."""
    rate = min(max(decay_rate, 0.0), 1000.0) / 1000.0
    return confidence * (1.0 - rate) ** days_between(anchor, now)


def status_for(effective: float) -> str:
    if effective < ARCHIVED_BELOW:
        return "archived"
    if effective < DECAYED_BELOW:
        return "decayed"
    return "active"


def idf(n: int, df: int) -> float:
    """BM25's idf, always positive: ln(1 + (n - df + 0.5) / (df + 0.5))."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


# Characters that continue a word when SQL checks a word boundary with a regular expression
# (the near-duplicate search for texts made only of stop words): digits, a-z, Latin-1/Extended,
# Greek, Cyrillic. A short explicit class, because RE2 compiles \p{L} slowly (milliseconds per
# pattern). Other scripts count as separators there, which only loosens the boundary test.
WORD_CHARS = "0-9a-z\u00df-\u024f\u0370-\u03ff\u0400-\u04ff"
WORD_CHARS_RE2 = "0-9a-z\\x{00DF}-\\x{024F}\\x{0370}-\\x{03FF}\\x{0400}-\\x{04FF}"


def score_rows(
    rows: Sequence[dict],
    query: str,
    *,
    now: datetime,
    tags: Iterable[str] = (),
    k: int = 8,
) -> list[dict]:
    """Score memory rows (dicts with the table's columns); best ``k`` first.

    Applies the same filter as retrieval (effective confidence at least ``DECAYED_BELOW``);
    status and profile filtering are the caller's job. A row may carry its ``words``
    (``indexed_words(content)``) so they are not split again.

    A query term is matched against the rows' vocabulary once (sorted, so the words a term
    starts are one contiguous run); a row holds the term when its word set meets that run.
    """
    terms = query_terms(query)
    wanted_tags = set(terms) | set(normalize_tags(list(tags)))
    live: list[tuple[dict, float]] = []
    for row in rows:
        anchor = row.get("last_accessed_at") or row["updated_at"]
        eff = effective_confidence(row["confidence"], row["decay_rate"], anchor, now)
        if eff >= DECAYED_BELOW:
            live.append((row, eff))
    n = len(live)
    hits: list[list[int]] = [[] for _ in terms]
    if terms:
        word_sets = [
            frozenset(indexed_words(row["content"]) if row.get("words") is None else row["words"])
            for row, _ in live
        ]
        vocab = sorted(frozenset().union(*word_sets))
        for found, term in zip(hits, terms, strict=True):
            lo = hi = bisect_left(vocab, term)
            while hi < len(vocab) and vocab[hi].startswith(term):
                hi += 1
            started = frozenset(vocab[lo:hi])  # the words this term starts
            if started:
                found.extend(j for j, ws in enumerate(word_sets) if not ws.isdisjoint(started))
    weights = [idf(n, len(found)) for found in hits]
    total = sum(weights)
    rel = [0.0] * n
    if total:
        for w, found in zip(weights, hits, strict=True):
            for j in found:
                rel[j] += w
    scored: list[tuple[float, str, int, float, float]] = []
    for j, (row, eff) in enumerate(live):
        relevance = rel[j] / total if total else 0.0
        rec = math.exp(-days_between(row["updated_at"], now) / RECENCY_DAYS)
        tag = 1.0 if wanted_tags and wanted_tags.intersection(row.get("tags_list") or ()) else 0.0
        score = (
            WEIGHTS["relevance"] * relevance
            + WEIGHTS["confidence"] * eff / 1000.0
            + WEIGHTS["recency"] * rec
            + WEIGHTS["tag"] * tag
        )
        scored.append((-score, row["id"], j, rec, tag))
    out = []
    for neg, _, j, rec, tag in heapq.nsmallest(k, scored):
        row, eff = live[j]
        out.append(
            {
                **row,
                "effective_confidence": eff,
                "relevance": rel[j] / total if total else 0.0,
                "recency": rec,
                "tag_match": tag,
                "score": -neg,
            }
        )
    return out


__all__ = [
    "ARCHIVED_BELOW",
    "CATEGORIES",
    "DECAYED_BELOW",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_DECAY",
    "MAX_QUERY_TERMS",
    "NEAR_DUPLICATE",
    "STATUSES",
    "WEIGHTS",
    "effective_confidence",
    "indexed_words",
    "jaccard",
    "normalize_tags",
    "prefilter_words",
    "query_terms",
    "score_rows",
    "status_for",
    "words",
]
