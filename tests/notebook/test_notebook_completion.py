"""Tab completion of %stagent lines, through IPython's real completer."""

from __future__ import annotations

import pytest
from IPython.core.completer import provisionalcompleter

from stagent_lab.notebook import completion, set_lab
from stagent_lab.notebook.options import COMMANDS, FEATURE_COMMANDS, LAUNCH_FLAGS


@pytest.fixture
def shell(lab):
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "stagent_lab")
    set_lab(lab)
    completion.forget()
    try:
        yield sh
    finally:
        set_lab(None)
        completion.forget()


def complete(sh, text):
    with provisionalcompleter():
        return [c.text for c in sh.Completer.completions(text, len(text))]


def test_profile_names_after_profile_and_nothing_unrelated(shell):
    got = complete(shell, "%%stagent --profile co")
    assert got == ["code-reviewer", "content-creator"]
    assert complete(shell, "%%stagent --runtime scripted --profile=gua") == ["guarded"]
    # A cell whose first line is the magic completes there, whatever follows.
    with provisionalcompleter():
        text = "%%stagent --profile te\nthe prompt"
        got = [c.text for c in shell.Completer.completions(text, len("%%stagent --profile te"))]
    assert got == ["technical-writer", "tester"]


def test_runtime_and_project_names(shell, lab, project):
    assert complete(shell, "%%stagent --runtime s") == ["scripted"]
    assert set(complete(shell, "%%stagent --runtime ")) >= {"scripted", "claude-code", "ollama"}
    lab.add_project("invoice", project)
    completion.forget()
    assert complete(shell, "%%stagent --project inv") == ["invoice"]


def test_subcommands_and_options(shell):
    got = complete(shell, "%stagent ")
    assert set(got) >= set(COMMANDS) | set(FEATURE_COMMANDS)
    assert "chat" in got
    assert complete(shell, "%stagent mon") == ["monitor"]
    assert complete(shell, "%%stagent --ti") == ["--title"]
    assert set(complete(shell, "%%stagent --")) == set(LAUNCH_FLAGS)
    assert complete(shell, "%stagent memory gua") == ["guarded"]
    assert complete(shell, "%stagent tasks fa") == ["failed"]
    assert complete(shell, "%stagent cost profile d") == ["day"]
    assert "--session" in complete(shell, "%stagent chat --")


def test_notebook_variables_for_script_and_name(shell):
    # (one InteractiveShell serves every test, so other tests' variables may be there too)
    shell.user_ns.update(cplan_a=[{"say": "x"}], cplan_b=lambda p, q: [], number=3)
    assert complete(shell, "%%stagent --script cplan") == ["cplan_a", "cplan_b"]
    assert complete(shell, "%%stagent --script num") == []  # a number is not a script


def test_other_lines_are_left_to_ipython(shell):
    shell.user_ns["stagent_value"] = 1
    assert "stagent_value" in complete(shell, "stagent_v")
    assert completion.candidates("print(1)") is None


def test_an_unreachable_workspace_completes_nothing(monkeypatch):
    completion.forget()

    def broken():
        raise RuntimeError("locked")

    monkeypatch.setattr(completion, "_lab", broken)
    assert completion.candidates("%%stagent --profile ") == []
    completion.forget()
