"""The inbound HTTP endpoints: a small Starlette app served by uvicorn on its own thread.

Three routes, nothing else:

* ``POST /channels/<id>/slack/events`` — Slack's Events API. Every request is verified first
  (``url_verification`` included) with slack-sdk's ``SignatureVerifier``: ``v0=`` + HMAC-SHA256
  of ``"v0:<timestamp>:<raw body>"`` under the signing secret, compared in constant time, and
  ``|now − timestamp| ≤ 300 s`` on the engine clock. Then the challenge is answered, or the
  event is queued to the engine loop and 200 returned at once.
* ``POST /channels/<id>/telegram`` — ``X-Telegram-Bot-Api-Secret-Token`` must equal the
  webhook secret (constant time); the update is queued and 200 returned.
* ``POST /channels/<id>/webhook`` — a signed generic webhook (``webhook_inbound``); the answer
  carries the outcome (202, 400, 401, 403, 404, 409, 413, 422).

A request that fails verification, or names no channel of that kind, gets 401 with no detail.
The engine does the work; the server thread only verifies and waits at most 2.5 s for an answer.
It runs in the workspace service (``service.daemon``) or when asked (``lab.channels.serve()``).
"""

from __future__ import annotations

import asyncio
import calendar
import hmac
import json
import socket
import threading
from typing import TYPE_CHECKING, Any

from stagent_lab.channels import slack_inbound, telegram_inbound, webhook_inbound
from stagent_lab.channels.config import MissingSecret

if TYPE_CHECKING:
    from stagent_lab.channels.feature import ChannelsFeature

MAX_EVENT_BODY = 1024 * 1024
ENGINE_WAIT_S = 2.5
UNAUTHORIZED = {"error": "unauthorized"}


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"a bind address is host:port, e.g. 127.0.0.1:8765; got {bind!r}")
    return host.strip("[]"), int(port)


class _EngineClock:
    """slack-sdk's verifier asks a clock for unix seconds; ours is the engine clock."""

    def __init__(self, feature: ChannelsFeature) -> None:
        self.f = feature

    def now(self) -> float:
        return float(calendar.timegm(self.f.clock.now().timetuple()))


async def _read(request: Any, cap: int) -> bytes | None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > cap:
        return None
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > cap:
            return None
    return bytes(data)


def build_app(f: ChannelsFeature) -> Any:
    from slack_sdk.signature import SignatureVerifier
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def refuse() -> Any:
        return JSONResponse(UNAUTHORIZED, status_code=401)

    async def slack_events(request: Any) -> Any:
        ch = f.channel(request.path_params["cid"])
        body = await _read(request, MAX_EVENT_BODY)
        if ch is None or ch.type != "slack" or ch.inbound != "events" or body is None:
            return refuse()
        try:
            secret = f.secret(ch, "signing_secret")
            verifier = SignatureVerifier(secret, clock=_EngineClock(f))  # type: ignore[arg-type]
            ok = verifier.is_valid_request(body, dict(request.headers))
        except (MissingSecret, ValueError, UnicodeDecodeError):
            ok = False
        if not ok:
            f.service.post(lambda: f.log(ch, "channel_rejected", reason="signature"))
            return refuse()
        try:
            payload = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        if not isinstance(payload, dict):
            return JSONResponse({"error": "not an object"}, status_code=400)
        if payload.get("type") == "url_verification":
            return JSONResponse({"challenge": str(payload.get("challenge", ""))})
        if payload.get("type") == "event_callback":
            cid = ch.id
            f.service.post(lambda: slack_inbound.handle_event(f, cid, payload))
        return Response(status_code=200)

    async def telegram(request: Any) -> Any:
        ch = f.channel(request.path_params["cid"])
        body = await _read(request, MAX_EVENT_BODY)
        if ch is None or ch.type != "telegram" or ch.inbound != "webhook" or body is None:
            return refuse()
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        try:
            secret = f.secret(ch, "webhook_secret")
        except MissingSecret:
            return refuse()
        if not hmac.compare_digest(given.encode(), secret.encode()):
            f.service.post(lambda: f.log(ch, "channel_rejected", reason="signature"))
            return refuse()
        try:
            update = json.loads(body)
        except ValueError:
            return JSONResponse({"error": "not JSON"}, status_code=400)
        if isinstance(update, dict):
            cid = ch.id
            f.service.post(lambda: telegram_inbound.handle_update(f, cid, update))
        return Response(status_code=200)

    async def webhook(request: Any) -> Any:
        ch = f.channel(request.path_params["cid"])
        if ch is None or ch.type != "webhook" or ch.inbound != "on":
            return refuse()
        body = await _read(request, webhook_inbound.MAX_BODY)
        if body is None:
            return JSONResponse({"error": "body over 64 KB"}, status_code=413)
        headers = {k.lower(): v for k, v in request.headers.items()}
        delivery = headers.get("x-stagent-delivery", "")
        if not webhook_inbound.DELIVERY_ID.match(delivery):
            return JSONResponse(
                {"error": "X-Stagent-Delivery is required: 1-128 characters of A-Za-z0-9_-"},
                status_code=400,
            )
        signature = webhook_inbound.verify(f, ch, headers, body)
        if signature is None:
            f.service.post(lambda: f.log(ch, "channel_rejected", reason="signature"))
            return refuse()
        cid = ch.id

        def work() -> tuple[int, dict[str, Any]]:
            current = f.channel(cid)
            if current is None:
                return 401, UNAUTHORIZED
            return webhook_inbound.handle(f, current, delivery, signature, body)

        try:
            status, answer = await asyncio.to_thread(
                f.service.on_engine, work, timeout=ENGINE_WAIT_S
            )
        except TimeoutError:
            return JSONResponse({"error": "busy; retry with the same delivery id"}, 503)
        return JSONResponse(answer, status_code=status)

    routes = [
        Route("/channels/{cid}/slack/events", slack_events, methods=["POST"]),
        Route("/channels/{cid}/telegram", telegram, methods=["POST"]),
        Route("/channels/{cid}/webhook", webhook, methods=["POST"]),
    ]
    return Starlette(routes=routes)


class Endpoints:
    """uvicorn on a daemon thread with its own loop; ``stop()`` ends it within a few seconds."""

    def __init__(self, feature: ChannelsFeature) -> None:
        self.f = feature
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, bind: str) -> str:
        if self.url is not None:
            return self.url
        import uvicorn

        host, port = parse_bind(bind)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            build_app(self.f),
            log_config=None,
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="stagent-channels-http", daemon=True
        )
        thread.start()
        for _ in range(500):  # up to 5 s
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            server.should_exit = True
            raise RuntimeError(f"the channel endpoints did not start on {bind}")
        self._server, self._thread = server, thread
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{sock.getsockname()[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None
        self.url = None


__all__ = ["Endpoints", "build_app", "parse_bind"]
