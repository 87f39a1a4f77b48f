"""Classifier: transparent keyword routing over the built-in catalog and small fixtures."""

from __future__ import annotations

import pytest

from stagent_lab.profiles import Profile, ProfileRegistry, builtin_profiles_dir, classify


@pytest.fixture(scope="module")
def catalog() -> list[Profile]:
    return ProfileRegistry([builtin_profiles_dir()]).all()


def mk(pid: str, name: str, tags: list[str], description: str = "") -> Profile:
    return Profile.from_data({"id": pid, "name": name, "tags": tags, "description": description})


def test_security_review_goes_to_code_reviewer(catalog):
    c = classify("review the auth middleware for SQL injection", catalog)
    assert c.profile_id == "code-reviewer"
    assert c.confident is True
    assert {"tag:review", "tag:injection", "tag:auth"} <= set(c.reasons["code-reviewer"])
    assert c.scores["code-reviewer"] == max(c.scores.values())


def test_csv_pandas_task_goes_to_data_analyst(catalog):
    c = classify("Load orders.csv with pandas and compute the median basket size", catalog)
    assert c.profile_id == "data-analyst"
    assert c.confident
    assert "tag:csv" in c.reasons["data-analyst"] and "tag:pandas" in c.reasons["data-analyst"]


def test_hello_falls_back_to_general(catalog):
    c = classify("hello", catalog)
    assert c.profile_id == "general"
    assert c.confident is False
    assert set(c.scores) == {p.id for p in catalog}  # every profile is scored
    assert all(score == 0 for score in c.scores.values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Our Kubernetes deployment fails in the CI/CD pipeline", "devops-engineer"),
        ("Plan a 5-day trip with flights and a hotel in Lisbon", "travel-planner"),
        ("A customer is asking for a refund on ticket 4411", "customer-support-agent"),
        ("Write an SOP for vendor onboarding", "operations-coordinator"),
        ("Find unused imports and dead code in this repo", "sweep"),
        ("Write the README and API reference for the tools module", "technical-writer"),
        ("Build a cash-flow forecast and valuation for the board", "financial-analyst"),
    ],
)
def test_catalog_routing(catalog, text, expected):
    assert classify(text, catalog).profile_id == expected


def test_weights_are_tag_2_name_1_description_half():
    p = mk("alpha", "Alpha Widget", ["sprockets"], "Polishes brass gadgets")
    c = classify("sprockets alpha gadgets", [p])
    assert c.scores["alpha"] == 2 + 1 + 0.5
    assert c.reasons["alpha"] == ["name:alpha", "description:gadgets", "tag:sprockets"]


def test_matches_whole_words_case_insensitively():
    p = mk("rev", "Reviewer", ["review", "ci-cd"])
    assert classify("please PREVIEW this", [p]).scores["rev"] == 0
    assert classify("Please REVIEW this", [p]).scores["rev"] == 2
    assert classify("fix our CI/CD", [p]).scores["rev"] == 2
    assert classify("reviews of the ci cd setup", [p]).scores["rev"] == 4


def test_stop_words_in_descriptions_score_nothing():
    p = mk("a", "Zeta", [], "the and with for your")
    assert classify("the and with for your", [p]).scores["a"] == 0


def test_tie_is_not_confident():
    a = mk("aaa", "Aaa", ["widgets"])
    b = mk("bbb", "Bbb", ["widgets"])
    c = classify("widgets please", [b, a])
    assert c.scores == {"aaa": 2.0, "bbb": 2.0}
    assert c.profile_id == "general" and c.confident is False


def test_below_threshold_is_not_confident():
    p = mk("a", "Alpha", [], "sprockets")
    c = classify("sprockets", [p])
    assert c.scores["a"] == 0.5
    assert c.profile_id == "general" and not c.confident


def test_deterministic_regardless_of_input_order(catalog):
    text = "analyze revenue margin and forecast from the financial statements csv"
    first = classify(text, catalog)
    second = classify(text, list(reversed(catalog)))
    assert first == second
    assert first.ranked()[0][0] == first.profile_id


def test_term_counts_once_at_its_best_weight():
    p = mk("a", "Security Scanner", ["security"], "security security security")
    c = classify("security", [p])
    assert c.scores["a"] == 2
    assert c.reasons["a"] == ["tag:security"]
