"""The handlers of the channel requests (``stagent_lab.api.channels``).

Each validates on the caller's thread (a bad config fails here with every problem listed) and
runs what changes state on the engine thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.api import channels as api
from stagent_lab.channels import transports
from stagent_lab.channels.config import MissingSecret, validate
from stagent_lab.channels.outbox import unix
from stagent_lab.errors import ChannelConfigError, ChannelError
from stagent_lab.store import channels as repo

if TYPE_CHECKING:
    from stagent_lab.channels.config import Channel
    from stagent_lab.channels.feature import ChannelsFeature
    from stagent_lab.service.core import WorkspaceService

UPDATABLE = (
    "name",
    "direction",
    "settings",
    "secrets",
    "events",
    "filter",
    "allowed_senders",
    "approvers",
    "allow_always",
    "default_profile",
    "default_project",
    "default_runtime",
)


def register(f: ChannelsFeature, service: WorkspaceService) -> None:
    def channel(ref: str) -> Channel:
        ch = f.find(ref)
        if ch is None:
            names = sorted(c.name for c in f._channels.values())
            raise ChannelError(
                f"no channel named {ref!r} (channels: {', '.join(names) or 'none yet'})"
            )
        return ch

    def check_defaults(ch: Channel) -> None:
        if ch.default_profile:
            service.profiles.get(ch.default_profile)  # ProfileNotFoundError lists valid ones
        if ch.default_runtime:
            service.catalog.runtime_class(ch.default_runtime)

    def add(r: api.AddChannel) -> api.ChannelView:
        ch = validate(r.model_dump())
        check_defaults(ch)
        return f.view(service.on_engine(f.add, ch))

    def update(r: api.UpdateChannel) -> api.ChannelView:
        old = channel(r.channel)
        unknown = sorted(set(r.changes) - set(UPDATABLE))
        if unknown:
            raise ChannelConfigError(
                f"cannot change {', '.join(unknown)} of a channel (changeable: "
                f"{', '.join(UPDATABLE)}; the type is fixed: remove and add instead)"
            )
        spec = old.spec()
        for key, value in r.changes.items():
            if key in ("settings", "secrets") and isinstance(value, dict):
                spec[key] = {**spec[key], **value}
            else:
                spec[key] = value
        new = validate(spec, channel_id=old.id)
        check_defaults(new)
        return f.view(service.on_engine(f.update, old, new))

    def test(r: api.TestChannel) -> dict[str, Any]:
        ch = channel(r.channel)
        text = (
            r.text or f"stagent_lab test message: workspace {f.workspace_name}, channel {ch.name}"
        )
        return service.on_engine(lambda: run_test(f, ch.id, text), timeout=90)

    def redeliver(r: api.Redeliver) -> dict[str, Any]:
        service.fresh()
        ids = repo.delivery_ids_with_prefix(service.reader(), r.delivery_id)
        if r.delivery_id in ids:
            ids = [r.delivery_id]
        if len(ids) != 1:
            raise ChannelError(
                f"no delivery with id {r.delivery_id!r}"
                if not ids
                else f"{r.delivery_id!r} matches several deliveries; give more of the id"
            )
        try:
            return service.on_engine(f.outbox.redeliver, ids[0])
        except (KeyError, ValueError) as exc:
            raise ChannelError(str(exc.args[0] if exc.args else exc)) from None

    def serve(r: api.ServeChannelEndpoints) -> dict[str, Any]:
        bind = r.bind or str(f.setting("channels.http_bind"))
        try:
            return {"url": f.start_endpoints(bind)}
        except (OSError, RuntimeError, ValueError) as exc:
            raise ChannelError(f"cannot serve the channel endpoints on {bind}: {exc}") from None

    on = service.on
    on(api.AddChannel)(add)
    on(api.UpdateChannel)(update)
    on(api.GetChannel)(lambda r: f.view(channel(r.channel)))
    on(api.ListChannels)(
        lambda r: [f.view(c) for c in sorted(f._channels.values(), key=lambda c: c.name)]
    )
    on(api.SetChannelEnabled)(
        lambda r: f.view(service.on_engine(f.enable, channel(r.channel), r.enabled))
    )
    on(api.RemoveChannel)(lambda r: service.on_engine(f.remove, channel(r.channel)))
    on(api.TestChannel)(test)
    on(api.ListDeliveries)(f.deliveries_frame)
    on(api.Redeliver)(redeliver)
    on(api.ServeChannelEndpoints)(serve)


async def run_test(f: ChannelsFeature, channel_id: str, text: str) -> dict[str, Any]:
    """Check credentials and send ``text`` (engine loop). Success makes an ``error`` channel
    ``active`` again and releases its held deliveries."""
    ch = f.channel(channel_id)
    if ch is None:
        raise ChannelError("the channel was removed")
    try:
        if ch.type == "slack":
            token = f.secret(ch, "bot_token")
            await f.ensure_identity(ch, force=True)
            from stagent_lab.channels.render import escape_slack

            sent = await transports.slack_post(
                f.client, ch.settings, token, {"text": escape_slack(text)}
            )
        elif ch.type == "telegram":
            token = f.secret(ch, "bot_token")
            await f.ensure_identity(ch, force=True)
            sent = await transports.telegram_send(f.client, ch.settings, token, {"text": text})
        else:
            secret = f.webhook_secret(ch)
            headers = {
                name: f.secret(ch, f"headers.{name}", env)
                for name, env in ch.secrets.headers.items()
            }
            now = f.clock.now()
            payload = {
                "event": "channel.test",
                "occurred_at": now.isoformat() + "Z",
                "data": {"channel": ch.name, "message": text},
            }
            test_id = f"test-{unix(now)}"
            body = transports.webhook_body(test_id, f.workspace_name, payload)
            sent = await transports.webhook_send(
                f.client, ch.settings, secret, headers, test_id, body, "channel.test",
                str(unix(now)),
            )  # fmt: skip
    except MissingSecret as exc:
        f.set_status(ch.id, "error", str(exc))
        return {"ok": False, "channel": ch.name, "error": str(exc)}
    except transports.TransportError as exc:
        error = f.clean(str(exc))
        if exc.auth:
            f.set_status(ch.id, "error", error)
        else:
            f.note_error(ch, error)
        return {"ok": False, "channel": ch.name, "error": error, "http_status": exc.http_status}
    now = f.clock.now()
    ch.last_ok_at = now
    f.write(lambda con: repo.update_config(con, ch.id, {"last_ok_at": now}))
    released = 0
    if ch.status == "error":
        before = len(repo.held_ids(f.con, ch.id))
        f.set_status(ch.id, "active", None)
        released = before
    return {"ok": True, "channel": ch.name, "external_id": sent.external_id, "released": released}


__all__ = ["register", "run_test"]
