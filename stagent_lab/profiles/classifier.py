"""Pick a profile for a task by transparent keyword scoring.

No model call and no hidden weights: a profile earns points for each of its terms that appears
in the task as a whole word (case-insensitive) — tags 2, words of its name or id 1, words of its
description 0.5 (stop-words removed). Each term counts once, at its highest weight. The top
score wins unless it is below ``MIN_SCORE`` or tied with the runner-up; then the task goes to
``general`` and ``confident`` is False. Plain plurals are folded on both sides, so
"vulnerabilities" matches "vulnerability". ``reasons`` says exactly which terms matched, so an
operator can see why and override with ``--profile``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from stagent_lab.profiles.model import Profile

TAG_WEIGHT = 2.0
NAME_WEIGHT = 1.0
DESCRIPTION_WEIGHT = 0.5
MIN_SCORE = 2.0
FALLBACK_PROFILE = "general"

_NON_WORD = re.compile(r"[^a-z0-9+#]+")

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers him his how i if in into is it its itself just
    me more most my no nor not now of off on once only or other our ours out over own same she
    should so some such than that the their theirs them then there these they this those through
    to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself etc via using use used uses make makes across every each
    things thing way ways get gets help helps helping work works working task tasks need needs
    like well new one two based clear clearly specific given within without into onto per
    agent agents profile profiles assistant
"""
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())


def _stem(word: str) -> str:
    """Fold plain plurals so 'vulnerabilities' meets 'vulnerability' (applied to both sides)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _normalize(text: str) -> str:
    """Lowercase, stem, punctuation to single spaces, padded: `" term "` tests word bounds."""
    return " " + " ".join(_stem(w) for w in _NON_WORD.sub(" ", text.lower()).split()) + " "


def _words(text: str) -> list[str]:
    words = _NON_WORD.sub(" ", text.lower()).split()
    return [w for w in words if len(w) > 2 and w not in STOP_WORDS]


@dataclass(frozen=True)
class Classification:
    """The chosen profile and the evidence behind it."""

    profile_id: str
    scores: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    confident: bool = False

    def ranked(self) -> list[tuple[str, float]]:
        """(profile id, score), best first; ties broken by id for a stable order."""
        return sorted(self.scores.items(), key=lambda kv: (-kv[1], kv[0]))


def profile_terms(profile: Profile) -> dict[str, tuple[float, str, str]]:
    """Normalized term -> (weight, kind, term as written) for one profile.

    A term that appears under several kinds keeps its strongest weight only.
    """
    terms: dict[str, tuple[float, str, str]] = {}

    def add(term: str, weight: float, kind: str) -> None:
        norm = _normalize(term).strip()
        if not norm or norm in STOP_WORDS:
            return
        if norm not in terms or terms[norm][0] < weight:
            terms[norm] = (weight, kind, term.lower())

    for tag in profile.tags:
        add(tag, TAG_WEIGHT, "tag")
    for word in _words(f"{profile.name} {profile.id}"):
        add(word, NAME_WEIGHT, "name")
    for word in _words(profile.description):
        add(word, DESCRIPTION_WEIGHT, "description")
    return terms


def score_profile(text: str, profile: Profile) -> tuple[float, list[str]]:
    """Score one profile against ``text``; return (score, reasons like 'tag:security')."""
    haystack = _normalize(text)
    score = 0.0
    reasons: list[str] = []
    for norm, (weight, kind, written) in sorted(profile_terms(profile).items()):
        if f" {norm} " in haystack:
            score += weight
            reasons.append(f"{kind}:{written}")
    return score, reasons


def classify(
    text: str, profiles: Iterable[Profile], *, fallback: str = FALLBACK_PROFILE
) -> Classification:
    """Choose the best-fitting profile for a task description. Deterministic."""
    scores: dict[str, float] = {}
    reasons: dict[str, list[str]] = {}
    for profile in sorted(profiles, key=lambda p: p.id):
        scores[profile.id], reasons[profile.id] = score_profile(text, profile)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    if not ranked:
        return Classification(fallback, scores, reasons, confident=False)
    top_id, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else float("-inf")
    if top < MIN_SCORE or top == runner_up:
        return Classification(fallback, scores, reasons, confident=False)
    return Classification(top_id, scores, reasons, confident=True)


__all__ = ["STOP_WORDS", "Classification", "classify", "profile_terms", "score_profile"]
