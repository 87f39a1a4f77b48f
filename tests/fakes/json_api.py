"""A loopback JSON API with state (the Slack, Telegram and webhook fakes build on it).

Unlike the model fakes, these answer from state (a channel's messages, a bot's pending updates),
so each subclass implements ``respond(request) -> (status, body, headers)``. Faults are queued
per path and take precedence over the state: ``fake.fail(path, http_error(500), slow(2))``.
Every wait is bounded by ``close()``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.base import Entry, FakeServer, RecordedRequest, _Handler


@dataclass(frozen=True)
class Slow:
    """Answer after ``seconds`` (bounded by close()); then ``then`` or the normal answer."""

    seconds: float
    then: Entry | None = None


def slow(seconds: float, then: Entry | None = None) -> Slow:
    return Slow(seconds, then)


class JsonApiFake(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self._faults: dict[str, deque[Any]] = {}

    def fail(self, path: str, *entries: Any) -> None:
        """Queue faults for ``path`` (any method); each request takes the next one."""
        with self._lock:
            self._faults.setdefault(path, deque()).extend(entries)

    def faults_left(self, path: str) -> int:
        with self._lock:
            return len(self._faults.get(path, ()))

    @staticmethod
    def params(request: RecordedRequest) -> dict[str, Any]:
        """Query parameters, then a JSON or form body on top."""
        out: dict[str, Any] = dict(parse_qsl(request.query, keep_blank_values=True))
        if isinstance(request.body, dict):
            out.update(request.body)
        elif request.raw and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            out.update(parse_qsl(request.raw.decode(errors="replace"), keep_blank_values=True))
        return out

    def respond(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def whole_body(self, turn: Any, request: RecordedRequest) -> Any:
        return turn.get("json", turn) if isinstance(turn, dict) else turn

    def _handle(self, h: _Handler) -> None:
        request = self._read_request(h)
        with self._lock:
            self._requests.append(request)
            queue = self._faults.get(request.path)
            fault = queue.popleft() if queue else None
        if isinstance(fault, Slow):
            self._closing.wait(fault.seconds)
            fault = fault.then
        if fault is not None:
            self._play(h, fault, request)
            return
        try:
            status, body, headers = self.respond(request)
        except Exception as exc:  # a bug in the fake shows up in the test, not as a hang
            self.errors.append(repr(exc))
            status, body, headers = 500, self.error_body(500, f"fake error: {exc}"), {}
        self._send_json(h, status, body, headers)
