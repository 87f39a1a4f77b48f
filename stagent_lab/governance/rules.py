"""Permission rules: ``Tool``, ``Tool(glob)``, ``Tool(field:glob)``.

A saved rule answers a tool request without asking a human, so matching errs towards "no":
a rule that does not clearly cover a request lets it fall through to the inbox, where a person
decides. Three kinds of fields are matched three ways:

* ``Bash``'s ``command``: every simple command of the line must match the glob (see
  :mod:`stagent_lab.governance.shell`); lines that run hidden code never match.
* path fields (``file_path``, ``path``, ``notebook_path``): both sides are made absolute and
  normalized, and symlinks on the request side are resolved, so ``..`` or a link cannot climb
  out of a rule's root.
* everything else (url, pattern, query, ...): ``fnmatch``-style, case-sensitive, on the raw text.

Deny rules are matched with ``mode="deny"``, which reads the request the other way round: a Bash
deny rule fires when *any* command of the line matches (wrappers such as ``sudo`` peeled off),
and a path deny rule fires when either the written path or the resolved one matches.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stagent_lab.errors import RuleSyntaxError
from stagent_lab.governance.shell import analyze_command, command_index, deny_texts

__all__ = [
    "PATH_FIELDS",
    "TOOL_MAIN_FIELDS",
    "Rule",
    "parse_rule",
    "rule_matches",
    "suggest_rule",
]

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
}
PATH_FIELDS: set[str] = {"file_path", "path", "notebook_path"}

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
}
_SHELL_FIELDS = {("Bash", "command")}

_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Mode = Literal["allow", "deny"]


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
    elif (name, field) in _SHELL_FIELDS and _ends_with_lone_backslash(pattern):
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


# ---- glob engines --------------------------------------------------------------------------


# Globs are matched with a two-pointer wildcard algorithm (O(len(text) * len(glob)) at worst)
# rather than a backtracking regex: an agent controls the text, and a regex such as
# "a.*b.*c.*d" against a long crafted command or path can take hours.

_STAR = ("*",)
_ONE = ("?",)
_Token = tuple


def _tokenize(glob: str, *, classes: bool) -> tuple[_Token, ...]:
    """``*``, ``?``, ``\\x`` (a literal x) and, when ``classes``, ``[...]`` / ``[!...]``."""
    out: list[_Token] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            out.append(("c", glob[i + 1]))
            i += 2
            continue
        if c == "*":
            if not out or out[-1] is not _STAR:  # "**" inside a segment is just "*"
                out.append(_STAR)
        elif c == "?":
            out.append(_ONE)
        elif c == "[" and classes and glob.find("]", i + 2) > 0:
            close = glob.find("]", i + 2)
            inner = glob[i + 1 : close]
            negate = inner[:1] in ("!", "^")
            if negate:
                inner = inner[1:]
            out.append(("[", negate, inner))
            i = close
        else:
            out.append(("c", c))
        i += 1
    return tuple(out)


def _in_class(token: _Token, ch: str) -> bool:
    _, negate, inner = token
    hit = False
    j = 0
    while j < len(inner):
        if j + 2 < len(inner) and inner[j + 1] == "-":
            hit = hit or inner[j] <= ch <= inner[j + 2]
            j += 3
        else:
            hit = hit or inner[j] == ch
            j += 1
    return hit != negate


def _accepts(token: _Token, ch: str) -> bool:
    kind = token[0]
    if kind == "c":
        return token[1] == ch
    if kind == "?":
        return True
    return _in_class(token, ch)


def _wild(tokens: tuple[_Token, ...], text: str) -> bool:
    """Classic wildcard matching: remember the last ``*`` and let it absorb one more
    character whenever the rest fails. Callers make sure ``*`` may absorb any character."""
    p = t = 0
    star, mark = -1, 0
    n = len(tokens)
    while t < len(text):
        if p < n and tokens[p] is _STAR:
            star, mark = p, t
            p += 1
        elif p < n and _accepts(tokens[p], text[t]):
            p += 1
            t += 1
        elif star >= 0:
            mark += 1
            t, p = mark, star + 1
        else:
            return False
    while p < n and tokens[p] is _STAR:
        p += 1
    return p == n


_LINE_BREAK = re.compile(r"([\n\r])")


@functools.lru_cache(maxsize=1024)
def _bash_glob(pattern: str) -> tuple[tuple[tuple[_Token, ...], ...], ...]:
    """``*`` = any run of characters except newlines, ``?`` = one such character, ``\\x`` = x.

    A trailing `` *`` (or Claude Code's ``:*``) also matches the bare command: ``git log *``
    matches ``git log`` as well as ``git log -5`` (but never ``git logx``). Returns the
    alternatives, each split at its literal line breaks.
    """
    bare_ok = pattern.endswith((" *", ":*"))  # the '*' follows ' ' or ':', so it is unescaped
    alternatives = [pattern[:-2] + " *", pattern[:-2]] if bare_ok else [pattern]
    out = []
    for alt in alternatives:
        tokens = _tokenize(alt, classes=False)
        pieces: list[list[_Token]] = [[]]
        for tok in tokens:
            if tok[0] == "c" and tok[1] in "\n\r":
                pieces.append([("c", tok[1])])  # a piece starts with its line break
            else:
                pieces[-1].append(tok)
        out.append(tuple(tuple(piece) for piece in pieces))
    return tuple(out)


def _bash_text_matches(pattern: str, text: str) -> bool:
    """Line breaks in the text must meet literal line breaks in the glob; between them a
    ``*`` never sees a line break, so the plain wildcard algorithm is exact."""
    if not text:
        return False
    parts = _LINE_BREAK.split(text)
    pieces = [parts[0]] + [parts[k] + parts[k + 1] for k in range(1, len(parts), 2)]
    for alternative in _bash_glob(pattern):
        if len(alternative) == len(pieces) and all(
            _wild(tokens, piece) for tokens, piece in zip(alternative, pieces, strict=True)
        ):
            return True
    return False


# The shell analysis is a pure function of the text, and the cascade asks it once per rule:
# cache it so 1,000 Bash rules cost one parse of the request, not a thousand.
_analyze = functools.lru_cache(maxsize=512)(analyze_command)
_deny_texts = functools.lru_cache(maxsize=512)(lambda line: tuple(deny_texts(line)))


def _bash_matches(pattern: str, line: str, mode: Mode) -> bool:
    if mode == "deny":
        return any(_bash_text_matches(pattern, t) for t in _deny_texts(line))
    analysis = _analyze(line)
    if not analysis.coverable:
        return False
    return all(_bash_text_matches(pattern, c.text) for c in analysis.commands)


@functools.lru_cache(maxsize=1024)
def _path_glob(glob: str) -> tuple[tuple[_Token, ...] | None, ...]:
    """Segments of an absolute path glob; None stands for a ``**`` segment."""
    segments = _split_unescaped(glob)[1:]  # drop the empty root segment
    if segments == [""]:
        return ()  # the glob "/" itself
    return tuple(None if seg == "**" else _tokenize(seg, classes=True) for seg in segments)


def _path_glob_matches(glob: str, path: str) -> bool:
    """``*`` stays in one segment, a ``**`` segment spans any number of them (so ``/p/**``
    matches ``/p`` itself and everything below it)."""
    pattern = _path_glob(glob)
    names = [] if path == "/" else path.split("/")[1:]
    m, n = len(pattern), len(names)
    # rest[j]: does pattern[i:] match names[j:]? Filled from the last pattern segment back.
    rest = [j == n for j in range(n + 1)]
    for i in range(m - 1, -1, -1):
        seg = pattern[i]
        cur = [False] * (n + 1)
        for j in range(n, -1, -1):
            if seg is None:
                cur[j] = rest[j] or (j < n and cur[j + 1])
            else:
                cur[j] = j < n and rest[j + 1] and _wild(seg, names[j])
        rest = cur
    return rest[0]


def _split_unescaped(glob: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            cur.append(glob[i : i + 2])
            i += 2
            continue
        if c == "[":
            close = glob.find("]", i + 2)
            if close > 0 and "/" not in glob[i:close]:
                cur.append(glob[i : close + 1])
                i = close + 1
                continue
        if c == "/":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


# ---- path normalization --------------------------------------------------------------------


def _base_dir(working_dir: str | Path | None) -> str:
    base = os.fspath(working_dir) if working_dir is not None else os.getcwd()
    return _squash_root(posixpath.normpath(posixpath.abspath(posixpath.expanduser(base))))


def _squash_root(path: str) -> str:
    """POSIX keeps a leading ``//``; for matching it is the same directory as ``/``."""
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _input_paths(value: str, working_dir: str | Path | None) -> tuple[str, str]:
    """(lexical, resolved) absolute forms of a requested path."""
    path = posixpath.expanduser(value) if value.startswith("~") else value
    if not posixpath.isabs(path):
        path = posixpath.join(_base_dir(working_dir), path)
    lexical = _squash_root(posixpath.normpath(path))
    resolved = _squash_root(os.path.realpath(path))  # resolves links before applying ".."
    return lexical, resolved


_GLOB_META = re.compile(r"[*?\[\\]")


def _escape_path_glob(path: str) -> str:
    return re.sub(r"([*?\[\]\\()])", r"\\\1", path)


def _rule_globs(pattern: str, working_dir: str | Path | None) -> list[str]:
    """The rule's absolute glob, plus a variant whose literal leading directories are
    symlink-resolved (so ``/tmp/p/**`` still covers files when /tmp is itself a link)."""
    glob = posixpath.expanduser(pattern) if pattern.startswith("~") else pattern
    if not posixpath.isabs(glob):
        glob = posixpath.join(_escape_path_glob(_base_dir(working_dir)), glob)
    glob = _squash_root(posixpath.normpath(glob))
    segments = glob.split("/")
    literal = 1
    while literal < len(segments) and not _GLOB_META.search(segments[literal]):
        literal += 1
    prefix = "/".join(segments[:literal]) or "/"
    real = os.path.realpath(prefix)
    if real == prefix:
        return [glob]
    rest = "/".join(segments[literal:])
    resolved = _escape_path_glob(real).rstrip("/") + ("/" + rest if rest else "")
    return [glob, resolved or "/"]


def _path_matches(pattern: str, value: str, working_dir: str | Path | None, mode: Mode) -> bool:
    if not value or "\x00" in value or "\x00" in pattern:
        return False
    globs = _rule_globs(pattern, working_dir)
    forms = _input_paths(value, working_dir)
    hits = [any(_path_glob_matches(g, p) for g in globs) for p in forms]
    return any(hits) if mode == "deny" else all(hits)


# ---- matching ------------------------------------------------------------------------------


def rule_matches(
    rule: str | Rule,
    tool: str,
    tool_input: Mapping[str, Any],
    *,
    working_dir: str | Path | None = None,
    mode: Mode = "allow",
) -> bool:
    """Does ``rule`` cover this tool request?

    ``mode="allow"`` (the default) is the strict reading used to grant: every Bash command must
    match, hidden code never matches, a path must match both as written and resolved.
    ``mode="deny"`` is the broad reading used to refuse: any Bash command (or what a wrapper
    runs) matching is enough, and either path form matching is enough.
    """
    parsed = rule if isinstance(rule, Rule) else parse_rule(rule)
    if mode not in ("allow", "deny"):
        raise ValueError(f"mode must be 'allow' or 'deny', not {mode!r}")
    if parsed.tool != tool:
        return False
    if parsed.field is None or parsed.pattern is None:
        return True
    if not isinstance(tool_input, Mapping):
        return False
    value = tool_input.get(parsed.field)
    if not isinstance(value, str):
        return False
    if (tool, parsed.field) in _SHELL_FIELDS:
        return _bash_matches(parsed.pattern, value, mode)
    if parsed.field in PATH_FIELDS:
        return _path_matches(parsed.pattern, value, working_dir, mode)
    return fnmatch.fnmatchcase(value, parsed.pattern)


# ---- suggestions for "always allow" ----------------------------------------------------------

# Commands whose first argument picks a sub-tool; the suggestion keeps that argument.
# The value is how many sub-command words to keep (more for "npm run X", "uv run X", ...).
_MULTIPLEXERS: dict[str, int] = {
    "git": 1, "npm": 1, "pnpm": 1, "yarn": 1, "bun": 1, "pip": 1, "pip3": 1, "uv": 1,
    "cargo": 1, "docker": 1, "podman": 1, "kubectl": 1, "helm": 1, "make": 1, "go": 1,
    "poetry": 1, "conda": 1, "brew": 1, "gh": 2, "terraform": 1, "dotnet": 1, "mvn": 1,
    "gradle": 1, "npx": 1, "uvx": 1, "pytest": 0, "systemctl": 1, "just": 1,
}  # fmt: skip
_NESTED = {"run", "run-script", "exec", "x", "tool", "pip", "compose", "workspace"}
_PYTHONS = {"python", "python3", "py"}
# Never suggest "any arguments" for these: an always-allow must not grow into "delete anything".
_EXACT_ONLY = {
    "rm", "rmdir", "mv", "dd", "mkfs", "chmod", "chown", "chgrp", "kill", "killall", "pkill",
    "shred", "truncate", "curl", "wget", "ssh", "scp", "rsync", "reboot", "shutdown", "ln",
    "cp", "tee", "install", "crontab", "systemctl",
}  # fmt: skip


def _escape_bash_glob(text: str) -> str:
    return re.sub(r"([*?\\()])", r"\\\1", text)


def _escape_fnmatch(text: str) -> str:
    return re.sub(r"([*?\[()])", r"[\1]", text)


def _suggest_bash_glob(command: str) -> str:
    analysis = analyze_command(command)
    if not analysis.coverable:
        return _escape_bash_glob(command.strip())
    globs = {_suggest_simple(c.words) for c in analysis.commands}
    if len(globs) == 1:
        return globs.pop()
    return _escape_bash_glob(command.strip())


def _suggest_simple(words: tuple[str, ...]) -> str:
    exact = _escape_bash_glob(" ".join(words))
    if command_index(words) != 0:
        return exact  # FOO=1 cmd: keep the assignment, it changes what runs
    base = posixpath.basename(words[0])
    if base in _EXACT_ONLY:
        return exact
    keep = 1
    if base in _PYTHONS:
        if len(words) > 2 and words[1] == "-m":
            keep = 3
        elif len(words) > 1 and not words[1].startswith("-"):
            keep = 2
        else:
            return exact
    elif base in _MULTIPLEXERS:
        depth = _MULTIPLEXERS[base]
        while keep < len(words) and depth > 0 and not words[keep].startswith("-"):
            if words[keep] in _NESTED:
                depth += 1
            keep += 1
            depth -= 1
        if keep < len(words) and keep == 1 and words[1].startswith("-"):
            return exact  # options before the sub-command: too easy to over-allow
    return _escape_bash_glob(" ".join(words[:keep])) + " *"


def suggest_rule(
    tool: str, tool_input: Mapping[str, Any], *, working_dir: str | Path | None = None
) -> str:
    """A rule an operator can save for "always allow", narrow enough to show as a default.

    >>> suggest_rule("Bash", {"command": "git log --oneline"})
    'Bash(command:git log *)'

    Raises ValueError when the request has no usable value in the tool's main field.
    """
    field = TOOL_MAIN_FIELDS.get(tool)
    if field is None:
        return tool
    value = tool_input.get(field) if isinstance(tool_input, Mapping) else None
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ValueError(f"cannot suggest a rule: {tool} input has no usable {field!r} value")
    if (tool, field) in _SHELL_FIELDS:
        glob = _suggest_bash_glob(value)
    elif field in PATH_FIELDS:
        lexical, _ = _input_paths(value, working_dir)
        parent = posixpath.dirname(lexical)
        glob = _escape_path_glob(parent).rstrip("/") + "/**"
    else:
        glob = _escape_fnmatch(value)
    rule = f"{tool}({field}:{glob})"
    parse_rule(rule)  # a suggestion must always be savable
    return rule
