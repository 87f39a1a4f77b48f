"""Slack inbound: polling (``conversations.history`` and the replies of watched threads) and the
Events API's messages.

**Poll** (``inbound=poll``), every ``poll_interval_s`` on an engine timer: new top-level
messages since the ``history`` cursor, oldest first (the first start sets the cursor to the
newest message, so old messages never replay), then up to 10 watched threads per tick, round
robin: our messages for pending inbox items and the threads of live tasks started here, each
from its ``replies:<root ts>`` cursor. Every message commits with its cursor. A 429 waits for
``Retry-After`` (and logs a notice); an auth error puts the channel in ``error``.

**Events** (``inbound=events``): the HTTP endpoint verifies the request and hands the event here;
messages are processed the same way, without cursors (Slack's retries dedupe on
``<channel>:<ts>``).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from stagent_lab.channels import parse
from stagent_lab.channels.config import Channel, MissingSecret
from stagent_lab.channels.inbound import Incoming
from stagent_lab.channels.transports import TransportError, slack_call
from stagent_lab.store import channels as repo

if TYPE_CHECKING:
    from stagent_lab.channels.feature import ChannelsFeature

THREADS_PER_TICK = 10
MAX_PAGES = 20


def ts_key(ts: Any) -> Decimal:
    try:
        return Decimal(str(ts))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def incoming(f: ChannelsFeature, ch: Channel, m: dict[str, Any], stream: str | None) -> Incoming:
    ts = str(m.get("ts") or "")
    thread = m.get("thread_ts")
    top = not thread or str(thread) == ts
    bot = f.identity(ch.id)
    ignore = None
    if m.get("bot_id") or (bot.get("user_id") and m.get("user") == bot["user_id"]):
        ignore = "bot message"
    elif m.get("subtype") and m["subtype"] != "thread_broadcast":
        ignore = f"subtype {m['subtype']}"
    elif not m.get("user"):
        ignore = "no sender"
    text = str(m.get("text") or "")
    return Incoming(
        key=f"{ch.settings.channel}:{ts}",
        external_id=ts,
        sender=str(m["user"]) if m.get("user") else None,
        text=text,
        ref=None if top else str(thread),
        reply_thread=ts if top else str(thread),
        ignore=ignore,
        top_level=top,
        mentioned=parse.mentions(text, bot.get("user_id")),
        cursor=(stream, ts) if stream else None,
    )


class SlackPoller:
    def __init__(self, feature: ChannelsFeature, channel_id: str) -> None:
        self.f = feature
        self.channel_id = channel_id
        self.stopped = False
        self._timer: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._round = 0

    def start(self) -> None:
        self._schedule(0)

    def stop(self, cancel: bool = True) -> None:
        """Stop polling; ``cancel=False`` lets a call in flight finish (the workspace closing
        waits for it briefly, so no connection is cut half-way)."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if cancel and self._task is not None:
            self._task.cancel()

    def _schedule(self, delay: float) -> None:
        if not self.stopped:
            self._timer = self.f.service.call_after(
                delay, self._fire, f"slack poll {self.channel_id}"
            )

    def _fire(self) -> None:
        if self.stopped or (self._task is not None and not self._task.done()):
            return
        self._task = self.f.spawn(self.tick())

    async def tick(self) -> None:
        ch = self.f.channel(self.channel_id)
        if self.stopped or ch is None or ch.status != "active" or ch.inbound != "poll":
            return
        delay: float | None = ch.settings.poll_interval_s
        try:
            token = self.f.secret(ch, "bot_token")
            await self.f.ensure_identity(ch)
            await self._history(ch, token)
            await self._threads(ch, token)
        except MissingSecret as exc:
            self.f.set_status(ch.id, "error", str(exc))
            delay = None
        except TransportError as exc:
            if exc.auth:
                self.f.set_status(ch.id, "error", self.f.clean(str(exc)))
                delay = None
            elif exc.http_status == 429 or exc.code == "ratelimited":
                wait = max(exc.retry_after or 0.0, ch.settings.poll_interval_s)
                self.f.log(ch, "notice", message=f"Slack rate limit: polling again in {wait:g} s")
                delay = wait
            else:
                self.f.note_error(ch, self.f.clean(str(exc)))
        except Exception as exc:  # a bug must not stop polling for good
            self.f.log_error(f"slack poll of {ch.name} failed: {exc!r}")
            self.f.note_error(ch, self.f.clean(repr(exc))[:300])
        finally:
            if delay is not None:
                self._schedule(delay)

    async def _pages(
        self, ch: Channel, token: str, method: str, params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = None
        for _ in range(MAX_PAGES):
            args = dict(params, cursor=page) if page else params
            body = await slack_call(
                self.f.client, ch.settings.api_base, token, method, args,
                timeout=ch.settings.timeout_s,
            )  # fmt: skip
            out += [m for m in body.get("messages") or [] if isinstance(m, dict)]
            page = (body.get("response_metadata") or {}).get("next_cursor")
            if not body.get("has_more") or not page:
                break
        return out

    async def _history(self, ch: Channel, token: str) -> None:
        cursor = repo.get_cursor(self.f.con, ch.id, "history")
        channel = ch.settings.channel
        if cursor is None:  # first start: skip the backlog
            body = await slack_call(
                self.f.client, ch.settings.api_base, token, "conversations.history",
                {"channel": channel, "limit": 1}, timeout=ch.settings.timeout_s,
            )  # fmt: skip
            stamps = [str(m.get("ts")) for m in body.get("messages") or [] if m.get("ts")]
            newest = max(stamps, key=ts_key) if stamps else "0"
            now = self.f.clock.now()
            self.f.write(lambda con: repo.set_cursor(con, ch.id, "history", newest, now))
            return
        messages = await self._pages(
            ch,
            token,
            "conversations.history",
            {"channel": channel, "oldest": cursor, "inclusive": "false", "limit": 100},
        )
        self._process(ch, messages, "history", ts_key(cursor))

    async def _threads(self, ch: Channel, token: str) -> None:
        roots = repo.watched_threads(self.f.con, ch.id, ch.settings.max_watched_threads)
        if not roots:
            return
        n = min(THREADS_PER_TICK, len(roots))
        start = self._round % len(roots)
        self._round = start + n
        for root in [roots[(start + i) % len(roots)] for i in range(n)]:
            if self.stopped:
                return
            stream = f"replies:{root}"
            cursor = repo.get_cursor(self.f.con, ch.id, stream) or root
            replies = await self._pages(
                ch,
                token,
                "conversations.replies",
                {
                    "channel": ch.settings.channel,
                    "ts": root,
                    "oldest": cursor,
                    "inclusive": "false",
                    "limit": 100,
                },
            )
            replies = [m for m in replies if str(m.get("ts")) != root]
            self._process(ch, replies, stream, ts_key(cursor))

    def _process(
        self, ch: Channel, messages: list[dict[str, Any]], stream: str, after: Decimal
    ) -> None:
        fresh = sorted(
            (m for m in messages if ts_key(m.get("ts")) > after), key=lambda m: ts_key(m["ts"])
        )
        seen = set()
        for m in fresh:
            if self.stopped:
                return
            if m["ts"] in seen:
                continue
            seen.add(m["ts"])
            self.f.receive(ch, incoming(self.f, ch, m, stream))


def handle_event(f: ChannelsFeature, channel_id: str, payload: dict[str, Any]) -> None:
    """An Events API ``event_callback`` (already verified), on the engine thread."""
    ch = f.channel(channel_id)
    event = payload.get("event")
    if ch is None or ch.status != "active" or not isinstance(event, dict):
        return
    if event.get("type") not in ("message", "app_mention"):
        return
    if event.get("channel") and event["channel"] != ch.settings.channel:
        return
    f.receive(ch, incoming(f, ch, event, None))


__all__ = ["SlackPoller", "handle_event", "incoming", "ts_key"]
