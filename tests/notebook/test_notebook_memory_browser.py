"""The memory browser: state, filters and the operator's actions, driven as the page drives them.

A click arrives as a custom comm message; here the same handler gets the same content on a
separate thread (as a kernel subshell would), and the table is read back from the synced traits.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from datetime import timedelta

import pandas as pd
import pytest
import traitlets

from stagent_lab.errors import ProfileNotFoundError
from stagent_lab.notebook import MemoryBrowser, set_lab
from tests.conftest import write_profile


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def click(widget, **content):
    """Send a front-end message from another thread and wait for its acknowledgement (which
    the hub sends after re-reading the store, so the table is fresh when this returns)."""
    req = f"r{time.monotonic_ns()}"
    t = threading.Thread(target=widget._on_front_msg, args=(widget, {**content, "req": req}, []))
    t.start()
    t.join(30)
    assert wait_until(lambda: widget.last_action.get("req") == req), widget.last_action
    return widget.last_action


def by_content(widget):
    return {m["content"]: m for m in widget.memories}


@pytest.fixture
def browser(lab):
    widget = MemoryBrowser(lab)
    yield widget
    widget.close()


def test_rows_show_effective_confidence_tags_use_and_source_task(lab):
    done = lab.run("Tidy the changelog", profile="tester", script=[{"say": "tidied"}], timeout=20)
    mid = lab.memory.add("guarded", "Deploys happen on Tuesdays.", "fact", ["deploy", "Ops Team"])
    browser = MemoryBrowser(lab)
    try:
        rows = {m["id"]: m for m in browser.memories}
        mine = rows[mid]
        assert mine["profile"] == "guarded" and mine["category"] == "fact"
        assert mine["tags"] == ["deploy", "ops-team"] and mine["status"] == "active"
        assert mine["effective"] == mine["confidence"] == 700 and mine["decay_rate"] == 10
        assert mine["access_count"] == 0 and mine["last_access_ms"] is None
        assert mine["source_task"] is None and mine["created_ms"] > 0
        outcome = next(m for m in browser.memories if m["category"] == "outcome")
        assert outcome["profile"] == "tester" and outcome["source_task"] == done.id
        assert outcome["source_title"] == "Tidy the changelog"
        assert outcome["content"].startswith('Task "Tidy the changelog" completed')
        assert browser.total == 2 and {"guarded", "tester", "code-reviewer"} <= set(
            browser.profiles
        )
        assert browser.categories == ["fact", "preference", "pattern", "outcome"]

        # Thirty days later the same rows show the decayed confidence retrieval would use.
        start = lab.memory.clock()
        lab.memory.clock = lambda: start + timedelta(days=30)
        assert click(browser, type="refresh") == {
            "req": browser.last_action["req"],
            "ok": True,
            "message": "refreshed",
        }
        later = {m["id"]: m for m in browser.memories}[mid]
        assert later["confidence"] == 700 and later["effective"] == round(700 * 0.99**30) == 518
    finally:
        browser.close()


def test_add_edit_reject_delete_through_the_page_messages(lab, browser):
    assert browser.memories == [] and browser.total == 0

    ack = click(
        browser,
        type="add",
        profile="tester",
        category="preference",
        content="  Reviews want one finding per bullet.  ",
        tags="review, Style Guide",
    )
    assert ack["ok"] and ack["message"].startswith("added memory ")
    mid = ack["message"].removeprefix("added memory ")
    (row,) = browser.memories
    assert row["id"] == mid and row["content"] == "Reviews want one finding per bullet."
    assert row["category"] == "preference" and row["tags"] == ["review", "style-guide"]
    assert row["effective"] == 700 and row["decay_rate"] == 5

    again = click(
        browser, type="add", profile="tester", content="Reviews want one finding per bullet"
    )
    assert again["ok"] and again["message"] == (
        f"reinforced memory {mid}: near-identical content (now 800)"
    )
    assert [m["effective"] for m in browser.memories] == [800]

    ack = click(
        browser,
        type="edit",
        id=mid,
        content="Reviews want one finding per bullet, worst first.",
        category="pattern",
        tags="",
        confidence="450",
    )
    assert ack == {"req": ack["req"], "ok": True, "message": f"saved memory {mid}"}
    (row,) = browser.memories
    assert row["content"] == "Reviews want one finding per bullet, worst first."
    assert row["category"] == "pattern" and row["tags"] == [] and row["effective"] == 450
    assert lab.memory.get(mid)["confidence"] == 450  # the page showed what the store holds

    ack = click(browser, type="reject", id=mid)
    assert ack["ok"] and ack["message"] == f"rejected memory {mid}"
    assert browser.memories == [] and browser.total == 0  # hidden by the default filter
    assert lab.memory.get(mid)["status"] == "rejected"

    ack = click(browser, type="delete", id=mid)
    assert ack["ok"] and ack["message"] == f"deleted memory {mid}"
    assert lab.memory.list(status=None).empty


def test_bad_input_comes_back_as_a_message_and_changes_nothing(lab, browser):
    mid = lab.memory.add("tester", "The build uses make.")
    assert wait_until(lambda: len(browser.memories) == 1)
    before = browser.memories

    cases = [
        ({"type": "add", "profile": "tester", "content": "   "}, "memory content is empty"),
        ({"type": "add", "profile": "", "content": "x y"}, "choose a profile for the new memory"),
        ({"type": "add", "profile": "nobody", "content": "x y"}, "unknown profile 'nobody'"),
        (
            {"type": "add", "profile": "tester", "content": "x y", "category": "gossip"},
            "category must be one of fact, preference, pattern, outcome, got 'gossip'",
        ),
        (
            {"type": "add", "profile": "tester", "content": "x y", "tags": 'say "hi"'},
            "invalid tag",
        ),
        ({"type": "edit", "id": mid, "content": ""}, "memory content is empty"),
        (
            {"type": "edit", "id": mid, "confidence": "lots"},
            "confidence must be a whole number from 0 to 1000, got 'lots'",
        ),
        (
            {"type": "edit", "id": mid, "confidence": 1500},
            "confidence: Input should be less than or equal to 1000 (got 1500)",
        ),
        ({"type": "edit", "id": mid}, "nothing to change"),
        ({"type": "edit", "id": "feedbeef", "content": "a b"}, "no memory with id 'feedbeef'"),
        ({"type": "reject", "id": ""}, "no memory id given"),
        ({"type": "delete", "id": "feedbeef"}, "no memory with id 'feedbeef'"),
        ({"type": "decide", "item_id": "x", "decision": "allow"}, "unknown action 'decide'"),
    ]
    for content, expected in cases:
        ack = click(browser, **content)
        assert ack["ok"] is False, content
        assert expected in ack["message"], (content, ack["message"])
        assert "Traceback" not in ack["message"]
    assert browser.memories == before
    assert len(lab.memory.list(status=None)) == 1

    click(browser, type="reject", id=mid)
    locked = click(browser, type="edit", id=mid, content="The build uses ninja.")
    assert locked["ok"] is False and "rejected memories stay rejected" in locked["message"]


def test_filters_by_profile_category_status_and_text(lab, browser):
    a = lab.memory.add("tester", "Invoices go out on the first Monday.", "fact", ["billing"])
    b = lab.memory.add("tester", "Prefers British spelling.", "preference", ["style"])
    c = lab.memory.add("guarded", "Never force-push to main.", "pattern", ["git"])
    d = lab.memory.add("guarded", "Staging is at staging.example.test.", "fact")
    lab.memory.reject(d)
    assert wait_until(lambda: browser.total == 3)  # live: picked up without a click
    assert {m["id"] for m in browser.memories} == {a, b, c}

    def shown(**filters):
        for name, value in filters.items():
            setattr(browser, name, value)
        click(browser, type="refresh")
        return sorted(m["id"] for m in browser.memories)

    assert shown(profile="tester") == sorted([a, b])
    assert shown(category="preference") == [b]
    assert shown(profile="guarded", category="") == [c]
    assert shown(status="all") == sorted([c, d])
    rejected = shown(status="rejected")
    assert rejected == [d] and browser.memories[0]["status"] == "rejected"
    assert shown(profile="", status="") == sorted([a, b, c])
    assert shown(search="MONDAY") == [a]  # case-insensitive, in the content
    assert shown(search="style") == [b]  # ... and the tags
    assert shown(search=c[:6]) == [c]  # ... and the id
    assert shown(search="nothing like this") == [] and browser.total == 0

    # Rejected rows sort last when shown with the rest.
    shown(search="", status="all")
    assert [m["status"] for m in browser.memories][-1] == "rejected"

    with pytest.raises(traitlets.TraitError, match="status"):
        browser.status = "forgotten"


def test_row_limit_keeps_the_total_and_constructor_checks(lab, profiles_dir):
    for i, word in enumerate(["alpha", "bravo", "charlie"]):
        lab.memory.add("tester", f"Code word {word} means step {i}.")
    small = MemoryBrowser(lab, "tester", limit=2)
    try:
        assert len(small.memories) == 2 and small.total == 3 and small.profile == "tester"
    finally:
        small.close()
    with pytest.raises(ProfileNotFoundError, match="unknown profile 'nobody'"):
        MemoryBrowser(lab, "nobody")
    with pytest.raises(ValueError, match="status must be one of all, active"):
        MemoryBrowser(lab, status="forgotten")
    # A profile whose file is gone can still be browsed while it owns memories.
    write_profile(profiles_dir, "retired", "id: retired\nname: Retired\n")
    lab.memory.add("retired", "Code word alpha was retired with its profile.")
    shutil.rmtree(profiles_dir / "retired")
    retired = MemoryBrowser(lab, "retired")
    try:
        assert [m["profile"] for m in retired.memories] == ["retired"]
        assert "retired" in retired.profiles
    finally:
        retired.close()


@pytest.fixture
def shell(lab):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "stagent_lab")
    set_lab(lab)
    try:
        yield sh
    finally:
        set_lab(None)


def test_magic_opens_the_browser_and_keeps_the_table_form(shell, lab, capsys):
    mid = lab.memory.add("tester", "Release notes live in CHANGES.md.")
    browser = shell.run_line_magic("stagent", "memory")
    try:
        assert isinstance(browser, MemoryBrowser) and browser.profile == ""
        assert [m["id"] for m in browser.memories] == [mid]
        again = shell.run_line_magic("stagent", "memory guarded")
        assert again is browser and browser.profile == "guarded"  # one shared browser
        assert wait_until(lambda: browser.memories == [])
        assert shell.run_line_magic("stagent", "memory").profile == ""

        table = shell.run_line_magic("stagent", "memory --table")
        assert isinstance(table, pd.DataFrame) and table["content"].tolist() == [
            "Release notes live in CHANGES.md."
        ]
        assert {"profile_id", "category", "confidence", "tags"} <= set(table.columns)
        assert shell.run_line_magic("stagent", "memory guarded --table").empty
        assert len(shell.run_line_magic("stagent", "memory --table tester")) == 1

        assert shell.run_line_magic("stagent", "memory nobody") is None
        assert "unknown profile 'nobody'" in capsys.readouterr().err
        assert shell.run_line_magic("stagent", "memory --tabel") is None
        err = capsys.readouterr().err
        assert err.startswith("stagent: memory: unknown option --tabel (the only one is --table)")
        assert shell.run_line_magic("stagent", "memory tester guarded") is None
        assert "memory takes 0 to 1 arguments, got 2" in capsys.readouterr().err
        assert shell.run_cell_magic("stagent", "memory", "tester") is None
        assert "takes no cell body" in capsys.readouterr().err

        shell.run_line_magic("stagent", "help")
        out = capsys.readouterr().out
        assert "memory [PROFILE]" in out and "memory --table PROFILE" in out
    finally:
        browser.close()
    fresh = shell.run_line_magic("stagent", "memory")
    assert fresh is not browser  # closed: a fresh one
    fresh.close()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_memory_module_is_valid_javascript_with_labelled_controls(tmp_path):
    from stagent_lab.notebook.widgets._base import asset, bundle

    path = tmp_path / "memory.mjs"
    path.write_text(bundle("memory.js"))
    out = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    source = asset("memory.js")
    for label in (
        "Add memory",
        "Edit memory ${m.id}",
        "Reject memory ${m.id}",
        "Delete memory ${m.id}",
        "Save memory ${m.id}",
        "Filter by profile",
        "Filter by status",
        "Search memories",
    ):
        assert f'"aria-label": `{label}`' in source or f'"aria-label": "{label}"' in source, label
    assert ".stg-mem-rejected" in asset("stagent.css")
