"""§1.7 / §1.9.13 blueprints: typed variables, templates, conditions, sources, and a smoke run of
every built-in on the scripted runtime."""

from __future__ import annotations

import time

import pytest

from stagent_lab.errors import BlueprintError
from stagent_lab.workflows.blueprints import parse_blueprint
from stagent_lab.workflows.templates import render

BUILTINS = [
    "code-review-pipeline",
    "incident-triage",
    "iterative-draft",
    "parallel-research",
    "release-notes",
    "research-brief",
    "rows-enrichment",
    "triage-swarm",
    "weekly-cost-report",
]

MINI = """\
id: mini
name: Mini
pattern: sequence
profile: tester
variables:
  - id: topic
    type: text
    required: true
  - id: depth
    type: number
    default: 2
    min: 1
    max: 5
  - id: tone
    type: choice
    choices: [plain, formal]
    default: plain
  - id: extra
    type: boolean
    default: false
  - id: tags
    type: list
steps:
  - name: Write about {{topic}}
    prompt: |
      Write about {{topic}} at depth {{depth}}, {{tone}}.
      {{#if tags}}Cover: {{tags}}.{{else}}No tags.{{/if}}



      The end.
  - name: Extra
    when: extra
    prompt: Extra on {{topic}}.
"""


def write_blueprint(folder, name: str, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


def test_at_least_eight_builtins_load_without_errors(lab):
    df = lab.workflows.blueprints()
    assert df["error"].isna().all()
    assert set(BUILTINS) <= set(df["id"])
    assert set(df["pattern"]) == {
        "sequence", "checkpoint", "planner-executor", "parallel", "swarm", "loop",
    }  # fmt: skip
    assert (df["source"] == "builtin").all()


def test_instantiation_coerces_renders_and_stores_the_values(lab, home):
    write_blueprint(home / "blueprints", "mini", MINI)
    out = lab.workflows.from_blueprint(
        "mini", {"topic": "DuckDB", "depth": "3", "extra": "no", "tags": "speed, joins"}
    )
    assert out["name"] == "Mini"
    assert out["steps"] == ["Write about DuckDB"]
    assert out["skipped_steps"] == ["Extra"]
    wf = lab.workflows.get(out["workflow_id"])
    assert wf.blueprint_id == "mini" and wf.blueprint_version == "1"
    assert wf.blueprint_vars == {
        "topic": "DuckDB", "depth": 3, "tone": "plain", "extra": False, "tags": ["speed", "joins"],
    }  # fmt: skip
    prompt = wf.steps[0]["prompt"]
    assert prompt == "Write about DuckDB at depth 3, plain.\nCover: speed, joins.\n\nThe end."
    again = lab.workflows.from_blueprint("mini", {"topic": "x", "extra": True})
    assert again["name"] == "Mini 2" and again["skipped_steps"] == []
    assert "No tags." in lab.workflows.get(again["workflow_id"]).steps[0]["prompt"]


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({}, "topic: required"),
        ({"topic": "x", "tone": "shouty"}, "tone: one of plain, formal"),
        ({"topic": "x", "depth": 9}, "depth: at most 5"),
        ({"topic": "x", "depth": "deep"}, "depth: a number"),
        ({"topic": "x", "extra": "perhaps"}, "extra: true/false"),
        ({"topic": "x", "colour": "red"}, "colour: not a variable"),
    ],
)
def test_bad_values_raise_blueprint_error(lab, home, values, words):
    write_blueprint(home / "blueprints", "mini", MINI)
    with pytest.raises(BlueprintError) as info:
        lab.workflows.from_blueprint("mini", values)
    assert any(words in p for p in info.value.problems), info.value.problems


def test_every_bad_value_is_reported_at_once(lab, home):
    write_blueprint(home / "blueprints", "mini", MINI)
    with pytest.raises(BlueprintError) as info:
        lab.workflows.from_blueprint("mini", {"tone": "shouty", "depth": 0})
    assert len(info.value.problems) == 3  # topic missing, bad tone, depth below its minimum


def test_an_undeclared_template_variable_is_an_error_at_load_with_file_and_line(tmp_path):
    text = MINI.replace("Extra on {{topic}}.", "Extra on {{subject}}.")
    with pytest.raises(BlueprintError) as info:
        parse_blueprint(text, "mini.yaml")
    message = str(info.value)
    assert "mini.yaml" in message and "{{subject}} is not a declared variable" in message
    line = text.splitlines().index("    prompt: Extra on {{subject}}.") + 1
    assert f"line {line}: steps[1].prompt" in message


def test_yaml_errors_and_unknown_fields_name_the_line():
    with pytest.raises(BlueprintError, match=r"bad\.yaml:2"):
        parse_blueprint("id: x\nname: a: b\n", "bad.yaml")
    with pytest.raises(BlueprintError) as info:
        parse_blueprint(
            MINI.replace("pattern: sequence", "pattern: sequence\ncolor: red"), "c.yaml"
        )
    assert "line 4: color: unknown field" in str(info.value)


def test_home_blueprints_override_builtins_and_bad_files_are_listed(lab, home, caplog):
    folder = home / "blueprints"
    write_blueprint(folder, "release-notes", MINI.replace("id: mini", "id: release-notes"))
    write_blueprint(folder, "broken", "id: broken\nname: [\n")
    df = lab.workflows.blueprints()
    row = df[df["id"] == "release-notes"].iloc[0]
    assert row["source"] == "home" and len(row["overrides"]) == 1
    assert row["overrides"][0].endswith("release-notes.yaml")
    bad = df[df["file"].str.endswith("broken.yaml")].iloc[0]
    assert "not valid YAML" in bad["error"]
    overrides = [r.getMessage() for r in caplog.records if "overrides" in r.getMessage()]
    assert overrides and "blueprint release-notes from" in overrides[0]


def test_blueprint_dirs_setting_adds_a_source(lab, tmp_path):
    extra = tmp_path / "more"
    write_blueprint(extra, "mini", MINI)
    lab.set_setting("workflows.blueprint_dirs", [str(extra)])
    assert "mini" in set(lab.workflows.blueprints()["id"])


def test_templates_resolve_if_blocks_first_and_collapse_blank_lines():
    text = "A{{#if x}} {{#if y}}both{{else}}only x{{/if}}{{/if}}\n\n\n\nB {{z.k}}"
    assert render(text, {"x": 1, "y": 0, "z": {"k": "v"}}) == ("A only x\n\nB v", [])
    assert render("{{#if l}}yes{{else}}no{{/if}}", {"l": []})[0] == "no"


def test_skipped_branch_leaves_the_synthesis(lab):
    out = lab.workflows.from_blueprint(
        "parallel-research", {"question": "Is DuckDB fast?", "include_risks": False}
    )
    assert out["skipped_steps"] == ["Risks"]
    wf = lab.workflows.get(out["workflow_id"])
    synth = next(s for s in wf.steps if s.get("depends_on"))
    assert synth["depends_on"] == ["evidence", "alternatives"]


SAMPLES = {
    "code-review-pipeline": {"target": "src/", "focus": "security", "include_tests": "yes"},
    "incident-triage": {"incident": "checkout returns 500", "service": "checkout"},
    "iterative-draft": {"brief": "a note on backups", "words": "200"},
    "parallel-research": {"question": "Which columnar format for logs?"},
    "release-notes": {"version": "2.0", "upgrade_guide": True},
    "research-brief": {"topic": "vector search in DuckDB", "audience": "managers"},
    "rows-enrichment": {},
    "triage-swarm": {"incident": "latency spike", "severity": "sev1"},
    "weekly-cost-report": {"threshold": "0.5"},
}


def drive(lab, run, timeout: float = 120.0) -> str:
    """Run to the end offline: allow what waits in the inbox, end delays early."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in lab.inbox().itertuples():
            lab.decide(item.id, "allow", decided_by="smoke test")
        view = run.view()
        if view.done:
            return view.status
        if view.status == "delayed":
            run.resume()
        time.sleep(0.05)
    raise AssertionError(f"run {run.id} still {run.status} after {timeout}s")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_builtin_passes_a_smoke_run_on_scripted(lab, project):
    assert set(SAMPLES) == set(BUILTINS)
    lab.set_setting("runtimes.default", "scripted")  # offline on purpose: no silent fallback
    lab.submit("broken task", profile="tester", script=[{"fail": "disk full"}]).wait(30)
    lab.submit("priced", profile="tester", model="claude-sonnet-4-5",
               script=[{"say": "hi"}, {"result": "ok"}]).wait(30)  # fmt: skip
    for bid, values in SAMPLES.items():
        out = lab.workflows.from_blueprint(bid, values, project=project)
        run = lab.workflows.run(out["workflow_id"])
        assert drive(lab, run) == "completed", (bid, run.failure_reason)
        tasks = run.tasks()
        assert len(tasks) >= 1, bid
        assert set(tasks["runtime_id"]) == {"scripted"}
        assert (tasks["source"] == "workflow").all()
    rows = lab.workflows.runs()
    enrich = rows[rows["workflow"] == "Diagnose failed tasks"].iloc[0]
    assert len(lab.workflows.run_handle(enrich["id"]).results()) == 1
