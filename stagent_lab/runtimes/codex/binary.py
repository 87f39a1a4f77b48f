"""Finding the ``codex`` binary and building the command line ``codex app-server`` runs with.

The binary: an explicit path, ``$STAGENT_CODEX_BIN``, the project's npm install (the platform
package's native binary when present, so no Node.js wrapper sits between us and the server),
or ``codex`` on PATH. The command line carries every setting as a ``-c key=value`` override
(TOML values), never a file we write, so a run leaves nothing behind in ``CODEX_HOME``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stagent_lab.errors import RuntimeFailure
from stagent_lab.runtimes import _cli_env

PROVIDER_ID = "stagent"  # the model_providers entry we add when base_url is given
_NATIVE_PACKAGES = {
    ("linux", "x86_64"): ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    ("linux", "aarch64"): ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
    ("darwin", "x86_64"): ("codex-darwin-x64", "x86_64-apple-darwin"),
    ("darwin", "arm64"): ("codex-darwin-arm64", "aarch64-apple-darwin"),
}
# Off unless asked for: nothing but the model endpoint should be contacted during a run.
_QUIET_OVERRIDES = {
    "check_for_update_on_startup": False,
    "analytics.enabled": False,
    "features.plugins": False,
    "features.remote_plugin": False,
    "features.apps": False,
}


def _native_in(node_modules: Path) -> Path | None:
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    machine = platform.machine().lower()
    if machine in ("amd64", "x64"):
        machine = "x86_64"
    elif machine in ("arm64", "aarch64"):
        machine = "aarch64" if system == "linux" else "arm64"
    entry = _NATIVE_PACKAGES.get((system, machine))
    if entry is None:
        return None
    package, triple = entry
    return node_modules / "@openai" / package / "vendor" / triple / "bin" / "codex"


def find_codex(explicit: str | None = None) -> str | None:
    """The codex binary: ``explicit``, ``$STAGENT_CODEX_BIN``, the project's npm install
    (``<repo>/node_modules``; the native binary of the platform package when present, so no
    Node.js wrapper sits between us and the server), or ``codex`` on PATH."""
    if explicit:
        return _cli_env.executable(explicit)
    node_modules = _cli_env.package_repo_root() / "node_modules"
    return _cli_env.first_executable(
        [
            os.environ.get("STAGENT_CODEX_BIN"),
            _native_in(node_modules),
            node_modules / ".bin" / "codex",
            _cli_env.which("codex"),
        ]
    )


def toml_value(value: Any) -> str:
    """A -c override value as TOML (JSON strings, numbers and booleans are valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | dict):
        raise RuntimeFailure(
            "codex: config overrides take strings, numbers and booleans; use dotted keys for tables"
        )
    return json.dumps(str(value))


def server_argv(
    binary: str, listen: str, token_sha: str | None, opt: Mapping[str, Any]
) -> list[str]:
    """``codex app-server`` with our overrides: quiet by default, our model provider when
    ``base_url`` is given, then the caller's own ``config`` (which wins)."""
    argv = [binary, "app-server", "--listen", listen]
    if token_sha:
        argv += ["--ws-auth", "capability-token", "--ws-token-sha256", token_sha]
    overrides: dict[str, Any] = {}
    if opt.get("quiet", True):
        overrides.update(_QUIET_OVERRIDES)
    if opt.get("base_url"):
        prefix = f"model_providers.{PROVIDER_ID}"
        overrides.update(
            {
                "model_provider": PROVIDER_ID,
                f"{prefix}.name": "stagent_lab",
                f"{prefix}.base_url": str(opt["base_url"]),
                f"{prefix}.wire_api": "responses",
            }
        )
        if opt.get("api_key") or os.environ.get("OPENAI_API_KEY"):
            overrides[f"{prefix}.env_key"] = "OPENAI_API_KEY"
    overrides.update(dict(opt.get("config") or {}))
    for key, value in overrides.items():
        argv += ["-c", f"{key}={toml_value(value)}"]
    return argv


def server_env(opt: Mapping[str, Any]) -> dict[str, str | None]:
    """Variables to set (None: to remove) in the server's environment."""
    env: dict[str, str | None] = {}
    if opt.get("codex_home"):
        env["CODEX_HOME"] = str(Path(opt["codex_home"]).expanduser())
    if opt.get("home"):
        env["HOME"] = str(Path(opt["home"]).expanduser())
    if opt.get("api_key"):
        env["OPENAI_API_KEY"] = str(opt["api_key"])
    for key, value in dict(opt.get("env") or {}).items():
        env[str(key)] = None if value is None else str(value)
    return env


__all__ = ["PROVIDER_ID", "find_codex", "server_argv", "server_env", "toml_value"]
