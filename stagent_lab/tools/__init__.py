"""The built-in governed tool set, by name.

Runtimes that drive a model directly (anthropic-direct, openai-direct, ollama, scripted) look
tools up here and hand ``tool_specs(profile.allowedTools)`` to the model. Names match Claude
Code's so a profile's ``allowedTools`` and saved rules mean the same thing on every runtime.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stagent_lab.tools.base import Tool, ToolContext, ToolResult, spec
from stagent_lab.tools.bash import BashTool
from stagent_lab.tools.files import EditTool, GlobTool, GrepTool, ReadTool, WriteTool
from stagent_lab.tools.paths import PathOutsideProject, resolve_in_project
from stagent_lab.tools.registry import ToolRegistry
from stagent_lab.tools.web import WebFetchTool

BUILTIN_TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        ReadTool(),
        WriteTool(),
        EditTool(),
        GlobTool(),
        GrepTool(),
        BashTool(),
        WebFetchTool(),
    )
}


def builtin_registry() -> ToolRegistry:
    """A fresh registry with the built-in tools (one per workspace)."""
    return ToolRegistry(
        [ReadTool(), WriteTool(), EditTool(), GlobTool(), GrepTool(), BashTool(), WebFetchTool()]
    )


def get_tool(name: str) -> Tool | None:
    """The registered tool called ``name`` (case-sensitive, like rules), or None."""
    return BUILTIN_TOOLS.get(name)


def register_tool(tool: Tool) -> None:
    """Add a tool (Memory, Handoff ...) to the set. Re-registering the same class replaces it.

    A different class under an existing name is refused: silently swapping ``Bash`` for
    something else would change what every saved ``Bash(...)`` rule governs.
    """
    name = getattr(tool, "name", "")
    if not isinstance(tool, Tool) or not isinstance(name, str) or not name:
        raise TypeError("register_tool needs a Tool instance with a non-empty name")
    if not isinstance(tool.input_schema, dict) or tool.input_schema.get("type") != "object":
        raise ValueError(f"tool {name!r} needs an object input_schema")
    current = BUILTIN_TOOLS.get(name)
    if current is not None and type(current) is not type(tool):
        raise ValueError(
            f"a different tool is already registered as {name!r} ({type(current).__name__})"
        )
    BUILTIN_TOOLS[name] = tool


def tool_specs(names: Iterable[str]) -> list[dict[str, Any]]:
    """``[{name, description, input_schema}]`` for the known names, in order, without repeats."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for name in names:
        tool = BUILTIN_TOOLS.get(name)
        if tool is None or name in seen:
            continue
        seen.add(name)
        out.append(spec(tool))
    return out


__all__ = [
    "BUILTIN_TOOLS",
    "BashTool",
    "EditTool",
    "GlobTool",
    "GrepTool",
    "PathOutsideProject",
    "ReadTool",
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "WebFetchTool",
    "WriteTool",
    "builtin_registry",
    "get_tool",
    "register_tool",
    "resolve_in_project",
    "tool_specs",
]
