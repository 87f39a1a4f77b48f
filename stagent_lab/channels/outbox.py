"""The outbox: every outbound message is a ``channel_deliveries`` row first, then a send.

Engine thread only. Each channel has a FIFO of ready deliveries and at most one send in flight,
at most one post per ``channels.min_interval_s`` (1 s). A failed attempt never blocks the queue:
a retryable failure re-arms the delivery on an engine timer (``min(5 s × 4^(n−1), 1 h)`` ± 20 %,
or a longer ``Retry-After``), so a FakeClock drives backoff in tests. After
``channels.max_attempts`` or a permanent failure the delivery is ``dead`` (``channel_dead_letter``
is logged and one notice per channel per day says so); an auth failure puts the channel in
``error`` and holds its deliveries until ``test()`` succeeds or the channel is re-enabled, for at
most 24 h. Pending and retrying deliveries are re-armed when the engine starts.

Delivery is at least once: a crash between the HTTP success and the commit resends; webhook
receivers dedupe on ``X-Stagent-Delivery`` (the delivery id, the same on every attempt).
"""

from __future__ import annotations

import asyncio
import calendar
import json
import random
from collections import deque
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagent_lab.channels import transports as wire
from stagent_lab.channels.config import Channel, MissingSecret
from stagent_lab.store import channels as repo

if TYPE_CHECKING:
    from stagent_lab.channels.feature import ChannelsFeature

FIRST_DELAY_S = 5.0
MAX_DELAY_S = 3600.0
HELD_FOR = timedelta(hours=24)


def backoff(attempt: int, retry_after: float | None = None, rng: random.Random | None = None):
    """Seconds to wait after failed attempt ``attempt`` (1-based)."""
    base = min(FIRST_DELAY_S * 4 ** (attempt - 1), MAX_DELAY_S)
    delay = base * (rng or random).uniform(0.8, 1.2)
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return min(delay, MAX_DELAY_S)


def unix(when: datetime) -> int:
    return calendar.timegm(when.timetuple())


class Outbox:
    def __init__(self, feature: ChannelsFeature) -> None:
        self.f = feature
        self.rng = random.Random()
        self._queues: dict[str, deque[str]] = {}
        self._busy: set[str] = set()
        self._next_ok: dict[str, datetime] = {}
        self._pace: dict[str, Any] = {}
        self._timers: dict[str, Any] = {}
        self.closed = False

    # ---- queueing ------------------------------------------------------------------------

    def enqueue(self, channel_id: str, delivery_id: str) -> None:
        timer = self._timers.pop(delivery_id, None)
        if timer is not None:
            timer.cancel()
        queue = self._queues.setdefault(channel_id, deque())
        if delivery_id not in queue:
            queue.append(delivery_id)
        self._pump(channel_id)

    def _pump(self, channel_id: str) -> None:
        if self.closed or channel_id in self._busy or not self._queues.get(channel_id):
            return
        self._busy.add(channel_id)
        self.f.spawn(self._run(channel_id))

    async def _run(self, channel_id: str) -> None:
        try:
            queue = self._queues.get(channel_id)
            while queue and not self.closed:
                ready = self._next_ok.get(channel_id)
                if ready is not None and self.f.clock.now() < ready:
                    self._arm_pace(channel_id, ready)
                    return
                delivery_id = queue.popleft()
                try:
                    await self._attempt(delivery_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # one bad delivery must not stop the channel
                    self.f.log_error(f"delivery {delivery_id} failed unexpectedly: {exc!r}")
        finally:
            self._busy.discard(channel_id)

    def _arm_pace(self, channel_id: str, when: datetime) -> None:
        old = self._pace.pop(channel_id, None)
        if old is not None:
            old.cancel()
        self._pace[channel_id] = self.f.service.call_at(
            when, lambda: self._pump(channel_id), f"channel pace {channel_id}"
        )

    def rearm(self) -> None:
        """Engine start: pending deliveries go to their queue, retrying ones to their timer,
        held ones to their 24 h expiry."""
        for row in repo.open_deliveries(self.f.con):
            if row["status"] == "pending":
                self.enqueue(row["channel_id"], row["id"])
            elif row["status"] == "retrying":
                self._retry_at(row["channel_id"], row["id"], row["next_attempt_at"])
            else:
                self._held_timer(row["id"], row["held_at"] or self.f.clock.now())

    def stop(self) -> None:
        self.closed = True
        for timer in [*self._timers.values(), *self._pace.values()]:
            timer.cancel()

    # ---- one attempt ---------------------------------------------------------------------

    async def _attempt(self, delivery_id: str) -> None:
        row = repo.get_delivery(self.f.con, delivery_id)
        if row is None or row["status"] not in ("pending", "retrying"):
            return
        ch = self.f.channel(row["channel_id"])
        if ch is None:
            self._dead(None, row, row["attempts"], "channel removed", None, notice=False)
            return
        if ch.status != "active":
            self._hold(row, f"channel is {ch.status}: {ch.status_reason or ''}".strip(": "))
            return
        payload = json.loads(row["payload"] or "{}")
        try:
            sent = await self._send(ch, row, payload)
        except MissingSecret as exc:
            self.f.set_status(ch.id, "error", str(exc))
            self._hold(row, str(exc))
            return
        except wire.TransportError as exc:
            self._failed(ch, row, exc)
            return
        finally:
            interval = float(self.f.setting("channels.min_interval_s"))
            if interval > 0:
                self._next_ok[ch.id] = self.f.clock.now() + timedelta(seconds=interval)
        self._sent(ch, row, sent)

    async def _send(self, ch: Channel, row: dict[str, Any], payload: dict[str, Any]) -> wire.Sent:
        client = self.f.client
        if ch.type == "slack":
            token = self.f.secret(ch, "bot_token")
            return await wire.slack_post(client, ch.settings, token, payload)
        if ch.type == "telegram":
            token = self.f.secret(ch, "bot_token")
            return await wire.telegram_send(client, ch.settings, token, payload)
        secret = self.f.webhook_secret(ch)
        headers = {
            name: self.f.secret(ch, f"headers.{name}", env)
            for name, env in ch.secrets.headers.items()
        }
        body = wire.webhook_body(row["id"], self.f.workspace_name, payload)
        stamp = str(unix(self.f.clock.now()))
        return await wire.webhook_send(
            client, ch.settings, secret, headers, row["id"], body, row["event"], stamp
        )

    # ---- outcomes ------------------------------------------------------------------------

    def _sent(self, ch: Channel, row: dict[str, Any], sent: wire.Sent) -> None:
        now = self.f.clock.now()
        fields = {
            "status": "sent",
            "attempts": row["attempts"] + 1,
            "external_id": sent.external_id,
            "thread_ref": row["thread_ref"] or sent.thread_ref,
            "http_status": sent.http_status,
            "next_attempt_at": None,
            "done_at": now,
        }
        opened = ch.type == "slack" and sent.external_id and not row["thread_ref"]
        self.f.service.log_subject(
            "channel",
            ch.id,
            "channel_delivered",
            delivery_id=row["id"],
            delivery_event=row["event"],
            external_id=sent.external_id,
        )

        def write(con: Any) -> None:
            repo.update_delivery(con, row["id"], fields)
            repo.update_config(con, ch.id, {"last_ok_at": now})
            if opened and row["event"] == "inbox.pending":
                stream = f"replies:{sent.external_id}"
                if repo.get_cursor(con, ch.id, stream) is None:
                    repo.set_cursor(con, ch.id, stream, str(sent.external_id), now)

        self.f.write(write)
        ch.last_ok_at = now

    def _failed(self, ch: Channel, row: dict[str, Any], exc: wire.TransportError) -> None:
        attempts = row["attempts"] + 1
        error = self.f.clean(str(exc))
        if exc.auth:
            self.f.set_status(ch.id, "error", error)
            self._hold(row, error, attempts=attempts, http_status=exc.http_status)
            return
        limit = int(self.f.setting("channels.max_attempts"))
        if not exc.retryable or attempts >= limit:
            self._dead(ch, row, attempts, error, exc.http_status)
            return
        now = self.f.clock.now()
        when = now + timedelta(seconds=backoff(attempts, exc.retry_after, self.rng))
        self.f.service.log_subject(
            "channel",
            ch.id,
            "channel_delivery_failed",
            delivery_id=row["id"],
            attempt=attempts,
            error=error,
            http_status=exc.http_status,
            next_attempt_at=when.isoformat(),
        )
        fields = {
            "status": "retrying",
            "attempts": attempts,
            "last_error": error,
            "http_status": exc.http_status,
            "next_attempt_at": when,
        }
        self.f.write(lambda con: repo.update_delivery(con, row["id"], fields))
        self.f.write(lambda con: repo.update_config(con, ch.id, {"last_error": error}))
        self._retry_at(ch.id, row["id"], when)

    def _retry_at(self, channel_id: str, delivery_id: str, when: datetime | None) -> None:
        when = when or self.f.clock.now()
        old = self._timers.pop(delivery_id, None)
        if old is not None:
            old.cancel()
        self._timers[delivery_id] = self.f.service.call_at(
            when, lambda: self.enqueue(channel_id, delivery_id), f"channel retry {delivery_id}"
        )

    def _hold(
        self,
        row: dict[str, Any],
        reason: str,
        *,
        attempts: int | None = None,
        http_status: int | None = None,
    ) -> None:
        held_at = row["held_at"] or self.f.clock.now()
        fields: dict[str, Any] = {"status": "held", "held_at": held_at, "last_error": reason}
        if attempts is not None:
            fields["attempts"] = attempts
        if http_status is not None:
            fields["http_status"] = http_status
        self.f.write(lambda con: repo.update_delivery(con, row["id"], fields))
        self._held_timer(row["id"], held_at)

    def _held_timer(self, delivery_id: str, held_at: datetime) -> None:
        old = self._timers.pop(delivery_id, None)
        if old is not None:
            old.cancel()
        self._timers[delivery_id] = self.f.service.call_at(
            held_at + HELD_FOR, lambda: self._expire_held(delivery_id), "channel held expiry"
        )

    def _expire_held(self, delivery_id: str) -> None:
        self._timers.pop(delivery_id, None)
        row = repo.get_delivery(self.f.con, delivery_id)
        if row is None or row["status"] != "held":
            return
        error = f"held for 24 h ({row['last_error'] or 'channel not active'})"
        self._dead(self.f.channel(row["channel_id"]), row, row["attempts"], error, None)

    def _dead(
        self,
        ch: Channel | None,
        row: dict[str, Any],
        attempts: int,
        error: str,
        http_status: int | None,
        *,
        notice: bool = True,
    ) -> None:
        now = self.f.clock.now()
        fields = {
            "status": "dead",
            "attempts": attempts,
            "last_error": error,
            "next_attempt_at": None,
            "done_at": now,
        }
        if http_status is not None:
            fields["http_status"] = http_status
        self.f.service.log_subject(
            "channel",
            row["channel_id"],
            "channel_dead_letter",
            delivery_id=row["id"],
            delivery_event=row["event"],
            attempts=attempts,
            error=error,
            http_status=http_status,
        )
        self.f.write(lambda con: repo.update_delivery(con, row["id"], fields))
        if ch is not None:
            self.f.write(lambda con: repo.update_config(con, ch.id, {"last_error": error}))
            if notice:
                self._notice(ch, now)

    def _notice(self, ch: Channel, now: datetime) -> None:
        """One notice per channel per (UTC) day about dead deliveries."""
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if repo.notice_since(self.f.con, ch.id, day):
            return
        self.f.service.create_inbox_item(
            "notice",
            subject="channel",
            subject_id=ch.id,
            body=(
                f"Channel {ch.name} ({ch.type}): a delivery could not be sent and is dead. "
                f"See lab.channels.deliveries(channel={ch.name!r}, status='dead') and "
                "redeliver with lab.channels.redeliver(delivery_id). This notice is sent once "
                "a day per channel."
            ),
        )

    # ---- operator actions ----------------------------------------------------------------

    def release_held(self, channel_id: str) -> int:
        """Held deliveries of a channel that works again go back to its queue."""
        ids = repo.held_ids(self.f.con, channel_id)
        if not ids:
            return 0

        def write(con: Any) -> None:
            for did in ids:
                repo.update_delivery(con, did, {"status": "pending", "held_at": None})

        self.f.write(write)
        for did in ids:
            self.enqueue(channel_id, did)
        return len(ids)

    def redeliver(self, delivery_id: str) -> dict[str, Any]:
        row = repo.get_delivery(self.f.con, delivery_id)
        if row is None or row["direction"] != "out":
            raise KeyError(f"no outbound delivery with id {delivery_id!r}")
        if row["status"] != "dead":
            raise ValueError(
                f"delivery {delivery_id} is {row['status']}; only dead deliveries are redelivered"
            )
        if self.f.channel(row["channel_id"]) is None:
            raise ValueError(f"the channel of delivery {delivery_id} was removed")
        fields = {"status": "pending", "attempts": 0, "next_attempt_at": None, "done_at": None}
        self.f.write(lambda con: repo.update_delivery(con, delivery_id, fields))
        self.enqueue(row["channel_id"], delivery_id)
        return {"delivery_id": delivery_id, "status": "pending"}


__all__ = ["Outbox", "backoff"]
