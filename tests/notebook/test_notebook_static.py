"""Static copies: what a saved notebook, nbconvert and GitHub show without a kernel."""

from __future__ import annotations

import re
import time

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from stagent_lab.notebook import fmt, static
from stagent_lab.notebook.markdown import first_line, render_markdown
from stagent_lab.notebook.widgets import Inbox, Monitor, ProfilesView, TaskCard

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
RESULT = (
    "## Findings\n\n- `app/auth.py:8`: **hard-coded secret**\n- see [the docs](https://x.invalid)"
)


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def shell():
    return InteractiveShell.instance()


# ---- Markdown, sanitised ----------------------------------------------------------------


def test_markdown_renders_formatting_and_drops_everything_active():
    html = render_markdown(
        "# Title\n\n**bold** `code` ~~old~~\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n"
        "<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[a link](https://evil.invalid) ![pic](https://evil.invalid/p.png) <https://auto.invalid>"
    )
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<code>code</code>" in html and "<s>old</s>" in html
    assert "<table>" in html and 'style="text-align:right"' in html
    for active in ("<script", "<img", "<a ", "<style", "<iframe"):
        assert active not in html
    assert not re.search(r"<[^>]*\s(src|href|on\w+)=", html)  # no attribute that acts
    assert "&lt;script&gt;" in html  # raw HTML in the text is shown, not run
    assert "a link" in html and "https://auto.invalid" in html  # link text stays
    assert render_markdown(None) == "" and render_markdown("") == ""


def test_first_line_is_a_trimmed_one_line_summary():
    assert first_line("\n\n## Findings\nmore") == "Findings"
    assert first_line("x" * 300, 20) == "x" * 19 + "…"
    assert first_line("") == ""


def test_money_limits_and_counts_read_the_same_everywhere():
    assert fmt.usd(0) == "$0.00" and fmt.usd(0.42) == "$0.42" and fmt.usd(0.0031) == "$0.0031"
    assert fmt.cost_of(0.42, 2) == "$0.42 of $2.00" and fmt.cost_of(0.42, None) == "$0.42"
    assert fmt.turns_of(8, 20) == "8 of 20 turns" and fmt.turns_of(1) == "1 turn"
    assert fmt.plural(1, "task") == "1 task" and fmt.plural(2, "task") == "2 tasks"
    assert fmt.duration(65) == "1m 05s" and fmt.duration(None) == "–"


# ---- the task card's copy ---------------------------------------------------------------


def info(**kw):
    base = {
        "id": "abc123",
        "title": "Review the service",
        "status": "completed",
        "profile": "code-reviewer",
        "runtime": "claude-code",
        "model": "claude-sonnet-4-5",
        "project": "invoice",
        "turns": 8,
        "max_turns": 20,
        "cost_usd": 0.42,
        "max_budget_usd": 2.0,
        "result": RESULT,
        "failure_reason": None,
        "started_ms": 1000.0,
        "finished_ms": 66000.0,
    }
    return {**base, **kw}


def test_card_copy_has_title_status_profile_runtime_limits_and_the_rendered_result():
    out = static.card(info(), tokens={"input": 1234, "output": 56})
    assert set(out) == {"text/html", "text/markdown", "text/plain"}
    html = out["text/html"]
    for text in ("Review the service", "completed", "code-reviewer", "claude-code", "invoice",
                 "8 of 20 turns", "$0.42 of $2.00", "1,234 in / 56 out", "ran 1m 05s"):  # fmt: skip
        assert text in html, text
    assert "<h2>Findings</h2>" in html and "<strong>hard-coded secret</strong>" in html
    assert "<a " not in html and "<script" not in html and "<img" not in html
    assert 'data-task-id="abc123"' in html and "%stagent task abc123" in html
    assert "offline demo" not in html
    assert "## Findings" in out["text/markdown"] and "8 of 20 turns" in out["text/markdown"]
    assert out["text/plain"].startswith("Review the service [completed]")


def test_card_copy_says_offline_demo_failure_and_waiting():
    out = static.card(
        info(runtime="scripted", status="waiting", result=None, failure_reason=None),
        pending=[{"kind": "permission", "tool": "Bash"}],
    )
    assert "offline demo" in out["text/html"] and "no model was called" in out["text/html"]
    assert "Waiting for approval:</strong> permission Bash" in out["text/html"]
    assert "may still be running" in out["text/html"]
    assert "**offline demo**" in out["text/markdown"]
    failed = static.card(info(status="failed", result=None, failure_reason="budget exceeded"))
    assert "failed:</strong> budget exceeded" in failed["text/html"]
    assert "failed: budget exceeded" in failed["text/plain"]


def test_copy_hides_itself_next_to_a_live_view_and_hides_a_dead_views_placeholder():
    html = static.card(info())["text/html"]
    assert static.HIDE_RULES in html
    # The same rules ship with the widgets' stylesheet (the copy may be sanitised).
    from stagent_lab.notebook.widgets._base import asset

    css = asset("stagent.css")
    assert ".jp-OutputArea-child:has(.stagent) + .jp-OutputArea-child:has(.stg-static)" in css
    assert ":not(:has(.stagent)):has(+ .jp-OutputArea-child .stg-static)" in css


# ---- display: live view, then copy; the copy follows the task -----------------------------


def test_a_card_displays_as_live_view_then_copy_and_the_copy_follows_the_task(shell, lab):
    h = lab.submit(
        "review", profile="tester", script=[{"sleep": 0.3}, {"result": RESULT}], title="Review"
    )
    card = TaskCard(h.id, lab)
    with capture_output() as cap:
        card._ipython_display_()
        h.wait(timeout=20)
        assert wait_until(lambda: card.info["status"] == "completed")
        assert wait_until(lambda: len(cap.outputs) >= 3)
    live, first, *updates = cap.outputs
    assert set(live.data) == {WIDGET_VIEW, "text/plain"} and live.data["text/plain"] == ""
    assert live.data[WIDGET_VIEW]["model_id"] == card.model_id
    assert set(first.data) == {"text/html", "text/markdown", "text/plain"}
    final = updates[-1].data
    assert "completed" in final["text/plain"] and "<h2>Findings</h2>" in final["text/html"]
    assert "offline demo" in final["text/html"]  # it ran on the scripted runtime
    card.close()


def test_copy_is_resent_only_when_what_it_shows_changed(shell, lab):
    h = lab.run("quiet", profile="tester", script=[{"result": "done"}], timeout=20)
    card = TaskCard(h.id, lab)
    assert card.refresh_static(force=True) is False  # never displayed: nothing to update
    with capture_output() as cap:
        card._ipython_display_()
        assert card.refresh_static(force=True) is False  # displayed, unchanged
        card.info = {**card.info, "result": "changed"}
        assert card.refresh_static(force=True) is True
    assert len(cap.outputs) == 3 and "changed" in cap.outputs[-1].data["text/plain"]
    card.close()


def test_result_is_rendered_markdown_in_the_card_and_the_log_keeps_one_line(lab):
    h = lab.run("r", profile="tester", script=[{"say": RESULT}, {"result": RESULT}], timeout=20)
    card = TaskCard(h.id, lab)
    assert "<h2>Findings</h2>" in card.result_html and "<a " not in card.result_html
    said = next(e for e in card.log + card.log_tail if e["event"] == "assistant_text")
    assert said["text"] == "Findings …" and said["detail"].startswith("## Findings")
    result = next(e for e in card.log + card.log_tail if e["event"] == "result")
    assert result["text"] == "result: Findings" and result["detail"] == ""
    card.close()


def test_views_publish_copies_of_their_own(lab, project):
    lab.submit("w", profile="guarded", project=project, script=[
        {"tool": "Bash", "input": {"command": "echo hi"}}, {"say": "x"}])  # fmt: skip
    lab.wait_inbox(timeout=20)
    inbox = Inbox(lab)
    assert wait_until(lambda: len(inbox.items) == 1)
    copy = inbox.static_bundle()
    assert "1 pending" in copy["text/html"] and "Bash" in copy["text/html"]
    monitor = Monitor(lab)
    assert wait_until(lambda: monitor.stats.get("waiting") == 1)
    copy = monitor.static_bundle()["text/html"]
    assert "Monitor" in copy and "1 task<" in copy and "1 of 20 turns" in copy
    profiles = ProfilesView(lab).static_bundle()
    assert "code-reviewer" in profiles["text/html"] and "scripted" in profiles["text/html"]
    for widget in (inbox, monitor):
        widget.close()


# ---- nbconvert shows the outcome -------------------------------------------------------


def test_nbconvert_html_shows_the_result_and_never_a_repr(shell, lab):
    from nbconvert import HTMLExporter

    h = lab.run("review", profile="tester", script=[{"result": RESULT}], timeout=20)
    card = TaskCard(h.id, lab)
    with capture_output() as cap:
        card._ipython_display_()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("%stagent task " + h.id)
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=o.data, metadata=o.metadata)
        for o in cap.outputs
    ]
    nb.cells.append(cell)
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert "hard-coded secret" in body and "<h2>Findings</h2>" in body
    assert "TaskCard object at" not in body and "model not found" not in body
    card.close()
