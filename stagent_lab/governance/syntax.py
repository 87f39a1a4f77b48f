"""Rule syntax: ``Tool``, ``Tool(glob)``, ``Tool(field:glob)``, parsed into :class:`Rule`."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from stagent_lab.errors import RuleSyntaxError

__all__ = ["PATH_FIELDS", "TOOL_MAIN_FIELDS", "WRITE_TOOLS", "Rule", "parse_rule"]

TOOL_MAIN_FIELDS: dict[str, str] = {
    "Bash": "command",
    "Read": "file_path",
    "Write": "file_path",
    "Edit": "file_path",
    "Glob": "pattern",
    "Grep": "pattern",
    "WebFetch": "url",
    "WebSearch": "query",
    "Memory": "content",
    "Handoff": "to_profile",
    "NotebookEdit": "notebook_path",
    "MultiEdit": "file_path",
}
PATH_FIELDS: set[str] = {"file_path", "path", "notebook_path"}
# Tools that write the file their path field names: a path with a ``.git`` component is only
# covered by a rule whose glob names ``.git`` itself.
WRITE_TOOLS: frozenset[str] = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})

# Other input fields of the built-in tools. ``Tool(name:glob)`` names a field only when
# ``name`` is one of the tool's fields, so ``WebFetch(https://example.com/*)`` stays a URL glob.
_OTHER_FIELDS: dict[str, set[str]] = {
    "Bash": {"description", "timeout", "run_in_background"},
    "Read": {"offset", "limit"},
    "Write": {"content"},
    "Edit": {"old_string", "new_string", "replace_all"},
    "Glob": {"path"},
    "Grep": {"path", "glob", "type", "output_mode", "include"},
    "WebFetch": {"prompt"},
    "WebSearch": {"allowed_domains", "blocked_domains"},
    "Memory": {"category", "tags", "confidence", "action", "query"},
    "Handoff": {"subject", "body", "requires_approval"},
    "NotebookEdit": {"new_source", "cell_id", "cell_type", "edit_mode"},
    "MultiEdit": {"edits"},
}
SHELL_FIELDS = {("Bash", "command")}

_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Rule:
    """A parsed rule. ``field`` and ``pattern`` are None for a bare ``Tool`` (any input);
    for ``Tool(glob)`` ``field`` is the tool's main field."""

    tool: str
    field: str | None
    pattern: str | None
    text: str


# ---- parsing -------------------------------------------------------------------------------


def _known_fields(tool: str) -> set[str] | None:
    if tool not in TOOL_MAIN_FIELDS:
        return None  # unknown (e.g. MCP) tool: any identifier before ':' is a field
    return {TOOL_MAIN_FIELDS[tool]} | _OTHER_FIELDS.get(tool, set()) | PATH_FIELDS


def _check_parens(body: str, rule: str) -> None:
    """Parentheses inside the glob must balance; ``\\(`` and ``[(]`` do not count."""
    depth = 0
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            close = body.find("]", i + 2)
            if close > 0:
                i = close + 1
                continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise RuleSyntaxError(f"unbalanced ')' in rule {rule!r}")
        i += 1
    if depth:
        raise RuleSyntaxError(f"unbalanced '(' in rule {rule!r}")


def parse_rule(rule: str) -> Rule:
    """Parse ``Tool``, ``Tool(glob)`` or ``Tool(field:glob)``; raise RuleSyntaxError if invalid.

    >>> parse_rule("Bash(command:git *)")
    Rule(tool='Bash', field='command', pattern='git *', text='Bash(command:git *)')
    """
    if not isinstance(rule, str):
        raise RuleSyntaxError(f"a rule must be a string, not {type(rule).__name__}")
    return _parse_cached(rule)


@functools.lru_cache(maxsize=1024)
def _parse_cached(rule: str) -> Rule:
    text = rule.strip()
    if not text:
        raise RuleSyntaxError("empty rule: write Tool, Tool(glob) or Tool(field:glob)")
    if "\x00" in text:
        raise RuleSyntaxError("a rule cannot contain a NUL byte")
    open_at = text.find("(")
    name = text if open_at < 0 else text[:open_at]
    if not name:
        raise RuleSyntaxError(f"empty tool name in rule {text!r}")
    if not _TOOL_NAME.fullmatch(name):
        if ")" in name:
            raise RuleSyntaxError(f"unbalanced ')' in rule {text!r}")
        raise RuleSyntaxError(
            f"invalid tool name {name!r} in rule {text!r}: use letters, digits, '_' or '-'"
        )
    if open_at < 0:
        return Rule(name, None, None, text)
    if not text.endswith(")"):
        raise RuleSyntaxError(f"unbalanced '(' in rule {text!r}: it must end with ')'")
    body = text[open_at + 1 : -1]
    _check_parens(body, text)
    field, pattern = _split_field(name, body, text)
    if not pattern:
        where = f" for field {field!r}" if field else ""
        raise RuleSyntaxError(
            f"empty glob{where} in rule {text!r}; write just {name!r} to match any input"
        )
    if field in PATH_FIELDS:
        _validate_path_glob(pattern, text)
    elif (name, field) in SHELL_FIELDS and _ends_with_lone_backslash(pattern):
        raise RuleSyntaxError(f"glob ends with a lone backslash in rule {text!r}")
    return Rule(name, field, pattern, text)


def _split_field(tool: str, body: str, text: str) -> tuple[str, str]:
    known = _known_fields(tool)
    head, colon, rest = body.partition(":")
    head_name = head.strip()
    if colon and _FIELD_NAME.fullmatch(head_name) and (known is None or head_name in known):
        return head_name, rest.strip()
    if colon and not head_name and known is None:
        raise RuleSyntaxError(f"empty field name before ':' in rule {text!r}")
    if known is None:
        raise RuleSyntaxError(
            f"tool {tool!r} has no main field, so {text!r} is ambiguous; "
            f"write {tool}(field:glob), e.g. {tool}(query:*)"
        )
    if colon and not head_name:
        raise RuleSyntaxError(f"empty field name before ':' in rule {text!r}")
    return TOOL_MAIN_FIELDS[tool], body.strip()


def _ends_with_lone_backslash(pattern: str) -> bool:
    trailing = len(pattern) - len(pattern.rstrip("\\"))
    return trailing % 2 == 1


def _validate_path_glob(pattern: str, text: str) -> None:
    if _ends_with_lone_backslash(pattern):
        raise RuleSyntaxError(f"glob ends with a lone backslash in rule {text!r}")
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            close = pattern.find("]", i + 2)
            if close < 0:
                raise RuleSyntaxError(f"unclosed '[' in path glob of rule {text!r}")
            if "/" in pattern[i:close]:
                raise RuleSyntaxError(f"a '[...]' class cannot contain '/' in rule {text!r}")
            i = close
        i += 1
