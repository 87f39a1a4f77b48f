"""The scripted runtime checks a script's numbers when it loads, naming the step and field."""

from __future__ import annotations

import pytest
from ctx_double import CtxDouble, run_until_error

from stagent_lab.errors import ScriptError
from stagent_lab.runtimes.scripted import ScriptedRuntime, load_script


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('[{"sleep": .inf}]', "step 1: 'sleep' must be a number of seconds from 0 to 3600"),
        ("[{say: hi}, {sleep: .nan}]", "step 2: 'sleep' must be a number"),
        ("- sleep: -0.5", "step 1: 'sleep' must be a number"),
        ("- sleep: 86400", "got 86400"),
        ("- sleep: true", "got True"),
    ],
)
def test_bad_sleeps_are_refused_at_load(script, message):
    with pytest.raises(ScriptError, match=message.replace("(", r"\(")):
        load_script(script)


def test_non_finite_numbers_in_a_tool_input_name_the_field():
    script = [
        {"say": "checking"},
        {"tool": "Bash", "input": {"command": "ls", "options": {"limits": [1, float("inf")]}}},
    ]
    with pytest.raises(
        ScriptError, match=r"step 2: 'input\.options\.limits\[1\]' must be a finite number"
    ):
        load_script(script)


def test_a_tool_id_must_be_text():
    with pytest.raises(ScriptError, match="step 1: 'id' must be text"):
        load_script([{"tool": "Read", "input": {}, "id": 7}])


def test_sane_numbers_still_load():
    steps = load_script("[{sleep: 0}, {sleep: 0.25}, {tool: Read, input: {limit: 20}}]")
    assert [s.get("sleep") for s in steps] == [0, 0.25, None]


def test_a_generator_cannot_sneak_an_endless_sleep_in():
    """Steps a Python generator yields are checked the same way, before they run."""

    def script(prompt, profile):
        yield {"say": "starting"}
        yield {"sleep": float("inf")}

    _, exc = run_until_error(ScriptedRuntime(), CtxDouble(options={"script": script}), guard_s=30)

    assert isinstance(exc, ScriptError)
    assert "step 2: 'sleep'" in str(exc)
