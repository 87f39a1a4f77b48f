"""Telegram inbound: long polling (``getUpdates``) and the webhook's updates.

**Poll**: ``getUpdates {offset: <cursor>, timeout: poll_timeout_s, limit: 100, allowed_updates:
[message, callback_query]}`` with an HTTP timeout of ``poll_timeout_s + 10`` s. Updates are
processed in ``update_id`` order; each commits ``cursor = update_id + 1`` with its effect, and
the next call confirms them to Telegram, so a crash before a commit gets the update again and
its dedupe key makes it a no-op. The first start asks ``offset: -1`` and starts after the newest
update: the backlog is not processed. Network errors back off 1, 2, 4 … 60 s on engine timers;
``409 Conflict`` (a webhook is set) puts the channel in ``error`` naming the way out.

**Webhook** (service only): ``add`` / ``enable`` call ``setWebhook`` with the secret token; the
endpoint checks ``X-Telegram-Bot-Api-Secret-Token`` and hands the update here.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from stagent_lab.channels import parse
from stagent_lab.channels.config import Channel, MissingSecret
from stagent_lab.channels.inbound import Incoming
from stagent_lab.channels.transports import TransportError, telegram_call
from stagent_lab.store import channels as repo

if TYPE_CHECKING:
    from stagent_lab.channels.feature import ChannelsFeature

ALLOWED_UPDATES = ["message", "callback_query"]
MAX_BACKOFF_S = 60.0
CONFLICT = (
    "409 Conflict: a webhook is set for this bot, so getUpdates is refused; call deleteWebhook "
    "(or set inbound='webhook')"
)


def incoming(f: ChannelsFeature, ch: Channel, update: dict[str, Any]) -> Incoming:
    uid = int(update["update_id"])
    key, cursor = str(uid), ("updates", str(uid + 1))
    bot = f.identity(ch.id)
    cq = update.get("callback_query")
    if isinstance(cq, dict):
        sender = cq.get("from") or {}
        message = cq.get("message") or {}
        chat = str((message.get("chat") or {}).get("id", "") or "")
        mid = str(message.get("message_id", "") or "")
        choice = parse.button(str(cq.get("data") or ""))
        ignore = "bot" if sender.get("is_bot") else (None if choice else "unknown button")
        return Incoming(
            key=key,
            external_id=str(cq.get("id")),
            sender=str(sender.get("id", "")) or None,
            text="",
            ref=mid or None,
            reply_thread=f"{chat}:{mid}" if chat and mid else None,
            chat=chat or None,
            ignore=ignore,
            button=choice,
            callback_id=str(cq.get("id")) if cq.get("id") else None,
            top_level=False,
            cursor=cursor,
        )
    message = update.get("message")
    if not isinstance(message, dict):
        return Incoming(key=key, external_id=None, sender=None, text="", ignore="not a message",
                        cursor=cursor)  # fmt: skip
    sender = message.get("from") or {}
    chat = str((message.get("chat") or {}).get("id", "") or "")
    text = str(message.get("text") or message.get("caption") or "")
    reply = message.get("reply_to_message")
    mid = str(message.get("message_id", ""))
    ignore = "bot" if sender.get("is_bot") else (None if text.strip() else "no text")
    return Incoming(
        key=key,
        external_id=mid,
        sender=str(sender.get("id", "")) or None,
        text=text,
        ref=str(reply.get("message_id")) if isinstance(reply, dict) else None,
        reply_thread=f"{chat}:{mid}" if chat else None,
        chat=chat or None,
        ignore=ignore,
        top_level=not isinstance(reply, dict),
        mentioned=parse.mentions(text, None, bot.get("username")),
        cursor=cursor,
    )


class TelegramPoller:
    def __init__(self, feature: ChannelsFeature, channel_id: str) -> None:
        self.f = feature
        self.channel_id = channel_id
        self.stopped = False
        self._task: asyncio.Task[Any] | None = None
        self._timer: Any = None
        self.backoff = 1.0

    def start(self) -> None:
        self._task = self.f.spawn(self.run())

    def stop(self, cancel: bool = True) -> None:
        """Stop polling; ``cancel=False`` lets a call in flight finish (the workspace closing
        waits for it briefly, so no connection is cut half-way)."""
        self.stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if cancel and self._task is not None:
            self._task.cancel()

    async def _sleep(self, seconds: float) -> None:
        """Wait on the engine clock (a FakeClock drives it in tests)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        self._timer = self.f.service.call_after(
            seconds, wake, f"telegram backoff {self.channel_id}"
        )
        await done

    async def run(self) -> None:
        while not self.stopped:
            ch = self.f.channel(self.channel_id)
            if ch is None or ch.status != "active" or ch.inbound != "poll":
                return
            try:
                await self.once(ch)
                self.backoff = 1.0
            except MissingSecret as exc:
                self.f.set_status(ch.id, "error", str(exc))
                return
            except TransportError as exc:
                if exc.auth:
                    self.f.set_status(ch.id, "error", self.f.clean(str(exc)))
                    return
                if exc.code == "conflict":
                    self.f.set_status(ch.id, "error", CONFLICT)
                    return
                self.f.note_error(ch, self.f.clean(str(exc)))
                wait = max(exc.retry_after or 0.0, self.backoff)
                self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)
                await self._sleep(wait)
            except Exception as exc:  # a bug must not stop polling for good
                self.f.log_error(f"telegram poll of {ch.name} failed: {exc!r}")
                self.f.note_error(ch, self.f.clean(repr(exc))[:300])
                await self._sleep(self.backoff)
                self.backoff = min(self.backoff * 2, MAX_BACKOFF_S)

    async def once(self, ch: Channel) -> None:
        token = self.f.secret(ch, "bot_token")
        await self.f.ensure_identity(ch)
        settings = ch.settings
        cursor = repo.get_cursor(self.f.con, ch.id, "updates")
        if cursor is None:  # first start: skip the backlog
            updates = await telegram_call(
                self.f.client, settings.api_base, token, "getUpdates",
                {"offset": -1, "timeout": 0, "allowed_updates": ALLOWED_UPDATES},
                timeout=settings.timeout_s,
            )  # fmt: skip
            ids = [int(u["update_id"]) for u in updates or [] if isinstance(u, dict)]
            start = str(max(ids) + 1) if ids else "0"
            now = self.f.clock.now()
            self.f.write(lambda con: repo.set_cursor(con, ch.id, "updates", start, now))
            return
        updates = await telegram_call(
            self.f.client,
            settings.api_base,
            token,
            "getUpdates",
            {
                "offset": int(cursor),
                "timeout": settings.poll_timeout_s,
                "limit": 100,
                "allowed_updates": ALLOWED_UPDATES,
            },
            timeout=settings.poll_timeout_s + 10,
        )
        batch = sorted(
            (u for u in updates or [] if isinstance(u, dict) and "update_id" in u),
            key=lambda u: int(u["update_id"]),
        )
        for update in batch:
            if self.stopped:
                return
            if int(update["update_id"]) < int(cursor):
                continue
            self.f.receive(ch, incoming(self.f, ch, update))


async def set_webhook(f: ChannelsFeature, ch: Channel) -> None:
    """Register the webhook with its secret token (``add`` / ``enable`` with inbound=webhook)."""
    try:
        token = f.secret(ch, "bot_token")
        secret = f.secret(ch, "webhook_secret")
        await telegram_call(
            f.client,
            ch.settings.api_base,
            token,
            "setWebhook",
            {
                "url": ch.settings.webhook_url,
                "secret_token": secret,
                "allowed_updates": ALLOWED_UPDATES,
            },
            timeout=ch.settings.timeout_s,
        )
    except MissingSecret as exc:
        f.set_status(ch.id, "error", str(exc))
    except TransportError as exc:
        f.set_status(ch.id, "error", f"setWebhook failed: {f.clean(str(exc))}")


def handle_update(f: ChannelsFeature, channel_id: str, update: dict[str, Any]) -> None:
    """A webhook update (already verified), on the engine thread."""
    ch = f.channel(channel_id)
    if ch is None or ch.status != "active" or "update_id" not in update:
        return
    msg = incoming(f, ch, update)
    msg.cursor = None
    f.receive(ch, msg)


__all__ = ["TelegramPoller", "handle_update", "incoming", "set_webhook"]
