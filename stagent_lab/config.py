"""Where a workspace lives, and its typed settings.

The workspace is a folder holding ``stagent.duckdb`` (every table), ``stagent.lock`` (the PID of
the process that owns it), the service's connection file and log, and default project folders.
Resolution order: ``Lab(home=...)``, the ``STAGENT_HOME`` environment variable, then the
platform's user data dir.

Settings are typed: each key has a type, a default and (where it makes sense) a range or a set of
choices. ``Settings.set`` refuses unknown keys and bad values with an error naming the key and
what is valid, so a typo or a ``0`` can never break the next open. Values from an older version
that no longer validate are ignored (the default applies) and reported in ``problems``.
Features register their own keys (``register_settings``) next to the core ones below.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagent_lab.errors import SettingError, StagentError

DB_FILENAME = "stagent.duckdb"
LOCK_FILENAME = "stagent.lock"

# Settings keys that look like secrets are refused: keys belong in the environment, named by
# reference (e.g. setting "anthropic.api_key_env" = "MY_ANTHROPIC_KEY"), never stored raw.
_SECRET_KEY_RE = re.compile(r"(api[_-]?key|token|secret|password|credential)$", re.IGNORECASE)


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    if home is not None:
        path = Path(home)
    elif os.environ.get("STAGENT_HOME"):
        path = Path(os.environ["STAGENT_HOME"])
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("stagent-lab", appauthor=False))
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_secret_setting(key: str) -> bool:
    return bool(_SECRET_KEY_RE.search(key))


# ---- typed settings -----------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SettingSpec:
    """One setting: ``key`` (or a family ``prefix.*``), its type, default and limits."""

    key: str
    type: str  # "int" | "float" | "bool" | "str" | "json"
    default: Any
    doc: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], Any] | None = field(default=None, compare=False)
    refuse: Callable[[str, Any], BaseException] | None = field(default=None, compare=False)

    @property
    def family(self) -> bool:
        return self.key.endswith(".*")

    def describe(self) -> str:
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.type in ("int", "float"):
            kind = "an integer" if self.type == "int" else "a number"
            lo = "" if self.minimum is None else f"{self.minimum:g}"
            hi = "" if self.maximum is None else f"{self.maximum:g}"
            if lo and hi:
                return f"{kind} from {lo} to {hi}"
            if lo:
                return f"{kind} >= {lo}"
            return kind
        if self.type == "bool":
            return "true or false"
        if self.type == "json":
            return "JSON text"
        return "text"

    def parse(self, key: str, value: Any) -> Any:
        """The typed value, or SettingError naming the key and what is valid."""
        if self.refuse is not None:
            raise self.refuse(key, value)
        bad = SettingError(
            f"setting {key!r} must be {self.describe()} (default {self.default!r}); got {value!r}"
        )
        try:
            out = self._convert(value)
        except (TypeError, ValueError):
            raise bad from None
        too_low = self.minimum is not None and out < self.minimum
        too_high = self.maximum is not None and out > self.maximum
        if self.type in ("int", "float") and (too_low or too_high):
            raise bad
        if self.choices is not None and out not in self.choices:
            raise bad
        if self.check is not None:
            try:
                self.check(out)
            except (TypeError, ValueError) as exc:
                raise SettingError(f"setting {key!r}: {exc}") from None
        return out

    def _convert(self, value: Any) -> Any:
        if self.type == "int":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            return int(str(value).strip())
        if self.type == "float":
            if isinstance(value, bool):
                raise ValueError
            out = float(str(value).strip()) if not isinstance(value, int | float) else float(value)
            if not math.isfinite(out):
                raise ValueError
            return out
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if self.type == "json":
            return json.loads(value) if isinstance(value, str) else json.loads(json.dumps(value))
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise TypeError
        text = str(value)
        if len(text) > 10_000:
            raise ValueError
        return text

    def text(self, value: Any) -> str:
        if self.type == "bool":
            return "true" if value else "false"
        if self.type == "json":
            return json.dumps(value)
        if self.type == "float":
            return repr(float(value))
        return str(value)


_SPECS: dict[str, SettingSpec] = {}
_SPECS_LOCK = threading.Lock()


def register_settings(specs: Iterable[SettingSpec]) -> None:
    """Add a feature's settings (a key registered twice with another spec is refused)."""
    with _SPECS_LOCK:
        for spec in specs:
            current = _SPECS.get(spec.key)
            if current is not None and current != spec:
                raise ValueError(f"setting {spec.key!r} is already registered differently")
            _SPECS[spec.key] = spec


def setting_spec(key: str) -> SettingSpec | None:
    spec = _SPECS.get(key)
    if spec is not None:
        return spec
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        family = _SPECS.get(".".join(parts[:i]) + ".*")
        if family is not None:
            return family
    return None


def setting_specs() -> list[SettingSpec]:
    with _SPECS_LOCK:
        return sorted(_SPECS.values(), key=lambda s: s.key)


def _positive_int(key: str, default: int, doc: str, hi: int) -> SettingSpec:
    return SettingSpec(key, "int", default, doc, minimum=1, maximum=hi)


register_settings(
    [
        _positive_int("engine.max_concurrent", 4, "tasks running at once; the rest queue", 256),
        SettingSpec("engine.max_resumes", "int", 3, "resumes allowed per task", 0, 100),
        SettingSpec(
            "engine.task_timeout_s",
            "float",
            3600.0,
            "wall-clock limit of one run, time spent waiting for a person excluded (0 = none)",
            0,
            7 * 86400,
        ),
        SettingSpec(
            "runtimes.stall_timeout_s",
            "float",
            60.0,
            "a run fails when its provider sends nothing for this long",
            1,
            3600,
        ),
        SettingSpec("tools.bash_timeout_s", "float", 120.0, "limit of one Bash call", 1, 86400),
        SettingSpec(
            "tools.timeout_s", "float", 300.0, "limit of one call of any other tool", 1, 86400
        ),
        SettingSpec(
            "tools.output_cap_chars", "int", 30000, "tool output kept for the model", 100, 10**7
        ),
        SettingSpec(
            "inbox.default_always_scope",
            "str",
            "profile",
            "scope of rules saved by 'always'",
            choices=("global", "profile", "project"),
        ),
        SettingSpec(
            "profiles.dirs",
            "json",
            [],
            "extra profile folders the workspace loads (clients add theirs with profile_dirs=)",
            check=lambda v: _list_of_paths(v),
        ),
        SettingSpec(
            "service.idle_timeout_s",
            "float",
            60.0,
            "the workspace service stops after this long with no client and no live work",
            1,
            30 * 86400,
        ),
    ]
)


def _list_of_paths(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a JSON list of folder paths")


class Settings(Mapping[str, str]):
    """A workspace's settings: text values by key (as stored), with typed accessors.

    Reads are safe from any thread (the value map is replaced, never mutated); ``set`` is
    called by the one thread that persists settings.
    """

    def __init__(self, stored: Mapping[str, str] | None = None) -> None:
        self.problems: list[str] = []
        values: dict[str, Any] = {}
        for key, raw in (stored or {}).items():
            spec = setting_spec(key)
            if spec is None:
                self.problems.append(f"unknown setting {key!r} ignored")
                continue
            try:
                values[key] = spec.parse(key, raw)
            except StagentError as exc:
                self.problems.append(f"{exc}; the default applies")
        self._values = values

    # ---- Mapping of text values (explicit and default) --------------------------------

    def _text(self) -> dict[str, str]:
        out = {s.key: s.text(s.default) for s in setting_specs() if not s.family}
        for key, value in self._values.items():
            spec = setting_spec(key)
            out[key] = spec.text(value) if spec else str(value)
        return out

    def __getitem__(self, key: str) -> str:
        return self._text()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._text())

    def __len__(self) -> int:
        return len(self._text())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self._text().get(key, default)

    # ---- typed ------------------------------------------------------------------------

    def value(self, key: str) -> Any:
        """The typed value of ``key`` (explicit, else the default)."""
        if key in self._values:
            return self._values[key]
        spec = setting_spec(key)
        if spec is None:
            raise SettingError(_unknown(key))
        return spec.default

    def explicit(self) -> dict[str, Any]:
        return dict(self._values)

    def validate(self, key: str, value: Any) -> tuple[Any, str]:
        """(typed value, stored text) for ``key = value``, or SettingError / refusal."""
        if not isinstance(key, str) or not key.strip():
            raise SettingError(
                "a setting key is a non-empty string such as 'engine.max_concurrent'"
            )
        if is_secret_setting(key):
            raise SettingError(
                f"refusing to store {key!r}: keys and tokens stay in the environment. Store the "
                f"name of the environment variable instead (e.g. '{key}_env')."
            )
        spec = setting_spec(key)
        if spec is None:
            raise SettingError(_unknown(key))
        typed = spec.parse(key, value)
        return typed, spec.text(typed)

    def set(self, key: str, value: Any) -> str:
        typed, text = self.validate(key, value)
        values = dict(self._values)
        values[key] = typed
        self._values = values
        return text

    def reset(self, key: str) -> None:
        values = dict(self._values)
        values.pop(key, None)
        self._values = values


def _unknown(key: str) -> str:
    keys = [s.key for s in setting_specs()]
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    prefix = key.split(".")[0]
    same = [k for k in keys if k.startswith(prefix + ".")]
    listing = same or keys
    return f"unknown setting {key!r}.{hint} Valid settings: {', '.join(listing)}"
