"""The codex JSON-RPC connection over a WebSocket, against a ``websockets`` server on loopback.

The real binary's WebSocket transport is covered end to end in test_codex_app_server_cli.py;
here the link's own promises are checked: the capability token travels as a bearer header,
requests resolve, notifications queue in order, a closed peer ends with ``Closed``, and a
refused handshake or a non-loopback address fails with a clear reason.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus

import pytest
from websockets.asyncio.server import serve

from stagent_lab.errors import RuntimeFailure
from stagent_lab.runtimes.codex.rpc import Closed, JsonRpc, RpcError, Unreadable, WebSocketLink

TOKEN = "capability-token-0123456789"


async def fake_server(handler):
    def check_token(connection, request):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "bad token\n")
        return None

    return await serve(handler, "127.0.0.1", 0, process_request=check_token)


def url_of(server) -> str:
    port = next(iter(server.sockets)).getsockname()[1]
    return f"ws://127.0.0.1:{port}"


async def codex_like(ws):
    """Answers ``initialize``, fails ``boom``, sends a notification and a junk frame, then
    closes when asked to ``bye``."""
    async for raw in ws:
        msg = json.loads(raw)
        if msg.get("method") == "initialize":
            await ws.send(json.dumps({"method": "note", "params": {"n": 1}}))
            await ws.send(json.dumps({"id": msg["id"], "result": {"ok": True}}))
        elif msg.get("method") == "boom":
            await ws.send(json.dumps({"id": msg["id"], "error": {"code": -32600, "message": "no"}}))
        elif msg.get("method") == "bye":
            await ws.send("not json")
            await ws.close()
            return


def test_requests_notifications_and_close_over_a_websocket():
    async def go():
        async with await fake_server(codex_like) as server:
            link = await WebSocketLink.connect(url_of(server), TOKEN, 5)
            incoming: asyncio.Queue = asyncio.Queue()

            async def closed_reason() -> str:
                return "server went away"

            rpc = JsonRpc(link, incoming, closed_reason)
            result = await rpc.request("initialize", {}, 5)
            with pytest.raises(RpcError, match="no"):
                await rpc.request("boom", {}, 5)
            await rpc.notify("bye")
            seen = [await asyncio.wait_for(incoming.get(), 5) for _ in range(3)]
            rpc.stop()
            await link.close()
            return result, seen

    result, seen = asyncio.run(go())
    assert result == {"ok": True}
    assert seen[0] == {"method": "note", "params": {"n": 1}}
    assert seen[1] == Unreadable("not json")
    assert seen[2] == Closed("server went away")


def test_a_wrong_token_is_a_refused_handshake():
    async def go():
        async with await fake_server(codex_like) as server:
            await WebSocketLink.connect(url_of(server), "wrong", 5)

    with pytest.raises(RuntimeFailure, match="codex: websocket handshake refused"):
        asyncio.run(go())


def test_only_loopback_addresses_are_dialled():
    with pytest.raises(RuntimeFailure, match="unexpected websocket address"):
        asyncio.run(WebSocketLink.connect("ws://203.0.113.5:4000", TOKEN, 1))
