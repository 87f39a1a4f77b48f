"""Rule parsing, field selection, path normalization, globs and suggestions."""

from __future__ import annotations

import os
from pathlib import Path
from types import MappingProxyType

import pytest

from stagent_lab.errors import RuleSyntaxError
from stagent_lab.governance.rules import (
    PATH_FIELDS,
    TOOL_MAIN_FIELDS,
    Rule,
    parse_rule,
    rule_matches,
    suggest_rule,
)
from stagent_lab.governance.shell import analyze_command, deny_texts

# ---- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bash", Rule("Bash", None, None, "Bash")),
        ("  Read  ", Rule("Read", None, None, "Read")),
        ("Bash(git *)", Rule("Bash", "command", "git *", "Bash(git *)")),
        ("Bash(command:git *)", Rule("Bash", "command", "git *", "Bash(command:git *)")),
        ("Bash(command: git *)", Rule("Bash", "command", "git *", "Bash(command: git *)")),
        ("Read(/proj/**)", Rule("Read", "file_path", "/proj/**", "Read(/proj/**)")),
        ("Grep(path:/p/**)", Rule("Grep", "path", "/p/**", "Grep(path:/p/**)")),
        (
            "WebFetch(https://docs.python.org/*)",
            Rule(
                "WebFetch",
                "url",
                "https://docs.python.org/*",
                "WebFetch(https://docs.python.org/*)",
            ),
        ),
        ("Handoff(reviewer)", Rule("Handoff", "to_profile", "reviewer", "Handoff(reviewer)")),
        (
            "mcp__gh__create_issue(title:bug*)",
            Rule("mcp__gh__create_issue", "title", "bug*", "mcp__gh__create_issue(title:bug*)"),
        ),
        (
            "mcp__claude-in-chrome__nav",
            Rule("mcp__claude-in-chrome__nav", None, None, "mcp__claude-in-chrome__nav"),
        ),
        (
            "Bash(command:echo \\(x\\))",
            Rule("Bash", "command", "echo \\(x\\)", "Bash(command:echo \\(x\\))"),
        ),
        ("Grep(pattern:foo(bar))", Rule("Grep", "pattern", "foo(bar)", "Grep(pattern:foo(bar))")),
        ("WebSearch(query:[(]x)", Rule("WebSearch", "query", "[(]x", "WebSearch(query:[(]x)")),
    ],
)
def test_parse_good_rules(text: str, expected: Rule) -> None:
    assert parse_rule(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty rule"),
        ("   ", "empty rule"),
        ("()", "empty tool name"),
        ("(git *)", "empty tool name"),
        ("Bash(", "unbalanced '('"),
        ("Bash(git *", "unbalanced '('"),
        ("Bash(git (x)", "unbalanced '('"),
        ("Bash(ls))", "unbalanced ')'"),
        ("Bash)", "unbalanced ')'"),
        ("Bash(ls) extra", "unbalanced '('"),
        ("Bash()", "empty glob"),
        ("Bash(command:)", "empty glob for field 'command'"),
        ("Bash(command:   )", "empty glob"),
        ("Bash(:git *)", "empty field name"),
        ("mcp__x__y(foo)", "has no main field"),
        ("mcp__x__y(:foo)", "empty field name"),
        ("Ba sh", "invalid tool name"),
        ("1Bash", "invalid tool name"),
        ("Bash.x(ls)", "invalid tool name"),
        ("Read([abc)", "unclosed '['"),
        ("Read(/a[/]b)", "cannot contain '/'"),
        ("Bash(git \\)", "lone backslash"),
        ("Bash(git\x00)", "NUL"),
    ],
)
def test_parse_bad_rules_say_why(text: str, message: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse_rule(text)
    assert message in str(info.value)


def test_rule_syntax_error_is_a_value_error_and_non_strings_are_refused() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_rule(42)  # type: ignore[arg-type]


def test_tool_names_are_case_sensitive() -> None:
    assert rule_matches("Bash", "Bash", {"command": "ls"})
    assert not rule_matches("bash", "Bash", {"command": "ls"})
    assert not rule_matches("Bash(ls)", "bash", {"command": "ls"})


def test_main_field_table() -> None:
    assert TOOL_MAIN_FIELDS["Bash"] == "command"
    assert {TOOL_MAIN_FIELDS[t] for t in ("Read", "Write", "Edit")} == {"file_path"}
    assert TOOL_MAIN_FIELDS["NotebookEdit"] == "notebook_path"
    assert TOOL_MAIN_FIELDS["Handoff"] == "to_profile"
    assert sorted(PATH_FIELDS) == ["file_path", "notebook_path", "path"]
    assert "mcp__x__y" not in TOOL_MAIN_FIELDS


# ---- main field vs explicit field -----------------------------------------------------------


def test_main_field_and_explicit_field_are_the_same_rule() -> None:
    inp = {"pattern": "TODO", "path": "/proj/src"}
    assert rule_matches("Grep(TODO)", "Grep", inp)
    assert rule_matches("Grep(pattern:TODO)", "Grep", inp)
    assert rule_matches("Grep(path:/proj/**)", "Grep", inp)
    assert not rule_matches("Grep(path:/other/**)", "Grep", inp)


def test_url_with_colon_is_a_glob_not_a_field() -> None:
    rule = parse_rule("WebFetch(https://docs.python.org/*)")
    assert rule.field == "url"
    assert rule_matches(rule, "WebFetch", {"url": "https://docs.python.org/3/library/re.html"})
    assert not rule_matches(rule, "WebFetch", {"url": "https://evil.example/docs.python.org/"})


def test_missing_or_non_string_field_never_matches() -> None:
    assert not rule_matches("Grep(path:/p/**)", "Grep", {"pattern": "x"})
    assert not rule_matches("Read(offset:1*)", "Read", {"file_path": "/a", "offset": 10})
    assert not rule_matches("mcp__s__t(n:1)", "mcp__s__t", {"n": 1})
    assert rule_matches("mcp__s__t(n:1)", "mcp__s__t", {"n": "1"})
    assert not rule_matches("Bash(ls)", "Bash", {"command": ["ls"]})
    assert not rule_matches("Bash(ls)", "Bash", "ls")  # type: ignore[arg-type]


def test_bare_tool_matches_any_input_even_uncoverable_bash() -> None:
    assert rule_matches("Bash", "Bash", {"command": "echo $(id)"})
    assert not rule_matches("Bash(*)", "Bash", {"command": "echo $(id)"})
    assert rule_matches("Bash(*)", "Bash", {"command": "echo hi"})


def test_any_mapping_is_accepted_as_input() -> None:
    frozen = MappingProxyType({"command": "git status"})
    assert rule_matches("Bash(command:git *)", "Bash", frozen)
    assert suggest_rule("Bash", frozen) == "Bash(command:git status *)"


def test_parsed_rule_objects_are_accepted() -> None:
    rule = parse_rule("Bash(command:npm test)")
    assert rule_matches(rule, "Bash", {"command": "npm test"})
    assert not rule_matches(rule, "Bash", {"command": "npm test --watch"})


def test_invalid_rule_string_raises_when_matched() -> None:
    with pytest.raises(RuleSyntaxError):
        rule_matches("Bash(", "Bash", {"command": "ls"})
    with pytest.raises(ValueError, match="mode"):
        rule_matches("Bash", "Bash", {"command": "ls"}, mode="maybe")  # type: ignore[arg-type]


# ---- non-Bash, non-path fields: fnmatch ------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "tool", "inp", "expected"),
    [
        ("WebSearch(query:python *)", "WebSearch", {"query": "python asyncio"}, True),
        ("WebSearch(query:python *)", "WebSearch", {"query": "Python asyncio"}, False),
        (
            "WebFetch(url:https://*.example.com/*)",
            "WebFetch",
            {"url": "https://a.example.com/x"},
            True,
        ),
        (
            "WebFetch(url:https://*.example.com/*)",
            "WebFetch",
            {"url": "http://a.example.com/x"},
            False,
        ),
        ("Glob(*.py)", "Glob", {"pattern": "src/app.py"}, True),
        ("Glob(pattern:?.py)", "Glob", {"pattern": "a.py"}, True),
        ("Glob(pattern:?.py)", "Glob", {"pattern": "ab.py"}, False),
        ("Memory(content:[0-9]*)", "Memory", {"content": "42 is it"}, True),
        ("Handoff(reviewer)", "Handoff", {"to_profile": "reviewer"}, True),
        ("Handoff(reviewer)", "Handoff", {"to_profile": "reviewer2"}, False),
        ("Grep(pattern:\\()", "Grep", {"pattern": "\\("}, True),
    ],
)
def test_fnmatch_fields(rule: str, tool: str, inp: dict, expected: bool) -> None:
    assert rule_matches(rule, tool, inp) is expected


# ---- Bash globs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "command", "expected"),
    [
        ("git log *", "git log --oneline -5", True),
        ("git log *", "git log", True),  # trailing " *" also matches the bare command
        ("git log *", "git logx", False),
        ("git log *", "git  log   -1", True),  # words are re-joined by single spaces
        ("npm run test:*", "npm run test", True),  # Claude Code's ":*" prefix form
        ("npm run test:*", "npm run test -- -u", True),
        ("npm run test:*", "npm run test:e2e", False),
        ("git ?og", "git log", True),
        ("git ?og", "git blog", False),
        ("echo \\*", "echo '*'", True),
        ("echo \\*", "echo hi", False),
        ("git commit *", "git commit -m 'a\nb'", False),  # '*' does not cross newlines
        ("echo *", "echo 'two  spaces'", True),
    ],
)
def test_bash_globs(glob: str, command: str, expected: bool) -> None:
    assert rule_matches(f"Bash(command:{glob})", "Bash", {"command": command}) is expected


def test_crafted_long_inputs_do_not_blow_up_the_matcher() -> None:
    # A backtracking regex needs hours for these; the wildcard matcher answers at once.
    command = "echo " + "-- " * 2000 + "y"
    assert not rule_matches("Bash(command:echo * -- * -- * x)", "Bash", {"command": command})
    assert rule_matches("Bash(command:echo * -- * -- * y)", "Bash", {"command": command})
    path = "/a" + "/b" * 2000 + "/c"
    assert not rule_matches("Read(/a/**/b/**/b/**/x)", "Read", {"file_path": path})
    assert rule_matches("Read(/a/**/b/**/b/**/c)", "Read", {"file_path": path})
    assert not rule_matches("Read(/a/*x*x*x*x*y)", "Read", {"file_path": "/a/" + "x" * 250})


def test_empty_command_matches_nothing() -> None:
    for command in ("", "   ", "# just a comment", "\n\n"):
        assert not rule_matches("Bash(command:*)", "Bash", {"command": command})


def test_shell_analysis_exposes_commands_and_reasons() -> None:
    a = analyze_command("git status && git log | head -3")
    assert [c.text for c in a.commands] == ["git status", "git log", "head -3"]
    assert a.coverable and a.refusal is None
    b = analyze_command("git log $(rm -rf /)")
    assert not b.coverable
    assert "command substitution" in (b.refusal or "")
    assert analyze_command("cat <<EOF\nx\nEOF").refusal.startswith("here-documents")


# ---- deny mode -----------------------------------------------------------------------------


def test_deny_mode_fires_on_any_command_and_inside_wrappers() -> None:
    deny = "Bash(command:rm *)"
    for command in (
        "git status && rm -rf ~",
        "sudo -u root rm -rf /",
        "FOO=1 timeout 5 rm x",
        "bash -lc 'cd /; rm -rf .'",
        "echo $(rm -rf /)",
        "find . -exec rm {} +",
        "eval rm -rf /",
    ):
        assert rule_matches(deny, "Bash", {"command": command}, mode="deny"), command
        assert not rule_matches(deny, "Bash", {"command": command}), command
    assert not rule_matches(deny, "Bash", {"command": "git commit -m rm"}, mode="deny")
    assert "rm -x" in deny_texts("sh -c 'eval rm -x'")


def test_deny_mode_paths_match_written_or_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("k")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "link").symlink_to(secret)
    rule = f"Read({secret}/**)"
    assert rule_matches(rule, "Read", {"file_path": str(proj / "link" / "key")}, mode="deny")
    assert not rule_matches(rule, "Read", {"file_path": str(proj / "link" / "key")})
    assert not rule_matches(rule, "Read", {"file_path": str(proj / "key")}, mode="deny")


# ---- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "path", "expected"),
    [
        ("Read(/proj/src/**)", "/proj/src/a/b.py", True),
        ("Read(/proj/src/**)", "/proj/src/a", True),
        ("Read(/proj/src/**)", "/proj/src", True),  # the root itself
        ("Read(/proj/src/**)", "/proj/srcx/a", False),
        ("Read(/proj/src/*.py)", "/proj/src/a.py", True),
        ("Read(/proj/src/*.py)", "/proj/src/sub/a.py", False),  # '*' stays in one segment
        ("Read(/proj/**/test_*.py)", "/proj/test_a.py", True),
        ("Read(/proj/**/test_*.py)", "/proj/x/y/test_a.py", True),
        ("Read(/proj/**/test_*.py)", "/proj/x/y/a_test.py", False),
        ("Read(/proj/?.py)", "/proj/a.py", True),
        ("Read(/proj/?.py)", "/proj/ab.py", False),
        ("Read(/proj/[ab].py)", "/proj/b.py", True),
        ("Read(/proj/[!ab].py)", "/proj/b.py", False),
        ("Read(/proj/[!ab].py)", "/proj/c.py", True),
        ("Read(/proj/src/**)", "/proj/src/./a.py", True),
        ("Read(/proj/src/**)", "/proj//src/a.py", True),
        ("Read(/proj/src/**)", "/proj/lib/../src/a.py", True),
        ("Read(/proj/src/**)", "/proj/src/../lib/a.py", False),
        ("Read(/proj/src/../lib/**)", "/proj/lib/a.py", True),  # rules are normalized too
        ("Read(/proj/a\\*b)", "/proj/a*b", True),
        ("Read(/proj/a\\*b)", "/proj/axb", False),
        ("Read(/**)", "/etc/passwd", True),
        ("Read(/)", "/", True),
    ],
)
def test_path_globs(rule: str, path: str, expected: bool) -> None:
    assert rule_matches(rule, "Read", {"file_path": path}) is expected


def test_relative_paths_and_rules_are_anchored_at_working_dir() -> None:
    wd = "/proj"
    assert rule_matches("Read(src/**)", "Read", {"file_path": "src/a.py"}, working_dir=wd)
    assert rule_matches("Read(src/**)", "Read", {"file_path": "/proj/src/a.py"}, working_dir=wd)
    assert not rule_matches("Read(src/**)", "Read", {"file_path": "/src/a.py"}, working_dir=wd)
    assert rule_matches(
        "Read(/proj/src/**)", "Read", {"file_path": "./src/x"}, working_dir=Path("/proj")
    )
    assert not rule_matches(
        "Read(/proj/src/**)", "Read", {"file_path": "src/x"}, working_dir="/elsewhere"
    )


def test_relative_paths_default_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    real = os.path.realpath(tmp_path)
    assert rule_matches(f"Read({real}/**)", "Read", {"file_path": "a/b.txt"})
    assert rule_matches("Read(a/**)", "Read", {"file_path": f"{real}/a/b.txt"})


def test_tilde_expands_on_both_sides(isolated_home: Path) -> None:
    home = os.path.realpath(isolated_home)
    assert rule_matches("Read(~/notes/**)", "Read", {"file_path": f"{home}/notes/a.md"})
    assert rule_matches(f"Read({home}/notes/**)", "Read", {"file_path": "~/notes/a.md"})
    assert not rule_matches("Read(~/notes/**)", "Read", {"file_path": "~/notes/../.ssh/id"})


def test_symlinks_are_resolved_on_the_request_side(tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src" / "ok.py").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root")
    (proj / "src" / "link").symlink_to(outside)
    (proj / "src" / "filelink").symlink_to(outside / "passwd")
    rule = f"Read({proj}/src/**)"
    assert rule_matches(rule, "Read", {"file_path": str(proj / "src" / "ok.py")})
    assert not rule_matches(rule, "Read", {"file_path": str(proj / "src" / "link" / "passwd")})
    assert not rule_matches(rule, "Read", {"file_path": str(proj / "src" / "filelink")})
    # ".." after a link climbs from the link's target, not lexically: refused.
    assert not rule_matches(rule, "Read", {"file_path": str(proj / "src" / "link" / ".." / "x")})
    # Writing a new file through a linked directory is refused too.
    assert not rule_matches(
        f"Write({proj}/src/**)", "Write", {"file_path": str(proj / "src" / "link" / "new")}
    )


def test_a_rule_written_through_a_linked_directory_still_matches(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "src").mkdir(parents=True)
    (real / "src" / "a.py").write_text("x")
    alias = tmp_path / "alias"
    alias.symlink_to(real)
    assert rule_matches(f"Read({alias}/src/**)", "Read", {"file_path": str(alias / "src/a.py")})
    assert rule_matches(f"Read({alias}/src/**)", "Read", {"file_path": str(real / "src/a.py")})


def test_nul_bytes_and_empty_paths_never_match() -> None:
    assert not rule_matches("Read(/proj/**)", "Read", {"file_path": "/proj/a\x00/../../etc"})
    assert not rule_matches("Read(/proj/**)", "Read", {"file_path": ""})
    assert not rule_matches("NotebookEdit(/proj/**)", "NotebookEdit", {"notebook_path": 3})


# ---- suggest_rule --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("git log --oneline", "Bash(command:git log *)"),
        ("git status", "Bash(command:git status *)"),
        ("ls -la", "Bash(command:ls *)"),
        ("ls", "Bash(command:ls *)"),
        # programs that run code get the exact command ("node *" would allow "node -e ...")
        ("npm test", "Bash(command:npm test)"),
        ("npm run build -- --prod", "Bash(command:npm run build -- --prod)"),
        ("uv run pytest -q", "Bash(command:uv run pytest -q)"),
        ("python -m pytest -x tests", "Bash(command:python -m pytest -x tests)"),
        ("python3 manage.py migrate", "Bash(command:python3 manage.py migrate)"),
        ("docker compose up -d", "Bash(command:docker compose up -d)"),
        ("git -C sub log", "Bash(command:git -C sub log)"),
        ("rm -rf build", "Bash(command:rm -rf build)"),
        ("FOO=1 make test", "Bash(command:FOO=1 make test)"),
        ("git status && git status -s", "Bash(command:git status *)"),
        ("git add . && git commit -m x", "Bash(command:git add . && git commit -m x)"),
        ("echo $(whoami)", "Bash(command:echo $\\(whoami\\))"),
        ("ls *.py", "Bash(command:ls *)"),
        ("echo '*'", "Bash(command:echo *)"),
        ("cat 'a?.txt' | head", "Bash(command:cat 'a\\?.txt' | head)"),
    ],
)
def test_suggest_bash(command: str, expected: str) -> None:
    assert suggest_rule("Bash", {"command": command}) == expected


def test_suggested_bash_rules_cover_their_own_request_when_coverable() -> None:
    for command in ("git log --oneline", "ls -la", "npm test", "rm -rf build", "FOO=1 make test"):
        rule = suggest_rule("Bash", {"command": command})
        assert rule_matches(rule, "Bash", {"command": command}), rule
    uncoverable = "echo $(whoami)"
    rule = suggest_rule("Bash", {"command": uncoverable})
    assert not rule_matches(rule, "Bash", {"command": uncoverable})


def test_suggest_paths_and_other_tools() -> None:
    assert suggest_rule("Read", {"file_path": "/proj/src/a.py"}) == "Read(file_path:/proj/src/**)"
    assert (
        suggest_rule("Edit", {"file_path": "src/../lib/x.py"}, working_dir="/proj")
        == "Edit(file_path:/proj/lib/**)"
    )
    assert (
        suggest_rule("Write", {"file_path": "/p/we*rd (1)/f"})
        == "Write(file_path:/p/we\\*rd \\(1\\)/**)"
    )
    assert rule_matches(
        "Write(file_path:/p/we\\*rd \\(1\\)/**)", "Write", {"file_path": "/p/we*rd (1)/f"}
    )
    assert (
        suggest_rule("WebFetch", {"url": "https://x.io/a?b=1"})
        == "WebFetch(url:https://x.io/a[?]b=1)"
    )
    assert (
        suggest_rule("WebSearch", {"query": "f(x) [draft]"})
        == "WebSearch(query:f[(]x[)] [[]draft])"
    )
    assert suggest_rule("Handoff", {"to_profile": "reviewer"}) == "Handoff(to_profile:reviewer)"
    assert suggest_rule("mcp__gh__list", {"repo": "a/b"}) == "mcp__gh__list"
    for tool, inp in (
        ("WebFetch", {"url": "https://x.io/a?b=1"}),
        ("WebSearch", {"query": "f(x) [draft]"}),
        ("Read", {"file_path": "/proj/src/a.py"}),
    ):
        assert rule_matches(suggest_rule(tool, inp), tool, inp)


def test_suggest_refuses_requests_without_a_main_value() -> None:
    for inp in ({}, {"command": ""}, {"command": 3}, {"command": "a\x00b"}):
        with pytest.raises(ValueError, match="cannot suggest"):
            suggest_rule("Bash", inp)


@pytest.mark.parametrize(
    "command",
    [
        "node -e 'console.log(1)'",
        "perl -e 'print 1'",
        "ruby -e 'puts 1'",
        "php -r 'echo 1;'",
        "python3 -c 'print(1)'",
        "python3.12 script.py",
        "awk '{print $1}' data.csv",
        "sed -n 1p data.csv",
        "find . -name x",
        "tar tzf a.tgz",
        "env",
        "make test",
        "npm test",
        "npx prettier --check .",
        "pip install requests",
        "bash script.sh",
        "./run.sh --fast",
        "docker run --rm alpine",
        "git rebase main",
    ],
)
def test_programs_that_run_code_get_the_exact_command(command: str) -> None:
    rule = suggest_rule("Bash", {"command": command})
    assert not rule.endswith(" *)"), rule
    assert not rule_matches(rule, "Bash", {"command": command + " -e 'evil()'"})


def test_suggestions_for_dot_git_paths_name_the_file() -> None:
    assert (
        suggest_rule("Write", {"file_path": ".git/hooks/pre-commit"}, working_dir="/proj")
        == "Write(file_path:/proj/.git/hooks/pre-commit)"
    )
    assert suggest_rule("Edit", {"file_path": "src/a.py"}, working_dir="/proj") == (
        "Edit(file_path:/proj/src/**)"
    )
