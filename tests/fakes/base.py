"""A scriptable loopback HTTP server that the provider fakes build on.

Why a real server: the runtimes are tested with the vendors' real SDK clients, so the fakes
must speak HTTP on a socket exactly as the providers do (chunked streaming, status codes,
headers). Each fake runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 with an ephemeral port
in a daemon thread, records every request, and answers from a *script*: a queue of entries per
endpoint, each either a scripted turn (rendered by the provider subclass) or a fault.

Everything is bounded: a stall waits on an event that ``close()`` sets, idle keep-alive
sockets time out, and ``close()`` shuts down every open connection, so no test can hang on a
fake.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Turn = dict[str, Any]
TurnSource = Turn | Callable[["RecordedRequest"], Turn]


@dataclass
class RecordedRequest:
    """One request as the fake received it. Header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when the body is empty or not JSON
    raw: bytes


# ---- script entries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A normal scripted reply: the provider renders ``turn`` as a stream or a whole body."""

    turn: TurnSource
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpError:
    """Answer with an HTTP error. ``body`` None means the provider's own error shape."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True)
class CutAfter:
    """Stream ``n_events`` frames of ``turn``, then drop the connection mid-body."""

    n_events: int
    turn: TurnSource | None = None


@dataclass(frozen=True)
class Malformed:
    """Stream ``after_events`` frames, then a frame that is not valid JSON, then the rest."""

    after_events: int = 1
    turn: TurnSource | None = None
    garbage: bytes | None = None


@dataclass(frozen=True)
class Stall:
    """Send headers and ``after_events`` frames, then go silent for ``seconds`` and close."""

    seconds: float
    after_events: int = 1
    turn: TurnSource | None = None


@dataclass(frozen=True)
class StreamError:
    """Stream ``after_events`` frames, then an in-stream error event in the provider's shape."""

    after_events: int = 1
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    turn: TurnSource | None = None


Entry = Reply | HttpError | CutAfter | Malformed | Stall | StreamError


def http_error(
    status: int,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    message: str | None = None,
) -> HttpError:
    """E.g. ``http_error(429, headers={"retry-after": "1"})``, ``http_error(529)``."""
    return HttpError(status, body, dict(headers or {}), message)


def cut_after(n_events: int, turn: TurnSource | None = None) -> CutAfter:
    return CutAfter(n_events, turn)


def malformed(
    after_events: int = 1, turn: TurnSource | None = None, garbage: bytes | None = None
) -> Malformed:
    return Malformed(after_events, turn, garbage)


def stall(seconds: float, after_events: int = 1, turn: TurnSource | None = None) -> Stall:
    return Stall(seconds, after_events, turn)


def stream_error(
    after_events: int = 1,
    error_type: str = "overloaded_error",
    message: str = "Overloaded",
    turn: TurnSource | None = None,
) -> StreamError:
    return StreamError(after_events, error_type, message, turn)


DEFAULT_FAULT_TURN: Turn = {"text": "This answer is interrupted before it can finish."}


def split_text(text: str, parts: int = 3) -> list[str]:
    """Split into up to ``parts`` non-empty pieces, so every stream has several deltas."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def text_pieces(value: str | list[str] | None) -> list[str]:
    """A turn's text may be given pre-chunked (a list) or whole (split into three)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return split_text(value)


# ---- the server ----------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection gives up instead of holding a thread
    server: _Server

    def do_GET(self) -> None:
        self.server.fake._handle(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeServer

    def process_request(self, request: Any, client_address: Any) -> None:
        self.fake._track(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.fake._untrack(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # the client hung up (expected after cuts, stalls and timeouts)
        self.fake.errors.append(repr(exc))


class FakeServer:
    """Base class: subclasses render turns for one provider's wire format.

    Use as a context manager::

        with AnthropicFake() as fake:
            fake.script({"text": "hi"}, http_error(500), {"text": "again"})
            client = Anthropic(base_url=fake.base_url, api_key="k")
    """

    stream_content_type = "text/event-stream"
    endpoints: tuple[tuple[str, str], ...] = ()  # (method, path) the provider serves

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[tuple[str, str], deque[Entry]] = {key: deque() for key in self.endpoints}
        self._defaults: dict[tuple[str, str], Entry] = {}
        self._requests: list[RecordedRequest] = []
        self._sockets: set[socket.socket] = set()
        self._closing = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids: dict[str, int] = {}
        self.errors: list[str] = []  # unexpected handler exceptions (tests assert it stays empty)

    # -- lifecycle --

    def start(self) -> FakeServer:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "fake not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- script --

    def enqueue(self, path: str, *entries: Entry | Turn, method: str = "POST") -> None:
        """Queue replies for one endpoint; each request takes the next one."""
        with self._lock:
            queue = self._queues.setdefault((method.upper(), path), deque())
            queue.extend(_as_entry(e) for e in entries)

    def set_default(self, method: str, path: str, entry: Entry | Turn) -> None:
        """A reply used whenever the endpoint's queue is empty (health checks, listings)."""
        with self._lock:
            self._defaults[(method.upper(), path)] = _as_entry(entry)

    def pending(self, path: str, method: str = "POST") -> int:
        with self._lock:
            return len(self._queues.get((method.upper(), path), ()))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str = "POST") -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and r.method == method.upper()]

    def next_id(self, prefix: str) -> str:
        with self._lock:
            n = self._ids.get(prefix, 0) + 1
            self._ids[prefix] = n
        return f"{prefix}_fake{n:04d}"

    # -- provider hooks (subclasses override) --

    def wants_stream(self, request: RecordedRequest) -> bool:
        return bool(isinstance(request.body, dict) and request.body.get("stream"))

    def stream_frames(self, turn: Turn, request: RecordedRequest) -> list[bytes]:
        raise NotImplementedError

    def whole_body(self, turn: Turn, request: RecordedRequest) -> Any:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        return {"error": message}

    def garbage_frame(self) -> bytes:
        return b"data: {this is not json\n\n"

    def error_frame(self, fault: StreamError, index: int) -> bytes:
        raise NotImplementedError

    # -- request handling (runs on the server's handler threads) --

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _handle(self, h: _Handler) -> None:
        request = self._read_request(h)
        with self._lock:
            self._requests.append(request)
            key = (request.method, request.path)
            queue = self._queues.get(key)
            entry = queue.popleft() if queue else self._defaults.get(key)
            known = any(k[1] == request.path for k in (*self._queues, *self._defaults))
        if entry is None:
            status = 400 if known else 404
            msg = (
                f"fake: no scripted reply left for {request.method} {request.path}"
                if known
                else f"fake: unknown endpoint {request.method} {request.path}"
            )
            self._send_json(h, status, self.error_body(status, msg))
            return
        self._play(h, entry, request)

    def _read_request(self, h: _Handler) -> RecordedRequest:
        headers = {k.lower(): v for k, v in h.headers.items()}
        raw = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = _read_chunked(h)
        elif headers.get("content-length"):
            raw = h.rfile.read(int(headers["content-length"]))
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        parts = urlsplit(h.path)
        return RecordedRequest(h.command, parts.path, parts.query, headers, body, raw)

    def _turn(self, source: TurnSource | None, request: RecordedRequest) -> Turn:
        if source is None:
            return dict(DEFAULT_FAULT_TURN)
        return source(request) if callable(source) else source

    def _play(self, h: _Handler, entry: Entry, request: RecordedRequest) -> None:
        if isinstance(entry, HttpError):
            if entry.body is not None:
                body = entry.body
            else:
                body = self.error_body(entry.status, entry.message or _reason(entry.status))
            self._send_json(h, entry.status, body, entry.headers)
            return
        if isinstance(entry, Reply):
            turn = self._turn(entry.turn, request)
            if not self.wants_stream(request):
                self._send_json(h, 200, self.whole_body(turn, request), entry.headers)
                return
            self._stream(h, self.stream_frames(turn, request), headers=entry.headers)
            return
        frames = self.stream_frames(self._turn(entry.turn, request), request)
        if isinstance(entry, CutAfter):
            self._stream(h, frames[: entry.n_events], finish=False)
        elif isinstance(entry, Malformed):
            garbage = entry.garbage or self.garbage_frame()
            n = entry.after_events
            self._stream(h, [*frames[:n], garbage, *frames[n:]])
        elif isinstance(entry, StreamError):
            n = entry.after_events
            self._stream(h, [*frames[:n], self.error_frame(entry, n)])
        elif isinstance(entry, Stall):
            self._stream(h, frames[: entry.after_events], finish=False, stall_s=entry.seconds)

    def _send_json(
        self, h: _Handler, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _stream(
        self,
        h: _Handler,
        frames: list[bytes],
        *,
        finish: bool = True,
        stall_s: float = 0.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        h.send_response(200)
        h.send_header("Content-Type", self.stream_content_type)
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        for frame in frames:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            h.wfile.flush()
        if stall_s:
            self._closing.wait(stall_s)  # bounded: close() ends the stall at once
        if finish:
            h.wfile.write(b"0\r\n\r\n")
        else:
            # Drop the connection without the terminating chunk: a cut mid-body.
            h.close_connection = True


def _as_entry(entry: Entry | Turn) -> Entry:
    if isinstance(entry, (Reply, HttpError, CutAfter, Malformed, Stall, StreamError)):
        return entry
    if isinstance(entry, dict) or callable(entry):
        return Reply(entry)
    raise TypeError(f"not a script entry: {entry!r}")


def _read_chunked(h: _Handler) -> bytes:
    out = bytearray()
    while True:
        size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            h.rfile.readline()
            return bytes(out)
        out += h.rfile.read(size)
        h.rfile.readline()


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else f"HTTP {status}"


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Events frame: ``event:`` line, one ``data:`` line, blank line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
