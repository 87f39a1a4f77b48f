"""A loopback fake of the Telegram Bot API (``{base_url}/bot<token>/<method>``, JSON bodies).

Answers ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
"parameters"?: {"retry_after"}}`` like the real API. Methods: ``getMe``, ``getUpdates`` (real
offset semantics: an offset confirms every update before it, ``-1`` answers only the newest;
long polling waits up to ``timeout`` seconds for an update), ``sendMessage``,
``answerCallbackQuery``, ``setWebhook`` / ``deleteWebhook`` (``getUpdates`` answers 409 while a
webhook is set). A wrong token gets 401.

People act with ``say(user_id, text, reply_to=None)`` and ``press(user_id, message_id, data)``
(an inline button). Test controls: ``batch`` (updates per answer), ``hold_offset`` (a
``getUpdates`` with that offset hangs until close, to kill a client mid-call). Faults:
``fail(path, retry_after_error(5))``, ``http_error(500)``, ``slow(s)``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.fakes.base import HttpError, RecordedRequest, http_error
from tests.fakes.json_api import JsonApiFake

TOKEN = "7000000001:AAFakeTelegramBotTokenValue_0123456789"
MAX_WAIT_S = 10.0


def retry_after_error(seconds: int) -> HttpError:
    return http_error(
        429,
        {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after "
         f"{seconds}", "parameters": {"retry_after": seconds}},
    )  # fmt: skip


class TelegramFake(JsonApiFake):
    def __init__(self, token: str = TOKEN, bot_id: int = 7000000001, username: str = "stagent_bot"):
        super().__init__()
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.chat_id = -100123
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] | None = None
        self.batch: int | None = None
        self.hold_offset: int | None = None
        self._next_update = 1
        self._next_message = 100
        self._cond = threading.Condition()

    @property
    def api_base(self) -> str:
        return self.base_url

    def path(self, method: str) -> str:
        return f"/bot{self.token}/{method}"

    def error_body(self, status: int, message: str) -> Any:
        return {"ok": False, "error_code": status, "description": message}

    # ---- people ----------------------------------------------------------------------------

    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            update["update_id"] = self._next_update
            self._next_update += 1
            self.updates.append(update)
            self._cond.notify_all()
        return update

    def say(
        self,
        user_id: int,
        text: str,
        reply_to: int | None = None,
        chat_id: int | None = None,
        is_bot: bool = False,
    ) -> dict[str, Any]:
        with self._cond:
            self._next_message += 1
            mid = self._next_message
        message: dict[str, Any] = {
            "message_id": mid,
            "from": {"id": user_id, "is_bot": is_bot, "first_name": f"user{user_id}"},
            "chat": {"id": chat_id or self.chat_id, "type": "group"},
            "date": int(time.time()),
            "text": text,
        }
        if reply_to is not None:
            message["reply_to_message"] = {"message_id": reply_to, "from": {"id": self.bot_id,
                                           "is_bot": True}, "chat": message["chat"]}  # fmt: skip
        return self._push({"message": message})

    def press(self, user_id: int, message_id: int, data: str) -> dict[str, Any]:
        with self._cond:
            self._next_message += 1
            qid = f"cq{self._next_message}"
        query = {
            "id": qid,
            "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
            "message": {"message_id": message_id, "chat": {"id": self.chat_id, "type": "group"}},
            "chat_instance": "1",
            "data": data,
        }
        return self._push({"callback_query": query})

    # ---- the API ---------------------------------------------------------------------------

    def respond(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        prefix = f"/bot{self.token}/"
        if not request.path.startswith(prefix):
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, {}
        method = request.path[len(prefix) :]
        p = self.params(request)
        if method == "getMe":
            return self._ok({"id": self.bot_id, "is_bot": True, "first_name": "Stagent",
                             "username": self.username})  # fmt: skip
        if method == "getUpdates":
            return self._get_updates(p)
        if method == "sendMessage":
            return self._send(p)
        if method == "answerCallbackQuery":
            self.callback_answers.append(p)
            return self._ok(True)
        if method == "setWebhook":
            self.webhook = p
            return self._ok(True)
        if method == "deleteWebhook":
            self.webhook = None
            return self._ok(True)
        return 404, {"ok": False, "error_code": 404, "description": "Not Found"}, {}

    @staticmethod
    def _ok(result: Any) -> tuple[int, Any, dict[str, str]]:
        return 200, {"ok": True, "result": result}, {}

    def _get_updates(self, p: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if self.webhook is not None:
            return 409, {"ok": False, "error_code": 409, "description": "Conflict: can't use "
                         "getUpdates method while webhook is active; use deleteWebhook to "
                         "delete the webhook first"}, {}  # fmt: skip
        offset = int(p.get("offset") or 0)
        if self.hold_offset is not None and offset == self.hold_offset:
            self._closing.wait(3600)
            return 500, self.error_body(500, "closing"), {}
        timeout = min(float(p.get("timeout") or 0), MAX_WAIT_S)
        limit = int(p.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset == -1:
                self.updates = self.updates[-1:]
                return self._ok(list(self.updates))
            if offset > 0:  # confirms everything before the offset
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            while not self.updates and not self._closing.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.05))
            size = min(limit, self.batch or limit)
            return self._ok(list(self.updates[:size]))

    def _send(self, p: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if not p.get("text"):
            return 400, self.error_body(400, "Bad Request: message text is empty"), {}
        if "parse_mode" in p:
            return 400, self.error_body(400, "Bad Request: this fake expects plain text"), {}
        with self._cond:
            self._next_message += 1
            mid = self._next_message
        self.sent.append({**p, "message_id": mid})
        return self._ok({"message_id": mid, "chat": {"id": p.get("chat_id")}, "text": p["text"],
                         "date": int(time.time())})  # fmt: skip


__all__ = ["TOKEN", "TelegramFake", "retry_after_error"]
