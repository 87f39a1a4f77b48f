"""Channel configuration: typed settings per channel type, secrets as environment variable
names, and the checks that keep credentials out of the store.

``validate(spec)`` turns what an operator gave (``lab.channels.add(...)``) into a
:class:`Channel`, or raises :class:`ChannelConfigError` listing **every** problem with its path
(``settings.poll_interval_s: …; secrets.bot_token: …``). A value in ``settings`` that looks like
a credential (a Slack token or incoming-webhook URL, a Telegram bot token, a URL carrying a
password or a ``token``/``key``/``secret`` parameter) is refused with a pointer to environment
variables: the store only ever holds the *names* of those variables.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stagent_lab.errors import ChannelConfigError

ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
TELEGRAM_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]{30,}$")
WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
SECRET_PARAMS = ("token", "key", "secret", "password", "sig", "signature")

EVENTS = (
    "task.completed",
    "task.failed",
    "inbox.pending",
    "schedule.alert",
    "heartbeat.action",
    "heartbeat.ok",
    "budget.warning",
    "budget.exceeded",
    "workflow.completed",
    "workflow.failed",
)
DEFAULT_EVENTS = (
    "task.failed",
    "inbox.pending",
    "schedule.alert",
    "heartbeat.action",
    "budget.warning",
    "budget.exceeded",
    "workflow.failed",
)
MIN_WEBHOOK_SECRET = 32


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _trigger(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("task_trigger is 'mention', 'any' or a prefix such as '!task'")
    return value


class SlackSettings(_Model):
    channel: str = Field(pattern=r"^[CGD][A-Z0-9]{2,30}$")
    api_base: str = "https://slack.com/api"
    inbound: Literal["poll", "events", "off"] = "poll"
    poll_interval_s: float = Field(default=10.0, ge=5, le=3600)
    task_trigger: str = Field(default="mention", max_length=40)
    max_watched_threads: int = Field(default=50, ge=1, le=500)
    reply_to_unknown: bool = False
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    _check_trigger = field_validator("task_trigger")(_trigger)


class TelegramSettings(_Model):
    chat_id: int | str
    api_base: str = "https://api.telegram.org"
    inbound: Literal["poll", "webhook", "off"] = "poll"
    poll_timeout_s: int = Field(default=25, ge=1, le=50)
    webhook_url: str | None = None
    allowed_chats: list[int | str] = Field(default_factory=list, max_length=1000)
    task_trigger: str = Field(default="any", max_length=40)
    reply_to_unknown: bool = False
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    _check_trigger = field_validator("task_trigger")(_trigger)

    @field_validator("chat_id")
    @classmethod
    def _chat(cls, value: int | str) -> int | str:
        if isinstance(value, str) and not re.fullmatch(r"-?\d+|@[A-Za-z0-9_]{4,64}", value):
            raise ValueError("a chat id is a number or an @channelusername")
        return value


class WebhookSettings(_Model):
    url: str
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    inbound: Literal["on", "off"] = "on"
    reply_to_unknown: bool = False


EnvName = str  # checked by _env_problems (the message points at environment variables)


class SlackSecrets(_Model):
    bot_token: EnvName
    signing_secret: EnvName | None = None


class TelegramSecrets(_Model):
    bot_token: EnvName
    webhook_secret: EnvName | None = None


class WebhookSecrets(_Model):
    secret: EnvName
    inbound_secret: EnvName | None = None
    previous_secret: EnvName | None = None
    headers: dict[str, EnvName] = Field(default_factory=dict)


class TaskFilter(_Model):
    sources: list[str] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)
    profiles: list[str] = Field(default_factory=list)


SETTINGS = {"slack": SlackSettings, "telegram": TelegramSettings, "webhook": WebhookSettings}
SECRETS = {"slack": SlackSecrets, "telegram": TelegramSecrets, "webhook": WebhookSecrets}


@dataclass
class Channel:
    """A stored channel, typed. Secrets are env var names; values are resolved at each use."""

    id: str
    name: str
    type: str
    direction: str
    settings: Any  # SlackSettings | TelegramSettings | WebhookSettings
    secrets: Any  # SlackSecrets | TelegramSecrets | WebhookSecrets
    events: list[str]
    filter: TaskFilter | None = None
    allowed_senders: list[str] = field(default_factory=list)
    approvers: list[str] | None = None
    allow_always: bool = False
    default_profile: str | None = None
    default_project: str | None = None
    default_runtime: str | None = None
    status: str = "active"
    status_reason: str | None = None
    last_ok_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def inbound(self) -> str:
        """The inbound mode in effect ('off' unless the direction is 'both')."""
        return self.settings.inbound if self.direction == "both" else "off"

    @property
    def deciders(self) -> list[str]:
        """Who may decide or answer inbox items (approvers; None means the senders)."""
        return list(self.allowed_senders if self.approvers is None else self.approvers)

    def spec(self) -> dict[str, Any]:
        """What ``validate`` takes, for an update (merge changes, validate again)."""
        return {
            "name": self.name,
            "type": self.type,
            "direction": self.direction,
            "settings": self.settings.model_dump(exclude_defaults=True),
            "secrets": self.secrets.model_dump(exclude_none=True, exclude_defaults=True),
            "events": list(self.events),
            "filter": self.filter.model_dump() if self.filter else None,
            "allowed_senders": list(self.allowed_senders),
            "approvers": None if self.approvers is None else list(self.approvers),
            "allow_always": self.allow_always,
            "default_profile": self.default_profile,
            "default_project": self.default_project,
            "default_runtime": self.default_runtime,
        }

    def env_names(self) -> dict[str, Any]:
        """role -> env var name (headers: header -> env var name)."""
        return self.secrets.model_dump(exclude_none=True)


class Spec(_Model):
    name: str = Field(min_length=1, max_length=200)
    type: Literal["slack", "telegram", "webhook"]
    direction: Literal["out", "both"] = "out"
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, Any] = Field(default_factory=dict)
    events: list[str] | None = None
    filter: dict[str, Any] | None = None
    allowed_senders: list[str] = Field(default_factory=list)
    approvers: list[str] | None = None
    allow_always: bool = False
    default_profile: str | None = None
    default_project: str | None = None
    default_runtime: str | None = None


def validate(data: dict[str, Any], *, channel_id: str = "") -> Channel:
    """A :class:`Channel` from an operator's spec, or ChannelConfigError listing every problem."""
    problems: list[str] = []
    try:
        spec = Spec(**data)
    except ValidationError as exc:
        raise ChannelConfigError(_describe(exc, "", data.get("name"))) from None
    kind = spec.type
    problems += credential_problems(spec.settings, "settings")
    settings = secrets = filt = None
    try:
        settings = SETTINGS[kind](**spec.settings)
    except ValidationError as exc:
        problems.append(_describe(exc, "settings"))
    problems += _env_problems(spec.secrets, kind)
    try:
        secrets = SECRETS[kind](**spec.secrets)
    except ValidationError as exc:
        problems.append(_describe(exc, "secrets"))
    if spec.filter is not None:
        try:
            filt = TaskFilter(**spec.filter)
        except ValidationError as exc:
            problems.append(_describe(exc, "filter"))
    events = list(DEFAULT_EVENTS if spec.events is None else spec.events)
    for i, name in enumerate(events):
        if name not in EVENTS:
            problems.append(f"events[{i}]: unknown event {name!r} (valid: {', '.join(EVENTS)})")
    if not spec.name.strip() or spec.name != spec.name.strip():
        problems.append("name: give a name without leading or trailing spaces")
    if settings is not None and secrets is not None:
        problems += _cross_checks(kind, spec.direction, settings, secrets)
    for where, ids in (("allowed_senders", spec.allowed_senders), ("approvers", spec.approvers)):
        for i, sender in enumerate(ids or []):
            if not str(sender).strip() or len(str(sender)) > 64:
                problems.append(f"{where}[{i}]: a sender id is 1 to 64 characters")
    if problems:
        raise ChannelConfigError(
            f"invalid channel {spec.name!r}: " + "; ".join(dict.fromkeys(problems))
        )
    return Channel(
        id=channel_id,
        name=spec.name,
        type=kind,
        direction=spec.direction,
        settings=settings,
        secrets=secrets,
        events=list(dict.fromkeys(events)),
        filter=filt,
        allowed_senders=[str(s).strip() for s in spec.allowed_senders],
        approvers=None if spec.approvers is None else [str(s).strip() for s in spec.approvers],
        allow_always=spec.allow_always,
        default_profile=spec.default_profile,
        default_project=spec.default_project,
        default_runtime=spec.default_runtime,
    )


def _cross_checks(kind: str, direction: str, settings: Any, secrets: Any) -> list[str]:
    out: list[str] = []
    if kind == "slack":
        out += _url_problems(settings.api_base, "settings.api_base")
        if direction == "both" and settings.inbound == "events" and not secrets.signing_secret:
            out.append("secrets.signing_secret: required with inbound='events'")
    elif kind == "telegram":
        out += _url_problems(settings.api_base, "settings.api_base")
        if direction == "both" and settings.inbound == "webhook":
            if not settings.webhook_url:
                out.append("settings.webhook_url: required with inbound='webhook'")
            else:
                out += _url_problems(settings.webhook_url, "settings.webhook_url")
            if not secrets.webhook_secret:
                out.append("secrets.webhook_secret: required with inbound='webhook'")
    else:
        out += _url_problems(settings.url, "settings.url")
    return out


def _url_problems(url: str, where: str) -> list[str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"{where}: not an http(s) URL: {url!r}"]
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        return [f"{where}: use https (plain http is allowed only for a loopback host)"]
    return []


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env_problems(secrets: dict[str, Any], kind: str) -> list[str]:
    out: list[str] = []

    def check(where: str, value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not ENV_NAME.match(value):
            hint = (
                " looks like a credential itself"
                if isinstance(value, str) and looks_like_credential(value)
                else f" is not an environment variable name ({ENV_NAME.pattern})"
            )
            out.append(
                f"{where}: {_shown(value)}{hint}; put the secret in an environment variable "
                "and give its name here"
            )

    for role, value in secrets.items():
        if kind == "webhook" and role == "headers" and isinstance(value, dict):
            for header, env in value.items():
                if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", str(header)):
                    out.append(f"secrets.headers.{header}: not an HTTP header name")
                check(f"secrets.headers.{header}", env)
        elif not isinstance(value, dict):
            check(f"secrets.{role}", value)
    return out


def _shown(value: Any) -> str:
    """A value for an error message without echoing a secret."""
    if isinstance(value, str) and looks_like_credential(value):
        return "the value given"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def looks_like_credential(text: str) -> bool:
    stripped = text.strip()
    low = stripped.lower()
    if low.startswith(("xox", "https://hooks.slack.com/", "http://hooks.slack.com/")):
        return True
    if TELEGRAM_TOKEN.match(stripped):
        return True
    if "://" in stripped:
        parts = urlsplit(stripped)
        if parts.username or parts.password:
            return True
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            name = key.lower()
            if any(word in name for word in SECRET_PARAMS):
                return True
        if re.search(r"/bot\d+:[A-Za-z0-9_-]{30,}", stripped):
            return True
    return False


def credential_problems(value: Any, where: str) -> list[str]:
    """Paths of every credential-looking text inside ``value`` (dicts and lists walked)."""
    out: list[str] = []
    if isinstance(value, str):
        if looks_like_credential(value):
            out.append(
                f"{where}: looks like a credential; keep it in an environment variable and "
                "name that variable in secrets"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            out += credential_problems(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            out += credential_problems(item, f"{where}[{i}]")
    return out


def _describe(exc: ValidationError, prefix: str, name: Any = None) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}.{loc}" if prefix and loc else prefix or loc or "channel"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}")
    text = "; ".join(parts)
    return text if prefix else f"invalid channel {name!r}: {text}"


# ---- rows ----------------------------------------------------------------------------------


def to_row(ch: Channel) -> dict[str, Any]:
    spec = ch.spec()
    return {
        "id": ch.id,
        "name": ch.name,
        "type": ch.type,
        "direction": ch.direction,
        "status": ch.status,
        "status_reason": ch.status_reason,
        "settings": json.dumps(spec["settings"]),
        "secrets": json.dumps(spec["secrets"]),
        "events": json.dumps(ch.events),
        "filter": json.dumps(spec["filter"]) if ch.filter else None,
        "allowed_senders": json.dumps(ch.allowed_senders),
        "approvers": None if ch.approvers is None else json.dumps(ch.approvers),
        "allow_always": ch.allow_always,
        "default_profile": ch.default_profile,
        "default_project": ch.default_project,
        "default_runtime": ch.default_runtime,
        "last_ok_at": ch.last_ok_at,
        "last_error": ch.last_error,
        "created_at": ch.created_at,
        "updated_at": ch.updated_at,
    }


def from_row(row: dict[str, Any]) -> Channel:
    spec = {
        "name": row["name"],
        "type": row["type"],
        "direction": row["direction"],
        "settings": json.loads(row["settings"]),
        "secrets": json.loads(row["secrets"]),
        "events": json.loads(row["events"]),
        "filter": json.loads(row["filter"]) if row["filter"] else None,
        "allowed_senders": json.loads(row["allowed_senders"]),
        "approvers": json.loads(row["approvers"]) if row["approvers"] is not None else None,
        "allow_always": bool(row["allow_always"]),
        "default_profile": row["default_profile"],
        "default_project": row["default_project"],
        "default_runtime": row["default_runtime"],
    }
    ch = validate(spec, channel_id=row["id"])
    for key in ("status", "status_reason", "last_ok_at", "last_error", "created_at", "updated_at"):
        setattr(ch, key, row[key])
    return ch


# ---- secrets at use ------------------------------------------------------------------------


class MissingSecret(Exception):
    """An environment variable a channel names is not set (the channel goes to ``error``)."""

    def __init__(self, role: str, env: str, detail: str = "is not set") -> None:
        super().__init__(f"environment variable {env} ({role}) {detail}")
        self.role = role
        self.env = env


def env_value(role: str, env: str | None) -> str:
    if not env:
        raise MissingSecret(role, "(none)", "is not configured")
    value = os.environ.get(env, "")
    if not value.strip():
        raise MissingSecret(role, env)
    return value.strip()


__all__ = [
    "DEFAULT_EVENTS",
    "EVENTS",
    "Channel",
    "MissingSecret",
    "credential_problems",
    "env_value",
    "from_row",
    "looks_like_credential",
    "to_row",
    "validate",
]
