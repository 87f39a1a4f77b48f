"""Blueprints: workflow templates in YAML with typed variables, conditions and templates.

Sources, in order (a later id overrides an earlier one, and a notice is logged): the package's
``blueprints/`` folder, ``$STAGENT_HOME/blueprints/``, then each folder of the setting
``workflows.blueprint_dirs``. Files are read with ``yaml.safe_load``; every problem names the
file and, where it has one, the line.

A blueprint's step prompts, step names and ``loop.items`` are templates (see ``templates.py``)
over its variables; ``when: <variable>`` skips a step whose value is falsy. A template may only
name declared variables, plus the names a run fills in later (``inputs``, and in row-driven
loops ``previous``, ``steps`` and the item variable); anything else is an error at load, never
a silent empty string. ``loop.items_sql`` is never templated: values never become SQL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from stagent_lab.errors import BlueprintError
from stagent_lab.workflows.definition import PATTERNS
from stagent_lab.workflows.templates import names_in, render, truthy

log = logging.getLogger("stagent_lab.workflows")
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRUE = {"true", "yes", "1", "on", "y"}
_FALSE = {"false", "no", "0", "off", "n"}
MAX_FILE_BYTES = 512 * 1024


class Variable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    type: Literal["text", "number", "boolean", "choice", "list"] = "text"
    label: str | None = None
    required: bool = False
    default: Any = None
    choices: list[str] | None = None
    min: float | None = None
    max: float | None = None
    description: str | None = None

    @field_validator("id")
    @classmethod
    def _ident(cls, value: str) -> str:
        if not IDENT.match(value):
            raise ValueError(f"a variable id is a name like 'topic', got {value!r}")
        return value


class BlueprintFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    description: str = ""
    version: str = "1"
    tags: list[str] = []
    pattern: str
    steps: list[dict[str, Any]]
    loop: dict[str, Any] | None = None
    parallel: dict[str, Any] | None = None
    swarm: dict[str, Any] | None = None
    profile: str | None = None
    runtime: str | None = None
    budget_usd: float | None = None
    variables: list[Variable] = []

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


@dataclass
class Blueprint:
    data: BlueprintFile
    file: str
    source: str
    overrides: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.data.id

    def summary(self) -> dict[str, Any]:
        d = self.data
        return {
            "id": d.id,
            "name": d.name,
            "description": d.description,
            "version": d.version,
            "pattern": d.pattern,
            "tags": list(d.tags),
            "steps": len(d.steps),
            "variables": [v.model_dump(exclude_none=True) for v in d.variables],
            "source": self.source,
            "file": self.file,
            "overrides": list(self.overrides),
            "error": None,
        }


# ---- loading ------------------------------------------------------------------------------


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                out[(*path, key.value)] = key.start_mark.line + 1
                _lines(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for n in range(len(loc), -1, -1):
        hit = lines.get(tuple(loc[:n]))
        if hit is not None:
            return hit
    return None


def _where(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


def parse_blueprint(text: str, file: str, source: str = "user") -> Blueprint:
    """A blueprint from YAML text; BlueprintError lists every problem with file and line."""
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        raise BlueprintError(f"not valid YAML: {getattr(exc, 'problem', exc)}", where) from None
    if not isinstance(data, dict):
        raise BlueprintError("a blueprint is a YAML mapping (id, name, pattern, steps …)", file)
    lines: dict[tuple[Any, ...], int] = {}
    if root is not None:
        _lines(root, (), lines)
    try:
        bp = BlueprintFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = _line_of(lines, loc)
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(
                f"line {line}: {_where(loc)}: {msg}" if line else f"{_where(loc)}: {msg}"
            )
        raise BlueprintError(problems, file) from None
    problems = _check(bp, lines)
    if problems:
        raise BlueprintError(problems, file)
    return Blueprint(bp, file, source)


def _check(bp: BlueprintFile, lines: dict[tuple[Any, ...], int]) -> list[str]:
    problems: list[str] = []

    def say(loc: tuple[Any, ...], msg: str) -> None:
        line = _line_of(lines, loc)
        problems.append(f"line {line}: {_where(loc)}: {msg}" if line else f"{_where(loc)}: {msg}")

    if not KEBAB.match(bp.id):
        say(("id",), f"kebab-case like 'release-notes', got {bp.id!r}")
    if bp.pattern not in PATTERNS:
        say(("pattern",), f"one of {', '.join(PATTERNS)}, got {bp.pattern!r}")
    declared = {v.id for v in bp.variables}
    seen: set[str] = set()
    for i, v in enumerate(bp.variables):
        if v.id in seen:
            say(("variables", i, "id"), f"{v.id!r} is declared twice")
        seen.add(v.id)
        reserved = {"inputs", "previous", "steps", "item"}
        if v.id in reserved:
            say(
                ("variables", i, "id"),
                f"{v.id!r} is reserved for runs ({', '.join(sorted(reserved))})",
            )
        if v.type == "choice" and not v.choices:
            say(("variables", i, "choices"), "a choice variable lists its choices")
        if v.default is not None:
            try:
                coerce(v, v.default)
            except ValueError as exc:
                say(("variables", i, "default"), str(exc))
    runtime_names = {"inputs"}
    loop = bp.loop or {}
    if bp.pattern == "loop" and ("items" in loop or "items_sql" in loop):
        runtime_names |= {"previous", "steps", str(loop.get("item_var") or "item")}
    allowed = declared | runtime_names
    for i, step in enumerate(bp.steps):
        if not isinstance(step, Mapping):
            say(("steps", i), "a step is a mapping")
            continue
        for key in ("prompt", "name"):
            text = step.get(key)
            if isinstance(text, str):
                for name in sorted(names_in(text) - allowed):
                    say(("steps", i, key), f"{{{{{name}}}}} is not a declared variable")
        when = step.get("when")
        if when is not None and when not in declared:
            say(("steps", i, "when"), f"{when!r} is not a declared variable")
    items = loop.get("items")
    if items is not None:
        for name in sorted(names_in(yaml.safe_dump(items)) - allowed):
            say(("loop", "items"), f"{{{{{name}}}}} is not a declared variable")
    return problems


def builtin_dir() -> Path:
    return Path(str(resources.files("stagent_lab").joinpath("blueprints")))


class BlueprintLibrary:
    """Every blueprint from its sources, re-read when a file changes (mtime and size)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[float, int], Blueprint | BlueprintError]] = {}

    def load(self, sources: list[tuple[str, Path]]) -> tuple[dict[str, Blueprint], list[dict]]:
        found: dict[str, Blueprint] = {}
        errors: list[dict[str, Any]] = []
        for label, folder in sources:
            if not folder.is_dir():
                continue
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                got = self._read(path, label)
                if isinstance(got, BlueprintError):
                    errors.append({"file": str(path), "source": label, "error": str(got)})
                    continue
                old = found.get(got.id)
                if old is not None:
                    log.warning("blueprint %s from %s overrides %s", got.id, got.file, old.file)
                    got = Blueprint(got.data, got.file, got.source, [*old.overrides, old.file])
                found[got.id] = got
        return found, errors

    def _read(self, path: Path, label: str) -> Blueprint | BlueprintError:
        try:
            st = path.stat()
            sig = (st.st_mtime, st.st_size)
            hit = self._cache.get(str(path))
            if hit is not None and hit[0] == sig:
                return hit[1]
            if st.st_size > MAX_FILE_BYTES:
                raise BlueprintError(f"larger than {MAX_FILE_BYTES // 1024} KB", str(path))
            out: Blueprint | BlueprintError = parse_blueprint(
                path.read_text(encoding="utf-8"), str(path), label
            )
        except BlueprintError as exc:
            out = exc
            sig = (0.0, -1)
        except (OSError, UnicodeDecodeError) as exc:
            return BlueprintError(f"cannot read: {exc}", str(path))
        self._cache[str(path)] = (sig, out)
        return out


# ---- instantiating ------------------------------------------------------------------------


def coerce(var: Variable, value: Any) -> Any:
    """A variable's value in its type: "3" → 3, "yes" → True, "a, b" → ["a", "b"]."""
    kind = var.type
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError(f"{var.id}: a number, got {value!r}")
        if isinstance(value, int | float):
            out: Any = value
        else:
            try:
                out = float(str(value).strip())
            except ValueError:
                raise ValueError(f"{var.id}: a number, got {value!r}") from None
        if isinstance(out, float) and out.is_integer():
            out = int(out)
        if out != out or out in (float("inf"), float("-inf")):
            raise ValueError(f"{var.id}: a finite number, got {value!r}")
        return out
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{var.id}: true/false, yes/no or 1/0, got {value!r}")
    if kind == "list":
        if isinstance(value, list | tuple):
            return [v for v in value if not (isinstance(v, str) and not v.strip())]
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        raise ValueError(f"{var.id}: a list or comma-separated text, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{var.id}: text, got {type(value).__name__}")
    text = str(value)
    if kind == "choice" and var.choices and text not in var.choices:
        raise ValueError(f"{var.id}: one of {', '.join(var.choices)}, got {text!r}")
    return text


def _bounds(var: Variable, value: Any) -> str | None:
    size = value if var.type == "number" else len(value) if var.type in ("text", "list") else None
    if size is None:
        return None
    what = {"number": "", "text": " characters", "list": " items"}[var.type]
    if var.min is not None and size < var.min:
        return f"{var.id}: at least {var.min:g}{what}, got {size}"
    if var.max is not None and size > var.max:
        return f"{var.id}: at most {var.max:g}{what}, got {size}"
    return None


def resolve_values(bp: BlueprintFile, given: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for every variable (defaults applied); every problem in one error."""
    problems: list[str] = []
    declared = {v.id: v for v in bp.variables}
    for key in given:
        if key not in declared:
            problems.append(
                f"{key}: not a variable of this blueprint ({', '.join(declared) or 'none'})"
            )
    values: dict[str, Any] = {}
    for var in bp.variables:
        raw = given.get(var.id, var.default)
        if raw is None or (isinstance(raw, str) and not raw.strip() and var.type != "text"):
            if var.required:
                problems.append(f"{var.id}: required ({var.label or var.type})")
            values[var.id] = None
            continue
        try:
            value = coerce(var, raw)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if var.required and not truthy(value) and var.type in ("text", "list"):
            problems.append(f"{var.id}: required ({var.label or var.type})")
            continue
        bound = _bounds(var, value)
        if bound:
            problems.append(bound)
        values[var.id] = value
    if problems:
        raise BlueprintError(problems, f"blueprint {bp.id}")
    return values


def instantiate(bp: BlueprintFile, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The definition (pattern, steps, config, defaults) and the names of skipped steps."""
    loop = dict(bp.loop) if bp.loop else None
    leave = {"inputs", "previous", "steps", str((loop or {}).get("item_var") or "item")}
    steps: list[dict[str, Any]] = []
    skipped: list[str] = []
    dropped_ids: set[str] = set()
    for raw in bp.steps:
        step = dict(raw)
        when = step.pop("when", None)
        name = render(str(step.get("name", "")), values, leave=leave)[0]
        if when is not None and not truthy(values.get(when)):
            skipped.append(name)
            if step.get("id"):
                dropped_ids.add(str(step["id"]))
            continue
        step["name"] = name
        if isinstance(step.get("prompt"), str):
            step["prompt"] = render(step["prompt"], values, leave=leave)[0]
        steps.append(step)
    for step in steps:  # a skipped branch leaves the synthesis's depends_on
        if isinstance(step.get("depends_on"), list):
            step["depends_on"] = [d for d in step["depends_on"] if d not in dropped_ids]
    if loop is not None and loop.get("items") is not None:
        loop["items"] = _render_items(loop["items"], values, leave)
    out = {
        "pattern": bp.pattern,
        "steps": steps,
        "loop": loop,
        "parallel": bp.parallel,
        "swarm": bp.swarm,
        "profile": bp.profile,
        "runtime": bp.runtime,
        "budget_usd": bp.budget_usd,
    }
    return out, skipped


def _render_items(items: Any, values: dict[str, Any], leave: set[str]) -> Any:
    """Rows: strings inside are rendered; ``"{{var}}"`` of a list variable becomes its rows
    (plain values as ``{"value": v}``)."""
    if isinstance(items, str):
        m = re.fullmatch(r"\{\{\s*([A-Za-z_]\w*)\s*\}\}", items.strip())
        if m and isinstance(values.get(m.group(1)), list):
            return [v if isinstance(v, dict) else {"value": v} for v in values[m.group(1)]]
        return render(items, values, leave=leave)[0]
    if isinstance(items, list):
        return [_render_items(i, values, leave) for i in items]
    if isinstance(items, dict):
        return {k: _render_items(v, values, leave) for k, v in items.items()}
    return items


__all__ = [
    "Blueprint",
    "BlueprintFile",
    "BlueprintLibrary",
    "Variable",
    "builtin_dir",
    "coerce",
    "instantiate",
    "parse_blueprint",
    "resolve_values",
]
