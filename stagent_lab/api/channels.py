"""The channels contract: requests behind ``lab.channels`` and the channel view.

A channel is named by its name or its id everywhere. Secrets never travel here: a config holds
names of environment variables, and the view says whether each one is set, never its value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from stagent_lab.api.requests import ArrowTable, Request, request
from stagent_lab.api.values import Identifier, Name, PositiveInt, ShortText
from stagent_lab.api.views import View

ChannelType = Literal["slack", "telegram", "webhook"]
Direction = Literal["out", "both"]


class SecretRef(View):
    env: str  # the environment variable's name
    set: bool  # whether it is set in the workspace's process (its value is never shown)


class ChannelView(View):
    id: str
    name: str
    type: str
    direction: str
    status: str
    status_reason: str | None = None
    settings: dict[str, Any] = {}
    secrets: dict[str, SecretRef | dict[str, SecretRef]] = {}
    events: list[str] = []
    filter: dict[str, list[str]] | None = None
    allowed_senders: list[str] = []
    approvers: list[str] | None = None
    allow_always: bool = False
    default_profile: str | None = None
    default_project: str | None = None
    default_runtime: str | None = None
    last_ok_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


ChannelRef = Name  # a channel's name or id


@request
class AddChannel(Request):
    name: Name
    type: ChannelType
    direction: Direction = "out"
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, Any] = Field(default_factory=dict)
    allowed_senders: list[ShortText] = Field(default_factory=list, max_length=1000)
    approvers: list[ShortText] | None = Field(default=None, max_length=1000)
    allow_always: bool = False
    events: list[ShortText] | None = None
    filter: dict[str, Any] | None = None
    default_profile: Identifier | None = None
    default_project: ShortText | None = None
    default_runtime: Identifier | None = None
    result: ClassVar[Any] = ChannelView


@request
class UpdateChannel(Request):
    """Change fields of a channel (``settings`` and ``secrets`` merge into the current ones)."""

    channel: ChannelRef
    changes: dict[str, Any]
    result: ClassVar[Any] = ChannelView


@request
class GetChannel(Request):
    channel: ChannelRef
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ChannelView


@request
class ListChannels(Request):
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = list[ChannelView]


@request
class SetChannelEnabled(Request):
    channel: ChannelRef
    enabled: bool
    result: ClassVar[Any] = ChannelView


@request
class RemoveChannel(Request):
    channel: ChannelRef
    result: ClassVar[Any] = None


@request
class TestChannel(Request):
    """Check the credentials and send a test message now (the answer waits for it)."""

    channel: ChannelRef
    text: ShortText | None = None
    result: ClassVar[Any] = dict[str, Any]


@request
class ListDeliveries(Request):
    channel: ChannelRef | None = None
    direction: Direction | Literal["in"] | None = None
    status: Identifier | None = None
    limit: PositiveInt | None = None
    mutates: ClassVar[bool] = False
    result: ClassVar[Any] = ArrowTable


@request
class Redeliver(Request):
    """Send a dead outbound delivery again, under the same id."""

    delivery_id: Identifier
    result: ClassVar[Any] = dict[str, Any]


@request
class ServeChannelEndpoints(Request):
    """Start the inbound HTTP endpoints (Slack events, Telegram webhook, signed webhooks) in
    the workspace's process. ``bind`` is ``host:port`` (port 0: a free one); default the
    ``channels.http_bind`` setting. Returns ``{"url": ...}``."""

    bind: ShortText | None = None
    result: ClassVar[Any] = dict[str, Any]


__all__ = [
    "AddChannel",
    "ChannelView",
    "GetChannel",
    "ListChannels",
    "ListDeliveries",
    "Redeliver",
    "RemoveChannel",
    "SecretRef",
    "ServeChannelEndpoints",
    "SetChannelEnabled",
    "TestChannel",
    "UpdateChannel",
]
