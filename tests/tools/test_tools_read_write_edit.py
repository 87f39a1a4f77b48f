"""Read, Write and Edit: exact outputs, every error path, and confinement."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.files import EditTool, ReadTool, WriteTool


def run(tool: Tool, tool_input: Any, ctx: ToolContext) -> ToolResult:
    return asyncio.run(tool.run(tool_input, ctx))


@pytest.fixture()
def ctx(tmp_path: Path) -> ToolContext:
    root = tmp_path / "proj"
    root.mkdir()
    return ToolContext(working_dir=root)


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    target = tmp_path / "outside.txt"
    target.write_text("secret\n")
    return target


# ----------------------------------------------------------------------------------- Read


def test_read_numbers_lines_like_cat_n(ctx: ToolContext) -> None:
    (ctx.working_dir / "a.txt").write_text("alpha\nbeta\n\ngamma")
    result = run(ReadTool(), {"file_path": "a.txt"}, ctx)
    assert not result.is_error
    assert result.output == "     1\talpha\n     2\tbeta\n     3\t\n     4\tgamma"
    assert result.meta["end_line"] == 4
    assert result.meta["truncated"] is False


def test_read_offset_and_limit_page_through(ctx: ToolContext) -> None:
    (ctx.working_dir / "n.txt").write_text("".join(f"line{i}\n" for i in range(1, 11)))
    result = run(ReadTool(), {"file_path": "n.txt", "offset": 4, "limit": 2}, ctx)
    lines = result.output.split("\n")
    assert lines[:2] == ["     4\tline4", "     5\tline5"]
    assert "read more with offset=6" in result.output
    assert result.meta["truncated"] is True


def test_read_default_limit_is_2000_lines(ctx: ToolContext) -> None:
    (ctx.working_dir / "big.txt").write_text("x\n" * 2500)
    result = run(
        ReadTool(), {"file_path": "big.txt"}, ToolContext(ctx.working_dir, output_cap_chars=10**6)
    )
    numbered = [line for line in result.output.split("\n") if "\t" in line]
    assert len(numbered) == 2000
    assert numbered[-1] == "  2000\tx"
    assert "offset=2001" in result.output


def test_read_truncates_long_lines_at_2000_chars(ctx: ToolContext) -> None:
    (ctx.working_dir / "long.txt").write_text("a" * 2500 + "\nshort\n")
    result = run(ReadTool(), {"file_path": "long.txt"}, ctx)
    first, second = result.output.split("\n")
    assert first == "     1\t" + "a" * 2000 + " [... line truncated]"
    assert second == "     2\tshort"


def test_read_respects_output_cap_on_line_boundary(ctx: ToolContext) -> None:
    (ctx.working_dir / "w.txt").write_text("".join(f"{i:04d}\n" for i in range(100)))
    small = ToolContext(ctx.working_dir, output_cap_chars=60)
    result = run(ReadTool(), {"file_path": "w.txt"}, small)
    shown = [line for line in result.output.split("\n") if "\t" in line]
    # each rendered line is 11 chars + newline: 5 fit into 60
    assert shown == [f"{i + 1:>6}\t{i:04d}" for i in range(5)]
    assert "offset=6" in result.output


def test_read_empty_file(ctx: ToolContext) -> None:
    (ctx.working_dir / "empty.txt").write_text("")
    result = run(ReadTool(), {"file_path": "empty.txt"}, ctx)
    assert (result.is_error, result.output) == (False, "(file is empty)")


def test_read_offset_past_end_is_error(ctx: ToolContext) -> None:
    (ctx.working_dir / "s.txt").write_text("one\ntwo\n")
    result = run(ReadTool(), {"file_path": "s.txt", "offset": 5}, ctx)
    assert result.is_error
    assert result.output == "Read: offset 5 is beyond the end of s.txt (2 lines)"


def test_read_missing_file(ctx: ToolContext) -> None:
    result = run(ReadTool(), {"file_path": "nope.txt"}, ctx)
    assert result.is_error
    assert result.output == "Read: file not found: nope.txt"


def test_read_directory_is_error(ctx: ToolContext) -> None:
    (ctx.working_dir / "d").mkdir()
    result = run(ReadTool(), {"file_path": "d"}, ctx)
    assert result.is_error and "is a directory" in result.output


def test_read_binary_file_is_refused(ctx: ToolContext) -> None:
    (ctx.working_dir / "img.bin").write_bytes(b"\x89PNG\x00\x00data")
    result = run(ReadTool(), {"file_path": "img.bin"}, ctx)
    assert result.is_error
    assert "binary" in result.output
    assert "PNG" not in result.output


def test_read_invalid_utf8_is_replaced_not_fatal(ctx: ToolContext) -> None:
    (ctx.working_dir / "latin.txt").write_bytes(b"caf\xe9\n")
    result = run(ReadTool(), {"file_path": "latin.txt"}, ctx)
    assert result.output == "     1\tcaf\ufffd"


@pytest.mark.parametrize(
    ("tool_input", "fragment"),
    [
        ({}, "missing required field(s): file_path"),
        ({"file_path": 12}, "field 'file_path' must be a string"),
        ({"file_path": "a", "limit": "10"}, "field 'limit' must be an integer"),
        ({"file_path": "a", "limit": 0}, "field 'limit' must be >= 1"),
        ({"file_path": "a", "lines": 3}, "unknown field(s): lines"),
        ("a.txt", "input must be an object"),
    ],
)
def test_read_bad_input_names_the_field(ctx: ToolContext, tool_input: Any, fragment: str) -> None:
    result = run(ReadTool(), tool_input, ctx)
    assert result.is_error
    assert result.output.startswith("Read: ")
    assert fragment in result.output


def test_read_dotdot_escape_is_refused(ctx: ToolContext, outside: Path) -> None:
    result = run(ReadTool(), {"file_path": "../outside.txt"}, ctx)
    assert result.is_error
    assert "outside the project folder" in result.output
    assert "secret" not in result.output


def test_read_absolute_path_outside_is_refused(ctx: ToolContext, outside: Path) -> None:
    result = run(ReadTool(), {"file_path": str(outside)}, ctx)
    assert result.is_error and "outside the project folder" in result.output


def test_read_symlink_outside_is_refused(ctx: ToolContext, outside: Path) -> None:
    (ctx.working_dir / "innocent.txt").symlink_to(outside)
    result = run(ReadTool(), {"file_path": "innocent.txt"}, ctx)
    assert result.is_error and "outside the project folder" in result.output
    assert "secret" not in result.output


def test_read_nul_in_path_is_error(ctx: ToolContext) -> None:
    result = run(ReadTool(), {"file_path": "a\x00b"}, ctx)
    assert result.is_error and "NUL" in result.output


# ---------------------------------------------------------------------------------- Write


def test_write_creates_parents_and_reports_bytes(ctx: ToolContext) -> None:
    result = run(WriteTool(), {"file_path": "pkg/sub/mod.py", "content": "héllo\n"}, ctx)
    assert not result.is_error
    assert result.output == "Created pkg/sub/mod.py (7 bytes written)"
    assert (ctx.working_dir / "pkg/sub/mod.py").read_bytes() == "héllo\n".encode()
    assert result.meta == {"path": "pkg/sub/mod.py", "bytes": 7, "created": True}


def test_write_overwrites_existing_file(ctx: ToolContext) -> None:
    (ctx.working_dir / "f.txt").write_text("old content that is longer")
    result = run(WriteTool(), {"file_path": "f.txt", "content": "new"}, ctx)
    assert result.output == "Overwrote f.txt (3 bytes written)"
    assert (ctx.working_dir / "f.txt").read_text() == "new"


def test_write_to_directory_is_error(ctx: ToolContext) -> None:
    (ctx.working_dir / "d").mkdir()
    result = run(WriteTool(), {"file_path": "d", "content": "x"}, ctx)
    assert result.is_error and result.output == "Write: d is a directory"


def test_write_missing_content_is_error(ctx: ToolContext) -> None:
    result = run(WriteTool(), {"file_path": "f.txt"}, ctx)
    assert result.is_error and "missing required field(s): content" in result.output
    assert not (ctx.working_dir / "f.txt").exists()


def test_write_content_wrong_type_is_error(ctx: ToolContext) -> None:
    result = run(WriteTool(), {"file_path": "f.txt", "content": ["a"]}, ctx)
    assert result.is_error and "field 'content' must be a string, got array" in result.output


def test_write_escape_is_refused_and_nothing_written(ctx: ToolContext, tmp_path: Path) -> None:
    result = run(WriteTool(), {"file_path": "../evil.txt", "content": "x"}, ctx)
    assert result.is_error and "outside the project folder" in result.output
    assert not (tmp_path / "evil.txt").exists()


def test_write_through_symlink_pointing_outside_is_refused(ctx: ToolContext, outside: Path) -> None:
    (ctx.working_dir / "link.txt").symlink_to(outside)
    result = run(WriteTool(), {"file_path": "link.txt", "content": "pwned"}, ctx)
    assert result.is_error and "outside the project folder" in result.output
    assert outside.read_text() == "secret\n"


def test_write_into_symlinked_dir_pointing_outside_is_refused(
    ctx: ToolContext, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (ctx.working_dir / "out").symlink_to(elsewhere)
    result = run(WriteTool(), {"file_path": "out/new/f.txt", "content": "x"}, ctx)
    assert result.is_error
    assert list(elsewhere.iterdir()) == []


def test_write_tilde_path_stays_inside(ctx: ToolContext) -> None:
    result = run(WriteTool(), {"file_path": "~/notes.txt", "content": "hi"}, ctx)
    assert result.output == "Created ~/notes.txt (2 bytes written)"
    assert (ctx.working_dir / "~" / "notes.txt").read_text() == "hi"


# ----------------------------------------------------------------------------------- Edit


def test_edit_replaces_unique_occurrence(ctx: ToolContext) -> None:
    (ctx.working_dir / "m.py").write_text("a = 1\nb = 2\nc = 3\n")
    result = run(
        EditTool(), {"file_path": "m.py", "old_string": "b = 2", "new_string": "b = 20"}, ctx
    )
    assert not result.is_error
    assert result.output == "Edited m.py: replaced 1 occurrence (first at line 2)"
    assert (ctx.working_dir / "m.py").read_text() == "a = 1\nb = 20\nc = 3\n"


def test_edit_ambiguous_match_reports_count_and_leaves_file(ctx: ToolContext) -> None:
    original = "x = 1\nx = 1\nx = 1\n"
    (ctx.working_dir / "m.py").write_text(original)
    result = run(EditTool(), {"file_path": "m.py", "old_string": "x = 1", "new_string": "y"}, ctx)
    assert result.is_error
    assert "occurs 3 times in m.py" in result.output
    assert "replace_all" in result.output
    assert result.meta["matches"] == 3
    assert (ctx.working_dir / "m.py").read_text() == original


def test_edit_replace_all(ctx: ToolContext) -> None:
    (ctx.working_dir / "m.py").write_text("x = 1\ny = x\nx = 1\n")
    result = run(
        EditTool(),
        {"file_path": "m.py", "old_string": "x = 1", "new_string": "x = 2", "replace_all": True},
        ctx,
    )
    assert result.output == "Edited m.py: replaced 2 occurrences (first at line 1)"
    assert (ctx.working_dir / "m.py").read_text() == "x = 2\ny = x\nx = 2\n"


def test_edit_not_found_says_zero_matches(ctx: ToolContext) -> None:
    (ctx.working_dir / "m.py").write_text("a = 1\n")
    result = run(EditTool(), {"file_path": "m.py", "old_string": "zzz", "new_string": "y"}, ctx)
    assert result.is_error
    assert result.output == "Edit: old_string not found in m.py (0 matches)"


def test_edit_identical_strings_is_error(ctx: ToolContext) -> None:
    (ctx.working_dir / "m.py").write_text("a = 1\n")
    result = run(EditTool(), {"file_path": "m.py", "old_string": "a", "new_string": "a"}, ctx)
    assert result.is_error and "identical" in result.output


def test_edit_empty_old_string_is_error(ctx: ToolContext) -> None:
    (ctx.working_dir / "m.py").write_text("a = 1\n")
    result = run(EditTool(), {"file_path": "m.py", "old_string": "", "new_string": "b"}, ctx)
    assert result.is_error and "old_string is empty" in result.output
    assert (ctx.working_dir / "m.py").read_text() == "a = 1\n"


def test_edit_missing_file(ctx: ToolContext) -> None:
    result = run(EditTool(), {"file_path": "gone.py", "old_string": "a", "new_string": "b"}, ctx)
    assert result.is_error
    assert result.output == "Edit: gone.py does not exist (use Write to create it)"


def test_edit_binary_file_refused(ctx: ToolContext) -> None:
    (ctx.working_dir / "b.bin").write_bytes(b"ab\x00cd")
    result = run(EditTool(), {"file_path": "b.bin", "old_string": "ab", "new_string": "xy"}, ctx)
    assert result.is_error and "binary" in result.output
    assert (ctx.working_dir / "b.bin").read_bytes() == b"ab\x00cd"


def test_edit_crlf_file_matches_lf_old_string(ctx: ToolContext) -> None:
    (ctx.working_dir / "w.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    result = run(
        EditTool(), {"file_path": "w.txt", "old_string": "one\ntwo", "new_string": "1\n2"}, ctx
    )
    assert not result.is_error
    assert (ctx.working_dir / "w.txt").read_bytes() == b"1\r\n2\r\nthree\r\n"


def test_edit_replace_all_wrong_type(ctx: ToolContext) -> None:
    (ctx.working_dir / "m.py").write_text("a\n")
    result = run(
        EditTool(),
        {"file_path": "m.py", "old_string": "a", "new_string": "b", "replace_all": "yes"},
        ctx,
    )
    assert result.is_error and "field 'replace_all' must be a boolean" in result.output


def test_edit_symlink_outside_is_refused(ctx: ToolContext, outside: Path) -> None:
    (ctx.working_dir / "link.txt").symlink_to(outside)
    result = run(
        EditTool(), {"file_path": "link.txt", "old_string": "secret", "new_string": "x"}, ctx
    )
    assert result.is_error and "outside the project folder" in result.output
    assert outside.read_text() == "secret\n"


def test_edit_escape_via_dotdot_is_refused(ctx: ToolContext, outside: Path) -> None:
    result = run(
        EditTool(), {"file_path": "../outside.txt", "old_string": "secret", "new_string": "x"}, ctx
    )
    assert result.is_error and "outside the project folder" in result.output
    assert outside.read_text() == "secret\n"
