"""Paths as permission rules see them: normalized, anchored, symlink-resolved, and checked for
``.git`` components and for escapes from the working directory.

Two facts drive this module. A rule that allows ``src/**`` must not allow ``src/../../etc``
or a link inside ``src`` that points elsewhere, so requested paths are compared in two forms,
as written (normalized) and resolved. And a file under ``.git/`` is not data but
configuration that git *runs* (``core.fsmonitor``, hooks, aliases), so writing one is never
covered by a broad rule.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "base_dir",
    "bash_argument_report",
    "escape_path_glob",
    "glob_names_git",
    "has_git_component",
    "input_paths",
    "paths_under",
    "real_path",
    "rule_globs",
]


def squash_root(path: str) -> str:
    """POSIX keeps a leading ``//``; for matching it is the same directory as ``/``."""
    return "/" + path.lstrip("/") if path.startswith("//") else path


def base_dir(working_dir: str | Path | None) -> str:
    """The absolute, normalized working directory (the process's when None)."""
    base = os.fspath(working_dir) if working_dir is not None else os.getcwd()
    return squash_root(posixpath.normpath(posixpath.abspath(posixpath.expanduser(base))))


def real_path(path: str) -> str:
    """``os.path.realpath`` of an absolute path. When no component is a link (the usual case)
    it costs one ``lstat`` per component; otherwise it defers to ``os.path.realpath``."""
    parts = path.split("/")
    if ".." in parts:
        return squash_root(os.path.realpath(path))
    cur = ""
    for k, part in enumerate(parts):
        if not part or part == ".":
            continue
        nxt = cur + "/" + part
        try:
            mode = os.lstat(nxt).st_mode
        except OSError:  # missing (or not a directory): nothing below it can be a link
            rest = [p for p in parts[k + 1 :] if p and p != "."]
            return "/".join([nxt, *rest])
        if stat.S_ISLNK(mode):
            return squash_root(os.path.realpath(path))
        cur = nxt
    return cur or "/"


def input_paths(value: str, working_dir: str | Path | None) -> tuple[str, str]:
    """(lexical, resolved) absolute forms of a requested path."""
    return paths_under(value, base_dir(working_dir))


def paths_under(value: str, base: str) -> tuple[str, str]:
    """:func:`input_paths` with the working directory already made absolute and normalized."""
    path = posixpath.expanduser(value) if value.startswith("~") else value
    if not path.startswith("/"):
        path = base + "/" + path if base != "/" else "/" + path
    lexical = squash_root(posixpath.normpath(path))
    return lexical, real_path(path)  # resolves links before applying ".."


_GLOB_META = re.compile(r"[*?\[\\]")


def escape_path_glob(path: str) -> str:
    return re.sub(r"([*?\[\]\\()])", r"\\\1", path)


def absolute_glob(pattern: str, base: str) -> str:
    """A path glob made absolute (``~`` expanded, relative ones anchored at ``base``)."""
    glob = posixpath.expanduser(pattern) if pattern.startswith("~") else pattern
    if not posixpath.isabs(glob):
        glob = posixpath.join(escape_path_glob(base), glob)
    return squash_root(posixpath.normpath(glob))


def literal_dir(glob: str) -> str:
    """The leading segments of an absolute glob that hold no glob character (``/`` if none)."""
    segments = glob.split("/")
    literal = 1
    while literal < len(segments) and not _GLOB_META.search(segments[literal]):
        literal += 1
    return "/".join(segments[:literal]) or "/"


def rule_globs(pattern: str, working_dir: str | Path | None) -> list[str]:
    """The rule's absolute glob, plus a variant whose literal leading directories are
    symlink-resolved (so ``/tmp/p/**`` still covers files when /tmp is itself a link)."""
    glob = absolute_glob(pattern, base_dir(working_dir))
    prefix = literal_dir(glob)
    real = os.path.realpath(prefix)
    if real == prefix:
        return [glob]
    rest = glob[len(prefix) :].lstrip("/") if prefix != "/" else glob.lstrip("/")
    resolved = escape_path_glob(real).rstrip("/") + ("/" + rest if rest else "")
    return [glob, resolved or "/"]


# ---- .git --------------------------------------------------------------------------------

# Code points HFS+ ignores when it compares names, so ".g\u200cit" is ".git" on a Mac.
_IGNORABLE = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")


def has_git_component(path: str) -> bool:
    """True when a component of ``path`` is ``.git`` (any case, HFS+-ignorable characters
    removed): the repository's configuration, hooks and object store, or a gitfile."""
    if not path.isascii():
        path = _IGNORABLE.sub("", path)
    if "git" not in path.lower():
        return False
    return any(part.lower() == ".git" for part in path.split("/"))


def glob_names_git(glob: str) -> bool:
    """Does a path glob name ``.git`` as a literal segment (``.git/**``, ``**/.git/hooks/*``)?"""
    return any(re.sub(r"\\(.)", r"\1", seg).lower() == ".git" for seg in glob.split("/") if seg)


_BASH_NAMES_GIT = re.compile(r"\.git(?![\w.-])", re.IGNORECASE)


def bash_glob_names_git(pattern: str) -> bool:
    """Does a Bash glob mention ``.git`` as a name (``cat .git/HEAD``, not ``.gitignore``)?"""
    return bool(_BASH_NAMES_GIT.search(re.sub(r"\\(.)", r"\1", pattern)))


# ---- Bash arguments ------------------------------------------------------------------------

# Device files that read or write no file on disk.
_HARMLESS = frozenset({"/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"})
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=")


def _path_values(word: str) -> list[str]:
    """The parts of one argument that may name a path: the argument itself, the value of
    ``--opt=value`` or ``name=value``, or a path glued to a short option (``-I../inc``)."""
    if word.startswith("--"):
        _, eq, value = word.partition("=")
        return [value] if eq and value else []
    if word.startswith("-") and len(word) > 1:
        value = word[2:]
        return [value] if value[:1] in ("/", "~", ".") else []
    values = [word]
    if "=" in word:
        value = word.split("=", 1)[1]
        if value:
            values.append(value)
    return values


def _under(path: str, root: str) -> bool:
    return root == "/" or path == root or path.startswith(root + "/")


def _rooted(path: str) -> bool:
    """Does the first component of an absolute path exist at the root of the file system?
    Every file outside the working directory is reached through one (/etc, /proc, /home);
    an argument such as a sed address ``/^#/d`` or a URL path ``/api/v1`` is not."""
    first = path.split("/", 2)[1] if path != "/" else ""
    if not first:
        return True
    try:
        os.lstat("/" + first)
    except OSError:
        return False
    return True


def _link_target(base: str, rel: str, raw: str) -> str | None:
    """Where ``raw`` (= ``base`` + ``rel``, lexically) really leads when a link or ``..`` is
    involved; None when it is a plain path under ``base`` (the usual case, one ``lstat`` per
    component below ``base``)."""
    if ".." in raw.split("/"):
        return real_path(raw)
    cur = base.rstrip("/")
    parts = [p for p in rel.split("/") if p and p != "."]
    for k, part in enumerate(parts):
        cur = cur + "/" + part
        try:
            mode = os.lstat(cur).st_mode
        except OSError:
            return None  # missing: nothing below can be a link
        if stat.S_ISLNK(mode):
            return real_path("/".join([cur, *parts[k + 1 :]]))
    return None


def bash_argument_report(
    commands: Sequence[Sequence[str]], base: str
) -> tuple[str | None, tuple[bool, ...]]:
    """(why the line reaches outside the working directory ``base`` or None, per command:
    does it name a path with a ``.git`` component). ``base`` is absolute and normalized.

    Every argument counts, because which arguments a program treats as file names is not
    known: an absolute path outside the working directory (``/proc/self/environ``; one whose
    first component does not exist at the root, like ``/^#/d``, is not a path), ``~``, a
    ``..`` that climbs out (``../../etc/passwd``), or a symlink that leads out. ``/dev/null``
    and the standard streams are fine.
    """
    real_base: str | None = None
    git_flags: list[bool] = []
    for words in commands:
        k = 0
        while k < len(words) and "=" in words[k] and _ASSIGNMENT.match(words[k]):
            k += 1
        touches_git = k < len(words) and has_git_component(words[k])
        for pos, word in enumerate(words):
            if pos == k:
                continue  # the program itself: the rule names it
            values = [word.split("=", 1)[1]] if pos < k else _path_values(word)
            for value in values:
                if not value or value in _HARMLESS:
                    continue
                if value[0] == "~":
                    value = posixpath.expanduser(value)
                if value[0] == "/":
                    raw = value
                else:
                    raw = base + "/" + value if base != "/" else "/" + value
                lexical = squash_root(posixpath.normpath(raw))
                if not _under(lexical, base):
                    if value[0] == "/" and not _rooted(lexical):
                        continue  # "/^#/d", "/api/v1": nothing at the root has that name
                    return f"the argument {value!r} is outside the working directory", ()
                rel = lexical[len(base) :]
                touches_git = touches_git or has_git_component(rel)
                target = _link_target(base, rel, raw)
                if target is None:
                    continue
                if real_base is None:
                    real_base = real_path(base)
                if not _under(target, real_base):
                    return f"the argument {value!r} leads outside the working directory", ()
                touches_git = touches_git or has_git_component(target[len(real_base) :])
        git_flags.append(touches_git)
    return None, tuple(git_flags)
