"""Open paths inside the project without ever following a symlink out of it.

:func:`~stagent_lab.tools.paths.resolve_in_project` answers "does this path lie inside?", but a
check followed by a separate ``open(path)`` is a race: between the two, a directory of the
project can be swapped for a symlink to ``/`` and the open follows it. Here the walk itself is
the check. Every component is opened relative to its parent's directory fd with ``O_NOFOLLOW``,
from the project root down, so what is opened is what was checked:

- a symlink met on the way is read (``readlinkat``) and its target resolved by this same walk,
  so a link inside the project that points inside the project still works, and one that leaves
  is refused with :class:`PathOutsideProject`;
- ``..`` pops the walk's own stack of open directories instead of asking the filesystem, so it
  can never climb above the root through a swapped-in link;
- when a component changes between looking at it and opening it (the race), the open fails
  (``ELOOP``, ``ENOTDIR``) and the component is looked at again, a bounded number of times.

Files are opened with ``O_NONBLOCK`` and checked with ``fstat``: only regular files are used,
so a FIFO, socket or device planted in the project gives an error instead of a hung thread.
Write and Edit pass ``refuse_git=True``: a path with a ``.git`` component is refused before any
folder is created (see :func:`is_git_component`).

POSIX only (``dir_fd`` support); the project root itself is trusted (the operator chose it).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stagent_lab.tools.paths import SKIP_DIRS, InvalidPath, PathOutsideProject

MAX_SYMLINKS = 40  # like the kernel's limit: a loop of links ends in an error
MAX_RACES = 64  # a component that keeps changing under the walk is refused after this many looks

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What a failed O_NOFOLLOW/O_DIRECTORY open reports when the entry changed since it was looked at.
_RACE_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOENT, errno.ENOTDIR, errno.ENXIO})

# Characters HFS+ ignores in names (git's own list): ".g\u200cit" is ".git" on a Mac.
_HFS_IGNORABLE = dict.fromkeys(
    map(
        ord,
        "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u206a\u206b"
        "\u206c\u206d\u206e\u206f\ufeff",
    ),
    None,
)


def is_git_component(name: str) -> bool:
    """True for a path component that names a git folder on some filesystem.

    Case-insensitive (``.GIT`` is ``.git`` on macOS and Windows), ignoring what HFS+ ignores and
    NTFS strips (trailing dots and spaces), plus the NTFS short name ``git~1``; git itself
    refuses the same spellings in a checkout.
    """
    plain = name.translate(_HFS_IGNORABLE).rstrip(". ").casefold()
    return plain in (".git", "git~1")


class NotRegularFile(InvalidPath):
    """The path is a FIFO, socket or device: opening or reading it could block forever."""

    def __init__(self, path: str, rel: str, kind: str) -> None:
        ValueError.__init__(
            self, f"{rel} is a {kind}, not a regular file; only regular files can be opened"
        )
        self.path = path
        self.reason = f"not a regular file ({kind})"
        self.kind = kind


class GitDirRefused(InvalidPath):
    """Write/Edit inside a ``.git`` folder without a rule that names ``.git``."""

    def __init__(self, path: str, rel: str) -> None:
        ValueError.__init__(
            self,
            f"refusing to write {rel}: it is inside a .git folder, where a planted hook or "
            "config (core.fsmonitor, core.hooksPath ...) runs code on the next git command; "
            "only a permission rule that names .git explicitly allows it",
        )
        self.path = path
        self.reason = "inside a .git folder"


def file_kind(mode: int) -> str:
    """A reader's name for a non-regular file type."""
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "special file"


def _rel(parts: tuple[str, ...] | list[str]) -> str:
    return "/".join(parts) or "."


def _oserror(exc: OSError, rel: str) -> OSError:
    """The same error, naming the project-relative path instead of a bare component."""
    return OSError(exc.errno, exc.strerror or str(exc), rel)


@dataclass
class Located:
    """Where a path led: an open directory and a name in it (``""``: the directory itself).

    ``parts`` are the physical components from the project root (symlinks resolved) and
    ``lstat`` describes ``name`` without following it (None when it does not exist). The caller
    owns ``dir_fd``; use the object as a context manager.
    """

    dir_fd: int
    name: str
    parts: tuple[str, ...]
    lstat: os.stat_result | None

    @property
    def rel(self) -> str:
        return _rel(self.parts)

    def close(self) -> None:
        os.close(self.dir_fd)

    def __enter__(self) -> Located:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Opened:
    """An open regular file inside the project (``fd`` is blocking again after the check)."""

    fd: int
    parts: tuple[str, ...]
    st: os.stat_result
    created: bool = False

    @property
    def rel(self) -> str:
        return _rel(self.parts)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Project:
    """The confinement root of one tool call, and the only way the file tools reach files."""

    def __init__(self, working_dir: Path | str) -> None:
        self.given = Path(os.path.abspath(working_dir))
        self.root = Path(os.path.realpath(working_dir))

    # ---------------------------------------------------------------------------- the walk

    def _relative_parts(self, path: str, original: str) -> list[str]:
        """Components of ``path`` below the root; absolute paths must lie inside it."""
        if not path.startswith("/"):
            return path.split("/")
        comps = [c for c in path.split("/") if c not in ("", ".")]
        for base in (self.root, self.given):
            prefix = list(base.parts[1:])
            if comps[: len(prefix)] == prefix:
                return comps[len(prefix) :]
        norm = Path(posixpath.normpath(path))
        for base in (self.root, self.given):
            if norm.is_relative_to(base):
                return list(norm.relative_to(base).parts)
        raise PathOutsideProject(original, self.root, norm)

    def locate(self, path: str, *, make_dirs: bool = False, refuse_git: bool = False) -> Located:
        """Walk ``path`` from the root, one ``O_NOFOLLOW`` open per folder; see the module doc.

        Symlinks are followed (safely) all the way, the last component included. ``make_dirs``
        creates missing folders on the way (Write); ``refuse_git`` raises
        :class:`GitDirRefused` for any ``.git`` component, before anything is created.
        """
        if "\x00" in path:
            raise InvalidPath(path, "contains a NUL byte")
        todo = deque(self._relative_parts(path, path))
        if refuse_git and any(is_git_component(c) for c in todo):
            # Before the walk creates anything: "sub/.git/x" must not leave "sub" behind.
            raise GitDirRefused(path, posixpath.normpath(path))
        root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stack: list[tuple[str, int]] = []  # open folders below the root, outermost first
        links = races = 0
        try:
            while True:
                while todo and todo[0] in ("", "."):
                    todo.popleft()
                parts = tuple(name for name, _ in stack)
                current = stack[-1][1] if stack else root_fd
                if not todo:
                    return Located(os.dup(current), "", parts, None)
                comp = todo.popleft()
                if comp == "..":
                    if stack:
                        os.close(stack.pop()[1])
                        continue
                    # Above the root: only a lexical way back in is accepted; nothing outside
                    # the project is ever opened.
                    back = posixpath.normpath(posixpath.join(self.root, "..", *todo))
                    if not Path(back).is_relative_to(self.root):
                        raise PathOutsideProject(path, self.root, Path(back))
                    todo = deque(Path(back).relative_to(self.root).parts)
                    continue
                last = all(c in ("", ".") for c in todo)
                here = (*parts, comp)
                if refuse_git and is_git_component(comp):
                    raise GitDirRefused(path, posixpath.normpath(posixpath.join(*here, *todo)))
                try:
                    st: os.stat_result | None = os.stat(comp, dir_fd=current, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                except OSError as exc:
                    raise _oserror(exc, _rel(here)) from None
                if st is None:
                    if last:
                        return Located(os.dup(current), comp, here, None)
                    if not make_dirs:
                        missing = posixpath.normpath(posixpath.join(*here, *todo))
                        raise FileNotFoundError(errno.ENOENT, "No such file or directory", missing)
                    while todo and todo[0] in ("", "."):
                        todo.popleft()
                    if todo and todo[0] == "..":
                        todo.popleft()  # "new/.." names where we are: nothing to create
                        continue
                    try:
                        os.mkdir(comp, 0o777, dir_fd=current)
                    except FileExistsError:
                        pass  # someone else made it: look again
                    except OSError as exc:
                        raise _oserror(exc, _rel(here)) from None
                    todo.appendleft(comp)
                    continue
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, "Too many levels of symbolic links", path)
                    try:
                        target = os.readlink(comp, dir_fd=current)
                    except OSError as exc:
                        if exc.errno in _RACE_ERRNOS or exc.errno == errno.EINVAL:
                            races = self._race(races, path)
                            todo.appendleft(comp)
                            continue
                        raise _oserror(exc, _rel(here)) from None
                    if target.startswith("/"):
                        rel_target = self._relative_parts(target, path)
                        for _, fd in stack:
                            os.close(fd)
                        stack.clear()
                        todo.extendleft(reversed(rel_target))
                    else:
                        todo.extendleft(reversed(target.split("/")))
                    continue
                if last:
                    return Located(os.dup(current), comp, here, st)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", _rel(here))
                try:
                    fd = os.open(comp, _DIR_FLAGS, dir_fd=current)
                except OSError as exc:
                    if exc.errno not in _RACE_ERRNOS:
                        raise _oserror(exc, _rel(here)) from None
                    races = self._race(races, path)
                    todo.appendleft(comp)  # it changed since the lstat: look again
                    continue
                stack.append((comp, fd))
        finally:
            for _, fd in stack:
                os.close(fd)
            os.close(root_fd)

    @staticmethod
    def _race(races: int, path: str) -> int:
        races += 1
        if races > MAX_RACES:
            raise InvalidPath(path, "it kept changing while being opened")
        return races

    # ------------------------------------------------------------------------- opening

    def open_dir(self, path: str) -> tuple[int, tuple[str, ...]]:
        """An fd for the folder at ``path`` (symlinks inside the project followed) and its parts."""
        for _ in range(MAX_RACES):
            with self.locate(path) as loc:
                if loc.name == "":
                    return os.dup(loc.dir_fd), loc.parts
                if loc.lstat is None:
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory", loc.rel)
                if not stat.S_ISDIR(loc.lstat.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "Not a directory", loc.rel)
                try:
                    return os.open(loc.name, _DIR_FLAGS, dir_fd=loc.dir_fd), loc.parts
                except OSError as exc:
                    if exc.errno not in _RACE_ERRNOS:
                        raise _oserror(exc, loc.rel) from None
        raise InvalidPath(path, "it kept changing while being opened")

    def open_file(
        self,
        path: str,
        mode: Literal["r", "w", "rw"] = "r",
        *,
        create: bool = False,
        refuse_git: bool = False,
    ) -> Opened:
        """Open the regular file at ``path``; FIFOs, sockets and devices are refused unopened.

        ``create`` (Write) makes the file and its missing folders; an existing file is opened
        as is (the caller truncates). The fd is opened ``O_NONBLOCK`` and checked with fstat, so
        a FIFO swapped in after the lstat is refused instead of blocking.
        """
        for _ in range(MAX_RACES):
            with self.locate(path, make_dirs=create, refuse_git=refuse_git) as loc:
                if loc.name == "":
                    raise IsADirectoryError(errno.EISDIR, "Is a directory", loc.rel)
                if loc.lstat is None and not create:
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory", loc.rel)
                if loc.lstat is not None:
                    _refuse_special(path, loc.rel, loc.lstat.st_mode)
                fd = _open_at(loc, mode)
                if fd is None:
                    continue  # it changed since the lstat: look again
                try:
                    st = os.fstat(fd)
                    _refuse_special(path, loc.rel, st.st_mode)
                    os.set_blocking(fd, True)
                except BaseException:
                    os.close(fd)
                    raise
                return Opened(fd, loc.parts, st, created=loc.lstat is None)
        raise InvalidPath(path, "it kept changing while being opened")


def _open_at(loc: Located, mode: Literal["r", "w", "rw"]) -> int | None:
    """Open ``loc.name`` (create it when the lstat found nothing); None when it raced."""
    access = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[mode]
    try:
        if loc.lstat is None:
            flags = access | os.O_CREAT | os.O_EXCL | _FILE_FLAGS
            return os.open(loc.name, flags, 0o666, dir_fd=loc.dir_fd)
        return os.open(loc.name, access | _FILE_FLAGS, dir_fd=loc.dir_fd)
    except FileExistsError:
        return None
    except OSError as exc:
        if exc.errno in _RACE_ERRNOS or exc.errno == errno.EISDIR:
            return None
        raise _oserror(exc, loc.rel) from None


def _refuse_special(path: str, rel: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", rel)
    raise NotRegularFile(path, rel, file_kind(mode))


# ----------------------------------------------------------------------------- listing


@dataclass
class FoundFile:
    """One regular file met by :func:`walk_files`.

    ``rel`` is relative to the folder the walk started from (what patterns match), ``display``
    is project-relative (what the model sees and can pass back to Read). ``open`` returns a
    read-only fd and is valid only while the walk is at this file.
    """

    rel: str
    display: str
    mtime: float
    open: Callable[[], int]


def _open_entry(dir_fd: int, name: str, display: str) -> int:
    fd = os.open(name, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
    try:
        _refuse_special(display, display, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_linked(project: Project, display: str) -> int:
    opened = project.open_file(display)
    return opened.fd


def walk_files(
    project: Project,
    base_fd: int,
    base_parts: tuple[str, ...],
    check: Callable[[], None] | None = None,
) -> Iterator[FoundFile]:
    """Every regular file below the folder ``base_fd`` (not closed here), in path order.

    Folders are opened ``O_NOFOLLOW`` relative to their parent, so a folder swapped for a link
    mid-walk is skipped rather than followed. Symlinked folders are not descended into;
    symlinked files are listed when they resolve (safely) to a regular file inside the project.
    SKIP_DIRS are never entered. Files come in the order of their sorted paths, so callers that
    print path-ordered results can stream them. ``check`` runs once per folder (it raises to
    abandon the walk).
    """
    frames: list[tuple[int, tuple[str, ...], Iterator[tuple[str, bool]], bool]] = []

    def listing(fd: int) -> Iterator[tuple[str, bool]]:
        try:
            with os.scandir(fd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError:
            return iter(())
        # A folder sorts as "name/" so the walk yields files in full-path order.
        entries.sort(key=lambda e: e[0] + "/" if e[1] else e[0])
        return iter(entries)

    frames.append((base_fd, (), listing(base_fd), False))
    try:
        while frames:
            fd, sub, entries, owned = frames[-1]
            entry = next(entries, None)
            if entry is None:
                frames.pop()
                if owned:
                    os.close(fd)
                continue
            name, is_dir = entry
            if is_dir:
                if name in SKIP_DIRS:
                    continue
                if check is not None:
                    check()
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue  # gone or swapped for a link since the listing
                frames.append((child, (*sub, name), listing(child), True))
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue
            rel = "/".join((*sub, name))
            display = "/".join((*base_parts, *sub, name))
            if stat.S_ISREG(st.st_mode):
                yield FoundFile(rel, display, st.st_mtime, _bind_entry(fd, name, display))
            elif stat.S_ISLNK(st.st_mode):
                try:
                    with project.open_file(display) as target:
                        mtime = target.st.st_mtime
                except (OSError, InvalidPath):
                    continue  # dangling, a folder, special, or outside the project
                yield FoundFile(rel, display, mtime, _bind_linked(project, display))
    finally:
        for fd, _, _, owned in frames:
            if owned:
                os.close(fd)


def _bind_entry(dir_fd: int, name: str, display: str) -> Callable[[], int]:
    return lambda: _open_entry(dir_fd, name, display)


def _bind_linked(project: Project, display: str) -> Callable[[], int]:
    return lambda: _open_linked(project, display)


__all__ = [
    "MAX_SYMLINKS",
    "FoundFile",
    "GitDirRefused",
    "Located",
    "NotRegularFile",
    "Opened",
    "Project",
    "file_kind",
    "is_git_component",
    "walk_files",
]
