"""The tool registry, the tool contract, and the shipped sample project."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

import stagent_lab.tools as tools
from stagent_lab.tools import BUILTIN_TOOLS, get_tool, register_tool, tool_specs
from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.files import GlobTool, GrepTool, ReadTool

SAMPLE = Path(tools.__file__).resolve().parent.parent / "sample_project"


FILE_AND_SHELL = ["Read", "Write", "Edit", "Glob", "Grep", "Bash", "WebFetch"]
# Memory and Handoff are registered when a Lab opens (they need its store).
LAB_TOOLS = {"Memory": "content", "Handoff": "to_profile"}


def test_builtin_names_in_order() -> None:
    names = list(BUILTIN_TOOLS)
    assert names[:7] == FILE_AND_SHELL
    assert set(names[7:]) <= set(LAB_TOOLS)


@pytest.mark.parametrize("name", ["Read", "Write", "Edit", "Glob", "Grep", "Bash", "WebFetch"])
def test_every_tool_follows_the_contract(name: str) -> None:
    tool = get_tool(name)
    assert tool is not None and tool.name == name
    schema = tool.input_schema
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])
    assert tool.main_field in schema["properties"]
    assert set(tool.path_fields) <= set(schema["properties"])
    assert len(tool.description) > 60


def test_main_fields_match_claude_code() -> None:
    fields = {name: tool.main_field for name, tool in BUILTIN_TOOLS.items()}
    for name, field in LAB_TOOLS.items():
        assert fields.pop(name, field) == field
    assert fields == {
        "Read": "file_path",
        "Write": "file_path",
        "Edit": "file_path",
        "Glob": "pattern",
        "Grep": "pattern",
        "Bash": "command",
        "WebFetch": "url",
    }


def test_read_only_flags() -> None:
    read_only = sorted(n for n, t in BUILTIN_TOOLS.items() if t.read_only)
    assert read_only == ["Glob", "Grep", "Read", "WebFetch"]


def test_get_tool_unknown_is_none() -> None:
    assert get_tool("Nope") is None
    assert get_tool("read") is None


def test_tool_specs_keeps_order_skips_unknown_and_repeats() -> None:
    specs = tool_specs(["Grep", "Unknown", "Read", "Grep"])
    assert [s["name"] for s in specs] == ["Grep", "Read"]
    assert set(specs[0]) == {"name", "description", "input_schema"}
    assert specs[1]["input_schema"]["required"] == ["file_path"]


class EchoTool(Tool):
    name = "Echo"
    main_field = "text"
    description = "Echo text back."
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    }

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        return ToolResult(output=tool_input["text"])


class FakeRead(EchoTool):
    name = "Read"


@pytest.fixture()
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tools, "BUILTIN_TOOLS", dict(BUILTIN_TOOLS))


def test_register_tool_adds_and_specs(clean_registry: None) -> None:
    register_tool(EchoTool())
    assert isinstance(get_tool("Echo"), EchoTool)
    assert [s["name"] for s in tool_specs(["Echo"])] == ["Echo"]
    register_tool(EchoTool())  # same class again: idempotent
    assert isinstance(get_tool("Echo"), EchoTool)


def test_register_tool_refuses_to_shadow_a_builtin(clean_registry: None) -> None:
    with pytest.raises(ValueError, match="already registered as 'Read'"):
        register_tool(FakeRead())
    assert isinstance(get_tool("Read"), ReadTool)


def test_register_tool_rejects_non_tools(clean_registry: None) -> None:
    with pytest.raises(TypeError):
        register_tool("Read")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- sample project


def test_sample_project_is_plain_valid_python() -> None:
    files = sorted(p.relative_to(SAMPLE).as_posix() for p in SAMPLE.rglob("*") if p.is_file())
    files = [f for f in files if "__pycache__" not in f]
    assert {
        "README.md",
        "requirements.txt",
        "app/auth.py",
        "app/api.py",
        "app/db.py",
        "app/report.py",
        "tests/test_report.py",
    } <= set(files)
    assert not (SAMPLE / ".git").exists()
    for rel in files:
        if rel.endswith(".py"):
            ast.parse((SAMPLE / rel).read_text(), filename=rel)


def grep(tool_input: dict[str, Any]) -> str:
    return asyncio.run(GrepTool().run(tool_input, ToolContext(working_dir=SAMPLE))).output


def test_sample_project_review_findings_are_discoverable() -> None:
    assert grep({"pattern": r"\beval\(", "output_mode": "files_with_matches"}).endswith(
        "\napp/api.py"
    )
    assert grep({"pattern": r"hashlib\.md5"}).endswith("\napp/auth.py")
    assert 'SECRET_KEY = "dev-only-change-me"' in grep(
        {"pattern": "SECRET_KEY =", "output_mode": "content"}
    )
    assert "app/auth.py" in grep({"pattern": r"'%s'\" % ", "output_mode": "content"})
    assert "except:" in grep({"pattern": r"except\s*:", "output_mode": "content"})
    assert "TODO" in grep({"pattern": "TODO", "output_mode": "content"})


def test_sample_project_glob_lists_python_files() -> None:
    out = asyncio.run(
        GlobTool().run({"pattern": "**/*.py"}, ToolContext(working_dir=SAMPLE))
    ).output
    assert {"app/api.py", "app/report.py", "tests/test_report.py"} <= set(out.split("\n"))
