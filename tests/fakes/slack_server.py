"""A loopback fake of the Slack Web API: one workspace, its channels and their messages.

Methods (``{base_url}/api/<method>``, ``Authorization: Bearer <token>``, GET query or POST
JSON / form bodies, answers ``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}``):

* ``auth.test`` — the bot's ``user_id`` and ``bot_id``;
* ``chat.postMessage`` — ``channel``, ``text``, ``thread_ts``; answers the new ``ts``;
* ``conversations.history`` — top-level messages (and thread broadcasts) newer than ``oldest``
  (``inclusive`` honoured), newest first, ``limit`` per page, ``has_more`` and
  ``response_metadata.next_cursor``;
* ``conversations.replies`` — the thread's root first, then its replies newer than ``oldest``.

People write with ``post(user, text, thread_ts=None)``; the bot's posts are recorded with its
``bot_id``. Faults: ``fail("/api/chat.postMessage", http_error(500))``,
``slack_error("invalid_auth")``, ``rate_limited(30)`` (HTTP 429 with ``Retry-After``), ``slow(s)``.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from tests.fakes.base import HttpError, RecordedRequest, http_error
from tests.fakes.json_api import JsonApiFake

TOKEN = "xoxb-1111111111-2222222222222-fakeSlackBotTokenValue0123"


def slack_error(code: str) -> HttpError:
    """Slack's way of failing: HTTP 200 with ``ok: false``."""
    return http_error(200, {"ok": False, "error": code})


def rate_limited(retry_after: float) -> HttpError:
    return http_error(
        429, {"ok": False, "error": "ratelimited"}, headers={"Retry-After": f"{retry_after:g}"}
    )


class SlackFake(JsonApiFake):
    def __init__(self, token: str = TOKEN, bot_user: str = "UBOT0001", bot_id: str = "BBOT0001"):
        super().__init__()
        self.token = token
        self.bot_user = bot_user
        self.bot_id = bot_id
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.posted: list[dict[str, Any]] = []
        self._seq = 0
        self._state = threading.Lock()

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api"

    def error_body(self, status: int, message: str) -> Any:
        return {"ok": False, "error": message}

    # ---- people and state ----------------------------------------------------------------

    def _ts(self) -> str:
        self._seq += 1
        return f"1700000000.{self._seq:06d}"

    def post(self, channel: str, user: str, text: str, thread_ts: str | None = None, **extra):
        """A person (or another bot, with ``bot_id=``) writes; returns the message's ts."""
        with self._state:
            ts = self._ts()
            msg = {"type": "message", "user": user, "text": text, "ts": ts, **extra}
            if thread_ts:
                msg["thread_ts"] = thread_ts
            self.messages.setdefault(channel, []).append(msg)
            self._bump(channel, thread_ts)
            return ts

    def _bump(self, channel: str, thread_ts: str | None) -> None:
        if not thread_ts:
            return
        for m in self.messages.get(channel, []):
            if m["ts"] == thread_ts:
                m.setdefault("thread_ts", thread_ts)
                m["reply_count"] = m.get("reply_count", 0) + 1

    def bot_posts(self, channel: str | None = None) -> list[dict[str, Any]]:
        """What the bot posted successfully (chat.postMessage parameters, in order)."""
        with self._state:
            return [p for p in self.posted if channel is None or p.get("channel") == channel]

    def thread(self, channel: str, root: str) -> list[dict[str, Any]]:
        """The replies in a thread (the root excluded), oldest first."""
        with self._state:
            return [
                m
                for m in self.messages.get(channel, [])
                if m.get("thread_ts") == root and m["ts"] != root
            ]

    # ---- the API -------------------------------------------------------------------------

    def respond(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        if not request.path.startswith("/api/"):
            return 404, {"ok": False, "error": "unknown_method"}, {}
        method = request.path[len("/api/") :]
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        p = self.params(request)
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
        }.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return 200, handler(p), {}

    def _auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": self.bot_user, "bot_id": self.bot_id, "team_id": "T0001",
                "user": "stagent"}  # fmt: skip

    def _post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not p.get("text"):
            return {"ok": False, "error": "no_text"}
        with self._state:
            ts = self._ts()
            msg = {"type": "message", "user": self.bot_user, "bot_id": self.bot_id,
                   "text": p["text"], "ts": ts}  # fmt: skip
            if p.get("thread_ts"):
                msg["thread_ts"] = str(p["thread_ts"])
            self.messages.setdefault(channel, []).append(msg)
            self._bump(channel, msg.get("thread_ts"))
            self.posted.append(dict(p))
        return {"ok": True, "channel": channel, "ts": ts, "message": dict(msg)}

    def _window(self, msgs: list[dict[str, Any]], p: dict[str, Any]) -> list[dict[str, Any]]:
        oldest = Decimal(str(p.get("oldest") or "0"))
        inclusive = str(p.get("inclusive", "false")).lower() in ("1", "true")
        return [
            m for m in msgs
            if Decimal(m["ts"]) > oldest or (inclusive and Decimal(m["ts"]) == oldest)
        ]  # fmt: skip

    def _history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel") or "")
        with self._state:
            msgs = [
                dict(m)
                for m in self.messages.get(channel, [])
                if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
            ]
        msgs = sorted(self._window(msgs, p), key=lambda m: Decimal(m["ts"]), reverse=True)
        return self._page(msgs, p)

    def _replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, root = str(p.get("channel") or ""), str(p.get("ts") or "")
        with self._state:
            everything = self.messages.get(channel, [])
            parent = [dict(m) for m in everything if m["ts"] == root]
            replies = [
                dict(m) for m in everything if m.get("thread_ts") == root and m["ts"] != root
            ]
        if not parent:
            return {"ok": False, "error": "thread_not_found"}
        replies = sorted(self._window(replies, p), key=lambda m: Decimal(m["ts"]))
        return self._page(parent + replies, p)

    def _page(self, msgs: list[dict[str, Any]], p: dict[str, Any]) -> dict[str, Any]:
        limit = max(1, min(int(p.get("limit") or 100), 1000))
        start = int(p.get("cursor") or 0)
        page = msgs[start : start + limit]
        more = start + limit < len(msgs)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }


__all__ = ["TOKEN", "SlackFake", "rate_limited", "slack_error"]
