"""File tools: Read, Write, Edit, Glob, Grep.

Field names and output shapes follow Claude Code's tools so a model trained on them uses ours
without coaching, and so one rule syntax (``Read(src/**)``) governs every runtime.

Every path is opened through :class:`~stagent_lab.tools.confine.Project`, which walks from the
project root one ``O_NOFOLLOW`` open at a time: a folder swapped for a symlink mid-call cannot
lead outside. Only regular files are opened (a FIFO would block a thread forever), files are
read in chunks with long lines cut while reading (memory stays O(cap) whatever the file holds),
and each call runs in its own worker thread under ``ToolContext.tool_timeout_s``
(:mod:`stagent_lab.tools.limits`). Write and Edit refuse ``.git`` folders unless the context
says a rule named them (``ToolContext.allow_git_dir``).
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterable
from typing import Any, ClassVar

from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.confine import FoundFile, GitDirRefused, Project, walk_files
from stagent_lab.tools.limits import (
    Stop,
    ToolTimeout,
    iter_lines,
    looks_binary,
    run_in_worker,
)
from stagent_lab.tools.paths import InvalidPath, check_input, error

READ_DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000
LINE_TRUNCATED = " [... line truncated]"
# Read keeps enough bytes of a line for MAX_LINE_CHARS characters (UTF-8: at most 4 bytes each).
READ_LINE_BYTES = MAX_LINE_CHARS * 4 + 4
# Grep searches at most this much of one line; the rest of a longer line is skipped unread.
GREP_LINE_BYTES = 1024 * 1024
EDIT_MAX_BYTES = 16 * 1024 * 1024
GLOB_MAX_RESULTS = 1000
_MAX_BRACE_EXPANSIONS = 256


class _FileTool(Tool):
    """Shared plumbing: schema check, worker thread under the time limit, error results."""

    # What a timeout means for the files (Write/Edit may have changed them by then).
    timeout_note: ClassVar[str] = ""

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        problem = check_input(self.name, tool_input, self.input_schema)
        if problem:
            return error(problem)
        project = Project(ctx.working_dir)
        try:
            return await run_in_worker(
                lambda stop: self._run(tool_input, ctx, project, stop),
                ctx.tool_timeout_s,
                self.name,
            )
        except ToolTimeout as exc:
            return error(f"{self.name}: {exc}{self.timeout_note}", timed_out=True)
        except GitDirRefused as exc:
            return error(f"{self.name}: {exc}", path=exc.path, refused="git_dir")
        except InvalidPath as exc:
            return error(f"{self.name}: {exc}", path=exc.path)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            return error(f"{self.name}: {exc.strerror or exc}{where}")

    def _run(
        self, tool_input: dict[str, Any], ctx: ToolContext, project: Project, stop: Stop
    ) -> ToolResult:
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
        "2000 characters are truncated. Binary files and non-regular files (FIFOs, devices) "
        "are refused. Paths are relative to the project folder (absolute paths must lie "
        "inside it)."
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

    def _run(
        self, tool_input: dict[str, Any], ctx: ToolContext, project: Project, stop: Stop
    ) -> ToolResult:
        try:
            opened = project.open_file(tool_input["file_path"])
        except FileNotFoundError as exc:
            return error(f"Read: file not found: {exc.filename}", path=exc.filename)
        except IsADirectoryError as exc:
            rel = exc.filename
            return error(f"Read: {rel} is a directory; use Glob to list its files", path=rel)
        with opened:
            rel = opened.rel
            if looks_binary(opened.fd):
                return error(
                    f"Read: {rel} looks like a binary file (NUL bytes); not shown", path=rel
                )
            start = max(tool_input.get("offset", 1), 1)
            limit = tool_input.get("limit", READ_DEFAULT_LIMIT)
            return _read_lines(opened.fd, rel, start, limit, ctx.output_cap_chars, stop)


def _clip_line(line: str, cut: bool) -> str:
    if cut or len(line) > MAX_LINE_CHARS:
        return line[:MAX_LINE_CHARS] + LINE_TRUNCATED
    return line


def _read_lines(fd: int, rel: str, start: int, limit: int, cap: int, stop: Stop) -> ToolResult:
    shown: list[str] = []
    size = 0
    last = start - 1
    more = False
    capped = False
    total = 0
    for number, (raw, cut) in enumerate(iter_lines(fd, READ_LINE_BYTES, stop.check), 1):
        total = number
        if number < start:
            continue
        if number >= start + limit or capped:
            more = True
            break
        line = _clip_line(raw.decode("utf-8", errors="replace"), cut)
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
    timeout_note = "; the file may or may not have been written"
    description = (
        "Create or overwrite a text file inside the project with `content` (UTF-8). Missing "
        "parent folders are created. Prefer Edit for changing part of an existing file. "
        "Files inside a .git folder are refused."
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

    def _run(
        self, tool_input: dict[str, Any], ctx: ToolContext, project: Project, stop: Stop
    ) -> ToolResult:
        data = tool_input["content"].encode("utf-8")
        try:
            opened = project.open_file(
                tool_input["file_path"], "w", create=True, refuse_git=not ctx.allow_git_dir
            )
        except IsADirectoryError as exc:
            return error(f"Write: {exc.filename} is a directory", path=exc.filename)
        with opened:
            stop.check()  # the last point where giving up leaves the file as it was
            if not opened.created:
                os.ftruncate(opened.fd, 0)
            _write_all(opened.fd, data)
        rel = opened.rel
        verb = "Created" if opened.created else "Overwrote"
        return ToolResult(
            output=f"{verb} {rel} ({len(data)} bytes written)",
            meta={"path": rel, "bytes": len(data), "created": opened.created},
        )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --------------------------------------------------------------------------------------- Edit


class EditTool(_FileTool):
    name = "Edit"
    main_field = "file_path"
    path_fields = ("file_path",)
    timeout_note = "; the file may or may not have been changed"
    description = (
        "Replace text in an existing file: `old_string` must appear exactly once (include "
        "enough surrounding lines to make it unique) unless `replace_all` is true, in which "
        "case every occurrence is replaced. Whitespace and indentation must match exactly. "
        "Use Write to create new files. Files inside a .git folder are refused."
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

    def _run(
        self, tool_input: dict[str, Any], ctx: ToolContext, project: Project, stop: Stop
    ) -> ToolResult:
        old, new = tool_input["old_string"], tool_input["new_string"]
        replace_all = tool_input.get("replace_all", False)
        if old == "":
            return error("Edit: old_string is empty; use Write to create or overwrite a file")
        if old == new:
            return error("Edit: old_string and new_string are identical; nothing to change")
        try:
            opened = project.open_file(
                tool_input["file_path"], "rw", refuse_git=not ctx.allow_git_dir
            )
        except FileNotFoundError as exc:
            rel = exc.filename
            return error(f"Edit: {rel} does not exist (use Write to create it)", path=rel)
        except IsADirectoryError as exc:
            return error(f"Edit: {exc.filename} is a directory", path=exc.filename)
        with opened:
            rel = opened.rel
            raw = _read_at_most(opened.fd, EDIT_MAX_BYTES + 1, stop)
            if len(raw) > EDIT_MAX_BYTES:
                return error(
                    f"Edit: {rel} is larger than {EDIT_MAX_BYTES // (1024 * 1024)} MiB; "
                    "refusing to load it whole (use Bash for bulk changes)",
                    path=rel,
                )
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
                return error(
                    f"Edit: old_string not found in {rel} (0 matches)", path=rel, matches=0
                )
            if count > 1 and not replace_all:
                return error(
                    f"Edit: old_string occurs {count} times in {rel}; add surrounding context "
                    "to make it unique, or set replace_all to true",
                    path=rel,
                    matches=count,
                )
            first_line = text[: text.index(old)].count("\n") + 1
            updated = text.replace(old, new) if replace_all else text.replace(old, new, 1)
            data = updated.encode("utf-8")
            stop.check()  # the last point where giving up leaves the file as it was
            # Same fd as the read: nothing can swap the file between reading and writing.
            os.lseek(opened.fd, 0, os.SEEK_SET)
            _write_all(opened.fd, data)
            os.ftruncate(opened.fd, len(data))
        n = count if replace_all else 1
        noun = "occurrence" if n == 1 else "occurrences"
        return ToolResult(
            output=f"Edited {rel}: replaced {n} {noun} (first at line {first_line})",
            meta={"path": rel, "replacements": n, "line": first_line},
        )


def _read_at_most(fd: int, limit: int, stop: Stop) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        stop.check()
        chunk = os.read(fd, min(limit - size, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


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


def _has_magic(segment: str) -> bool:
    return any(ch in segment for ch in "*?[")


class _Collector:
    """Result lines under a character cap and a head limit, counted past both.

    Keeps just enough lines to fill ``cap`` (the rest would be cut anyway) and counts what it
    drops, so the note at the end can say how much was not shown without holding it.
    """

    def __init__(self, cap: int, head_limit: int | None) -> None:
        self.cap = cap
        self.head_limit = head_limit
        self.kept: list[str] = []
        self.kept_chars = 0
        self.unkept_chars = 0
        self.count = 0

    def add(self, line: str) -> None:
        self.count += 1
        if self.head_limit is not None and self.count > self.head_limit:
            return
        if self.kept_chars <= self.cap:
            self.kept.append(line)
            self.kept_chars += len(line) + 1
        else:
            self.unkept_chars += len(line) + 1

    @property
    def head_limited(self) -> int:
        """How many lines the head limit left out."""
        if self.head_limit is None:
            return 0
        return max(self.count - self.head_limit, 0)


def _cap_text(text: str, cap: int, unseen: int = 0) -> tuple[str, bool]:
    """Cut at the last whole line that fits in ``cap`` characters.

    ``unseen`` counts characters that belong after ``text`` but were never built (see
    :class:`_Collector`); they are reported as not shown.
    """
    if len(text) <= cap and not unseen:
        return text, False
    if len(text) <= cap:
        cut = len(text)
    else:
        cut = text.rfind("\n", 0, cap)
        cut = cut if cut > 0 else cap
    dropped = len(text) - cut + unseen
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

    def _run(
        self, tool_input: dict[str, Any], ctx: ToolContext, project: Project, stop: Stop
    ) -> ToolResult:
        search_in = tool_input.get("path") or "."
        try:
            fd, _ = project.open_dir(search_in)
            os.close(fd)
        except (FileNotFoundError, NotADirectoryError) as exc:
            rel = exc.filename or search_in
            return error(f"Glob: path {rel} is not a directory", path=rel)
        try:
            patterns = expand_braces(tool_input["pattern"])
        except ValueError as exc:
            return error(f"Glob: {exc}")
        found: dict[str, float] = {}
        for pattern in patterns:
            parts = pattern.split("/")
            literal = 0
            while literal < len(parts) - 1 and not _has_magic(parts[literal]):
                literal += 1
            base_str = "/".join(parts[:literal]) or ("/" if pattern.startswith("/") else ".")
            rest = "/".join(parts[literal:])
            base = base_str if base_str.startswith("/") else f"{search_in}/{base_str}"
            try:
                base_fd, base_parts = project.open_dir(base)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                if not _has_magic(rest):
                    _glob_literal(project, base_parts, rest, found)
                    continue
                regex = glob_to_regex(rest)
                for file in walk_files(project, base_fd, base_parts, stop.check):
                    if regex.match(file.rel):
                        found[file.display] = file.mtime
            finally:
                os.close(base_fd)
        ordered = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
        paths = [p for p, _ in ordered]
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


def _glob_literal(
    project: Project, base_parts: tuple[str, ...], name: str, found: dict[str, float]
) -> None:
    display = "/".join((*base_parts, name))
    try:
        with project.open_file(display) as opened:
            found[display] = opened.st.st_mtime
    except (OSError, InvalidPath):
        pass  # missing, a folder, not a regular file, or a link leading outside


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
        "are skipped; only the first MiB of a very long line is searched."
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

    def _run(
        self, tool_input: dict[str, Any], ctx: ToolContext, project: Project, stop: Stop
    ) -> ToolResult:
        flags = re.IGNORECASE if tool_input.get("-i") else 0
        try:
            regex = re.compile(tool_input["pattern"], flags)
        except re.error as exc:
            return error(f"Grep: invalid regex pattern {tool_input['pattern']!r}: {exc}")
        try:
            file_filter = _file_filter(tool_input.get("glob"))
        except ValueError as exc:
            return error(f"Grep: {exc}")
        mode = tool_input.get("output_mode", "files_with_matches")
        head_limit = tool_input.get("head_limit")
        out = _Collector(ctx.output_cap_chars, head_limit)
        search = _Search(
            regex=regex,
            numbers=tool_input.get("-n", True),
            before=tool_input.get("-B", tool_input.get("-C", 0)),
            after=tool_input.get("-A", tool_input.get("-C", 0)),
            out=out if mode == "content" else None,
            stop=stop,
        )
        search_in = tool_input.get("path") or "."
        try:
            dir_fd, dir_parts = project.open_dir(search_in)
        except FileNotFoundError as exc:
            rel = exc.filename or search_in
            return error(f"Grep: path {rel} does not exist", path=rel)
        except NotADirectoryError:
            dir_fd, dir_parts = None, ()
        hits: list[tuple[str, float]] = []  # files_with_matches: (path, mtime)
        files = matches = 0
        try:
            if dir_fd is None:
                candidates: Iterable[FoundFile] = [_single_file(project, search_in)]
            else:
                candidates = (
                    f
                    for f in walk_files(project, dir_fd, dir_parts, stop.check)
                    if file_filter(f.rel)
                )
            for file in candidates:
                count = _scan_file(search, file)
                if not count:
                    continue
                files += 1
                matches += count
                if mode == "files_with_matches":
                    hits.append((file.display, file.mtime))
                elif mode == "count":
                    out.add(f"{file.display}:{count}")
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        return _grep_result(search, out, hits, files, matches, mode, head_limit, ctx)


def _single_file(project: Project, path: str) -> FoundFile:
    """Grep's ``path`` naming one file: filters do not apply (the caller named it)."""
    with project.open_file(path) as opened:
        rel, mtime = opened.rel, opened.st.st_mtime
    return FoundFile(rel, rel, mtime, lambda: project.open_file(path).fd)


def _scan_file(search: _Search, file: FoundFile) -> int:
    """Matching lines in one file; unreadable and binary files count as no match."""
    try:
        fd = file.open()
    except (OSError, InvalidPath):
        return 0
    try:
        if looks_binary(fd):
            return 0
        return search.scan(fd, file.display)
    except OSError:
        return 0
    finally:
        os.close(fd)


def _grep_result(
    search: _Search,
    out: _Collector,
    hits: list[tuple[str, float]],
    files: int,
    matches: int,
    mode: str,
    head_limit: int | None,
    ctx: ToolContext,
) -> ToolResult:
    meta: dict[str, Any] = {"files": files, "matches": matches, "mode": mode}
    if search.cut_lines:
        meta["lines_cut"] = search.cut_lines
    if not files:
        return ToolResult(output="No matches found", meta=meta)
    header = ""
    if mode == "files_with_matches":
        for path, _ in sorted(hits, key=lambda h: (-h[1], h[0])):
            out.add(path)
        header = f"Found {files} file{'s' if files != 1 else ''}"
    body = "\n".join(out.kept)
    if mode == "count":
        body += f"\n\nFound {matches} match{'es' if matches != 1 else ''} in {files} file" + (
            "s" if files != 1 else ""
        )
    if header:
        body = f"{header}\n{body}"
    if out.head_limited:
        body += f"\n[head_limit {head_limit}: {out.head_limited} more not shown]"
    if search.cut_lines:
        body += (
            f"\n[{search.cut_lines} line(s) longer than {GREP_LINE_BYTES // 1024} KiB were "
            "searched only in their first part]"
        )
    text, capped = _cap_text(body, ctx.output_cap_chars, out.unkept_chars)
    meta["truncated"] = capped or bool(out.head_limited)
    return ToolResult(output=text, meta=meta)


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
    """One regex over files, line by line; in content mode it renders into a collector."""

    def __init__(
        self,
        regex: re.Pattern[str],
        numbers: bool,
        before: int,
        after: int,
        out: _Collector | None,
        stop: Stop,
    ) -> None:
        self.regex = regex
        self.numbers = numbers
        self.before = before
        self.after = after
        self.out = out
        self.stop = stop
        self.cut_lines = 0  # lines longer than GREP_LINE_BYTES, searched only in part

    def _fmt(self, rel: str, number: int, line: str, sep: str) -> str:
        return f"{rel}{sep}{number}{sep}{line}" if self.numbers else f"{rel}{sep}{line}"

    def scan(self, fd: int, rel: str) -> int:
        """Count matching lines; in content mode also render them with context."""
        count = 0
        out = self.out
        # The last `before` lines not yet shown, held to at most about one output cap of text.
        recent: deque[tuple[int, str]] = deque()
        recent_chars = 0
        last_emitted = 0
        after_left = 0
        emitted = False
        for number, (raw, cut) in enumerate(iter_lines(fd, GREP_LINE_BYTES, self.stop.check), 1):
            if cut:
                self.cut_lines += 1
            line = raw.decode("utf-8", errors="replace")
            matched = self.regex.search(line) is not None
            if matched:
                count += 1
            if out is None:
                continue
            shown = _clip_line(line, cut)
            if matched:
                context = [(n, t) for n, t in recent if n > last_emitted]
                first = context[0][0] if context else number
                if emitted and first > last_emitted + 1 and (self.before or self.after):
                    out.add("--")
                for n, t in context:
                    out.add(self._fmt(rel, n, t, "-"))
                out.add(self._fmt(rel, number, shown, ":"))
                last_emitted = number
                emitted = True
                after_left = self.after
            elif after_left:
                out.add(self._fmt(rel, number, shown, "-"))
                last_emitted = number
                after_left -= 1
            if self.before:
                recent.append((number, shown))
                recent_chars += len(shown)
                while len(recent) > self.before or (recent_chars > out.cap and len(recent) > 1):
                    recent_chars -= len(recent.popleft()[1])
        return count


__all__ = [
    "EditTool",
    "GlobTool",
    "GrepTool",
    "ReadTool",
    "WriteTool",
    "expand_braces",
    "glob_to_regex",
]
