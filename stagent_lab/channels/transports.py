"""The wire: Slack Web API, Telegram Bot API and signed webhooks over one ``httpx.AsyncClient``.

Every call runs on the engine loop and is bounded by the channel's ``timeout_s`` (long polls by
their own timeout plus 10 s). Failures are classified once, here:

* **retryable** — network errors and timeouts, HTTP 408, 429 and 5xx, Slack ``ok: false`` with
  ``ratelimited``, ``internal_error``, ``fatal_error``, ``request_timeout`` or
  ``service_unavailable``; a ``Retry-After`` header (Slack, webhooks) or Telegram's
  ``parameters.retry_after`` says how long to wait;
* **auth** — Slack ``invalid_auth``, ``token_revoked``, ``account_inactive``, ``missing_scope``
  (and ``not_authed``), Telegram 401 or 403: the channel goes to ``error``;
* **permanent** — everything else.

Tokens never reach an error text: the Telegram token lives in the URL path, so every message
built from an exception has it replaced first (the redactor catches the rest).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

SLACK_RETRYABLE = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "request_timeout", "service_unavailable"}
)
SLACK_AUTH = frozenset(
    {"invalid_auth", "token_revoked", "account_inactive", "missing_scope", "not_authed"}
)
MAX_RETRY_AFTER_S = 3600.0


class TransportError(Exception):
    """A call that did not succeed, classified."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        auth: bool = False,
        retry_after: float | None = None,
        http_status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.auth = auth
        self.retry_after = retry_after
        self.http_status = http_status
        self.code = code


@dataclass
class Sent:
    external_id: str | None
    thread_ref: str | None
    http_status: int


class _TokenFilter(logging.Filter):
    """httpx logs each request's URL at INFO; a Telegram URL carries the bot token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_scrub(a) for a in record.args)
        return True


def _scrub(arg: Any) -> Any:
    """Only text and URLs are rewritten: numbers stay numbers for ``%d``."""
    if isinstance(arg, str | httpx.URL):
        return _strip_bot_token(str(arg))
    return arg


def _strip_bot_token(text: str) -> str:
    import re

    return re.sub(r"/bot\d+:[A-Za-z0-9_-]+", "/bot[token]", text)


_installed_filter = False


def install_log_filter() -> None:
    global _installed_filter
    if not _installed_filter:
        logging.getLogger("httpx").addFilter(_TokenFilter())
        _installed_filter = True


def _retry_after(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds != seconds or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def _network(exc: Exception, secret: str | None = None) -> TransportError:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if secret:
        text = text.replace(secret, "[token]")
    return TransportError(_strip_bot_token(text), retryable=True)


def _http_failure(status: int, detail: str, headers: Any) -> TransportError:
    retryable = status in (408, 429) or status >= 500
    return TransportError(
        f"HTTP {status}: {detail}"[:500],
        retryable=retryable,
        retry_after=_retry_after(headers.get("retry-after")) if retryable else None,
        http_status=status,
    )


# ---- Slack ---------------------------------------------------------------------------------


async def slack_call(
    client: httpx.AsyncClient,
    api_base: str,
    token: str,
    method: str,
    params: dict[str, Any],
    *,
    timeout: float,
    post: bool = False,
) -> dict[str, Any]:
    """One Web API call; the JSON answer when ``ok`` is true, else TransportError."""
    url = f"{api_base.rstrip('/')}/{method}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        if post:
            resp = await client.post(url, json=params, headers=headers, timeout=timeout)
        else:
            resp = await client.get(url, params=params, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise _network(exc, token) from None
    if resp.status_code != 200:
        raise _http_failure(resp.status_code, resp.text[:200], resp.headers)
    try:
        body = resp.json()
    except ValueError:
        raise TransportError(
            "Slack answered with something that is not JSON", http_status=200
        ) from None
    if not isinstance(body, dict):
        raise TransportError("Slack answered with something that is not an object")
    if body.get("ok") is True:
        return body
    code = str(body.get("error") or "unknown_error")
    raise TransportError(
        f"Slack error: {code}",
        retryable=code in SLACK_RETRYABLE,
        auth=code in SLACK_AUTH,
        retry_after=_retry_after(resp.headers.get("retry-after")),
        http_status=200,
        code=code,
    )


async def slack_post(
    client: httpx.AsyncClient, settings: Any, token: str, payload: dict[str, Any]
) -> Sent:
    params = {
        "channel": settings.channel,
        "text": payload["text"],
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if payload.get("thread_ts"):
        params["thread_ts"] = payload["thread_ts"]
    body = await slack_call(
        client,
        settings.api_base,
        token,
        "chat.postMessage",
        params,
        timeout=settings.timeout_s,
        post=True,
    )
    ts = str(body.get("ts") or "")
    return Sent(ts or None, payload.get("thread_ts") or ts or None, 200)


# ---- Telegram ------------------------------------------------------------------------------


async def telegram_call(
    client: httpx.AsyncClient,
    api_base: str,
    token: str,
    method: str,
    params: dict[str, Any],
    *,
    timeout: float,
) -> Any:
    """One Bot API call; its ``result`` when ``ok``, else TransportError (token never shown)."""
    url = f"{api_base.rstrip('/')}/bot{token}/{method}"
    try:
        resp = await client.post(url, json=params, timeout=timeout)
    except httpx.HTTPError as exc:
        raise _network(exc, token) from None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict) and body.get("ok") is True:
        return body.get("result")
    status = resp.status_code
    description = ""
    retry_after = None
    if isinstance(body, dict):
        description = str(body.get("description") or "")
        params_ = body.get("parameters")
        if isinstance(params_, dict):
            retry_after = _retry_after(params_.get("retry_after"))
        status = int(body.get("error_code") or status)
    text = f"Telegram error {status}: {description or resp.reason_phrase}".replace(token, "[token]")
    raise TransportError(
        text[:500],
        retryable=status == 429 or status >= 500,
        auth=status in (401, 403),
        retry_after=retry_after,
        http_status=status,
        code="conflict" if status == 409 else None,
    )


async def telegram_send(
    client: httpx.AsyncClient, settings: Any, token: str, payload: dict[str, Any]
) -> Sent:
    chat = payload.get("chat_id") or settings.chat_id
    params: dict[str, Any] = {"chat_id": chat, "text": payload["text"]}
    if payload.get("reply_to"):
        params["reply_parameters"] = {
            "message_id": int(payload["reply_to"]),
            "allow_sending_without_reply": True,
        }
    if payload.get("buttons"):
        params["reply_markup"] = {
            "inline_keyboard": [
                [{"text": label, "callback_data": data}] for label, data in payload["buttons"]
            ]
        }
    result = await telegram_call(
        client, settings.api_base, token, "sendMessage", params, timeout=settings.timeout_s
    )
    message_id = str(result.get("message_id")) if isinstance(result, dict) else None
    anchor = payload.get("reply_to") or message_id
    return Sent(message_id, f"{chat}:{anchor}" if anchor else None, 200)


# ---- webhooks ------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``"<timestamp>.<raw body>"``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def webhook_body(delivery_id: str, workspace: str, payload: dict[str, Any]) -> bytes:
    envelope = {
        "id": delivery_id,
        "event": payload["event"],
        "occurred_at": payload["occurred_at"],
        "workspace": workspace,
        "data": payload["data"],
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


async def webhook_send(
    client: httpx.AsyncClient,
    settings: Any,
    secret: str,
    headers: dict[str, str],
    delivery_id: str,
    body: bytes,
    event: str,
    timestamp: str,
) -> Sent:
    sent_headers = {
        **headers,
        "Content-Type": "application/json",
        "X-Stagent-Event": event,
        "X-Stagent-Delivery": delivery_id,
        "X-Stagent-Timestamp": timestamp,
        "X-Stagent-Signature": sign(secret, timestamp, body),
    }
    try:
        resp = await client.post(
            settings.url, content=body, headers=sent_headers, timeout=settings.timeout_s
        )
    except httpx.HTTPError as exc:
        raise _network(exc, secret) from None
    if 200 <= resp.status_code < 300:
        return Sent(delivery_id, None, resp.status_code)
    raise _http_failure(resp.status_code, resp.text[:200], resp.headers)


__all__ = [
    "Sent",
    "TransportError",
    "install_log_filter",
    "sign",
    "slack_call",
    "slack_post",
    "telegram_call",
    "telegram_send",
    "webhook_body",
    "webhook_send",
]
