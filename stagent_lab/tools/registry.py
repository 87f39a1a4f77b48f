"""A workspace's tool set: the built-in tools plus what its features add (Memory, Handoff).

Each workspace has its own registry, so opening a workspace never changes another one's tools.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stagent_lab.tools.base import Tool, spec


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        """Add ``tool``. Re-registering the same class replaces it; a different class under an
        existing name is refused (it would change what every saved ``Name(...)`` rule governs)."""
        name = getattr(tool, "name", "")
        if not isinstance(tool, Tool) or not isinstance(name, str) or not name:
            raise TypeError("register() needs a Tool instance with a non-empty name")
        if not isinstance(tool.input_schema, dict) or tool.input_schema.get("type") != "object":
            raise ValueError(f"tool {name!r} needs an object input_schema")
        current = self._tools.get(name)
        if current is not None and type(current) is not type(tool):
            raise ValueError(
                f"a different tool is already registered as {name!r} ({type(current).__name__})"
            )
        self._tools[name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """``[{name, description, input_schema}]`` for the known names, in order, no repeats."""
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for name in names:
            tool = self._tools.get(name)
            if tool is None or name in seen:
                continue
            seen.add(name)
            out.append(spec(tool))
        return out
