"""The service transport: a ``Workspace`` whose service is another process.

``connect(home)`` finds the workspace's service through its connection file, or starts one
detached (``python -m stagent_lab.service``, output in ``<home>/.service/service.log``) when none
runs, like ``ray.init()`` or a Jupyter kernel manager. Calls travel as JSON over the service's
Unix socket: on one WebSocket (``/v1/rpc``, the ``websockets`` library) kept open for quick
calls, and over HTTP (httpx's UDS transport) for a call that waits (one with a ``timeout``), a
tabular answer (Arrow), a large request, or a call made while another thread's call holds the
socket.
Events come over a WebSocket too, each subscription on a thread of its own that
reconnects after a break and resumes from the last event it saw.

If the service dies, the next call says so and starts a new one; tasks that were running are
then ``failed (engine stopped)`` and resumable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import WebSocketException

from stagent_lab import errors
from stagent_lab._version import __version__
from stagent_lab.api import requests as rq
from stagent_lab.api import wire
from stagent_lab.api.requests import Request
from stagent_lab.config import resolve_home
from stagent_lab.service import connection as conn

START_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 600.0  # no answer to a call in this long: the call fails, saying so
WS_MAX_REQUEST = 1 << 20  # larger requests go over HTTP (its body limit is 64 MiB)
TERMINAL = frozenset({"completed", "failed", "cancelled"})
PROVIDER_ENV = ("ANTHROPIC_", "OPENAI_", "OLLAMA_", "CLAUDE_", "CODEX_")
_LAUNCHER = """
import subprocess, sys
log = open(sys.argv[1], "ab")
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                     start_new_session=True, close_fds=True)
print(p.pid)
"""


def client_identity() -> str:
    """Who decides, as recorded in ``decided_by``: ``notebook:<kernel id>``, ``cli:<user>`` …"""
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "user"
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "kernel", None) is not None:  # a Jupyter kernel
        try:
            from ipykernel.connect import get_connection_file

            name = Path(get_connection_file()).stem  # kernel-<id>
            return f"notebook:{name.removeprefix('kernel-')}"
        except Exception:
            return f"notebook:{user}"
    if Path(sys.argv[0] if sys.argv else "").name == "stagent-lab":
        return f"cli:{user}"
    return f"python:{user}"


class RemoteWorkspace:
    transport = "service"

    def __init__(self, home: Path, info: conn.ConnectionInfo, identity: str) -> None:
        self.home = str(home)
        self._home = home
        self._identity = identity
        self._lock = threading.RLock()
        self._closed = False
        self._subs: list[_Subscription] = []
        self._watch: _StatusWatch | None = None
        # What this client configured (runtime options, provider keys): replayed on a new
        # service, which holds such things in memory only.
        self.setup: list[Request] = []
        self._connect(info)
        # One event stream from the start: it wakes wait_status, and it tells the service a
        # client is here (a service with clients does not stop for idleness).
        self._watch = _StatusWatch(self)

    # ---- connection ------------------------------------------------------------------

    def connected(self) -> bool:
        """Whether the service this client talks to is still there (no request sent: the
        connection file names the same live process). Widgets poll it to grey out."""
        return self.connection_error is None

    @property
    def connection_error(self) -> str | None:
        if self._closed:
            return "this Lab is closed"
        info = conn.read_connection(self._home)
        if info is None or not conn.pid_alive(self.info.pid):
            return f"the service (pid {self.info.pid}) has stopped"
        if info.pid != self.info.pid:
            return f"the service was replaced (pid {self.info.pid} → {info.pid})"
        return None

    def _connect(self, info: conn.ConnectionInfo) -> None:
        self.info = info
        headers = {"authorization": f"Bearer {info.token}", "x-stagent-client": self._identity}
        timeout = httpx.Timeout(CALL_TIMEOUT_S, connect=5.0)
        self._transport = conn.uds_transport(info.socket)
        self._http = httpx.Client(
            transport=self._transport, base_url="http://stagent", headers=headers, timeout=timeout
        )
        # Contract calls go straight to the transport (the same connection pool): the client's
        # cookie, auth, redirect and URL-merging steps cost ~0.6 ms a call and do nothing here.
        self._call_url = httpx.URL("http://stagent/v1/call")
        self._call_headers = httpx.Headers({**headers, "content-type": "application/json"})
        self._call_ext = {"timeout": timeout.as_dict()}
        self._rpc = _CallSocket(info, self._identity)

    def _post_call(self, body: bytes) -> tuple[int, str, Any]:
        """(status, media type, body) of a call over HTTP. An Arrow answer is decoded while it
        arrives (the service streams ``lab.sql``), so its body comes back as a pyarrow Table."""
        request = httpx.Request(
            "POST", self._call_url, headers=self._call_headers, content=body,
            extensions=self._call_ext,
        )  # fmt: skip
        response = self._transport.handle_request(request)
        media = response.headers.get("content-type", "application/json")
        try:
            if response.status_code == 200 and media.startswith(wire.ARROW):
                return 200, media, wire.read_stream(response.stream)
            response.read()
            return response.status_code, media, response.content
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            if response.status_code != 200:
                raise
            # A streamed answer (lab.sql) starts before its last rows exist.
            raise errors.ServiceError(
                "the workspace service's answer broke off before its end: the query failed "
                "while it ran, or the service stopped (its log says which: "
                f"{conn.service_dir(self._home) / conn.LOG_FILE}) ({type(exc).__name__})"
            ) from None
        finally:
            response.close()

    def _recover(self, cause: BaseException) -> BaseException | None:
        """The service went away: start a new one. A service that stopped on purpose (idle, or
        `server stop`) removed its connection file: then return None (retry quietly); one that
        died is reported."""
        old = self.info.pid
        graceful = conn.read_connection(self._home) is None
        with contextlib.suppress(Exception):
            self._http.close()
        self._rpc.close()
        try:
            info = ensure_service(self._home)
        except Exception as exc:
            return errors.ServiceError(
                f"the workspace service (pid {old}) is gone and a new one did not start: {exc}"
            )
        self._connect(info)
        if info.pid == old:  # the service is fine: only this connection broke
            return errors.ServiceError(
                f"the connection to the workspace service (pid {old}) broke "
                f"({type(cause).__name__}: {cause}); the service is still running, so the "
                "call may have been carried out: check before repeating it"
            )
        for request in self.setup:
            with contextlib.suppress(Exception):
                self.call(request)
        if graceful:
            return None
        return errors.ServiceError(
            f"the workspace service (pid {old}) stopped ({type(cause).__name__}); a new one "
            f"(pid {info.pid}) has started. Tasks that were running are now failed with reason "
            "'engine stopped' and can be resumed; repeat the last call."
        )

    # ---- the contract ----------------------------------------------------------------

    def call(self, request: Request) -> Any:
        if self._closed:
            raise errors.StagentError("this Lab is closed")
        _refuse_callables(request)
        body = wire.encode_request(request)
        if _quick(request) and len(body) <= WS_MAX_REQUEST:
            try:
                answer = self._rpc.call(body)
            except _NotSent:
                answer = None  # the socket is busy or would not open: HTTP does it
            except (OSError, WebSocketException) as exc:
                if self._closed:
                    raise errors.StagentError("this Lab is closed") from None
                problem = self._recover(exc)
                if problem is not None:
                    raise problem from None
                answer = None  # it had stopped for idleness: the new one gets it over HTTP
            if answer is not None:
                status, media, content = answer
                return self._result(request, status, media, content)
        try:
            answer = self._post_call(body)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            problem = self._recover(exc)
            if problem is not None:
                raise problem from None
            answer = self._post_call(body)  # it had stopped for idleness
        except httpx.TimeoutException:
            raise errors.ServiceError(
                f"the workspace service did not answer a {request.kind} call within "
                f"{CALL_TIMEOUT_S:g} s"
            ) from None
        return self._result(request, *answer)

    @staticmethod
    def _result(request: Request, status: int, media: str, content: Any) -> Any:
        if status == 401:
            raise errors.ServiceError(
                "the workspace service refused this client's token (it was restarted by "
                "someone else?); open a new Lab()"
            )
        if status != 200:
            raise wire.decode_error(content, status)
        if not isinstance(content, bytes | bytearray | memoryview):
            return content  # decoded as it arrived
        return wire.decode_result(request, content, media)

    def status(self) -> dict[str, Any]:
        resp = self._http.get("/v1/info")
        resp.raise_for_status()
        return resp.json()

    def subscribe(
        self,
        fn: Callable[[dict[str, Any]], None],
        since: int | None = None,
        *,
        events: frozenset[str] | None = None,
    ) -> Callable[[], None]:
        """``fn`` gets every event from now (or after ``since``); with ``events``, only events
        of those names (the service filters, so the others cost nothing here)."""
        if self._closed:
            raise errors.StagentError("this Lab is closed")
        sub = _Subscription(self, fn, since, events)
        with self._lock:
            self._subs.append(sub)
        sub.start()
        sub.ready.wait(30)

        def unsubscribe() -> None:
            sub.stop()
            with self._lock:
                if sub in self._subs:
                    self._subs.remove(sub)

        return unsubscribe

    def wait_status(
        self, task_id: str, statuses: frozenset[str], timeout: float | None
    ) -> str | None:
        watch = self._watch
        assert watch is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            mark = watch.mark()
            status = self.call(rq.TaskStatus(task_id=task_id)).status
            if status in statuses or status in TERMINAL:
                return status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            watch.wait_change(task_id, mark, min(left, 2.0) if left is not None else 2.0)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            subs, self._subs = list(self._subs), []
        for sub in subs:
            sub.stop()
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self._rpc.close()
        with contextlib.suppress(Exception):
            self._http.close()


def _quick(request: Request) -> bool:
    """Whether a call goes on the call socket: not one that waits (a request with a
    ``timeout``, such as ``wait_inbox``), nor a tabular answer (Arrow moves faster through
    HTTP's streamed body: 1M rows 0.26 s vs 0.37 s)."""
    cls = type(request)
    return "timeout" not in cls.model_fields and cls.result is not rq.ArrowTable


class _NotSent(Exception):
    """The call socket did not take the call (busy with another thread's call, or it would
    not open): nothing was sent, so HTTP can carry it."""


class _CallSocket:
    """The WebSocket that carries quick calls (``/v1/rpc``), opened on first use. One call at
    a time: a thread that finds it busy goes over HTTP instead of waiting."""

    def __init__(self, info: conn.ConnectionInfo, identity: str) -> None:
        self._info = info
        self._identity = identity
        self._lock = threading.Lock()
        self._conn: Any = None
        self._stack: contextlib.ExitStack | None = None
        self._closed = False

    def call(self, body: bytes) -> tuple[int, str, bytes]:
        """(status, media type, body) of the answer. Raises ``_NotSent`` when the call was
        not sent; ``OSError`` or ``WebSocketException`` when the socket broke after it was
        sent (the socket closing before the call went out is ``_NotSent``); ``ServiceError``
        when no answer came in time."""
        if not self._lock.acquire(blocking=False):
            raise _NotSent
        try:
            if self._closed:
                raise _NotSent
            if self._conn is None:
                try:
                    self._conn = self._open()
                except (OSError, WebSocketException, TimeoutError) as exc:
                    raise _NotSent from exc
            try:
                self._conn.send(body)
            except (OSError, WebSocketException) as exc:  # closed before it went out
                self._drop()
                raise _NotSent from exc
            try:
                message = self._conn.recv(timeout=CALL_TIMEOUT_S)
            except TimeoutError:
                self._drop()  # its answer may still come: never read it as another's
                raise errors.ServiceError(
                    f"the workspace service did not answer within {CALL_TIMEOUT_S:g} s"
                ) from None
            except BaseException:
                self._drop()
                raise
            if isinstance(message, str):
                message = message.encode()
            head, _, content = message.partition(b"\n")
            meta = json.loads(head)
            return int(meta["status"]), str(meta["media"]), content
        finally:
            self._lock.release()

    def _open(self) -> Any:
        from websockets.sync.client import unix_connect

        # Entered like a ``with`` block (what the library asks for) and left by ``_drop``.
        stack = contextlib.ExitStack()
        self._stack = stack
        return stack.enter_context(unix_connect(
            self._info.socket,
            uri="ws://stagent/v1/rpc",
            additional_headers={
                "authorization": f"Bearer {self._info.token}",
                "x-stagent-client": self._identity,
            },
            open_timeout=10,
            max_size=None,
            compression=None,
            ping_interval=None,  # the service pings; the library answers
        ))  # fmt: skip

    def _drop(self) -> None:
        self._conn = None
        stack, self._stack = self._stack, None
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.close()

    def close(self) -> None:
        """Close the socket; a call in flight on another thread fails with it."""
        self._closed = True
        c = self._conn
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()
        if self._lock.acquire(blocking=False):
            try:
                self._drop()
            finally:
                self._lock.release()


class _Subscription(threading.Thread):
    """One event stream: a WebSocket on a thread of its own, resumed after a break."""

    def __init__(
        self,
        ws: RemoteWorkspace,
        fn: Callable[[dict[str, Any]], None],
        since: int | None,
        events: frozenset[str] | None = None,
    ) -> None:
        super().__init__(name="stagent-events", daemon=True)
        self._ws = ws
        self._fn = fn
        self._only = "" if not events else "events=" + ",".join(sorted(events))
        self.last: int | None = since
        self.ready = threading.Event()
        self._halt = threading.Event()
        self._conn: Any = None

    def stop(self) -> None:
        self._halt.set()
        c = self._conn
        if c is not None:
            with contextlib.suppress(Exception):
                c.close()
        if self is not threading.current_thread():
            self.join(5)

    def run(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import unix_connect

        delay = 0.2
        while not self._halt.is_set():
            info = conn.read_connection(self._ws._home) or self._ws.info
            parts = [
                p for p in (self._only, "" if self.last is None else f"since={self.last}") if p
            ]
            query = "?" + "&".join(parts) if parts else ""
            try:
                with unix_connect(
                    info.socket,
                    uri=f"ws://stagent/v1/events{query}",
                    additional_headers={
                        "authorization": f"Bearer {info.token}",
                        "x-stagent-client": self._ws._identity,
                    },
                    open_timeout=10,
                    max_size=None,
                    ping_interval=20,
                ) as connection:
                    self._conn = connection
                    delay = 0.2
                    for message in connection:
                        self._receive(json.loads(message))
            except (OSError, WebSocketException, ValueError):
                pass
            finally:
                self._conn = None
                self.ready.set()
            if self._halt.wait(delay):
                return
            delay = min(delay * 2, 2.0)

    def _receive(self, data: Any) -> None:
        if isinstance(data, dict):  # the stream's position when we went live
            if self.last is None:
                self.last = int(data.get("position") or 0)
            self.ready.set()
            return
        for event in data:
            eid = event.get("id")
            if eid is not None:
                if self.last is not None and eid <= self.last:
                    continue  # already seen before a reconnect
                self.last = eid
            try:
                self._fn(event)
            except Exception:  # a subscriber's bug must not end the stream
                traceback.print_exc()


WATCHED = frozenset({"status", "inbox", "inbox_decided"})


class _StatusWatch:
    """Wakes ``wait_status`` when a task's status changes (events), instead of polling."""

    def __init__(self, ws: RemoteWorkspace) -> None:
        self._cond = threading.Condition()
        self._changes: dict[str, int] = {}
        self._count = 0
        self._unsubscribe = ws.subscribe(self._on_event, events=WATCHED)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") in WATCHED:
            with self._cond:
                self._count += 1
                self._changes[event.get("task_id") or ""] = self._count
                self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return self._count

    def wait_change(self, task_id: str, mark: int, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._changes.get(task_id, 0) > mark, timeout)

    def stop(self) -> None:
        self._unsubscribe()


def _refuse_callables(request: Request) -> None:
    for name, value in request:
        if callable(value):
            raise errors.StagentError(
                f"{request.kind}: {name} is a Python callable, which cannot be sent to the "
                "workspace service; pass a list of steps or YAML text instead, or use "
                "Lab(in_process=True) to run the engine in this process"
            )


# ---- finding or starting the service ------------------------------------------------------


def _ping(info: conn.ConnectionInfo, timeout: float = 3.0) -> dict[str, Any] | None:
    try:
        with httpx.Client(
            transport=conn.uds_transport(info.socket), base_url="http://stagent"
        ) as http:
            resp = http.get(
                "/v1/info",
                headers={"authorization": f"Bearer {info.token}"},
                timeout=timeout,
            )
        return resp.json() if resp.status_code == 200 else None
    except (httpx.HTTPError, OSError, ValueError):
        return None


def ensure_service(home: Path) -> conn.ConnectionInfo:
    """The running service of ``home`` (started now if none runs), at our version."""
    lock_path = conn.service_dir(home) / conn.SPAWN_LOCK
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # one client at a time decides whether to start one
        info = conn.read_connection(home)
        if info is not None and conn.pid_alive(info.pid):
            status = _ping(info)
            if status is None:  # starting up, or wedged: give it a moment
                deadline = time.monotonic() + 15
                while status is None and time.monotonic() < deadline and conn.pid_alive(info.pid):
                    time.sleep(0.2)
                    status = _ping(info)
            if status is not None:
                if info.version == __version__:
                    return info
                _replace_other_version(home, info, status)
            elif conn.pid_alive(info.pid):
                raise errors.ServiceError(
                    f"the workspace service of {home} (pid {info.pid}) does not answer; stop it "
                    f"(kill {info.pid}) and try again"
                )
        return _start(home)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _replace_other_version(home: Path, info: conn.ConnectionInfo, status: dict[str, Any]) -> None:
    live = status.get("live_work") or []
    clients = status.get("clients") or []
    if live or clients:
        raise errors.ServiceError(
            f"the workspace service of {home} runs stagent_lab {info.version} (pid {info.pid}) "
            f"and this client is {__version__}. It is busy ({'; '.join(live) or 'clients'}"
            f"{', clients: ' + ', '.join(clients) if clients else ''}), so it was left running: "
            f"finish that work, then run `stagent-lab --home {home} server stop`"
        )
    transport = conn.uds_transport(info.socket)
    with (
        httpx.Client(transport=transport, base_url="http://stagent") as h,
        contextlib.suppress(httpx.HTTPError),
    ):
        h.post("/v1/shutdown", headers={"authorization": f"Bearer {info.token}"}, json={})
    deadline = time.monotonic() + 30
    while conn.pid_alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _start(home: Path) -> conn.ConnectionInfo:
    conn.clear_start_error(home)
    log = conn.service_dir(home) / conn.LOG_FILE
    if log.exists() and log.stat().st_size > 10_000_000:
        log.rename(log.with_suffix(".log.1"))
    os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))  # owner-only
    args = [sys.executable, "-m", "stagent_lab.service", "--home", os.fspath(home)]
    # Start it detached (a new session, reparented away from us) through a tiny launcher, so
    # it outlives this process and never lingers as our zombie.
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, os.fspath(log), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        info = conn.read_connection(home)
        if info is not None and info.pid == pid and _ping(info) is not None:
            return info
        failed = conn.read_start_error(home)
        if failed is not None or not conn.pid_alive(pid):
            raise _start_failure(home, failed, pid)
        time.sleep(0.05)
    raise errors.ServiceError(
        f"the workspace service for {home} did not start within {START_TIMEOUT_S:g} s; see {log}"
    )


def _start_failure(home: Path, failed: dict[str, Any] | None, pid: int) -> BaseException:
    if failed and failed.get("type") == "WorkspaceLockedError":
        holder = failed.get("pid")
        return errors.WorkspaceLockedError(
            str(home),
            holder,
            "the workspace service could not start because another process holds the workspace "
            "in-process (Lab(in_process=True)); close it, or connect to it from that process",
        )
    if failed:
        return errors.ServiceError(f"the workspace service did not start: {failed['message']}")
    log = conn.service_dir(home) / conn.LOG_FILE
    tail = ""
    with contextlib.suppress(OSError):
        tail = log.read_text(errors="replace")[-2000:]
    return errors.ServiceError(f"the workspace service (pid {pid}) exited at start:\n{tail}")


def connect(
    home: Any,
    *,
    profile_dirs: Any = (),
    runtime_options: dict[str, dict[str, Any]] | None = None,
    max_concurrent: int | None = None,
) -> RemoteWorkspace:
    path = resolve_home(home)
    info = ensure_service(path)
    ws = RemoteWorkspace(path, info, client_identity())
    try:
        if profile_dirs:
            dirs = [os.fspath(Path(d).expanduser().resolve()) for d in profile_dirs]
            ws.call(rq.AddProfileDirs(dirs=dirs))  # persisted by the workspace
        for runtime_id, options in (runtime_options or {}).items():
            ws.setup.append(rq.ConfigureRuntime(runtime_id=runtime_id, options=dict(options)))
        variables = {k: v for k, v in os.environ.items() if k.startswith(PROVIDER_ENV)}
        if variables:
            ws.setup.append(rq.SyncEnvironment(variables=variables))
        for request in ws.setup:
            ws.call(request)
        if max_concurrent is not None:
            ws.call(rq.SetSetting(key="engine.max_concurrent", value=max_concurrent))
    except BaseException:
        ws.close()
        raise
    return ws
