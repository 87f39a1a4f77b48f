"""Channels as a feature of the workspace service: the configs, the outbox, the router, the
inbound pollers and endpoints, and the requests behind ``lab.channels``.

Everything that changes channel state runs on the engine thread; request handlers validate on
the caller's thread and hand over with ``service.on_engine``. The config cache is replaced, not
mutated, so the monitor and the HTTP thread read it without a lock.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from typing import TYPE_CHECKING, Any

from stagent_lab._text import repair_text
from stagent_lab.api import channels as api
from stagent_lab.channels import transports
from stagent_lab.channels.config import (
    WEBHOOK_SECRET,
    Channel,
    MissingSecret,
    env_value,
    from_row,
    to_row,
)
from stagent_lab.channels.inbound import Inbound, Incoming
from stagent_lab.channels.outbox import Outbox
from stagent_lab.channels.router import Router
from stagent_lab.config import SettingSpec
from stagent_lab.engine.task import new_id
from stagent_lab.store import channels as repo

if TYPE_CHECKING:
    from stagent_lab.service.core import WorkspaceService

log = logging.getLogger("stagent_lab.channels")
MIN_WEBHOOK_SECRET = 32
GRACE_S = 1.0  # on close, how long HTTP calls in flight may finish before they are cancelled


def _check_bind(value: Any) -> None:
    from stagent_lab.channels.http import parse_bind

    parse_bind(str(value))


SETTINGS = (
    SettingSpec(
        "channels.max_attempts", "int", 6, "send attempts before a delivery is dead", 1, 50
    ),
    SettingSpec(
        "channels.result_chars", "int", 1500, "result characters in task messages", 0, 3000
    ),
    SettingSpec(
        "channels.max_concurrent_tasks", "int", 2, "running slots of channel tasks", 1, 256
    ),
    SettingSpec(
        "channels.max_tasks_per_sender_per_hour",
        "int",
        20,
        "tasks one sender may start per hour",
        0,
        100_000,
    ),
    SettingSpec(
        "channels.replay_window_s", "float", 300.0, "age limit of signed webhooks", 10, 3600
    ),
    SettingSpec(
        "channels.http_bind",
        "str",
        "127.0.0.1:8765",
        "host:port of the inbound endpoints (service only)",
        check=_check_bind,
    ),
    SettingSpec(
        "channels.min_interval_s", "float", 1.0, "seconds between two posts to a channel", 0, 60
    ),
)


class ChannelsFeature:
    name = "channels"
    migrations = repo.MIGRATIONS
    settings = SETTINGS

    def __init__(self) -> None:
        self.service: WorkspaceService
        self._channels: dict[str, Channel] = {}
        self._identity: dict[str, dict[str, Any]] = {}
        self._pollers: dict[str, Any] = {}
        self._unsubscribe: Any = None
        self._tasks: set[Any] = set()
        self._closing = False
        self.client: Any = None
        self.active = False
        self.outbox = Outbox(self)
        self.router = Router(self)
        self.inbound = Inbound(self)
        self.endpoints: Any = None

    # ---- plumbing used by the parts (engine thread unless said) ------------------------

    @property
    def con(self) -> Any:
        return self.service.reader()

    @property
    def clock(self) -> Any:
        return self.service.clock

    @property
    def workspace_name(self) -> str:
        return self.service.home.name

    def setting(self, key: str) -> Any:
        return self.service.settings.value(key)

    def write(self, fn: Any) -> None:
        self.service.writer_flush(fn)

    def clean(self, text: str) -> str:
        return self.service.redact(repair_text(str(text)))

    def clean_tree(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.clean(value)
        if isinstance(value, dict):
            return {k: self.clean_tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean_tree(v) for v in value]
        return value

    def spawn(self, coro: Any) -> Any:
        """A coroutine on the engine loop, cancelled and awaited when the workspace closes
        (so no HTTP call is left half-done with its connection open). None once closing."""
        if self._closing:
            coro.close()
            return None
        task = self.service.spawn(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def log(self, ch: Channel, event: str, **payload: Any) -> None:
        self.service.log_subject("channel", ch.id, event, **payload)

    def log_error(self, message: str) -> None:
        log.error("%s", self.clean(message))

    def channel(self, channel_id: str) -> Channel | None:
        """A channel by id (any thread)."""
        return self._channels.get(channel_id)

    def find(self, ref: str) -> Channel | None:
        """A channel by id or name (any thread)."""
        channels = self._channels
        if ref in channels:
            return channels[ref]
        return next((c for c in channels.values() if c.name == ref), None)

    def routable(self) -> list[Channel]:
        return [c for c in self._channels.values() if c.status != "disabled"]

    def any_routable(self) -> bool:
        """Whether any channel could take a message (any thread; called for every event)."""
        return any(c.status != "disabled" for c in self._channels.values())

    def _replace(self, ch: Channel | None, remove: str | None = None) -> None:
        channels = dict(self._channels)
        if remove:
            channels.pop(remove, None)
        if ch is not None:
            channels[ch.id] = ch
        self._channels = channels

    def secret(self, ch: Channel, role: str, env: str | None = None) -> str:
        """The value of a channel secret, read from the environment now (any thread); it joins
        redaction before anything can print it."""
        if env is None:
            env = getattr(ch.secrets, role, None)
        value = env_value(role, env)
        self.service.redact.add({f"channel:{ch.name}:{role}": value})
        if role == "webhook_secret" and not WEBHOOK_SECRET.match(value):
            raise MissingSecret(role, str(env), "must be 1-256 characters of A-Za-z0-9_-")
        return value

    def webhook_secret(self, ch: Channel) -> str:
        value = self.secret(ch, "secret")
        if len(value) < MIN_WEBHOOK_SECRET:
            raise MissingSecret("secret", ch.secrets.secret, "is shorter than 32 characters")
        return value

    def identity(self, channel_id: str) -> dict[str, Any]:
        return self._identity.get(channel_id, {})

    async def ensure_identity(self, ch: Channel, force: bool = False) -> dict[str, Any]:
        """The bot's own ids (Slack ``auth.test``, Telegram ``getMe``), fetched once."""
        if ch.id in self._identity and not force:
            return self._identity[ch.id]
        token = self.secret(ch, "bot_token")
        if ch.type == "slack":
            body = await transports.slack_call(
                self.client, ch.settings.api_base, token, "auth.test", {},
                timeout=ch.settings.timeout_s, post=True,
            )  # fmt: skip
            ident = {"user_id": body.get("user_id"), "bot_id": body.get("bot_id")}
        else:
            me = await transports.telegram_call(
                self.client, ch.settings.api_base, token, "getMe", {},
                timeout=ch.settings.timeout_s,
            )  # fmt: skip
            me = me if isinstance(me, dict) else {}
            ident = {"user_id": str(me.get("id", "")), "username": me.get("username")}
        self._identity[ch.id] = ident
        return ident

    def set_status(self, channel_id: str, status: str, reason: str | None) -> None:
        """Move a channel to active / disabled / error (engine thread); logs channel_status."""
        ch = self._channels.get(channel_id)
        if ch is None or (ch.status == status and ch.status_reason == reason):
            return
        before = ch.status
        now = self.clock.now()
        ch.status, ch.status_reason, ch.updated_at = status, reason, now
        if status == "error":
            ch.last_error = reason
        self.log(ch, "channel_status", **{"from": before, "to": status, "reason": reason})
        fields = {"status": status, "status_reason": reason, "updated_at": now}
        if status == "error":
            fields["last_error"] = reason
        self.write(lambda con: repo.update_config(con, channel_id, fields))
        if status == "active":
            if self.active:
                self.outbox.release_held(channel_id)
            self._start_inbound(ch)
        else:
            self._stop_inbound(channel_id)

    def note_error(self, ch: Channel, error: str) -> None:
        ch.last_error = error
        self.write(lambda con: repo.update_config(con, ch.id, {"last_error": error}))

    def receive(self, ch: Channel, msg: Incoming) -> None:
        """One inbound message; a message that breaks the pipeline is recorded and skipped,
        so it cannot block the messages after it."""
        try:
            self.inbound.handle(ch, msg)
        except Exception as exc:
            traceback.print_exc()
            self.log_error(f"channel {ch.name}: message {msg.key} could not be processed: {exc}")
            row = self.inbound.row_for(ch, msg)
            row.update(status="ignored", outcome={"error": self.clean(repr(exc))[:300]})

            def skip(con: Any) -> None:
                repo.insert_delivery(con, row)
                if msg.cursor:
                    repo.set_cursor(con, ch.id, msg.cursor[0], msg.cursor[1], self.clock.now())

            self.write(skip)

    def insert_out(self, rows: list[dict[str, Any]]) -> None:
        """Commit new outbound rows (duplicates by dedupe key are skipped), then queue them."""
        stored: list[dict[str, Any]] = []

        def write(con: Any) -> None:
            for row in rows:
                if repo.insert_delivery(con, row):
                    stored.append(row)

        self.write(write)
        self.queue_out(stored)

    def queue_out(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            if row["status"] == "pending":
                self.outbox.enqueue(row["channel_id"], row["id"])
            elif row["status"] == "held":
                self.outbox._held_timer(row["id"], row["held_at"])

    def answer_callback(self, ch: Channel, callback_id: str, text: str) -> None:
        """Telegram needs every button press answered (else the button spins)."""

        async def answer() -> None:
            try:
                token = self.secret(ch, "bot_token")
                await transports.telegram_call(
                    self.client, ch.settings.api_base, token, "answerCallbackQuery",
                    {"callback_query_id": callback_id, "text": text},
                    timeout=ch.settings.timeout_s,
                )  # fmt: skip
            except (MissingSecret, transports.TransportError) as exc:
                self.note_error(ch, self.clean(f"answerCallbackQuery: {exc}"))

        self.spawn(answer())

    # ---- wiring ------------------------------------------------------------------------

    def attach(self, service: WorkspaceService) -> None:
        from stagent_lab.channels import requests

        self.service = service
        transports.install_log_filter()
        service.hooks.started.append(self._started)
        service.hooks.stopping.append(self._stopping)
        service.set_pool_limit(
            "channel", lambda: int(service.settings.value("channels.max_concurrent_tasks"))
        )
        service.add_monitor_section("channels", self.health_rows)
        service.keep_alive.append(self._keep_alive)
        requests.register(self, service)

    def _keep_alive(self) -> str | None:
        """Channels that listen (pollers, the HTTP endpoints) keep the service up: a message
        sent to an agent must find someone there with no notebook open."""
        reasons = []
        if self._pollers:
            reasons.append(f"{len(self._pollers)} channel poller(s)")
        if self.endpoints is not None:
            reasons.append("channel endpoints")
        return ", ".join(reasons) or None

    def _started(self) -> None:
        import httpx

        self.client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        for row in repo.all_configs(self.service.store.con):
            try:
                ch = from_row(row)
            except Exception as exc:  # a config that no longer validates stays visible
                self.log_error(f"channel {row['name']} cannot be loaded: {exc}")
                continue
            self._replace(ch)
        if not self.service.automation:
            return
        self.active = True
        self._unsubscribe = self.service.subscribe(self.router.on_event)
        self.outbox.rearm()
        self.router.sweep_all()
        for ch in list(self._channels.values()):
            self._start_inbound(ch)
        if self.service.daemon:
            try:
                self.start_endpoints(None)
            except (OSError, RuntimeError, ValueError) as exc:
                self.log_error(f"channel endpoints not started: {exc}")

    async def _stopping(self) -> None:
        import asyncio

        self.active = False
        self._closing = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        for poller in self._pollers.values():
            poller.stop(cancel=False)
        self._pollers.clear()
        self.outbox.stop()
        pending = [t for t in self._tasks if not t.done()]
        if pending:  # calls in flight may finish (up to 1 s), the rest are cancelled
            _done, pending = await asyncio.wait(pending, timeout=GRACE_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        if self.endpoints is not None:
            await asyncio.to_thread(self.endpoints.stop)
        if self.client is not None:
            await self.client.aclose()

    def _start_inbound(self, ch: Channel) -> None:
        from stagent_lab.channels.slack_inbound import SlackPoller
        from stagent_lab.channels.telegram_inbound import TelegramPoller

        self._stop_inbound(ch.id)
        if not self.active or ch.status != "active":
            return
        poller: Any = None
        if ch.type == "slack" and ch.inbound == "poll":
            poller = SlackPoller(self, ch.id)
        elif ch.type == "telegram" and ch.inbound == "poll":
            poller = TelegramPoller(self, ch.id)
        elif ch.type in ("slack", "telegram") and ch.inbound != "off":
            self.spawn(self._identify(ch))
        if poller is not None:
            self._pollers[ch.id] = poller
            poller.start()

    async def _identify(self, ch: Channel) -> None:
        try:
            await self.ensure_identity(ch, force=True)
        except MissingSecret as exc:
            self.set_status(ch.id, "error", str(exc))
        except transports.TransportError as exc:
            if exc.auth:
                self.set_status(ch.id, "error", self.clean(str(exc)))
            else:
                self.note_error(ch, self.clean(str(exc)))

    def _stop_inbound(self, channel_id: str) -> None:
        poller = self._pollers.pop(channel_id, None)
        if poller is not None:
            poller.stop()

    def start_endpoints(self, bind: str | None) -> str:
        from stagent_lab.channels.http import Endpoints

        if self.endpoints is None:
            self.endpoints = Endpoints(self)
        return self.endpoints.start(bind or str(self.setting("channels.http_bind")))

    # ---- views -------------------------------------------------------------------------

    def view(self, ch: Channel) -> api.ChannelView:
        def ref(env: str) -> dict[str, Any]:
            return {"env": env, "set": bool(os.environ.get(env, "").strip())}

        secrets: dict[str, Any] = {}
        for role, env in ch.env_names().items():
            if isinstance(env, dict):
                secrets[role] = {h: ref(e) for h, e in env.items()}
            else:
                secrets[role] = ref(env)
        return api.ChannelView(
            id=ch.id,
            name=ch.name,
            type=ch.type,
            direction=ch.direction,
            status=ch.status,
            status_reason=ch.status_reason,
            settings=ch.settings.model_dump(),
            secrets=secrets,
            events=list(ch.events),
            filter=ch.filter.model_dump() if ch.filter else None,
            allowed_senders=list(ch.allowed_senders),
            approvers=None if ch.approvers is None else list(ch.approvers),
            allow_always=ch.allow_always,
            default_profile=ch.default_profile,
            default_project=ch.default_project,
            default_runtime=ch.default_runtime,
            last_ok_at=ch.last_ok_at,
            last_error=ch.last_error,
            created_at=ch.created_at,
            updated_at=ch.updated_at,
        )

    def health_rows(self) -> list[dict[str, Any]]:
        """The Monitor's channel panel: one row per channel (reader thread)."""
        counts = repo.health(self.service.reader())
        rows = []
        for ch in sorted(self._channels.values(), key=lambda c: c.name):
            n = counts.get(ch.id, {})
            rows.append(
                {
                    "channel": ch.name,
                    "type": ch.type,
                    "inbound": ch.inbound,
                    "status": ch.status,
                    "reason": ch.status_reason,
                    "pending": n.get("pending", 0) + n.get("retrying", 0),
                    "held": n.get("held", 0),
                    "dead": n.get("dead", 0),
                    "sent": n.get("sent", 0),
                    "last_ok_at": ch.last_ok_at.isoformat() if ch.last_ok_at else None,
                    "last_error": (ch.last_error or "")[:200] or None,
                }
            )
        return rows

    # ---- engine-side operations behind the requests ------------------------------------

    def add(self, ch: Channel) -> Channel:
        if self.find(ch.name) is not None:
            raise ValueError(f"a channel named {ch.name!r} already exists")
        now = self.clock.now()
        ch.id, ch.created_at, ch.updated_at = new_id(), now, now
        row = to_row(ch)
        self.write(lambda con: repo.insert_config(con, row))
        self._replace(ch)
        self._after_change(ch, registered=True)
        return ch

    def update(self, old: Channel, new: Channel) -> Channel:
        clash = self.find(new.name)
        if clash is not None and clash.id != old.id:
            raise ValueError(f"a channel named {new.name!r} already exists")
        new.id, new.created_at, new.updated_at = old.id, old.created_at, self.clock.now()
        new.status, new.status_reason = old.status, old.status_reason
        new.last_ok_at, new.last_error = old.last_ok_at, old.last_error
        row = to_row(new)
        fields = {k: v for k, v in row.items() if k not in ("id", "created_at")}
        self.write(lambda con: repo.update_config(con, new.id, fields))
        self._identity.pop(new.id, None)
        self._replace(new)
        self._after_change(new, registered=True)
        return new

    def _after_change(self, ch: Channel, registered: bool) -> None:
        if ch.status != "active":
            return
        self._start_inbound(ch)
        if registered and ch.type == "telegram" and ch.inbound == "webhook" and self.active:
            from stagent_lab.channels.telegram_inbound import set_webhook

            self.spawn(set_webhook(self, ch))

    def enable(self, ch: Channel, enabled: bool) -> Channel:
        if enabled:
            if ch.status != "active":
                self.set_status(ch.id, "active", None)
                self._after_change(ch, registered=True)
        else:
            self.set_status(ch.id, "disabled", "disabled by the operator")
        return ch

    def remove(self, ch: Channel) -> None:
        self._stop_inbound(ch.id)
        now = self.clock.now()
        self.write(lambda con: repo.delete_config(con, ch.id, now))
        self._replace(None, remove=ch.id)
        self._identity.pop(ch.id, None)

    def deliveries_frame(self, r: api.ListDeliveries) -> Any:
        channel_id = None
        if r.channel is not None:
            ch = self.find(r.channel)
            if ch is None:
                from stagent_lab.errors import ChannelError

                raise ChannelError(_unknown(r.channel, self._channels))
            channel_id = ch.id
        self.service.fresh()
        return repo.deliveries_arrow(
            self.service.reader(), channel_id, r.direction, r.status, r.limit
        )


def _unknown(ref: str, channels: dict[str, Channel]) -> str:
    names = sorted(c.name for c in channels.values())
    return f"no channel named {ref!r} (channels: {', '.join(names) or 'none yet'})"


def load_json(text: str | None) -> Any:
    return json.loads(text) if text else None


__all__ = ["SETTINGS", "ChannelsFeature"]
