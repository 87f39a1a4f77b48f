"""The notebook surface of workflows: the run card (state, actions, static HTML) driven the way
its JavaScript drives it, and ``%stagent workflows …`` through a real IPython shell."""

from __future__ import annotations

import threading
import time

import pytest

from stagent_lab.notebook import set_lab
from stagent_lab.notebook.widgets.workflow_run import WorkflowRunCard


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def click(widget, **content):
    """A front-end message from another thread (as a kernel subshell delivers it)."""
    req = f"r{time.monotonic_ns()}"
    t = threading.Thread(target=widget._on_front_msg, args=(widget, {**content, "req": req}, []))
    t.start()
    t.join(30)
    assert wait_for(lambda: widget.last_action.get("req") == req), widget.last_action
    return widget.last_action


def gated(lab) -> None:
    lab.workflows.create(
        "gated",
        profile="tester",
        steps=[
            {"name": "Draft", "prompt": "Draft.", "script": [{"result": "draft <b>1</b>"}]},
            {"name": "Ship", "prompt": "Ship.", "requires_approval": True,
             "script": [{"result": "shipped"}]},
        ],
    )  # fmt: skip


def test_the_card_shows_steps_children_and_a_checkpoint_decided_in_it(lab):
    gated(lab)
    run = lab.workflows.run("gated")
    card = WorkflowRunCard.for_run(run.id, lab)
    assert WorkflowRunCard.for_run(run.id, lab) is card  # one model per run
    assert wait_for(lambda: card.pending != [])
    assert card.run["workflow"] == "gated" and card.run["run_number"] == 1
    assert wait_for(lambda: card.run["status"] == "waiting")
    draft = next(s for s in card.steps if s["step_id"] == "draft")
    assert draft["status"] == "completed" and draft["task_status"] == "completed"
    assert draft["task_id"] and draft["result"] == "draft <b>1</b>"
    ship = next(s for s in card.steps if s["step_id"] == "ship")
    assert ship["status"] == "waiting" and ship["approval_item_id"] == card.pending[0]["id"]
    assert "Step: Ship (profile tester)" in card.pending[0]["body"]
    assert [o["id"] for o in card.outline] == ["draft", "ship"]

    ack = click(card, type="decide", item_id=card.pending[0]["id"], decision="allow",
                message="go ahead")  # fmt: skip
    assert ack["ok"] and ack["message"] == "allowed"
    assert run.wait(30).status == "completed"
    assert wait_for(lambda: card.run["status"] == "completed" and card.pending == [])
    assert card.run["output"] == "shipped"
    ship = next(s for s in card.steps if s["step_id"] == "ship")
    assert ship["note"] == "go ahead" and ship["status"] == "completed"
    card.close()


def test_card_controls_pause_resume_cancel_and_retry(lab):
    lab.workflows.create(
        "ctl", profile="tester",
        steps=[{"name": "Wait", "prompt": "W.", "requires_approval": True,
                "script": [{"fail": "broken"}]}],
    )  # fmt: skip
    run = lab.workflows.run("ctl")
    card = WorkflowRunCard(run.id, lab)
    assert wait_for(lambda: card.run["status"] == "waiting")
    assert click(card, type="pause")["message"] == "pause: the run is paused"
    assert wait_for(lambda: card.run["status"] == "paused")
    assert click(card, type="resume")["ok"]
    item = card.pending[0]["id"]
    assert click(card, type="decide", item_id=item, decision="allow")["ok"]
    assert run.wait(30).status == "failed"
    assert wait_for(
        lambda: card.run["status"] == "failed" and "broken" in card.run["failure_reason"]
    )
    ack = click(card, type="retry")
    assert ack["ok"] and "the run is" in ack["message"]
    assert wait_for(lambda: card.pending != [])
    assert click(card, type="cancel")["ok"]
    assert wait_for(lambda: card.run["status"] == "cancelled" and card.pending == [])
    bad = click(card, type="resume")
    assert not bad["ok"] and "cancelled" in bad["message"]
    card.close()


def test_the_static_html_form_escapes_and_shows_the_run(lab):
    gated(lab)
    run = lab.workflows.run("gated")
    card = WorkflowRunCard(run.id, lab)
    assert wait_for(lambda: card.pending != [])
    bundle = card._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    page = data["text/html"]
    assert "<strong>gated</strong> run #1" in page and "waiting" in page
    assert "draft &lt;b&gt;1&lt;/b&gt;" in page and "<b>1</b>" not in page
    assert "waiting for approval" in page and "Step: Ship" in page
    assert "<script" not in page
    run.cancel()
    card.close()


# ---- %stagent workflows ----------------------------------------------------------------------


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


def magic(sh, line):
    return sh.run_line_magic("stagent", line)


def test_magics_list_run_control_and_blueprints(shell, lab, capsys):
    gated(lab)
    listing = magic(shell, "workflows")
    assert listing["name"].tolist() == ["gated"] and listing["steps"].tolist() == [2]
    card = magic(shell, "workflows run gated")
    assert isinstance(card, WorkflowRunCard)
    run_id = card.run["id"]
    assert wait_for(lambda: card.pending != [])
    magic(shell, f"workflows pause {run_id[:6]}")
    assert "is paused" in capsys.readouterr().out
    runs = magic(shell, "workflows runs gated --status paused")
    assert runs["id"].tolist() == [run_id]
    magic(shell, f"workflows cancel {run_id}")
    assert "is cancelled" in capsys.readouterr().out
    assert magic(shell, f"workflows show {run_id}") is card
    steps = magic(shell, f"workflows steps {run_id}")
    assert set(steps["status"]) == {"completed", "cancelled"}
    bps = magic(shell, "workflows blueprints")
    assert "release-notes" in set(bps["id"])
    magic(shell, "workflows from release-notes version=3.1 upgrade_guide=true --name 'Notes 3.1'")
    out = capsys.readouterr().out
    assert "created workflow 'Notes 3.1'" in out
    assert lab.workflows.get("Notes 3.1").blueprint_vars["upgrade_guide"] is True
    card.close()


def test_magic_run_with_inputs_and_wait(shell, lab):
    lab.workflows.create(
        "echo", profile="tester",
        steps=[{"name": "Say", "prompt": "Say {{inputs.word}}.", "script": [{"result": "ok"}]}],
    )  # fmt: skip
    assert magic(shell, "workflows run echo --input word=hello --input n=3 --wait") is None
    run = lab.workflows.run_handle(lab.workflows.runs()["id"].iloc[0])
    assert run.status == "completed" and run.view().inputs == {"word": "hello", "n": 3}
    assert "Say hello." in run.steps()["input_text"].iloc[0]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("workflows launch x", "invalid choice"),
        ("workflows run", "required"),
        ("workflows retry abc --items two", "--items takes row numbers"),
        ("workflows from release-notes version", "KEY=VALUE"),
        ("workflows run nope", "no workflow named"),
    ],
)
def test_magic_mistakes_print_one_line_and_the_usage(shell, capsys, line, words):
    assert magic(shell, line) is None
    err = capsys.readouterr().err
    assert words in err
    assert "stagent:" in err and "Traceback" not in err
