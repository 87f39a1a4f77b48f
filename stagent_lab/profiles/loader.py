"""Load one profile folder (profile.yaml + SKILL.md) into a validated Profile.

Every failure becomes a ProfileError that names the file and, whenever the YAML can tell, the
line: syntax errors carry the parser's mark; validation errors are mapped from pydantic's
``loc`` path back to the composed YAML node of the offending key. Parsing is always
``yaml.SafeLoader``: tags such as ``!!python/object/apply`` are refused, never constructed.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from stagent_lab.errors import ProfileError
from stagent_lab.profiles.model import (
    CapabilityOverride,
    ExtendedThinking,
    HandoffPolicy,
    Profile,
    RuntimeOverride,
    SmokeTest,
    ToolPolicy,
)

log = logging.getLogger(__name__)

PROFILE_FILE = "profile.yaml"
SKILL_FILE = "SKILL.md"
MAX_FILE_BYTES = 1_000_000  # a profile is a page of YAML and a few pages of Markdown
MAX_YAML_NODES = 20_000  # bounds alias expansion ("billion laughs") before construction

_FRONT_MATTER_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)
_ALL_KEYS: frozenset[str] = frozenset(
    alias
    for model in (
        Profile,
        ToolPolicy,
        SmokeTest,
        RuntimeOverride,
        ExtendedThinking,
        CapabilityOverride,
        HandoffPolicy,
    )
    for field in model.model_fields.values()
    if (alias := field.alias)
)


# ---- reading ------------------------------------------------------------------------------


def _read_text(path: Path, profile_id: str | None) -> str:
    """Read a small regular UTF-8 file; refuse FIFOs, devices, huge files and bad bytes."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ProfileError(
            str(path), None, f"cannot read file: {exc.strerror}", profile_id
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise ProfileError(str(path), None, "not a regular file", profile_id)
    if st.st_size > MAX_FILE_BYTES:
        raise ProfileError(
            str(path), None, f"file too large ({st.st_size} bytes > {MAX_FILE_BYTES})", profile_id
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(
            str(path), None, f"cannot read file: {exc.strerror}", profile_id
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        reason = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        raise ProfileError(str(path), line, reason, profile_id) from None


# ---- YAML ---------------------------------------------------------------------------------


def _mark_line(exc: yaml.YAMLError) -> int | None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def _check_nodes(root: yaml.Node, file: str, line_offset: int, profile_id: str | None) -> None:
    """Refuse duplicate keys (PyYAML keeps the last silently) and runaway alias expansion."""
    budget = MAX_YAML_NODES
    stack: list[yaml.Node] = [root]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise ProfileError(
                file, None, f"document too large: more than {MAX_YAML_NODES} nodes", profile_id
            )
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if key.value in seen:
                        line = key.start_mark.line + 1 + line_offset
                        raise ProfileError(file, line, f"duplicate key {key.value!r}", profile_id)
                    seen.add(key.value)
                stack.extend((key, value))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_yaml(
    text: str, file: str, profile_id: str | None = None, line_offset: int = 0
) -> tuple[Any, yaml.Node | None]:
    """Safe-load one YAML document; return (data, composed root node)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_nodes(node, file, line_offset, profile_id)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        line = _mark_line(exc)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        reason = f"YAML error: {context + ', ' if context else ''}{problem}"
        tag = re.search(r"constructor for the tag '([^']+)'", problem)
        if isinstance(exc, yaml.constructor.ConstructorError) and tag:
            shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            reason = (
                f"YAML tag '{shown}' is not allowed: profiles are plain data (safe YAML); "
                "remove the tag"
            )
        raise ProfileError(file, line + line_offset if line else None, reason, profile_id) from None
    finally:
        loader.dispose()
    return data, node


def split_front_matter(
    text: str, file: str, profile_id: str | None = None
) -> tuple[dict[str, Any], str, yaml.Node | None]:
    """Split SKILL.md into (front matter mapping, body, front matter node)."""
    first, _, rest = text.partition("\n")
    if first.rstrip() != "---":
        return {}, text, None
    close = _FRONT_MATTER_CLOSE.search(rest)
    if close is None:
        raise ProfileError(file, 1, "front matter opened with '---' is never closed", profile_id)
    data, node = parse_yaml(rest[: close.start()], file, profile_id, line_offset=1)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(file, 2, "front matter must be a mapping (key: value)", profile_id)
    body = rest[close.end() :].lstrip("\r\n")
    return data, body, node


def _meta_str(
    meta: dict[str, Any], key: str, node: yaml.Node | None, file: str, profile_id: str | None
) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value).strip() or None
    line = _locate(node, (key,), line_offset=1) if node is not None else None
    raise ProfileError(file, line, f"front matter {key!r} must be text", profile_id)


def _first_paragraph(body: str, limit: int = 200) -> str:
    """A description for profiles that give none: the first prose line of the SKILL.md."""
    for raw in body.splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "---", "```", "|", ">")):
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""


# ---- mapping validation errors to lines ---------------------------------------------------


def _key_variants(part: str) -> tuple[str, ...]:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", part).lower()
    camel = re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), part)
    return (part, snake, camel)


def _locate(root: yaml.Node | None, loc: tuple[Any, ...], line_offset: int = 0) -> int | None:
    """Line (1-based) of the deepest YAML node that ``loc`` reaches; keys win over values."""
    if root is None:
        return None
    node = root
    line = root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            wanted = _key_variants(str(part))
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in wanted:
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line + line_offset


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(err: dict[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        reason = f"unknown key {key!r}"
        close = difflib.get_close_matches(key, sorted(_ALL_KEYS), n=1, cutoff=0.7)
        if close:
            reason += f" (did you mean {close[0]!r}?)"
        parent = _path(loc[:-1])
        return f"{parent}: {reason}" if parent else reason
    if kind == "missing" and loc:
        parent = _path(loc[:-1])
        reason = f"missing required key {str(loc[-1])!r}"
        return f"{parent}: {reason}" if parent else reason
    path = _path(loc)
    return f"{path}: {msg}" if path else msg


def validation_to_profile_error(
    exc: ValidationError, file: str, root: yaml.Node | None, profile_id: str | None
) -> ProfileError:
    """Turn pydantic errors into one ProfileError: the first by line, others summarized."""
    items = [(_locate(root, tuple(e["loc"])), _describe(e)) for e in exc.errors()]
    items.sort(key=lambda item: (item[0] is None, item[0] or 0))
    line, reason = items[0]
    extra = [f"line {ln}: {r}" if ln else r for ln, r in items[1:4]]
    if extra:
        reason += "; also " + "; ".join(extra)
    if len(items) > 4:
        reason += f"; and {len(items) - 4} more"
    return ProfileError(file, line, reason, profile_id)


# ---- the public entry point ---------------------------------------------------------------


def load_profile(directory: Path | str, *, origin: Literal["builtin", "user"] = "user") -> Profile:
    """Load and validate the profile in ``directory``; raise ProfileError on any problem.

    A folder with only SKILL.md (a plain Claude Code skill) becomes a profile whose id is the
    folder name, with name/description from the front matter and the read-only tool set.
    """
    folder = Path(directory)
    folder_id = folder.name
    if not folder.is_dir():
        raise ProfileError(str(folder), None, "not a directory", folder_id)
    yaml_path = folder / PROFILE_FILE
    skill_path = folder / SKILL_FILE
    has_yaml = yaml_path.exists()
    has_skill = skill_path.exists()
    if not has_yaml and not has_skill:
        raise ProfileError(
            str(folder), None, f"no {PROFILE_FILE} or {SKILL_FILE} in the folder", folder_id
        )

    meta: dict[str, Any] = {}
    body = ""
    if has_skill:
        text = _read_text(skill_path, folder_id)
        meta, body, fm_node = split_front_matter(text, str(skill_path), folder_id)
        fm_name = _meta_str(meta, "name", fm_node, str(skill_path), folder_id)
        fm_description = _meta_str(meta, "description", fm_node, str(skill_path), folder_id)
    else:
        fm_name = fm_description = None
        log.warning("profile %s has no %s: it runs without instructions", folder, SKILL_FILE)

    if not has_yaml:
        data: dict[str, Any] = {"id": folder_id, "name": fm_name or folder_id}
        data["description"] = fm_description or _first_paragraph(body)
        try:
            return Profile.from_data(data, skill_md=body, source_dir=folder, origin=origin)
        except ValidationError as exc:
            err = validation_to_profile_error(exc, str(skill_path), None, folder_id)
            raise ProfileError(
                str(skill_path), None, f"{err.reason} (id comes from the folder name)", folder_id
            ) from None

    file = str(yaml_path)
    text = _read_text(yaml_path, folder_id)
    raw, root = parse_yaml(text, file, folder_id)
    if raw is None:
        raise ProfileError(
            file, None, "file is empty (expected a mapping with id and name)", folder_id
        )
    if not isinstance(raw, dict):
        kind = "list" if isinstance(raw, list) else type(raw).__name__
        line = root.start_mark.line + 1 if root is not None else None
        raise ProfileError(file, line, f"top level must be a mapping, not a {kind}", folder_id)
    raw = dict(raw)
    if raw.get("description") is None:
        raw["description"] = fm_description or _first_paragraph(body)

    try:
        profile = Profile.from_data(raw, skill_md=body, source_dir=folder, origin=origin)
    except ValidationError as exc:
        raise validation_to_profile_error(exc, file, root, folder_id) from None
    if profile.id != folder_id:
        raise ProfileError(
            file,
            _locate(root, ("id",)),
            f"id {profile.id!r} does not match its folder name {folder_id!r}",
            folder_id,
        )
    return profile


__all__ = ["PROFILE_FILE", "SKILL_FILE", "load_profile", "parse_yaml", "split_front_matter"]
