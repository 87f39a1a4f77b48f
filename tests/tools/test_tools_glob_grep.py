"""Glob and Grep: ordering, filters, skipped folders, binary files, confinement."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.files import GlobTool, GrepTool, expand_braces, glob_to_regex


def run(tool: Tool, tool_input: Any, ctx: ToolContext) -> ToolResult:
    return asyncio.run(tool.run(tool_input, ctx))


def write(root: Path, rel: str, text: str, mtime: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture()
def ctx(tmp_path: Path) -> ToolContext:
    root = tmp_path / "proj"
    root.mkdir()
    write(root, "app/main.py", "import os\nSECRET = 'x'\n", mtime=1_000)
    write(root, "app/util.py", "def helper():\n    return 1\n", mtime=3_000)
    write(root, "app/sub/deep.py", "secret = 2\n", mtime=2_000)
    write(root, "README.md", "# Readme\nsecret stuff\n", mtime=4_000)
    write(root, "web/index.ts", "const secret = 1;\n", mtime=500)
    for skipped in (".git", "node_modules", ".venv", "__pycache__"):
        write(root, f"{skipped}/hidden.py", "SECRET = 'skipped'\n", mtime=9_000)
    write(root, "app/__pycache__/main.cpython-311.py", "SECRET\n", mtime=9_000)
    return ToolContext(working_dir=root)


# ---------------------------------------------------------------------------- glob syntax


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.py", "a.py", True),
        ("*.py", "d/a.py", False),
        ("**/*.py", "a.py", True),
        ("**/*.py", "d/e/a.py", True),
        ("src/**", "src/a/b.txt", True),
        ("src/**/test_*.py", "src/test_a.py", True),
        ("src/**/test_*.py", "src/x/y/test_a.py", True),
        ("src/**/test_*.py", "lib/test_a.py", False),
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "b.txt", False),
        ("a**b", "a/b", False),
        ("file.(1).txt", "file.(1).txt", True),
    ],
)
def test_glob_to_regex(pattern: str, path: str, expected: bool) -> None:
    assert bool(glob_to_regex(pattern).match(path)) is expected


def test_expand_braces() -> None:
    assert sorted(expand_braces("src/*.{ts,tsx}")) == ["src/*.ts", "src/*.tsx"]
    assert sorted(expand_braces("{a,b}/{c,d}")) == ["a/c", "a/d", "b/c", "b/d"]
    assert expand_braces("plain") == ["plain"]


# ----------------------------------------------------------------------------------- Glob


def test_glob_recursive_sorted_newest_first_and_skips_dirs(ctx: ToolContext) -> None:
    result = run(GlobTool(), {"pattern": "**/*.py"}, ctx)
    assert not result.is_error
    assert result.output.split("\n") == ["app/util.py", "app/sub/deep.py", "app/main.py"]
    assert result.meta == {"count": 3, "truncated": False}


def test_glob_star_does_not_cross_folders(ctx: ToolContext) -> None:
    assert run(GlobTool(), {"pattern": "*.md"}, ctx).output == "README.md"
    assert run(GlobTool(), {"pattern": "*.py"}, ctx).output == "No files found"


def test_glob_literal_prefix_and_braces(ctx: ToolContext) -> None:
    result = run(GlobTool(), {"pattern": "**/*.{md,ts}"}, ctx)
    assert result.output.split("\n") == ["README.md", "web/index.ts"]
    assert run(GlobTool(), {"pattern": "app/*.py"}, ctx).output == "app/util.py\napp/main.py"


def test_glob_with_path_returns_project_relative_paths(ctx: ToolContext) -> None:
    result = run(GlobTool(), {"pattern": "**/*.py", "path": "app/sub"}, ctx)
    assert result.output == "app/sub/deep.py"


def test_glob_literal_file(ctx: ToolContext) -> None:
    assert run(GlobTool(), {"pattern": "app/main.py"}, ctx).output == "app/main.py"
    assert run(GlobTool(), {"pattern": "app/missing.py"}, ctx).output == "No files found"


def test_glob_caps_at_1000_with_note(tmp_path: Path) -> None:
    root = tmp_path / "many"
    for i in range(1005):
        write(root, f"f{i:04d}.txt", "", mtime=10_000 + i)
    result = run(GlobTool(), {"pattern": "*.txt"}, ToolContext(root, output_cap_chars=10**6))
    lines = result.output.split("\n")
    assert lines[0] == "f1004.txt"
    assert lines[999] == "f0005.txt"
    assert lines[1000] == (
        "[showing the 1000 most recent of 1005 matches; narrow the pattern or path to see the rest]"
    )
    assert result.meta == {"count": 1005, "truncated": True}


def test_glob_path_escape_is_refused(ctx: ToolContext) -> None:
    result = run(GlobTool(), {"pattern": "*", "path": ".."}, ctx)
    assert result.is_error and "outside the project folder" in result.output


def test_glob_pattern_escape_is_refused(ctx: ToolContext) -> None:
    for pattern in ("../*", "/etc/*", "app/../../*"):
        result = run(GlobTool(), {"pattern": pattern}, ctx)
        assert result.is_error, pattern
        assert "outside the project folder" in result.output


def test_glob_does_not_follow_symlinked_dir_outside(ctx: ToolContext, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "leak.py", "x\n")
    (ctx.working_dir / "linked").symlink_to(outside)
    (ctx.working_dir / "leak_link.py").symlink_to(outside / "leak.py")
    result = run(GlobTool(), {"pattern": "**/*.py"}, ctx)
    assert "leak" not in result.output


def test_glob_path_not_a_directory(ctx: ToolContext) -> None:
    result = run(GlobTool(), {"pattern": "*", "path": "README.md"}, ctx)
    assert result.is_error and result.output == "Glob: path README.md is not a directory"


def test_glob_bad_input(ctx: ToolContext) -> None:
    result = run(GlobTool(), {"pattern": 5}, ctx)
    assert result.is_error and "field 'pattern' must be a string" in result.output
    result = run(GlobTool(), {}, ctx)
    assert result.is_error and "missing required field(s): pattern" in result.output


# ----------------------------------------------------------------------------------- Grep


def test_grep_files_with_matches_default_newest_first(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "secret"}, ctx)
    assert result.output == "Found 3 files\nREADME.md\napp/sub/deep.py\nweb/index.ts"
    assert result.meta["matches"] == 3


def test_grep_case_insensitive(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "secret", "-i": True}, ctx)
    assert result.output.split("\n")[0] == "Found 4 files"
    assert "app/main.py" in result.output
    assert "hidden.py" not in result.output
    assert "__pycache__" not in result.output


def test_grep_content_mode_with_line_numbers(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "SECRET|helper", "output_mode": "content"}, ctx)
    assert result.output == "app/main.py:2:SECRET = 'x'\napp/util.py:1:def helper():"


def test_grep_content_without_line_numbers(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "SECRET", "output_mode": "content", "-n": False}, ctx)
    assert result.output == "app/main.py:SECRET = 'x'"


def test_grep_content_context_lines(tmp_path: Path) -> None:
    root = tmp_path / "c"
    write(root, "f.txt", "a\nb\nMATCH1\nc\nd\ne\nf\nMATCH2\ng\n")
    result = run(
        GrepTool(), {"pattern": "MATCH", "output_mode": "content", "-C": 1}, ToolContext(root)
    )
    assert result.output.split("\n") == [
        "f.txt-2-b",
        "f.txt:3:MATCH1",
        "f.txt-4-c",
        "--",
        "f.txt-7-f",
        "f.txt:8:MATCH2",
        "f.txt-9-g",
    ]


def test_grep_count_mode(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "secret", "output_mode": "count", "-i": True}, ctx)
    assert result.output == (
        "README.md:1\napp/main.py:1\napp/sub/deep.py:1\nweb/index.ts:1\n"
        "\nFound 4 matches in 4 files"
    )


def test_grep_glob_filter_on_names_and_paths(ctx: ToolContext) -> None:
    by_name = run(GrepTool(), {"pattern": "secret", "-i": True, "glob": "*.{py,ts}"}, ctx)
    assert sorted(by_name.output.split("\n")[1:]) == [
        "app/main.py",
        "app/sub/deep.py",
        "web/index.ts",
    ]
    by_path = run(GrepTool(), {"pattern": "secret", "-i": True, "glob": "app/sub/*.py"}, ctx)
    assert by_path.output == "Found 1 file\napp/sub/deep.py"


def test_grep_path_may_be_a_single_file(ctx: ToolContext) -> None:
    result = run(
        GrepTool(), {"pattern": "return", "path": "app/util.py", "output_mode": "content"}, ctx
    )
    assert result.output == "app/util.py:2:    return 1"


def test_grep_head_limit(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "secret", "-i": True, "head_limit": 2}, ctx)
    lines = result.output.split("\n")
    assert lines == [
        "Found 4 files",
        "README.md",
        "app/sub/deep.py",
        "[head_limit 2: 2 more not shown]",
    ]
    assert result.meta["truncated"] is True


def test_grep_skips_binary_files(ctx: ToolContext) -> None:
    (ctx.working_dir / "blob.bin").write_bytes(b"secret\x00\x01\x02")
    result = run(GrepTool(), {"pattern": "secret"}, ctx)
    assert "blob.bin" not in result.output
    assert result.meta["files"] == 3


def test_grep_no_matches(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "zzzz-not-here"}, ctx)
    assert (result.is_error, result.output) == (False, "No matches found")


def test_grep_invalid_regex_is_named(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "foo(bar"}, ctx)
    assert result.is_error
    assert result.output.startswith("Grep: invalid regex pattern 'foo(bar': ")


def test_grep_bad_output_mode(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "x", "output_mode": "lines"}, ctx)
    assert result.is_error and "field 'output_mode' must be one of" in result.output


def test_grep_escape_is_refused(ctx: ToolContext, tmp_path: Path) -> None:
    write(tmp_path, "outside.txt", "secret\n")
    for path in ("..", str(tmp_path / "outside.txt")):
        result = run(GrepTool(), {"pattern": "secret", "path": path}, ctx)
        assert result.is_error and "outside the project folder" in result.output


def test_grep_ignores_symlinked_file_outside(ctx: ToolContext, tmp_path: Path) -> None:
    outside = write(tmp_path, "outside.txt", "TOPSECRET\n")
    (ctx.working_dir / "peek.txt").symlink_to(outside)
    result = run(GrepTool(), {"pattern": "TOPSECRET", "output_mode": "content"}, ctx)
    assert result.output == "No matches found"


def test_grep_missing_path(ctx: ToolContext) -> None:
    result = run(GrepTool(), {"pattern": "x", "path": "nowhere"}, ctx)
    assert result.is_error and result.output == "Grep: path nowhere does not exist"


def test_grep_output_is_capped(tmp_path: Path) -> None:
    root = tmp_path / "big"
    write(root, "f.txt", "hit\n" * 500)
    small = ToolContext(root, output_cap_chars=200)
    result = run(GrepTool(), {"pattern": "hit", "output_mode": "content"}, small)
    body, note = result.output.rsplit("\n", 1)
    assert len(body) <= 200
    assert note.startswith("[output capped at 200 characters;")
    assert result.meta["truncated"] is True
