"""``stagent-lab serve``: run the workspace service in the foreground.

One process owns the workspace (the store's lock), runs the engine, and serves the contract to
every client over a Unix socket (and, optionally, loopback TCP) with uvicorn. It writes the
connection file once it listens, stays up while it has clients or live work, and stops after
``service.idle_timeout_s`` without either. SIGTERM/SIGINT stop it gracefully: running tasks are
paused (resumable); after SIGKILL the next start reconciles them to ``failed (engine stopped)``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stagent_lab._version import __version__
from stagent_lab.config import resolve_home
from stagent_lab.service import connection as conn

log = logging.getLogger("stagent_lab.service")
IDLE_ENV = "STAGENT_SERVICE_IDLE_TIMEOUT"


def _bind_unix(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket of a dead service (we hold the lock now)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is created 0600
    try:
        sock.bind(os.fspath(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _bind_tcp(spec: str) -> tuple[socket.socket, str]:
    host, _, port = spec.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"--tcp needs a loopback address like 127.0.0.1:PORT, got {spec!r}"
        ) from None
    if not addr.is_loopback:
        raise ValueError(
            f"--tcp binds loopback only (got {host}); put a reverse proxy in front to expose it"
        )
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port or 0)))
    sock.listen(128)
    sock.setblocking(False)
    bound = sock.getsockname()
    return sock, f"{bound[0]}:{bound[1]}"


def serve(
    home: str | os.PathLike[str] | None = None,
    *,
    tcp: str | None = None,
    idle_timeout: float | None = None,
    log_level: str = "warning",
) -> int:
    """Run the service until it is stopped or idle. Returns the process exit code."""
    import uvicorn

    from stagent_lab.service.app import build_app
    from stagent_lab.service.core import WorkspaceService

    path = resolve_home(home)
    os.umask(0o077)
    conn.service_dir(path)
    conn.clear_start_error(path)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        service = WorkspaceService(path)
        service.daemon = True
    except BaseException as exc:
        conn.write_start_error(path, exc)
        print(f"stagent-lab serve: cannot open {path}: {exc}", file=sys.stderr)
        return 3
    sockets: list[socket.socket] = []
    server: uvicorn.Server | None = None
    app: Any = None
    try:
        sock_path = conn.socket_path(path)
        sockets.append(_bind_unix(sock_path))
        tcp_addr = None
        if tcp:
            tcp_sock, tcp_addr = _bind_tcp(tcp)
            sockets.append(tcp_sock)
        token = conn.new_token()
        holder: dict[str, uvicorn.Server] = {}

        def stop() -> None:
            if "server" in holder:
                holder["server"].should_exit = True

        app = build_app(service, token, on_shutdown=stop)
        config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,  # no request lines in the log (paths only, but keep it quiet)
            lifespan="off",
            ws="websockets-sansio",
            # Compressing events for a client on the same machine costs the loop CPU (it was
            # the largest item of the service's own time in a profile) and saves nothing.
            ws_per_message_deflate=False,
            ws_ping_interval=20,
            ws_ping_timeout=20,
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        holder["server"] = server
        info = conn.ConnectionInfo(
            pid=os.getpid(),
            socket=os.fspath(sock_path),
            version=__version__,
            token=token,
            started_at=time.time(),
            home=os.fspath(path),
            tcp=tcp_addr,
        )
        conn.write_connection(path, info)
        timeout = idle_timeout
        if timeout is None and os.environ.get(IDLE_ENV):
            timeout = float(os.environ[IDLE_ENV])
        watcher = threading.Thread(
            target=_watch_idle,
            args=(service, app, server, timeout),
            name="stagent-idle",
            daemon=True,
        )
        watcher.start()
        print(
            f"stagent-lab serve: workspace {path} (pid {os.getpid()}, stagent_lab "
            f"{__version__}) listening on {sock_path}" + (f" and {tcp_addr}" if tcp_addr else ""),
            file=sys.stderr,
            flush=True,
        )
        server.run(sockets=sockets)
        return 0
    finally:
        if app is not None:  # calls still waiting (a long wait_inbox) end with the service
            app.state.call_pool.shutdown(wait=False, cancel_futures=True)
        conn.remove_connection(path, os.getpid())
        try:
            service.close()
        finally:
            for s in sockets:
                with contextlib.suppress(OSError):
                    s.close()
            with contextlib.suppress(Exception):
                sp = conn.socket_path(path)
                if sp.is_socket():
                    sp.unlink()


def _watch_idle(service, app, server, timeout: float | None) -> None:
    """Stop the server after ``timeout`` seconds with no client and no live work."""
    idle_since: float | None = None
    while not server.should_exit:
        time.sleep(1.0)
        limit = (
            timeout
            if timeout is not None
            else float(service.settings.value("service.idle_timeout_s"))
        )
        try:
            busy = app.state.clients.count() > 0 or bool(service.live_work())
        except Exception:
            busy = True
        if busy:
            idle_since = None
            continue
        now = time.monotonic()
        idle_since = idle_since or now
        if now - idle_since >= limit:
            print(
                f"stagent-lab serve: idle for {limit:g} s (no client, no live work); stopping",
                file=sys.stderr,
                flush=True,
            )
            server.should_exit = True
            return
