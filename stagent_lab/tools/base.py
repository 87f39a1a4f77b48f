"""The contract every built-in tool implements.

A tool gets a validated input dict and a ToolContext, and returns a ToolResult. Tools never
decide permissions: the engine runs the permission cascade before calling ``run``.
Input field names follow Claude Code's (file_path, command, pattern, path, url) so one set of
permission rules governs every runtime.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class ToolResult:
    output: str
    is_error: bool = False
    # Structured extras for logs (exit code, truncated flag, paths touched ...).
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToolContext:
    """What a tool may touch. ``working_dir`` is the confinement root for every path."""

    working_dir: Path
    task_id: str = ""
    profile_id: str = ""
    bash_timeout_s: float = 120.0
    output_cap_chars: int = 30_000
    # Wall-clock limit of one Read, Write, Edit, Glob, Grep or WebFetch call (Bash has its
    # own, above); <= 0 means none. The call then ends with "<Tool>: timed out after N s".
    tool_timeout_s: float = 60.0
    # Write and Edit refuse any path with a `.git` component (a planted .git/config or hook
    # runs code on the next git command) unless this is True. The engine sets it only when
    # the permission rule that allowed the call names `.git` explicitly.
    allow_git_dir: bool = False
    # Hooks the engine provides for the Memory and Handoff tools (None when unavailable).
    services: dict[str, Callable[..., Awaitable[Any]]] = field(default_factory=dict)


class Tool:
    """Base class. Subclasses set ``name``, ``main_field``, ``description``, ``input_schema``."""

    name: ClassVar[str]
    main_field: ClassVar[str | None] = None  # the field `Tool(glob)` rules match against
    path_fields: ClassVar[tuple[str, ...]] = ()  # fields holding paths (normalized for rules)
    description: ClassVar[str] = ""
    input_schema: ClassVar[dict[str, Any]] = {}  # JSON schema handed to model APIs
    read_only: ClassVar[bool] = False

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        raise NotImplementedError


def spec(tool: Tool) -> dict[str, Any]:
    """Provider-neutral description: name, description, JSON schema."""
    return {"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}


__all__ = ["Tool", "ToolContext", "ToolResult", "spec"]
