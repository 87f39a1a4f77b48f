"""The small template language of blueprints and row-driven loops.

* ``{{name}}`` and ``{{name.field}}`` insert a value (lists as ``a, b, c``, objects as JSON);
* ``{{#if name}}…{{else}}…{{/if}}`` keeps one branch, by the value's truthiness (missing,
  null, ``""``, false, ``0`` and ``[]`` are false); ``if`` blocks are resolved first, innermost
  first, so they nest.

Blueprint rendering leaves the names a run fills in later (``inputs``, ``previous``, ``steps``
and the loop's item variable) untouched. After rendering, runs of three or more newlines
collapse to two and the text is trimmed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
PLACEHOLDER = re.compile(r"\{\{\s*(" + NAME + r")(?:\.([A-Za-z0-9_-]+))?\s*\}\}")
IF_BLOCK = re.compile(
    r"\{\{#if\s+(" + NAME + r")(?:\.([A-Za-z0-9_-]+))?\s*\}\}"
    r"((?:(?!\{\{#if\b).)*?)"
    r"(?:\{\{else\}\}((?:(?!\{\{#if\b).)*?))?"
    r"\{\{/if\}\}",
    re.S,
)
ANY_TAG = re.compile(r"\{\{\s*[#/]?\s*(" + NAME + r")")
BLANK_RUNS = re.compile(r"\n{3,}")


def truthy(value: Any) -> bool:
    """False for missing, null, "", false, 0 and empty lists or objects."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | tuple | dict):
        return len(value) > 0
    return True


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ", ".join(as_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def names_in(text: str) -> set[str]:
    """Every root name a template refers to (``{{x}}``, ``{{x.y}}``, ``{{#if x}}``)."""
    return {m.group(1) for m in ANY_TAG.finditer(text or "") if m.group(1) not in ("else", "if")}


def lookup(values: Mapping[str, Any], name: str, field: str | None) -> tuple[bool, Any]:
    """(found, value) of ``name`` or ``name.field``."""
    if name not in values:
        return False, None
    value = values[name]
    if field is None:
        return True, value
    if isinstance(value, Mapping) and field in value:
        return True, value[field]
    return False, None


def render(
    text: str,
    values: Mapping[str, Any],
    *,
    leave: Collection[str] = (),
    only: Collection[str] | None = None,
) -> tuple[str, list[str]]:
    """``text`` with its placeholders filled from ``values``. Names in ``leave`` (or, with
    ``only``, every name not in it) stay as written. Returns the text and the placeholders
    that had no value (rendered as "")."""
    missing: list[str] = []

    def kept(name: str) -> bool:
        return name in leave or (only is not None and name not in only)

    def if_block(m: re.Match[str]) -> str:
        name, field, yes, no = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        if kept(name):
            return m.group(0)
        found, value = lookup(values, name, field)
        return yes if found and truthy(value) else no

    previous = None
    while previous != text:
        previous = text
        text = IF_BLOCK.sub(if_block, text)

    def sub(m: re.Match[str]) -> str:
        name, field = m.group(1), m.group(2)
        if kept(name):
            return m.group(0)
        found, value = lookup(values, name, field)
        if not found:
            label = f"{name}.{field}" if field else name
            if label not in missing:
                missing.append(label)
            return ""
        return as_text(value)

    return tidy(PLACEHOLDER.sub(sub, text)), missing


def tidy(text: str) -> str:
    return BLANK_RUNS.sub("\n\n", text).strip()


__all__ = ["as_text", "names_in", "render", "tidy", "truthy"]
