"""File tools: Read, Write, Edit, Glob, Grep.

Field names and output shapes follow Claude Code's tools so a model trained on them uses ours
without coaching, and so one rule syntax (``Read(src/**)``) governs every runtime. All paths are
confined to the project folder by :func:`resolve_in_project`; the blocking filesystem work runs
in a worker thread so a big tree never stalls the engine's event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.paths import (
    SKIP_DIRS,
    InvalidPath,
    check_input,
    display_path,
    error,
    is_binary_file,
    resolve_in_project,
)

READ_DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000
LINE_TRUNCATED = " [... line truncated]"
GLOB_MAX_RESULTS = 1000
_MAX_BRACE_EXPANSIONS = 256


class _FileTool(Tool):
    """Shared plumbing: schema check, confinement, error results, thread offload."""

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        problem = check_input(self.name, tool_input, self.input_schema)
        if problem:
            return error(problem)
        try:
            return await asyncio.to_thread(self._run, tool_input, ctx)
        except InvalidPath as exc:
            return error(f"{self.name}: {exc}", path=exc.path)
        except OSError as exc:
            where = ""
            if exc.filename:
                where = f": {display_path(Path(str(exc.filename)), ctx.working_dir)}"
            return error(f"{self.name}: {exc.strerror or exc}{where}")

    def _run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        raise NotImplementedError


# --------------------------------------------------------------------------------------- Read


class ReadTool(_FileTool):
    name = "Read"
    main_field = "file_path"
    path_fields = ("file_path",)
    read_only = True
    description = (
        "Read a text file from the project. Returns numbered lines like `cat -n` "
        "(line number, a tab, the line). Reads up to 2000 lines from `offset` (1-based line "
        "number, default 1); pass `offset`/`limit` to page through long files. Lines longer than "
        "2000 characters are truncated. Binary files are refused. Paths are relative to the "
        "project folder (absolute paths must lie inside it)."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "File to read.", "minLength": 1},
            "offset": {
                "type": "integer",
                "minimum": 0,
                "description": "1-based line number to start from.",
            },
            "limit": {"type": "integer", "minimum": 1, "description": "How many lines to read."},
        },
        "required": ["file_path"],
        "additionalProperties": False,
    }

    def _run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = resolve_in_project(tool_input["file_path"], ctx.working_dir)
        rel = display_path(path, ctx.working_dir)
        if not path.exists():
            return error(f"Read: file not found: {rel}", path=rel)
        if path.is_dir():
            return error(f"Read: {rel} is a directory; use Glob to list its files", path=rel)
        if is_binary_file(path):
            return error(f"Read: {rel} looks like a binary file (NUL bytes); not shown", path=rel)
        start = max(tool_input.get("offset", 1), 1)
        limit = tool_input.get("limit", READ_DEFAULT_LIMIT)
        return _read_lines(path, rel, start, limit, ctx.output_cap_chars)


def _read_lines(path: Path, rel: str, start: int, limit: int, cap: int) -> ToolResult:
    shown: list[str] = []
    size = 0
    last = start - 1
    more = False
    capped = False
    total = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, raw in enumerate(fh, 1):
            total = number
            if number < start:
                continue
            if number >= start + limit or capped:
                more = True
                break
            line = raw.rstrip("\n")
            if len(line) > MAX_LINE_CHARS:
                line = line[:MAX_LINE_CHARS] + LINE_TRUNCATED
            rendered = f"{number:>6}\t{line}"
            if shown and size + len(rendered) + 1 > cap:
                capped = True
                more = True
                break
            shown.append(rendered)
            size += len(rendered) + 1
            last = number
    meta: dict[str, Any] = {"path": rel, "start_line": start, "end_line": last}
    if total == 0:
        return ToolResult(output="(file is empty)", meta={**meta, "end_line": 0})
    if not shown:
        return error(
            f"Read: offset {start} is beyond the end of {rel} ({total} lines)",
            path=rel,
            lines=total,
        )
    text = "\n".join(shown)
    if more:
        why = f"output capped at {cap} characters" if capped else f"limit of {limit} lines"
        text += (
            f"\n\n[showing lines {start}-{last} ({why}); the file continues: "
            f"read more with offset={last + 1}]"
        )
    meta["truncated"] = more
    return ToolResult(output=text, meta=meta)


# -------------------------------------------------------------------------------------- Write


class WriteTool(_FileTool):
    name = "Write"
    main_field = "file_path"
    path_fields = ("file_path",)
    description = (
        "Create or overwrite a text file inside the project with `content` (UTF-8). Missing "
        "parent folders are created. Prefer Edit for changing part of an existing file."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "File to write.", "minLength": 1},
            "content": {"type": "string", "description": "The full new file content."},
        },
        "required": ["file_path", "content"],
        "additionalProperties": False,
    }

    def _run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = resolve_in_project(tool_input["file_path"], ctx.working_dir)
        rel = display_path(path, ctx.working_dir)
        if path.is_dir():
            return error(f"Write: {rel} is a directory", path=rel)
        existed = path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        data = tool_input["content"].encode("utf-8")
        _write_bytes(path, data)
        verb = "Overwrote" if existed else "Created"
        return ToolResult(
            output=f"{verb} {rel} ({len(data)} bytes written)",
            meta={"path": rel, "bytes": len(data), "created": not existed},
        )


def _write_bytes(path: Path, data: bytes) -> None:
    """Write without following a symlink at the last component.

    The path was already resolved, so a link here means one was swapped in after the check;
    O_NOFOLLOW turns that race into an error instead of a write outside the project.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o666)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


# --------------------------------------------------------------------------------------- Edit


class EditTool(_FileTool):
    name = "Edit"
    main_field = "file_path"
    path_fields = ("file_path",)
    description = (
        "Replace text in an existing file: `old_string` must appear exactly once (include "
        "enough surrounding lines to make it unique) unless `replace_all` is true, in which "
        "case every occurrence is replaced. Whitespace and indentation must match exactly. "
        "Use Write to create new files."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "file_path": {"type": "string", "description": "File to edit.", "minLength": 1},
            "old_string": {"type": "string", "description": "Exact text to replace."},
            "new_string": {"type": "string", "description": "Replacement text."},
            "replace_all": {
                "type": "boolean",
                "description": "Replace every occurrence (default false).",
            },
        },
        "required": ["file_path", "old_string", "new_string"],
        "additionalProperties": False,
    }

    def _run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        old, new = tool_input["old_string"], tool_input["new_string"]
        replace_all = tool_input.get("replace_all", False)
        if old == "":
            return error("Edit: old_string is empty; use Write to create or overwrite a file")
        if old == new:
            return error("Edit: old_string and new_string are identical; nothing to change")
        path = resolve_in_project(tool_input["file_path"], ctx.working_dir)
        rel = display_path(path, ctx.working_dir)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist (use Write to create it)"
            return error(f"Edit: {rel} {what}", path=rel)
        raw = path.read_bytes()
        if b"\x00" in raw[:8192]:
            return error(f"Edit: {rel} looks like a binary file; refusing to edit", path=rel)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return error(f"Edit: {rel} is not valid UTF-8; refusing to edit", path=rel)
        count = text.count(old)
        if count == 0 and "\r\n" in text and "\n" in old:
            # Models send LF; Windows-style files store CRLF. Match in the file's convention.
            old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
            count = text.count(old)
        if count == 0:
            return error(f"Edit: old_string not found in {rel} (0 matches)", path=rel, matches=0)
        if count > 1 and not replace_all:
            return error(
                f"Edit: old_string occurs {count} times in {rel}; add surrounding context "
                "to make it unique, or set replace_all to true",
                path=rel,
                matches=count,
            )
        first_line = text[: text.index(old)].count("\n") + 1
        updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
        _write_bytes(path, updated.encode("utf-8"))
        n = count if replace_all else 1
        noun = "occurrence" if n == 1 else "occurrences"
        return ToolResult(
            output=f"Edited {rel}: replaced {n} {noun} (first at line {first_line})",
            meta={"path": rel, "replacements": n, "line": first_line},
        )


# ------------------------------------------------------------------------------ glob patterns


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives (as in ``**/*.{py,md}``), innermost groups first."""
    out: list[str] = []
    pending = [pattern]
    while pending:
        current = pending.pop()
        match = re.search(r"\{([^{}]*,[^{}]*)\}", current)
        if not match:
            out.append(current)
        else:
            head, tail = current[: match.start()], current[match.end() :]
            pending.extend(head + alt + tail for alt in reversed(match.group(1).split(",")))
        if len(out) + len(pending) > _MAX_BRACE_EXPANSIONS:
            raise ValueError(f"pattern {pattern!r} expands to too many alternatives")
    return out


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile one glob (no braces) to a regex over ``/``-separated relative paths.

    ``*`` and ``?`` stay inside one path segment; ``**`` as a whole segment spans any number
    of segments (including none); ``[...]`` is a character class (``[!...]`` negates).
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            whole_segment = (i == 0 or pattern[i - 1] == "/") and (j == n or pattern[j] == "/")
            if j - i >= 2 and whole_segment:
                if j == n:
                    out.append(".*")
                else:
                    out.append("(?:.*/)?")
                    j += 1  # the slash is part of the optional group
            else:
                out.append("[^/]*")
            i = j
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[" and (close := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : close]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("^", "\\^")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = close + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("(?s:" + "".join(out) + r")\Z")


def _has_magic(segment: str) -> bool:
    return any(ch in segment for ch in "*?[")


def iter_files(root: Path, project_root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under ``root`` (which must be resolved), skipping SKIP_DIRS.

    Symlinked folders are not descended into; symlinked files are listed only when they
    resolve inside the project, so everything returned can also be read.
    """
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in SKIP_DIRS:
                        stack.append(Path(entry.path))
                    continue
                if not entry.is_file(follow_symlinks=True):
                    continue
                if entry.is_symlink():
                    target = Path(os.path.realpath(entry.path))
                    if not target.is_relative_to(project_root):
                        continue
                yield Path(entry.path), entry.stat(follow_symlinks=True)
            except OSError:
                continue


def _search_root(tool_input: dict[str, Any], ctx: ToolContext) -> Path:
    return resolve_in_project(tool_input.get("path") or ".", ctx.working_dir)


def _cap_text(text: str, cap: int) -> tuple[str, bool]:
    """Cut at the last whole line that fits in ``cap`` characters."""
    if len(text) <= cap:
        return text, False
    cut = text.rfind("\n", 0, cap)
    cut = cut if cut > 0 else cap
    dropped = len(text) - cut
    return f"{text[:cut]}\n[output capped at {cap} characters; {dropped} more not shown]", True


# --------------------------------------------------------------------------------------- Glob


class GlobTool(_FileTool):
    name = "Glob"
    main_field = "pattern"
    path_fields = ("path",)
    read_only = True
    description = (
        "Find files by name pattern, e.g. `**/*.py`, `src/**/test_*.{js,ts}`. `*` matches "
        "within one folder, `**` across folders. Returns project-relative paths, most recently "
        "modified first (up to 1000). Skips .git, node_modules, .venv and __pycache__. "
        "`path` sets the folder to search from (default: the project root)."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Glob pattern.", "minLength": 1},
            "path": {"type": "string", "description": "Folder to search in (default: project)."},
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }

    def _run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        project = resolve_in_project(".", ctx.working_dir)
        root = _search_root(tool_input, ctx)
        if not root.is_dir():
            rel = display_path(root, ctx.working_dir)
            return error(f"Glob: path {rel} is not a directory", path=rel)
        try:
            patterns = expand_braces(tool_input["pattern"])
        except ValueError as exc:
            return error(f"Glob: {exc}")
        found: dict[Path, float] = {}
        for pattern in patterns:
            parts = pattern.split("/")
            literal = 0
            while literal < len(parts) - 1 and not _has_magic(parts[literal]):
                literal += 1
            base_str = "/".join(parts[:literal]) or ("/" if pattern.startswith("/") else ".")
            rest = "/".join(parts[literal:])
            base = resolve_in_project(str(root / base_str), ctx.working_dir)
            if not _has_magic(rest):
                target = resolve_in_project(str(base / rest), ctx.working_dir)
                if target.is_file():
                    found[base / rest] = target.stat().st_mtime
                continue
            if not base.is_dir():
                continue
            regex = glob_to_regex(rest)
            for file, st in iter_files(base, project):
                if regex.match(file.relative_to(base).as_posix()):
                    found[file] = st.st_mtime
        ordered = sorted(found.items(), key=lambda kv: (-kv[1], str(kv[0])))
        paths = [display_path(p, ctx.working_dir) for p, _ in ordered]
        if not paths:
            return ToolResult(output="No files found", meta={"count": 0})
        shown = paths[:GLOB_MAX_RESULTS]
        text = "\n".join(shown)
        if len(paths) > GLOB_MAX_RESULTS:
            text += (
                f"\n[showing the {GLOB_MAX_RESULTS} most recent of {len(paths)} matches; "
                "narrow the pattern or path to see the rest]"
            )
        text, capped = _cap_text(text, ctx.output_cap_chars)
        return ToolResult(
            output=text,
            meta={"count": len(paths), "truncated": len(paths) > len(shown) or capped},
        )


# --------------------------------------------------------------------------------------- Grep


class GrepTool(_FileTool):
    name = "Grep"
    main_field = "pattern"
    path_fields = ("path",)
    read_only = True
    description = (
        "Search file contents with a Python regular expression. `output_mode`: "
        "'files_with_matches' (default; file paths, most recently modified first), 'content' "
        "(matching lines as path:line:text; `-n` line numbers on by default, `-A`/`-B`/`-C` "
        "context lines) or 'count' (matches per file). `glob` filters files (e.g. `*.py`, "
        "`*.{ts,tsx}`), `-i` ignores case, `head_limit` keeps the first N results. `path` may "
        "be a folder or a single file. Binary files and .git/node_modules/.venv/__pycache__ "
        "are skipped."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Python regex.", "minLength": 1},
            "path": {"type": "string", "description": "File or folder (default: project)."},
            "glob": {"type": "string", "description": "Only search files matching this glob."},
            "output_mode": {
                "type": "string",
                "enum": ["files_with_matches", "content", "count"],
                "description": "What to return (default files_with_matches).",
            },
            "-i": {"type": "boolean", "description": "Case-insensitive search."},
            "-n": {"type": "boolean", "description": "Line numbers in content mode."},
            "-A": {"type": "integer", "minimum": 0, "description": "Lines after each match."},
            "-B": {"type": "integer", "minimum": 0, "description": "Lines before each match."},
            "-C": {"type": "integer", "minimum": 0, "description": "Lines around each match."},
            "head_limit": {"type": "integer", "minimum": 1, "description": "First N results."},
        },
        "required": ["pattern"],
        "additionalProperties": False,
    }

    def _run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        flags = re.IGNORECASE if tool_input.get("-i") else 0
        try:
            regex = re.compile(tool_input["pattern"], flags)
        except re.error as exc:
            return error(f"Grep: invalid regex pattern {tool_input['pattern']!r}: {exc}")
        project = resolve_in_project(".", ctx.working_dir)
        root = _search_root(tool_input, ctx)
        if not root.exists():
            rel = display_path(root, ctx.working_dir)
            return error(f"Grep: path {rel} does not exist", path=rel)
        try:
            file_filter = _file_filter(tool_input.get("glob"))
        except ValueError as exc:
            return error(f"Grep: {exc}")
        if root.is_file():
            candidates = [(root, root.stat())]
        else:
            candidates = [
                (f, st)
                for f, st in iter_files(root, project)
                if file_filter(f.relative_to(root).as_posix())
            ]
        mode = tool_input.get("output_mode", "files_with_matches")
        search = _Search(
            regex=regex,
            numbers=tool_input.get("-n", True),
            before=tool_input.get("-B", tool_input.get("-C", 0)),
            after=tool_input.get("-A", tool_input.get("-C", 0)),
            collect_lines=mode == "content",
        )
        hits: list[tuple[Path, float, int, list[str]]] = []
        for file, st in candidates:
            try:
                if is_binary_file(file):
                    continue
                count, lines = search.scan(file, display_path(file, ctx.working_dir))
            except OSError:
                continue
            if count:
                hits.append((file, st.st_mtime, count, lines))
        return _grep_result(hits, mode, tool_input.get("head_limit"), ctx)


def _file_filter(glob: str | None):
    """Glob without a slash matches the file name anywhere (like ripgrep); with one, the path."""
    if not glob:
        return lambda rel: True
    regexes = [(("/" in g), glob_to_regex(g)) for g in expand_braces(glob)]

    def accept(rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        return any(rx.match(rel if has_slash else name) for has_slash, rx in regexes)

    return accept


class _Search:
    def __init__(
        self, regex: re.Pattern[str], numbers: bool, before: int, after: int, collect_lines: bool
    ) -> None:
        self.regex = regex
        self.numbers = numbers
        self.before = before
        self.after = after
        self.collect_lines = collect_lines

    def _fmt(self, rel: str, number: int, line: str, sep: str) -> str:
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + LINE_TRUNCATED
        return f"{rel}{sep}{number}{sep}{line}" if self.numbers else f"{rel}{sep}{line}"

    def scan(self, file: Path, rel: str) -> tuple[int, list[str]]:
        """Count matching lines; in content mode also render them with context."""
        count = 0
        out: list[str] = []
        recent: list[tuple[int, str]] = []  # the last `before` non-emitted lines
        last_emitted = 0
        after_left = 0
        with open(file, encoding="utf-8", errors="replace") as fh:
            for number, raw in enumerate(fh, 1):
                line = raw.rstrip("\r\n")
                matched = self.regex.search(line) is not None
                if matched:
                    count += 1
                if not self.collect_lines:
                    continue
                if matched:
                    context = [(n, t) for n, t in recent if n > last_emitted]
                    first = context[0][0] if context else number
                    if out and first > last_emitted + 1 and (self.before or self.after):
                        out.append("--")
                    out.extend(self._fmt(rel, n, t, "-") for n, t in context)
                    out.append(self._fmt(rel, number, line, ":"))
                    last_emitted = number
                    after_left = self.after
                elif after_left:
                    out.append(self._fmt(rel, number, line, "-"))
                    last_emitted = number
                    after_left -= 1
                if self.before:
                    recent.append((number, line))
                    if len(recent) > self.before:
                        recent.pop(0)
        return count, out


def _grep_result(
    hits: list[tuple[Path, float, int, list[str]]],
    mode: str,
    head_limit: int | None,
    ctx: ToolContext,
) -> ToolResult:
    total = sum(h[2] for h in hits)
    meta: dict[str, Any] = {"files": len(hits), "matches": total, "mode": mode}
    if not hits:
        return ToolResult(output="No matches found", meta=meta)
    if mode == "files_with_matches":
        ordered = sorted(hits, key=lambda h: (-h[1], str(h[0])))
        entries = [display_path(h[0], ctx.working_dir) for h in ordered]
        header = f"Found {len(hits)} file{'s' if len(hits) != 1 else ''}"
    else:
        ordered = sorted(hits, key=lambda h: str(h[0]))
        if mode == "count":
            entries = [f"{display_path(h[0], ctx.working_dir)}:{h[2]}" for h in ordered]
            header = ""
        else:
            entries = [line for h in ordered for line in h[3]]
            header = ""
    limited = entries[:head_limit] if head_limit else entries
    body = "\n".join(limited)
    if mode == "count":
        body += f"\n\nFound {total} match{'es' if total != 1 else ''} in {len(hits)} file" + (
            "s" if len(hits) != 1 else ""
        )
    if header:
        body = f"{header}\n{body}"
    if len(limited) < len(entries):
        body += f"\n[head_limit {head_limit}: {len(entries) - len(limited)} more not shown]"
    text, capped = _cap_text(body, ctx.output_cap_chars)
    meta["truncated"] = capped or len(limited) < len(entries)
    return ToolResult(output=text, meta=meta)


__all__ = [
    "EditTool",
    "GlobTool",
    "GrepTool",
    "ReadTool",
    "WriteTool",
    "expand_braces",
    "glob_to_regex",
    "iter_files",
]
