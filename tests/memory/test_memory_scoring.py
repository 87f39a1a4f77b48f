"""The ranking formula's pure parts: terms, decay, thresholds, the dedupe prefilter."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagent_lab.memory.scoring import (
    effective_confidence,
    jaccard,
    normalize_tags,
    prefilter_words,
    query_terms,
    status_for,
    words,
)

T0 = datetime(2025, 1, 1)


def test_query_terms_drop_stopwords_keep_digit_words_longest_first():
    terms = query_terms("What is the Q3 revenue of ACME and its invoices? the the")
    assert terms == ["invoices", "revenue", "acme", "q3"]


def test_query_terms_are_capped_and_unicode_aware():
    assert query_terms("Überweisung für Müller GmbH") == ["überweisung", "müller", "gmbh", "für"]
    assert len(query_terms(" ".join(f"word{i}" for i in range(50)))) == 8


def test_effective_confidence_is_exponential_in_days():
    assert effective_confidence(700, 10, T0, T0) == 700
    assert effective_confidence(700, 10, T0, T0 + timedelta(days=1)) == pytest.approx(693.0)
    after_30 = effective_confidence(700, 10, T0, T0 + timedelta(days=30))
    assert after_30 == pytest.approx(700 * 0.99**30)
    # No decay rate, no decay; a clock running backwards never raises confidence.
    assert effective_confidence(700, 0, T0, T0 + timedelta(days=365)) == 700
    assert effective_confidence(700, 10, T0, T0 - timedelta(days=5)) == 700


def test_status_thresholds():
    assert [status_for(v) for v in (1000, 300, 299.9, 100, 99.9, 0)] == [
        "active",
        "active",
        "decayed",
        "decayed",
        "archived",
        "archived",
    ]


def test_days_until_decayed_matches_formula():
    # 700 at 1 %/day falls below 300 after ln(3/7)/ln(0.99) ≈ 84.3 days.
    limit = math.log(300 / 700) / math.log(0.99)
    assert 84 < limit < 85
    assert status_for(effective_confidence(700, 10, T0, T0 + timedelta(days=84))) == "active"
    assert status_for(effective_confidence(700, 10, T0, T0 + timedelta(days=85))) == "decayed"


def test_normalize_tags():
    assert normalize_tags([" ACME Corp ", "acme-corp", "billing"]) == ["acme-corp", "billing"]
    assert normalize_tags("single") == ["single"]
    assert normalize_tags(None) == []
    with pytest.raises(ValueError, match="quotes"):
        normalize_tags(['bad"tag'])


@given(
    st.lists(st.sampled_from([f"w{i}" for i in range(30)]), min_size=1, max_size=25),
    st.lists(st.sampled_from([f"w{i}" for i in range(30)]), min_size=1, max_size=25),
)
def test_prefilter_never_misses_a_near_duplicate(a, b):
    """Pigeonhole: a text at Jaccard >= 0.8 always contains one of the probe words."""
    probe = prefilter_words(a)
    if jaccard(a, b) >= 0.8:
        assert set(probe) & set(b)


def test_prefilter_is_small_for_long_texts():
    text = [f"word{i}" for i in range(50)]
    assert len(prefilter_words(text)) == 50 - 40 + 1


def test_words_split_on_punctuation_and_underscore():
    assert words("ACME's Q3-report: revenue_2024!") == [
        "acme",
        "s",
        "q3",
        "report",
        "revenue",
        "2024",
    ]
