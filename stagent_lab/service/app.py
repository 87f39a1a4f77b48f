"""The workspace service's ASGI app: the contract over HTTP and WebSocket (Starlette on uvicorn).

Routes (every request must carry ``Authorization: Bearer <token>``; anything else gets 401 and
no detail):

* ``POST /v1/call`` — one request of the contract (JSON in; JSON or Arrow IPC out).
* ``GET  /v1/info`` — pid, version, clients, live work.
* ``POST /v1/shutdown`` — stop the service (refused while tasks are active, unless ``force``).
* ``WS   /v1/events?since=N&events=a,b`` — the event stream; with ``since``, stored events
  after that position first; with ``events``, only events of those names. Events are sent as
  JSON arrays, batched while the socket is busy.
* ``WS   /v1/rpc`` — contract calls over one socket, one at a time and in order: each message
  is a call's JSON, each answer a JSON header line (status, media type) and the body, the same
  bytes ``/v1/call`` would send. The token is checked when the socket opens.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from stagent_lab.api import wire
from stagent_lab.api.requests import Sql, SubmitTask, parse_request
from stagent_lab.errors import InvalidInput

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService

log = logging.getLogger("stagent_lab.service")
MAX_BODY = 64 * 1024 * 1024
MAX_CALL_THREADS = 40  # calls handled at once (a wait_inbox holds one while it waits)
MAX_BUFFERED_EVENTS = 200_000  # a client this far behind is dropped; it reconnects with since=
UNAUTHORIZED = Response("unauthorized", status_code=401)
JSON = "application/json"


class Clients:
    """Who is connected (one event socket per client), for `server status` and the idle timer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, dict[str, Any]] = {}
        self.last_change = time.monotonic()

    def add(self, key: int, name: str) -> None:
        with self._lock:
            self._open[key] = {"client": name, "since": time.time()}
            self.last_change = time.monotonic()

    def remove(self, key: int) -> None:
        with self._lock:
            self._open.pop(key, None)
            self.last_change = time.monotonic()

    def count(self) -> int:
        with self._lock:
            return len(self._open)

    def names(self) -> list[str]:
        with self._lock:
            return [c["client"] for c in self._open.values()]


def build_app(
    service: WorkspaceService, token: str, *, on_shutdown: Callable[[], None]
) -> Starlette:
    clients = Clients()
    secret = token.encode()
    # Handlers run on these threads, never on the loop (a read or an engine call blocks). A
    # plain executor: anyio's worker-thread hop cost ~0.5 ms more per request here.
    pool = concurrent.futures.ThreadPoolExecutor(MAX_CALL_THREADS, "stagent-call")

    async def run_in_threadpool(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    def answer(req: Any, held: _Held, stream: bool = False) -> tuple[Any, str]:
        if stream and isinstance(req, Sql):  # rows travel while DuckDB computes the rest
            schema, batches = service.sql_batches(req)
            return wire.encode_batches(schema, batches), wire.ARROW
        if not isinstance(req, SubmitTask):  # one worker-thread hop per request
            return wire.encode_result(req, service.handle(req))
        # A submit's answer goes out before the engine starts creating the task (the task is
        # announced as queued already); the creation is posted right after the answer is
        # sent, before this connection's next request can be read, so calls keep their order.
        with service.holding_posts() as posts:
            try:
                return wire.encode_result(req, service.handle(req))
            finally:
                held.add(posts)

    def authorized(headers: Any) -> bool:
        given = headers.get("authorization", "")
        if not given.startswith("Bearer "):
            return False
        return hmac.compare_digest(given[7:].encode(), secret)

    async def dispatch(
        body: bytes, *, stream: bool = False
    ) -> tuple[bytes | memoryview | Iterator[bytes], int, str, _Held]:
        """One contract call: (answer, status, media type, the work to post once it is sent).
        With ``stream``, a ``lab.sql`` answer is an iterator of Arrow IPC chunks."""
        held = _Held(service.release_posts)
        try:
            req = parse_request(json.loads(body))
        except (ValueError, InvalidInput) as exc:
            data, status = wire.encode_error(
                exc if isinstance(exc, InvalidInput) else InvalidInput(f"bad JSON: {exc}")
            )
            return data, status, JSON, held
        try:
            data, media = await run_in_threadpool(answer, req, held, stream)
        except BaseException as exc:
            held.release()  # the work a handler started is never left unposted
            if not isinstance(exc, Exception):  # cancelled: the service is stopping
                raise
            # every error goes back to the client, typed
            data, status = wire.encode_error(exc)
            if status >= 500:
                log.exception("request %s failed", req.kind)
            return data, status, JSON, held
        return data, 200, media, held

    async def call(request: Request) -> Response:
        if not authorized(request.headers):
            return UNAUTHORIZED
        buf = bytearray()
        async for chunk in request.stream():  # refuse an oversized body without holding it
            buf += chunk
            if len(buf) > MAX_BODY:
                break
        body = bytes(buf)
        if len(body) > MAX_BODY:
            too_big = {"error": {"type": "InvalidInput", "message": "request body too large"}}
            return JSONResponse(too_big, 413)
        data, status, media, held = await dispatch(body, stream=True)
        if not isinstance(data, bytes | memoryview):
            return StreamingResponse(_logged(data), media_type=media)
        if not held.posts:
            return Response(data, status_code=status, media_type=media)
        return _ThenPost(data, media_type=media, then=held.release)

    async def rpc(ws: WebSocket) -> None:
        """Contract calls over one WebSocket, one at a time, in order (like HTTP keep-alive,
        without a request's parsing and headers each time). A message is a call's JSON; the
        answer is one binary message: a JSON header line (status, media type), then the body."""
        if not await admitted(ws):
            return
        await ws.accept()
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                raw = message.get("bytes")
                if raw is None:
                    raw = (message.get("text") or "").encode()
                data, status, media, held = await dispatch(raw)
                try:
                    head = json.dumps({"status": status, "media": media}).encode()
                    await ws.send_bytes(b"".join((head, b"\n", data)))
                finally:
                    held.release()  # sent (or the client left): the held work goes on
        except (WebSocketDisconnect, RuntimeError, OSError):
            return

    async def info(request: Request) -> Response:
        if not authorized(request.headers):
            return UNAUTHORIZED
        data = await run_in_threadpool(service.status)
        data["clients"] = clients.names()
        return JSONResponse(data)

    async def shutdown(request: Request) -> Response:
        if not authorized(request.headers):
            return UNAUTHORIZED
        try:
            force = bool((await request.json()).get("force"))
        except ValueError:
            force = False
        live = await run_in_threadpool(service.live_work)
        if live and not force:
            return JSONResponse(
                {"stopped": False, "reason": f"the service has live work: {'; '.join(live)}"},
                409,
            )
        on_shutdown()
        return JSONResponse({"stopped": True, "live": live})

    async def admitted(ws: WebSocket) -> bool:
        if authorized(ws.headers):
            return True
        # A plain HTTP 401 instead of the upgrade (or a close before accepting, when the
        # server cannot send one): nothing is sent over a socket that was never opened.
        try:
            await ws.send_denial_response(UNAUTHORIZED)
        except RuntimeError:
            await ws.close(code=4401)
        return False

    async def events(ws: WebSocket) -> None:
        if not await admitted(ws):
            return
        try:
            since = ws.query_params.get("since")
            since_id = int(since) if since not in (None, "") else None
        except ValueError:
            await ws.close(code=4400)
            return
        only = ws.query_params.get("events")
        wanted = frozenset(only.split(",")) if only else None
        await ws.accept()
        loop = asyncio.get_running_loop()
        buffer: collections.deque[dict[str, Any]] = collections.deque()
        wake = asyncio.Event()
        state = {"scheduled": False, "overflow": False}
        lock = threading.Lock()

        def on_event(event: dict[str, Any]) -> None:  # engine thread: buffer and wake, no more
            if wanted is not None and event.get("event") not in wanted:
                return
            with lock:
                if len(buffer) >= MAX_BUFFERED_EVENTS:
                    state["overflow"] = True
                    return
                buffer.append(event)
                if state["scheduled"]:
                    return
                state["scheduled"] = True
            loop.call_soon_threadsafe(wake.set)

        key = id(ws)
        clients.add(key, ws.headers.get("x-stagent-client", "client"))
        unsubscribe: Callable[[], None] | None = None
        try:
            unsubscribe, position = await run_in_threadpool(
                service.subscribe_at, on_event, since_id
            )
            # First frame: where the stream stands, so the client can resume from there.
            await ws.send_text(json.dumps({"position": position}))
            receiver = asyncio.ensure_future(_drain(ws))
            while True:
                waiter = asyncio.ensure_future(wake.wait())
                done, _ = await asyncio.wait(
                    {waiter, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiver in done:
                    waiter.cancel()
                    break
                wake.clear()
                with lock:
                    batch = list(buffer)
                    buffer.clear()
                    state["scheduled"] = False
                    overflow = state["overflow"]
                if batch:
                    await ws.send_text(wire.encode_events(batch))
                if overflow:  # too far behind: the client reconnects from its last event
                    await ws.close(code=4408)
                    break
        except WebSocketDisconnect:
            pass
        finally:
            clients.remove(key)
            if unsubscribe is not None:
                unsubscribe()

    app = Starlette(
        routes=[
            Route("/v1/call", call, methods=["POST"]),
            Route("/v1/info", info, methods=["GET"]),
            Route("/v1/shutdown", shutdown, methods=["POST"]),
            WebSocketRoute("/v1/events", events),
            WebSocketRoute("/v1/rpc", rpc),
        ]
    )
    app.state.clients = clients
    app.state.call_pool = pool  # shut down by the server when it stops
    return app


class _Held:
    """Engine work a request's handler started (on a worker thread), held until its answer is
    sent. Released exactly once: by the answer, by an error, or (when the request was given
    up while the handler still ran) by the handler's thread as soon as it adds its posts."""

    def __init__(self, post: Callable[[list[Callable[[], Any]]], None]) -> None:
        self._post = post
        self._lock = threading.Lock()
        self.posts: list[Callable[[], Any]] = []
        self._released = False

    def add(self, posts: list[Callable[[], Any]]) -> None:
        with self._lock:
            self.posts.extend(posts)
            late = self._released
        if late:
            self.release(force=True)

    def release(self, force: bool = False) -> None:
        with self._lock:
            if self._released and not force:
                return
            self._released = True
            posts, self.posts = list(self.posts), []
        if posts:
            self._post(posts)


class _ThenPost(Response):
    """A response that runs ``then`` once it is sent (or failed to be): on the loop, in the
    request's own task, so before the connection's next request is read."""

    def __init__(self, content: bytes, *, media_type: str, then: Callable[[], None]) -> None:
        super().__init__(content, media_type=media_type)
        self._then = then

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._then()


def _logged(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A streamed answer that says in the service log why it broke off (the client, whose
    status line already went out, sees the stream end early)."""
    sent = 0
    try:
        for chunk in chunks:
            sent += len(chunk)
            yield chunk
    except Exception as exc:
        log.warning("a streamed answer broke off after %d bytes: %s: %s",
                    sent, type(exc).__name__, exc)  # fmt: skip
        raise


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, so a close is noticed at once."""
    try:
        while True:
            await ws.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return
