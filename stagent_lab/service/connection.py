"""Where a workspace's service listens, and how clients find it.

The service keeps its files in ``<workspace>/.service/`` (mode 0700): ``service.json`` (the
connection file: pid, socket path, version, a random token, start time; mode 0600, written
atomically), ``service.log`` (its output) and, when a start fails, ``start-error.json`` (what went
wrong, for the client that started it). The Unix socket lives there too, unless the path would
be too long for a socket address (about 107 bytes; deep temporary folders in tests): then it goes
to a short per-user runtime folder (0700) named by a hash of the workspace path, and the
connection file records where.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SERVICE_DIR = ".service"
CONNECTION_FILE = "service.json"
LOG_FILE = "service.log"
START_ERROR_FILE = "start-error.json"
SPAWN_LOCK = "spawn.lock"
MAX_SOCKET_PATH = 100  # bytes; sun_path is 108 with the terminating NUL, keep a margin


@dataclass(frozen=True)
class ConnectionInfo:
    pid: int
    socket: str
    version: str
    token: str
    started_at: float
    home: str
    tcp: str | None = None  # "127.0.0.1:PORT" when the optional loopback listener is on

    def public(self) -> dict[str, Any]:
        """What may be shown or logged: everything but the token."""
        out = asdict(self)
        out.pop("token")
        return out


def service_dir(home: Path) -> Path:
    """``<home>/.service``, created 0700 (and tightened if it exists looser)."""
    d = home / SERVICE_DIR
    d.mkdir(mode=0o700, exist_ok=True)
    if d.stat().st_mode & 0o077:
        os.chmod(d, 0o700)
    return d


def socket_path(home: Path) -> Path:
    """The socket for ``home``: in its service folder, or a short runtime folder if too long."""
    inside = service_dir(home) / "service.sock"
    if len(os.fsencode(inside)) <= MAX_SOCKET_PATH:
        return inside
    digest = hashlib.sha256(os.fsencode(home.resolve())).hexdigest()[:20]
    base = os.environ.get("XDG_RUNTIME_DIR")
    runtime = (
        Path(base) / "stagent-lab"
        if base
        else Path(tempfile.gettempdir()) / (f"stagent-lab-{os.getuid()}")
    )
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = runtime.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(
            f"{runtime} must be a folder of yours with mode 0700 (it holds workspace sockets)"
        )
    return runtime / f"{digest}.sock"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_connection(home: Path, info: ConnectionInfo) -> Path:
    """Write the connection file atomically, readable by the owner only."""
    d = service_dir(home)
    path = d / CONNECTION_FILE
    fd, tmp = tempfile.mkstemp(prefix=".service-", dir=d)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(info), f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_connection(home: Path) -> ConnectionInfo | None:
    path = home / SERVICE_DIR / CONNECTION_FILE
    try:
        data = json.loads(path.read_text())
        return ConnectionInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove_connection(home: Path, pid: int) -> None:
    """Remove the connection file if it is still ``pid``'s (a newer service may have started)."""
    info = read_connection(home)
    if info is not None and info.pid == pid:
        with contextlib.suppress(OSError):
            (home / SERVICE_DIR / CONNECTION_FILE).unlink()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive for us.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def write_start_error(home: Path, error: BaseException) -> None:
    data = {"type": type(error).__name__, "message": str(error)}
    for attr in ("pid", "path"):
        if hasattr(error, attr):
            data[attr] = getattr(error, attr)
    path = service_dir(home) / START_ERROR_FILE
    path.write_text(json.dumps(data))
    os.chmod(path, 0o600)


def read_start_error(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads((home / SERVICE_DIR / START_ERROR_FILE).read_text())
    except (OSError, ValueError):
        return None


def clear_start_error(home: Path) -> None:
    with contextlib.suppress(OSError):
        (home / SERVICE_DIR / START_ERROR_FILE).unlink()
