"""§1.2 validation: every rule has a failing definition, and every problem comes with its path."""

from __future__ import annotations

import pytest

from stagent_lab import InvalidInput
from stagent_lab.errors import WorkflowDefinitionError
from stagent_lab.workflows.validation import validate_definition

T = {"name": "Task", "prompt": "Do it."}


def task(name: str, **kw) -> dict:
    return {"name": name, "prompt": f"{name}.", **kw}


def delay(name: str = "Wait", d: str = "1h", **kw) -> dict:
    return {"name": name, "delay": d, **kw}


BRANCHES = [task("A"), task("B"), task("Merge", depends_on=["a", "b"])]
SWARM = [task("Mayor"), task("W1"), task("W2"), task("Refinery")]

CASES = [
    # (id, pattern, steps, config, expected path, words in the message)
    ("id-slug", "sequence", [task("A", id="Bad Id!")], {}, "steps[0].id", "lowercase"),
    ("id-unique", "sequence", [task("A", id="x"), task("B", id="x")], {}, "steps[1].id", "already"),
    ("name-required", "sequence", [{"prompt": "p"}], {}, "steps[0].name", "required"),
    ("name-empty", "sequence", [{"name": " ", "prompt": "p"}], {}, "steps[0].name", "required"),
    ("name-long", "sequence", [task("n" * 81)], {}, "steps[0].name", "80"),
    ("prompt-required", "sequence", [{"name": "A"}], {}, "steps[0].prompt", "required"),
    (
        "profile-unknown",
        "sequence",
        [task("A", profile="nobody")],
        {},
        "steps[0].profile",
        "nobody",
    ),
    ("runtime-unknown", "sequence", [task("A", runtime="warp")], {}, "steps[0].runtime", "warp"),
    ("max-turns", "sequence", [task("A", max_turns=0)], {}, "steps[0].max_turns", "positive"),
    ("budget", "sequence", [task("A", budget_usd=0)], {}, "steps[0].budget_usd", "greater"),
    (
        "approval-bool",
        "sequence",
        [task("A", requires_approval="maybe")],
        {},
        "steps[0].requires_approval",
        "bool",
    ),
    ("unknown-field", "sequence", [task("A", colour="red")], {}, "steps[0].colour", "unknown"),
    (
        "depends-outside-parallel",
        "sequence",
        [task("A"), task("B", depends_on=["a"])],
        {},
        "steps[1].depends_on",
        "parallel",
    ),
    ("delay-syntax", "sequence", [delay(d="30s"), task("A")], {}, "steps[0].delay", "30m"),
    ("delay-too-short", "sequence", [delay(d="0m"), task("A")], {}, "steps[0].delay", "1 minute"),
    ("delay-too-long", "sequence", [delay(d="31d"), task("A")], {}, "steps[0].delay", "30 days"),
    ("delay-only-fields", "sequence", [delay(prompt="x"), task("A")], {}, "steps[0]", "only id"),
    ("no-steps", "sequence", [], {}, "steps", "1 to 50"),
    ("too-many-steps", "sequence", [task(f"S{i}") for i in range(51)], {}, "steps", "1 to 50"),
    ("delay-last", "sequence", [task("A"), delay()], {}, "steps[1].delay", "end with a delay"),
    ("sequence-no-task", "sequence", [delay(), delay("W2")], {}, "steps", "at least one task"),
    ("checkpoint-two", "checkpoint", [task("A")], {}, "steps", "at least 2"),
    ("planner-two", "planner-executor", [task("Plan")], {}, "steps", "at least 2"),
    (
        "planner-delay-first",
        "planner-executor",
        [delay(), task("P"), task("E")],
        {},
        "steps[0].delay",
        "planner",
    ),
    (
        "loop-one-task",
        "loop",
        [task("A"), task("B")],
        {"loop": {"max_iterations": 3}},
        "steps",
        "exactly one",
    ),
    (
        "loop-no-delay",
        "loop",
        [delay(), task("A")],
        {"loop": {"max_iterations": 3}},
        "steps[0].delay",
        "delay_between",
    ),
    ("loop-max-required", "loop", [task("A")], {"loop": {}}, "loop.max_iterations", "required"),
    ("loop-no-config", "loop", [task("A")], {}, "loop.max_iterations", "required"),
    (
        "loop-max-range",
        "loop",
        [task("A")],
        {"loop": {"max_iterations": 1001}},
        "loop.max_iterations",
        "1000",
    ),
    (
        "loop-items-exclusive",
        "loop",
        [task("A")],
        {"loop": {"max_iterations": 3, "items": [{"a": 1}], "items_sql": "SELECT 1"}},
        "loop.items_sql",
        "not both",
    ),
    (
        "loop-rows-need-task",
        "loop",
        [delay()],
        {"loop": {"max_iterations": 3, "items": []}},
        "steps",
        "at least one task",
    ),
    (
        "loop-items-objects",
        "loop",
        [task("A")],
        {"loop": {"max_iterations": 3, "items": [1]}},
        "loop.items[0]",
        "JSON object",
    ),
    (
        "loop-on-item-error",
        "loop",
        [task("A")],
        {"loop": {"max_iterations": 3, "items": [], "on_item_error": "explode"}},
        "loop.on_item_error",
        "continue or stop",
    ),
    (
        "loop-config-elsewhere",
        "sequence",
        [task("A")],
        {"loop": {"max_iterations": 2}},
        "loop",
        "only for the loop",
    ),
    (
        "parallel-branches",
        "parallel",
        [task("A"), task("M", depends_on=["a"])],
        {},
        "steps",
        "2 to 5 branches",
    ),
    (
        "parallel-one-synthesis",
        "parallel",
        [task("A"), task("B")],
        {},
        "steps",
        "exactly one synthesis",
    ),
    (
        "parallel-synthesis-all",
        "parallel",
        [task("A"), task("B"), task("M", depends_on=["a"])],
        {},
        "steps[2].depends_on",
        "misses",
    ),
    (
        "parallel-synthesis-once",
        "parallel",
        [task("A"), task("B"), task("M", depends_on=["a", "b", "a"])],
        {},
        "steps[2].depends_on",
        "more than once",
    ),
    (
        "parallel-synthesis-only-branches",
        "parallel",
        [task("A"), task("B"), task("M", depends_on=["a", "b", "zz"])],
        {},
        "steps[2].depends_on",
        "not branches",
    ),
    ("parallel-no-delay", "parallel", [delay(), *BRANCHES], {}, "steps[0].delay", "no delay"),
    (
        "parallel-concurrency",
        "parallel",
        BRANCHES,
        {"parallel": {"max_concurrent": 6}},
        "parallel.max_concurrent",
        "1 to 5",
    ),
    ("swarm-size", "swarm", [task("Mayor"), task("W"), task("R")], {}, "steps", "4 to 7"),
    (
        "swarm-no-delay",
        "swarm",
        [task("Mayor"), delay(), task("W1"), task("W2"), task("R")],
        {},
        "steps[1].delay",
        "no delay",
    ),
    (
        "swarm-concurrency",
        "swarm",
        SWARM,
        {"swarm": {"max_concurrent": 3}},
        "swarm.max_concurrent",
        "1 to 2",
    ),
    ("pattern-unknown", "pipeline", [task("A")], {}, "pattern", "one of"),
]


@pytest.mark.parametrize(
    ("pattern", "steps", "config", "path", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_each_rule_has_a_failing_definition(lab, pattern, steps, config, path, words):
    with pytest.raises((WorkflowDefinitionError, InvalidInput)) as info:
        lab.workflows.create("wf", pattern=pattern, steps=steps, **config)
    err = info.value
    if isinstance(err, InvalidInput):  # the contract refused the pattern name itself
        assert path == "pattern" and "pattern" in str(err)
        return
    paths = [p for p, _ in err.problems]
    assert path in paths, err.problems
    message = dict(err.problems)[path]
    assert words.lower() in message.lower(), (path, message)


def test_three_errors_are_reported_together_with_their_paths(lab):
    with pytest.raises(WorkflowDefinitionError) as info:
        lab.workflows.create(
            "wf",
            pattern="sequence",
            steps=[
                {"name": "Review", "profile": "ghost"},
                {"name": "Fix", "prompt": "Fix.", "max_turns": -1},
            ],
        )
    err = info.value
    assert [p for p, _ in err.problems] == [
        "steps[0].prompt",
        "steps[0].profile",
        "steps[1].max_turns",
    ]
    text = str(err)
    assert "3 problems" in text
    for path in ("steps[0].prompt", "steps[0].profile", "steps[1].max_turns"):
        assert path in text


def test_workflow_fields_are_checked_with_the_steps(lab):
    with pytest.raises(WorkflowDefinitionError) as info:
        lab.workflows.create("", steps=[{"name": "A"}], profile="ghost", project="no-such-thing")
    paths = [p for p, _ in info.value.problems]
    assert paths == ["name", "profile", "project", "steps[0].prompt"]


def test_names_are_unique_among_active_workflows(lab):
    lab.workflows.create("twin", steps=[T])
    with pytest.raises(WorkflowDefinitionError, match="already exists"):
        lab.workflows.create("twin", steps=[T])
    lab.workflows.archive("twin")
    again = lab.workflows.create("twin", steps=[T])  # an archived name is free again
    assert again.status == "active"


def test_ids_come_from_names_and_checkpoint_steps_ask_after_the_first():
    d = validate_definition(
        "checkpoint",
        [task("Review code"), task("Review code"), task("Ship", requires_approval=False)],
    )
    assert [s.id for s in d.steps] == ["review-code", "review-code-2", "ship"]
    assert [s.requires_approval for s in d.steps] == [False, True, False]


def test_a_delay_step_holds_its_seconds():
    d = validate_definition("sequence", [task("A"), delay(d="2w"), task("B")])
    assert d.steps[1].is_delay and d.steps[1].delay_s == 14 * 86400
    assert d.task_steps == [d.steps[0], d.steps[2]]


def test_row_templates_may_only_name_earlier_steps():
    with pytest.raises(WorkflowDefinitionError) as info:
        validate_definition(
            "loop",
            [task("A", prompt="use {{steps.b}}"), task("B")],
            loop={"max_iterations": 2, "items": [{"x": 1}]},
        )
    assert info.value.problems == [("steps[0].prompt", "{{steps.b}} is not an earlier step")]


def test_a_bad_script_is_a_definition_problem(lab):
    with pytest.raises(WorkflowDefinitionError) as info:
        lab.workflows.create("s", steps=[task("A", script=[{"sleep": -1}])])
    assert info.value.problems[0][0] == "steps[0].script"
