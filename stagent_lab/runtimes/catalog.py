"""Which runtimes exist, what each can do, and whether it can run here now.

Runtime modules are imported lazily (and each imports its vendor SDK lazily), so listing the
catalog never pulls in anthropic, openai or the Agent SDK.

Routing never falls back to the offline ``scripted`` runtime on its own: a task runs offline
only when something chose it (the task, the profile, or the workspace setting
``runtimes.default``). Otherwise a task with no usable runtime fails at submit, with one line
saying how to set one up, instead of "completing" on canned output.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from stagent_lab.config import SettingSpec, register_settings
from stagent_lab.errors import RuntimeNotAvailableError
from stagent_lab.runtimes.base import Availability, Runtime

if TYPE_CHECKING:
    from stagent_lab.profiles.model import Profile

RUNTIME_IDS: tuple[str, ...] = (
    "claude-code",
    "openai-codex-app-server",
    "anthropic-direct",
    "openai-direct",
    "ollama",
    "scripted",
)
_MODULES: dict[str, str] = {
    "claude-code": "stagent_lab.runtimes.claude_code:ClaudeCodeRuntime",
    "openai-codex-app-server": "stagent_lab.runtimes.codex_app_server:CodexAppServerRuntime",
    "anthropic-direct": "stagent_lab.runtimes.anthropic_direct:AnthropicDirectRuntime",
    "openai-direct": "stagent_lab.runtimes.openai_direct:OpenAIDirectRuntime",
    "ollama": "stagent_lab.runtimes.ollama:OllamaRuntime",
    "scripted": "stagent_lab.runtimes.scripted:ScriptedRuntime",
}
_AVAILABILITY_TTL_S = 30.0
DEFAULT_SETTING = "runtimes.default"
HOW_TO_CONFIGURE = (
    "set up a runtime (an API key, the claude or codex CLI, or Ollama; see docs/runtimes/), "
    "name one with --runtime / runtime=, or run offline with runtime='scripted' "
    f"(lab.set_setting('{DEFAULT_SETTING}', 'scripted') makes that the workspace default)"
)


def _check_runtime_id(value: Any) -> None:
    if value and not re.fullmatch(r"[A-Za-z0-9][\w.-]*", str(value)):
        raise ValueError(f"a runtime id such as 'scripted' or 'claude-code', got {value!r}")


register_settings(
    [
        SettingSpec(
            DEFAULT_SETTING,
            "str",
            "",
            "runtime for tasks that name none, after the profile's preferred one ('scripted': "
            "run offline; empty: no default)",
            check=_check_runtime_id,
        )
    ]
)


class RuntimeCatalog:
    def __init__(self, options: dict[str, dict[str, Any]] | None = None) -> None:
        self.options: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (options or {}).items()}
        self._avail: dict[str, tuple[float, Availability]] = {}
        self._classes: dict[str, type[Runtime] | None] = {}
        self._import_errors: dict[str, str] = {}
        self._custom: dict[str, type[Runtime]] = {}
        # The workspace's default runtime (the service wires this to ``runtimes.default``).
        self.default_runtime: Callable[[], str | None] = lambda: None

    def ids(self) -> list[str]:
        return [*RUNTIME_IDS, *self._custom]

    def register(self, cls: type[Runtime]) -> None:
        """Add a runtime class of your own (see docs/writing-a-runtime.md)."""
        if not (isinstance(cls, type) and issubclass(cls, Runtime)) or not getattr(cls, "id", ""):
            raise TypeError("register() takes a Runtime subclass with an `id`")
        if cls.id in _MODULES:
            raise ValueError(f"runtime id {cls.id!r} is built in; choose another id")
        self._custom[cls.id] = cls
        self._classes[cls.id] = cls
        self._avail.pop(cls.id, None)

    def runtime_class(self, runtime_id: str) -> type[Runtime] | None:
        if runtime_id in self._custom:
            return self._custom[runtime_id]
        if runtime_id not in _MODULES:
            raise RuntimeNotAvailableError(
                f"unknown runtime {runtime_id!r}; valid runtimes: {', '.join(self.ids())}"
            )
        if runtime_id not in self._classes:
            mod_name, cls_name = _MODULES[runtime_id].split(":")
            try:
                cls = getattr(importlib.import_module(mod_name), cls_name)
            except ModuleNotFoundError as exc:
                if exc.name == mod_name:
                    self._import_errors[runtime_id] = "not included in this version of stagent_lab"
                else:
                    self._import_errors[runtime_id] = f"cannot import {exc.name}"
                cls = None
            except Exception as exc:  # a broken adapter must not break the catalog
                self._import_errors[runtime_id] = f"cannot load: {type(exc).__name__}: {exc}"
                cls = None
            self._classes[runtime_id] = cls
        return self._classes[runtime_id]

    def configure(self, runtime_id: str, **options: Any) -> None:
        """Set options (base_url, model, ...) used whenever this runtime is created."""
        self.runtime_class(runtime_id)
        self.options.setdefault(runtime_id, {}).update(options)
        self._avail.pop(runtime_id, None)

    def invalidate(self) -> None:
        """Forget cached availability (the environment changed: a key was set)."""
        self._avail.clear()

    def availability(self, runtime_id: str, *, refresh: bool = False) -> Availability:
        cls = self.runtime_class(runtime_id)
        if cls is None:
            return Availability(False, self._import_errors.get(runtime_id, "unavailable"))
        cached = self._avail.get(runtime_id)
        if cached and not refresh and time.monotonic() - cached[0] < _AVAILABILITY_TTL_S:
            return cached[1]
        try:
            avail = cls(**self.options.get(runtime_id, {})).availability()
        except Exception as exc:  # a health check must never break listing
            avail = Availability(False, f"health check failed: {exc}")
        self._avail[runtime_id] = (time.monotonic(), avail)
        return avail

    def create(self, runtime_id: str, extra: dict[str, Any] | None = None) -> Runtime:
        cls = self.runtime_class(runtime_id)
        if cls is None:
            raise RuntimeNotAvailableError(
                f"runtime {runtime_id} is not available: {self._import_errors.get(runtime_id)}"
            )
        return cls(**{**self.options.get(runtime_id, {}), **(extra or {})})

    def rows(self, refresh: bool = False) -> list[dict[str, Any]]:
        out = []
        for rid in self.ids():
            cls = self.runtime_class(rid)
            avail = self.availability(rid, refresh=refresh)
            caps = asdict(cls.capabilities) if cls else {}
            out.append(
                {
                    "runtime": rid,
                    "label": cls.label if cls else "",
                    "provider": cls.provider if cls else "",
                    "usable": avail.usable,
                    "reason": avail.reason,
                    "default_model": cls.default_model if cls else None,
                    **caps,
                }
            )
        return out

    def resolve(self, explicit: str | None, profile: Profile) -> tuple[str, list[str]]:
        """Pick a runtime: explicit → the profile's preferredRuntime → the workspace default
        (``runtimes.default``) → the profile's first supported runtime that is usable.

        Returns (runtime_id, notes) where notes explain any step passed over, for the task log.
        When nothing is usable, RuntimeNotAvailableError says in one line why and how to set
        a runtime up; the scripted runtime is never picked unless one of the steps names it.
        """
        notes: list[str] = []
        if explicit:
            self.runtime_class(explicit)  # unknown id → error listing the valid ones
            # Profiles can only name built-in runtimes, so a registered one is allowed for any.
            if explicit not in self._custom and not profile.runtime_supported(explicit):
                supported = ", ".join([*profile.supported_runtimes, "scripted"])
                raise RuntimeNotAvailableError(
                    f"profile {profile.id} does not support runtime {explicit!r} "
                    f"(supported: {supported})"
                )
            avail = self.availability(explicit)
            if not avail.usable:
                raise RuntimeNotAvailableError(f"runtime {explicit} is not usable: {avail.reason}")
            return explicit, notes
        default = (self.default_runtime() or "").strip() or None
        candidates: list[tuple[str, str]] = []  # (runtime id, why it is a candidate)
        if profile.preferred_runtime:
            candidates.append((profile.preferred_runtime, "preferred"))
        if default:
            candidates.append((default, "default"))
        candidates += [(r, "supported") for r in profile.supported_runtimes]
        tried: list[str] = []
        unusable: list[str] = []
        for rid, why in candidates:
            if rid in tried:
                continue
            tried.append(rid)
            if why == "default":
                if rid not in self._custom and rid not in _MODULES:
                    notes.append(f"workspace default runtime {rid!r} is not a runtime")
                    continue
                if rid not in self._custom and not profile.runtime_supported(rid):
                    notes.append(
                        f"workspace default runtime {rid} is not supported by profile {profile.id}"
                    )
                    continue
            avail = self.availability(rid)
            if avail.usable:
                if why == "default":
                    notes.append(f"using the workspace default runtime {rid} ({DEFAULT_SETTING})")
                return rid, notes
            unusable.append(rid)
            notes.append(f"{rid} not usable: {avail.reason}")
        if unusable:
            named = ", ".join(unusable[:-1]) + (" and " if len(unusable) > 1 else "")
            what = f"{named}{unusable[-1]} {'is' if len(unusable) == 1 else 'are'} not usable "
            what += "here (lab.runtimes() says why)"
        else:
            what = "it names no runtime this workspace knows"
        raise RuntimeNotAvailableError(
            f"no usable runtime for profile {profile.id}: {what}. To fix: {HOW_TO_CONFIGURE}"
        )
