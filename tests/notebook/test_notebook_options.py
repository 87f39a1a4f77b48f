"""The %%stagent option line and %stagent commands, parsed without IPython."""

from __future__ import annotations

import pytest

from stagent_lab.notebook.options import (
    Command,
    LaunchOptions,
    OptionError,
    interpolate,
    parse_command,
    parse_launch,
)


def test_every_option_converts_to_its_type():
    opts = parse_launch(
        "--profile code-reviewer --runtime scripted --project 'my repo' --max-turns 7 "
        "--budget 0.25 --model claude-x --script plan --title 'Fix it' --wait --name job"
    )
    assert opts == LaunchOptions(
        profile="code-reviewer",
        runtime="scripted",
        project="my repo",
        max_turns=7,
        budget=0.25,
        model="claude-x",
        script="plan",
        title="Fix it",
        wait=True,
        name="job",
    )


def test_equals_form_dollar_budget_and_defaults():
    assert parse_launch("--budget=$1.5 --max-turns=3") == LaunchOptions(budget=1.5, max_turns=3)
    assert parse_launch("") == LaunchOptions()
    assert parse_launch("   ") == LaunchOptions()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--profle x", "unknown option --profle (did you mean --profile?)"),
        ("--zzz", "unknown option --zzz"),
        ("--max-turns 0", "--max-turns must be at least 1, got 0"),
        ("--max-turns many", "--max-turns takes a whole number, got 'many'"),
        ("--budget -1", "--budget must be a positive amount, got '-1'"),
        ("--budget nan", "--budget must be a positive amount, got 'nan'"),
        ("--budget lots", "--budget takes an amount in USD such as 0.50, got 'lots'"),
        ("--name 2x", "--name takes a Python variable name, got '2x'"),
        ("--name class", "--name takes a Python variable name, got 'class'"),
        ("--profile", "--profile needs a value"),
        ("--profile --wait", "--profile needs a value"),
        ("--wait=yes", "--wait is a switch and takes no value"),
        ("--wait --wait", "--wait is given twice"),
        ("--profile ''", "--profile needs a non-empty value"),
        ("review the code", "unexpected argument 'review'"),
        ("--title 'unclosed", "cannot read the option line: No closing quotation"),
    ],
)
def test_bad_lines_name_the_problem(line, message):
    with pytest.raises(OptionError) as info:
        parse_launch(line)
    assert str(info.value).startswith(message)


def test_commands_and_their_arity():
    assert parse_command("") == Command("help")
    assert parse_command("inbox") == Command("inbox")
    assert parse_command("cancel abc123") == Command("cancel", ("abc123",))
    assert parse_command("cost profile day") == Command("cost", ("profile", "day"))
    assert parse_command("tasks") == Command("tasks")
    # SQL keeps its quotes and spacing.
    assert parse_command("sql SELECT 'a  b' AS x") == Command("sql", ("SELECT 'a  b' AS x",))
    assert parse_command("sql", "SELECT 1\n") == Command("sql", ("SELECT 1",))
    with pytest.raises(OptionError, match="cancel takes 1 argument, got 0"):
        parse_command("cancel")
    with pytest.raises(OptionError, match="inbox takes no arguments, got 1"):
        parse_command("inbox now")
    with pytest.raises(OptionError, match=r"unknown command 'inbx' \(did you mean inbox\?\)"):
        parse_command("inbx")
    with pytest.raises(OptionError, match="sql needs a query"):
        parse_command("sql")
    with pytest.raises(OptionError, match="takes no cell body"):
        parse_command("inbox", "something")


def test_interpolation_replaces_known_names_only():
    ns = {"repo": "acme/api", "n": 3}
    text, missing = interpolate("Review {repo} and list {n} issues; keep {{repo}} literal.", ns)
    assert text == "Review acme/api and list 3 issues; keep {repo} literal."
    assert missing == []


def test_interpolation_leaves_code_and_unknown_names_alone():
    prompt = 'Fix print(f"{user}") and parse {"a": {"b": 1}} and {x.y} {0}'
    text, missing = interpolate(prompt, {})
    assert text == prompt
    assert missing == ["user"]
