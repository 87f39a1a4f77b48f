"""Find profiles in a list of folders and keep them fresh without restarting the kernel.

Every access computes a cheap signature of the folders (sub-folder names plus ``os.stat`` of
profile.yaml and SKILL.md — no file reads). Only folders whose signature changed are parsed
again, so editing a SKILL.md in one cell shows up in the next ``get()`` and an unchanged catalog
costs a directory listing and a few stats.

Order matters: later folders override earlier ids (built-in < ~/.claude/skills <
$STAGENT_HOME/profiles < extra dirs). A profile that fails to load is reported in ``errors()``
and skipped; an earlier profile with the same id stays in use, so one bad edit never hides the
rest of the catalog.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import stagent_lab
from stagent_lab.errors import ProfileError, ProfileNotFoundError
from stagent_lab.profiles.loader import PROFILE_FILE, SKILL_FILE, load_profile
from stagent_lab.profiles.model import Profile

# get() re-scans every profile folder when the last full scan is older than this.
FULL_SCAN_EVERY_S = 1.0

# (inode, mtime_ns, size) of a file, or None when absent.
_FileSig = tuple[int, int, int] | None
_FolderSig = tuple[_FileSig, _FileSig]


def builtin_profiles_dir() -> Path:
    """Where the shipped catalog lives: inside the wheel, or ``profiles/`` in a checkout."""
    package = Path(stagent_lab.__file__).resolve().parent
    installed = package / "_builtin_profiles"
    if installed.is_dir():
        return installed
    return package.parent / "profiles"


def default_profile_dirs(home: Path, extra: Sequence[Path] = ()) -> list[Path]:
    """The discovery order, lowest precedence first."""
    return [
        builtin_profiles_dir(),
        Path.home() / ".claude" / "skills",
        Path(home) / "profiles",
        *(Path(p).expanduser() for p in extra),
    ]


def _file_sig(path: str) -> _FileSig:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _scan(directory: Path) -> dict[str, _FolderSig]:
    """Sub-folders that look like profiles, with their files' stat signatures."""
    found: dict[str, _FolderSig] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:  # missing or unreadable folder: nothing to offer, not an error
        return found
    for entry in entries:
        if entry.name.startswith((".", "_")):
            continue
        try:
            if not entry.is_dir():
                continue
        except OSError:
            continue
        sig = (
            _file_sig(os.path.join(entry.path, PROFILE_FILE)),
            _file_sig(os.path.join(entry.path, SKILL_FILE)),
        )
        if sig != (None, None):  # a folder without either file is not a profile
            found[entry.name] = sig
    return dict(sorted(found.items()))


class ProfileRegistry:
    """Profiles from ``dirs`` (later dirs win), re-read when files change on disk."""

    def __init__(self, dirs: Sequence[Path | str]) -> None:
        self.dirs: list[Path] = [Path(d).expanduser() for d in dirs]
        builtin = builtin_profiles_dir().resolve()
        self._origins: list[Literal["builtin", "user"]] = [
            "builtin" if _same_dir(d, builtin) else "user" for d in self.dirs
        ]
        self._lock = threading.RLock()
        self._signature: tuple[tuple[tuple[str, _FolderSig], ...], ...] | None = None
        # (dir index, folder name) -> (signature it was parsed at, result)
        self._parsed: dict[tuple[int, str], tuple[_FolderSig, Profile | ProfileError]] = {}
        self._profiles: dict[str, Profile] = {}
        self._errors: list[ProfileError] = []
        self._overridden: dict[str, list[Path]] = {}
        self.parse_count = 0  # folders parsed since creation (observability for tests/bench)
        self.scan_count = 0  # full scans (every folder's files stat-ed)
        # For get(): where each id's winning profile lives, the folders' own signatures and
        # when the last full scan ran (see get()).
        self._where: dict[str, tuple[int, str]] = {}
        self._dir_sigs: tuple[_FileSig, ...] = ()
        self._scanned_at = float("-inf")

    def add_dirs(self, dirs: Sequence[Path | str]) -> None:
        """Also load profiles from ``dirs`` (after the current ones, so they win)."""
        builtin = builtin_profiles_dir().resolve()
        with self._lock:
            for d in dirs:
                path = Path(d).expanduser()
                if any(_same_dir(path, existing.resolve()) for existing in self.dirs):
                    continue
                self.dirs.append(path)
                self._origins.append("builtin" if _same_dir(path, builtin) else "user")
            self._signature = None

    # ---- refresh ----------------------------------------------------------------------

    def _refresh(self) -> None:
        with self._lock:
            dir_sigs = tuple(_file_sig(os.fspath(d)) for d in self.dirs)
            scans = [_scan(d) for d in self.dirs]
            self.scan_count += 1
            self._scanned_at = time.monotonic()
            self._dir_sigs = dir_sigs
            signature = tuple(tuple(scan.items()) for scan in scans)
            if signature == self._signature:
                return
            parsed: dict[tuple[int, str], tuple[_FolderSig, Profile | ProfileError]] = {}
            for index, scan in enumerate(scans):
                for name, sig in scan.items():
                    key = (index, name)
                    cached = self._parsed.get(key)
                    if cached is not None and cached[0] == sig:
                        parsed[key] = cached
                        continue
                    parsed[key] = (sig, self._load(index, name))
            self._parsed = parsed
            self._rebuild()
            self._signature = signature

    def _load(self, index: int, name: str) -> Profile | ProfileError:
        self.parse_count += 1
        try:
            return load_profile(self.dirs[index] / name, origin=self._origins[index])
        except ProfileError as exc:
            return exc

    def _rebuild(self) -> None:
        profiles: dict[str, Profile] = {}
        errors: list[ProfileError] = []
        overridden: dict[str, list[Path]] = {}
        where: dict[str, tuple[int, str]] = {}
        for _key, (_sig, result) in sorted(self._parsed.items(), key=lambda kv: kv[0]):
            if isinstance(result, ProfileError):
                errors.append(result)
                continue
            previous = profiles.get(result.id)
            if previous is not None and previous.source_dir is not None:
                overridden.setdefault(result.id, []).append(previous.source_dir)
            profiles[result.id] = result
            where[result.id] = _key
        self._where = where
        self._profiles = dict(sorted(profiles.items()))
        self._errors = errors
        self._overridden = overridden

    # ---- public surface ---------------------------------------------------------------

    def ids(self) -> list[str]:
        """Valid profile ids, sorted."""
        self._refresh()
        return list(self._profiles)

    def get(self, profile_id: str) -> Profile:
        """The current profile for ``profile_id``; ProfileNotFoundError lists valid ids.

        Every submit asks, so the usual case is cheap: the profile's own two files and the
        profile folders are stat-ed (an edit of this profile, or a profile added or removed,
        is seen at once); every folder is scanned again when the last full scan is older
        than ``FULL_SCAN_EVERY_S`` (an edit of another profile that takes this id over).
        """
        if not self._unchanged(profile_id):
            self._refresh()
        try:
            return self._profiles[profile_id]
        except KeyError:
            raise ProfileNotFoundError(profile_id, list(self._profiles)) from None

    def _unchanged(self, profile_id: str) -> bool:
        with self._lock:
            where = self._where.get(profile_id)
            if where is None or time.monotonic() - self._scanned_at > FULL_SCAN_EVERY_S:
                return False
            index, name = where
            cached = self._parsed.get(where)
            folder = os.path.join(self.dirs[index], name)
            sig = (
                _file_sig(os.path.join(folder, PROFILE_FILE)),
                _file_sig(os.path.join(folder, SKILL_FILE)),
            )
            if cached is None or cached[0] != sig:
                return False
            return tuple(_file_sig(os.fspath(d)) for d in self.dirs) == self._dir_sigs

    def all(self) -> list[Profile]:
        """Every loadable profile, sorted by id."""
        self._refresh()
        return list(self._profiles.values())

    def errors(self) -> list[ProfileError]:
        """Profiles that failed to load (file, line, reason), in discovery order."""
        self._refresh()
        return list(self._errors)

    @property
    def overridden(self) -> dict[str, list[Path]]:
        """id -> folders whose profile was shadowed by a later directory, oldest first."""
        self._refresh()
        return {k: list(v) for k, v in self._overridden.items()}

    def __contains__(self, profile_id: object) -> bool:
        self._refresh()
        return profile_id in self._profiles

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.all())

    def __len__(self) -> int:
        self._refresh()
        return len(self._profiles)

    def __repr__(self) -> str:
        return f"ProfileRegistry({len(self)} profiles, {len(self._errors)} errors)"


def _same_dir(a: Path, resolved_b: Path) -> bool:
    try:
        return a.resolve() == resolved_b
    except OSError:
        return False


__all__ = ["ProfileRegistry", "builtin_profiles_dir", "default_profile_dirs"]
