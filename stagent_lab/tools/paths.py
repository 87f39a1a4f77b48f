"""Confinement checks and input checks shared by the built-in tools.

:func:`resolve_in_project` answers "is this path inside the project?", resolving symlinks
*before* comparing against the project root (checking the string alone is not enough: a link
``docs -> /etc`` inside the project would otherwise let ``docs/passwd`` through). It is a check,
not a way to open files: between it and an ``open`` a folder can be swapped for a symlink. The
file tools open through :mod:`stagent_lab.tools.confine`, which walks without following links
out of the project.

The light JSON-schema check lives here too, because every tool needs it and tools must answer
bad model input with an error result (never an exception).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stagent_lab.tools.base import ToolResult

SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "__pycache__"})
"""Directories Glob and Grep never descend into: VCS internals, vendored deps, caches."""

BINARY_SNIFF_BYTES = 8192


class InvalidPath(ValueError):
    """A path a tool cannot use at all (empty, NUL byte)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"path {path!r} is invalid: {reason}")
        self.path = path
        self.reason = reason


class PathOutsideProject(InvalidPath):
    """The path (after resolving symlinks) leaves the project folder."""

    def __init__(self, path: str, working_dir: Path, resolved: Path | None = None) -> None:
        where = f" (resolves to {resolved})" if resolved is not None else ""
        ValueError.__init__(
            self,
            f"path {path!r}{where} is outside the project folder {working_dir}; "
            "tools may only touch files inside it",
        )
        self.path = path
        self.reason = "outside the project folder"
        self.working_dir = working_dir
        self.resolved = resolved


def resolve_in_project(path: str, working_dir: Path) -> Path:
    """Return the real absolute path of ``path``, or raise if it escapes ``working_dir``.

    Relative paths are joined to ``working_dir``. ``~`` is deliberately not expanded: a model
    writing ``~/.ssh/id_rsa`` gets a file literally named ``~`` inside the project, never the
    operator's home. Symlinks are resolved (non-strict, so paths that do not exist yet work).
    """
    if "\x00" in path:
        raise InvalidPath(path, "contains a NUL byte")
    root = Path(os.path.realpath(working_dir))
    candidate = Path(path)
    if not candidate.is_absolute():
        candidate = Path(working_dir) / candidate
    resolved = Path(os.path.realpath(candidate))
    if not resolved.is_relative_to(root):
        raise PathOutsideProject(path, root, resolved)
    return resolved


def display_path(path: Path, working_dir: Path) -> str:
    """Project-relative form of a resolved path, used in tool output (``.`` for the root)."""
    root = Path(os.path.realpath(working_dir))
    try:
        rel = path.relative_to(root)
    except ValueError:
        return str(path)
    return rel.as_posix() or "."


def is_binary_file(path: Path) -> bool:
    """True when the first 8 KiB hold a NUL byte (the same heuristic git and grep use).

    Opened non-blocking: a FIFO reads as empty (not binary) instead of hanging the caller.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        return b"\x00" in os.pread(fd, BINARY_SNIFF_BYTES, 0)
    except OSError:  # ESPIPE and friends: not a seekable regular file
        return False
    finally:
        os.close(fd)


def error(message: str, **meta: Any) -> ToolResult:
    """An error result: what the model sees when its call was wrong or failed."""
    return ToolResult(output=message, is_error=True, meta=dict(meta))


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check_input(tool_name: str, tool_input: Any, schema: Mapping[str, Any]) -> str | None:
    """Light validation against a tool's JSON schema; returns an error message or None.

    Covers what models actually get wrong: a missing required field, an unknown field, a wrong
    type, a value outside an enum or below a minimum. It is not a full JSON-schema engine.
    """
    if not isinstance(tool_input, Mapping):
        return f"{tool_name}: input must be an object, got {type(tool_input).__name__}"
    props: Mapping[str, Any] = schema.get("properties", {})
    missing = [f for f in schema.get("required", []) if f not in tool_input]
    if missing:
        return f"{tool_name}: missing required field(s): {', '.join(missing)}"
    if schema.get("additionalProperties") is False:
        unknown = sorted(k for k in tool_input if k not in props)
        if unknown:
            return (
                f"{tool_name}: unknown field(s): {', '.join(map(str, unknown))}; "
                f"allowed: {', '.join(props)}"
            )
    for key, value in tool_input.items():
        prop = props.get(key)
        if prop is None:
            continue
        message = _check_value(key, value, prop)
        if message:
            return f"{tool_name}: {message}"
    return None


def _check_value(key: str, value: Any, prop: Mapping[str, Any]) -> str | None:
    expected = prop.get("type")
    if expected:
        types = _JSON_TYPES[expected]
        # bool is an int subclass in Python, but JSON keeps them apart.
        ok = isinstance(value, types) and (expected == "boolean" or not isinstance(value, bool))
        if not ok:
            article = "an" if expected[0] in "aeiou" else "a"
            return f"field '{key}' must be {article} {expected}, got {_json_type_name(value)}"
    if "enum" in prop and value not in prop["enum"]:
        choices = ", ".join(repr(c) for c in prop["enum"])
        return f"field '{key}' must be one of {choices}, got {value!r}"
    if "minimum" in prop and value < prop["minimum"]:
        return f"field '{key}' must be >= {prop['minimum']}, got {value!r}"
    if "maximum" in prop and value > prop["maximum"]:
        return f"field '{key}' must be <= {prop['maximum']}, got {value!r}"
    if "minLength" in prop and len(value) < prop["minLength"]:
        return f"field '{key}' must not be empty"
    return None


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    for name, types in _JSON_TYPES.items():
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, types):
            return name
    return type(value).__name__


__all__ = [
    "SKIP_DIRS",
    "InvalidPath",
    "PathOutsideProject",
    "check_input",
    "display_path",
    "error",
    "is_binary_file",
    "resolve_in_project",
]
