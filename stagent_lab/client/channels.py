"""``lab.channels``: Slack channels, Telegram chats and signed webhooks that receive the
workspace's events and, with ``direction="both"``, approve items and start tasks.

Channels are named by name or id. Secrets are given as the **names** of environment variables
(``secrets={"bot_token": "SLACK_BOT_TOKEN"}``); the values stay in the environment of the
process that runs the workspace, and ``list()`` shows whether each is set, never what it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagent_lab.api import channels as api

if TYPE_CHECKING:
    from stagent_lab.client.lab import Lab

LIST_COLUMNS = [
    "id", "name", "type", "direction", "status", "status_reason", "inbound", "events",
    "allowed_senders", "approvers", "allow_always", "secrets", "secrets_set", "last_ok_at",
    "last_error",
]  # fmt: skip


class ChannelsClient:
    def __init__(self, lab: Lab) -> None:
        self._lab = lab

    def __repr__(self) -> str:
        return f"<channels of {self._lab.home}>"

    def add(
        self,
        name: str,
        type: str,
        *,
        direction: str = "out",
        settings: dict[str, Any] | None = None,
        secrets: dict[str, Any] | None = None,
        allowed_senders: list[str] | None = None,
        approvers: list[str] | None = None,
        allow_always: bool = False,
        events: list[str] | None = None,
        filter: dict[str, list[str]] | None = None,
        default_profile: str | None = None,
        default_project: str | None = None,
        default_runtime: str | None = None,
    ) -> str:
        """Add a channel; returns its id. ChannelConfigError lists every problem."""
        view = self._lab._req(
            api.AddChannel,
            name=name,
            type=type,
            direction=direction,
            settings=dict(settings or {}),
            secrets=dict(secrets or {}),
            allowed_senders=list(allowed_senders or []),
            approvers=None if approvers is None else list(approvers),
            allow_always=allow_always,
            events=None if events is None else list(events),
            filter=filter,
            default_profile=default_profile,
            default_project=default_project,
            default_runtime=default_runtime,
        )
        return view.id

    def get(self, channel: str) -> dict[str, Any]:
        return self._lab._req(api.GetChannel, channel=channel).model_dump()

    def list(self) -> Any:
        """One row per channel: status, inbound mode, env var names and whether each is set."""
        import pandas as pd

        rows = []
        for view in self._lab._req(api.ListChannels):
            names, state = [], {}
            for role, ref in view.secrets.items():
                refs = ref.items() if isinstance(ref, dict) else [(None, ref)]
                for header, one in refs:
                    key = f"{role}.{header}" if header else role
                    names.append(f"{key}={one.env}")
                    state[key] = one.set
            rows.append(
                {
                    **view.model_dump(exclude={"secrets", "settings", "filter"}),
                    "inbound": view.settings.get("inbound") if view.direction == "both" else "off",
                    "secrets": ", ".join(names),
                    "secrets_set": state,
                }
            )
        return pd.DataFrame(rows, columns=LIST_COLUMNS)

    def test(self, channel: str, text: str | None = None) -> dict[str, Any]:
        """Check the credentials and send a test message now. Success returns an ``error``
        channel to ``active`` and sends what was held."""
        return self._lab._req(api.TestChannel, channel=channel, text=text)

    def update(self, channel: str, **changes: Any) -> dict[str, Any]:
        """Change fields; ``settings`` and ``secrets`` merge into the current ones."""
        return self._lab._req(api.UpdateChannel, channel=channel, changes=changes).model_dump()

    def disable(self, channel: str) -> dict[str, Any]:
        return self._lab._req(api.SetChannelEnabled, channel=channel, enabled=False).model_dump()

    def enable(self, channel: str) -> dict[str, Any]:
        return self._lab._req(api.SetChannelEnabled, channel=channel, enabled=True).model_dump()

    def remove(self, channel: str) -> None:
        self._lab._req(api.RemoveChannel, channel=channel)

    def deliveries(
        self,
        channel: str | None = None,
        direction: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> Any:
        """Deliveries (both directions) as a DataFrame, oldest first."""
        return self._lab._req(
            api.ListDeliveries, channel=channel, direction=direction, status=status, limit=limit
        )

    def redeliver(self, delivery_id: str) -> dict[str, Any]:
        """Send a dead delivery again, under the same id (a unique prefix is enough)."""
        return self._lab._req(api.Redeliver, delivery_id=delivery_id)

    def serve(self, bind: str | None = None) -> str:
        """Start the inbound HTTP endpoints in the workspace's process; returns their base URL.
        The workspace service starts them itself on ``channels.http_bind``."""
        return self._lab._req(api.ServeChannelEndpoints, bind=bind)["url"]


__all__ = ["ChannelsClient"]
