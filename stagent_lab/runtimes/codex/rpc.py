"""The JSON-RPC connection to ``codex app-server``: requests with futures, everything else queued.

Codex speaks JSON-RPC 2.0 without the ``jsonrpc`` field: one JSON object per line on stdio, or
one per text frame on a WebSocket. Responses resolve the request's future; notifications and
the server's own requests (approvals) go to ``incoming`` in arrival order, followed by one
:class:`Closed` when the connection ends, so the consumer never waits on a dead server.

The WebSocket link uses the ``websockets`` library (no hand-written framing): loopback only,
the capability token as a bearer header, no proxy, no keepalive pings (a long tool run must
not look like a dead peer), and frames as large as a command's output can be.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from stagent_lab.errors import RuntimeFailure

MESSAGE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message; command output can be large


class RpcError(Exception):
    """The server answered a request with an error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


@dataclass
class Closed:
    """The last item ``incoming`` receives: the connection ended, and why."""

    reason: str


@dataclass
class Unreadable:
    """A message that was not JSON; skipped, but worth a log line."""

    line: str


class Link(Protocol):
    async def send(self, text: str) -> None: ...

    async def receive(self) -> str | None: ...  # None: the peer closed

    async def close(self) -> None: ...


class StdioLink:
    """JSON lines on the server's stdin and stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self) -> str | None:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        return line.decode() if line else None

    async def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            with contextlib.suppress(Exception):
                self.proc.stdin.close()


class WebSocketLink:
    """Text frames over a loopback WebSocket (``websockets``' asyncio client)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    async def connect(cls, url: str, token: str, timeout: float) -> WebSocketLink:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidURI

        if not url.startswith(("ws://127.0.0.1:", "ws://[::1]:", "ws://localhost:")):
            raise RuntimeFailure(f"codex: unexpected websocket address {url!r}")
        try:
            connection = await connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=timeout,
                ping_interval=None,
                max_size=MESSAGE_LIMIT,
                compression=None,
                proxy=None,
            )
        except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
            raise RuntimeFailure(f"codex: websocket handshake refused: {exc}") from None
        return cls(connection)

    async def send(self, text: str) -> None:
        await self.connection.send(text)

    async def receive(self) -> str | None:
        from websockets.exceptions import ConnectionClosed

        try:
            message = await self.connection.recv()
        except ConnectionClosed:
            return None
        return message if isinstance(message, str) else message.decode()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), 1)


class JsonRpc:
    """Requests with futures; notifications and server requests go to ``incoming``.

    ``closed_reason`` is asked, once the link ends, for the words to fail with (the server's
    exit code and stderr, say).
    """

    def __init__(
        self,
        link: Link,
        incoming: asyncio.Queue[Any],
        closed_reason: Callable[[], Awaitable[str]],
        *,
        who: str = "codex",
    ) -> None:
        self.link = link
        self.incoming = incoming
        self.who = who
        self._closed_reason = closed_reason
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self.closed = False
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        reason = None
        try:
            while True:
                line = await self.link.receive()
                if line is None:
                    break
                await self._dispatch(line.strip())
        except asyncio.CancelledError:
            self.closed = True
            self._fail_pending("connection closed")
            raise
        except Exception as exc:  # a broken link ends the run below
            reason = f"connection error: {exc}"
        self.closed = True
        reason = reason or await self._closed_reason()
        self._fail_pending(reason)
        await self.incoming.put(Closed(reason))

    async def _dispatch(self, line: str) -> None:
        if not line:
            return
        try:
            msg = json.loads(line)
        except ValueError:
            await self.incoming.put(Unreadable(line[:200]))
            return
        if not isinstance(msg, dict):
            return
        if "id" in msg and "method" not in msg:
            fut = self._pending.pop(msg["id"], None) if isinstance(msg["id"], int) else None
            if fut is not None and not fut.done():
                if "error" in msg:
                    err = msg.get("error") or {}
                    fut.set_exception(
                        RpcError(int(err.get("code", -1)), str(err.get("message", err)))
                    )
                else:
                    fut.set_result(msg.get("result"))
            return
        await self.incoming.put(msg)

    def _fail_pending(self, reason: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RuntimeFailure(f"{self.who}: {reason}"))
        self._pending.clear()

    async def request(self, method: str, params: Any, timeout: float) -> Any:
        if self.closed:
            raise RuntimeFailure(f"{self.who}: {await self._closed_reason()}")
        self._next += 1
        rid = self._next
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.link.send(json.dumps({"id": rid, "method": method, "params": params}))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RuntimeFailure(
                f"{self.who}: {method} got no answer within {timeout:g}s"
            ) from None
        finally:
            self._pending.pop(rid, None)

    async def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"method": method}
        if params is not None:
            msg["params"] = params
        await self.link.send(json.dumps(msg))

    async def respond(self, rid: Any, result: Any) -> None:
        if not self.closed:
            await self.link.send(json.dumps({"id": rid, "result": result}))

    async def respond_error(self, rid: Any, code: int, message: str) -> None:
        if not self.closed:
            await self.link.send(
                json.dumps({"id": rid, "error": {"code": code, "message": message}})
            )

    def stop(self) -> None:
        self._reader.cancel()


__all__ = ["Closed", "JsonRpc", "Link", "RpcError", "StdioLink", "Unreadable", "WebSocketLink"]
