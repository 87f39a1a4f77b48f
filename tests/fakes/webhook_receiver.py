"""A loopback webhook receiver: records each POST to ``/hook`` and answers 200.

``verify(request)`` checks a request the way a receiver should: ``X-Stagent-Signature`` equals
``v1=`` + hex HMAC-SHA256(secret, ``"<X-Stagent-Timestamp>.<raw body>"``). Faults:
``fail("/hook", http_error(500), http_error(429, headers={"Retry-After": "30"}), slow(2))``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from tests.fakes.base import RecordedRequest
from tests.fakes.json_api import JsonApiFake

PATH = "/hook"


class WebhookReceiver(JsonApiFake):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    @property
    def url(self) -> str:
        return f"{self.base_url}{PATH}"

    @property
    def deliveries(self) -> list[RecordedRequest]:
        return self.requests_to(PATH)

    def respond(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        if request.path != PATH or request.method != "POST":
            return 404, {"error": "not found"}, {}
        return 200, {"ok": True}, {}

    def verify(self, request: RecordedRequest, secret: str | None = None) -> bool:
        stamp = request.headers.get("x-stagent-timestamp", "")
        given = request.headers.get("x-stagent-signature", "")
        mac = hmac.new((secret or self.secret).encode(), stamp.encode() + b"." + request.raw,
                       hashlib.sha256)  # fmt: skip
        return hmac.compare_digest("v1=" + mac.hexdigest(), given)


def sign(secret: str, stamp: str, body: bytes) -> str:
    """What a caller of our inbound webhook sends as ``X-Stagent-Signature``."""
    return (
        "v1=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )


__all__ = ["PATH", "WebhookReceiver", "sign"]
