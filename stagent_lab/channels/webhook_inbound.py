"""Generic signed webhooks, inbound (service only): ``POST /channels/<id>/webhook``.

Checks, in order: the body is at most 64 KB (413); ``X-Stagent-Delivery`` is 1–128 characters
of ``[A-Za-z0-9_-]`` (400); ``|now − X-Stagent-Timestamp| ≤ channels.replay_window_s`` and
``X-Stagent-Signature`` equals ``v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`` for
``inbound_secret`` (default ``secret``) or ``previous_secret``, compared in constant time (401,
the same body for both). Then the delivery id (kept for ever) and the signature itself are
deduplicated (409 with the original outcome: a replay is refused inside the window or outside
it, even under a new delivery id), the body is validated (400), the sender authorised (403),
and the task is queued or the item decided (202).
"""

from __future__ import annotations

import hmac
import json
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stagent_lab.api.requests import describe
from stagent_lab.channels.config import Channel, MissingSecret
from stagent_lab.channels.inbound import Action, Incoming, Outcome
from stagent_lab.channels.outbox import unix
from stagent_lab.channels.transports import sign
from stagent_lab.store import channels as repo
from stagent_lab.store import inbox as inbox_repo

if TYPE_CHECKING:
    from stagent_lab.channels.feature import ChannelsFeature

MAX_BODY = 64 * 1024
DELIVERY_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sender: str = Field(min_length=1, max_length=64)


class TaskBody(_Body):
    type: Literal["task"]
    prompt: str = Field(min_length=1, max_length=100_000)
    profile: str | None = Field(default=None, max_length=128)
    project: str | None = Field(default=None, max_length=4096)
    runtime: str | None = Field(default=None, max_length=128)


class DecisionBody(_Body):
    type: Literal["decision"]
    item_id: str | None = Field(default=None, max_length=128)
    item_code: str | None = Field(default=None, max_length=40)
    decision: Literal["allow", "always", "deny", "answer"]
    message: str | None = Field(default=None, max_length=100_000)

    @model_validator(mode="after")
    def _one_item(self) -> DecisionBody:
        if bool(self.item_id) == bool(self.item_code):
            raise ValueError("give exactly one of item_id and item_code")
        return self


def verify(f: ChannelsFeature, ch: Channel, headers: dict[str, str], body: bytes) -> str | None:
    """The request's signature when the timestamp is fresh and the signature right, else None."""
    stamp = headers.get("x-stagent-timestamp", "")
    given = headers.get("x-stagent-signature", "")
    if not stamp.isdigit() or not given.startswith("v1="):
        return None
    window = float(f.setting("channels.replay_window_s"))
    if abs(unix(f.clock.now()) - int(stamp)) > window:
        return None
    secrets = []
    try:
        secrets.append(
            f.secret(ch, "inbound_secret", ch.secrets.inbound_secret or ch.secrets.secret)
        )
    except MissingSecret:
        return None
    if ch.secrets.previous_secret:
        try:
            secrets.append(f.secret(ch, "previous_secret"))
        except MissingSecret:
            pass
    ok = False
    for secret in secrets:  # every secret is compared, so timing says nothing about which
        ok |= hmac.compare_digest(sign(secret, stamp, body), given)
    return given if ok else None


def handle(
    f: ChannelsFeature, ch: Channel, delivery_id: str, signature: str, raw: bytes
) -> tuple[int, dict[str, Any]]:
    """A verified request, on the engine thread: (HTTP status, JSON body)."""
    con = f.con
    for existing in (
        repo.by_key(con, ch.id, delivery_id),
        repo.by_signature(con, ch.id, signature),
    ):
        if existing is not None:
            original = json.loads(existing["outcome"] or "{}")
            return 409, {"status": "duplicate", "delivery_id": existing["dedupe_key"], **original}
    try:
        data = json.loads(raw)
    except ValueError:
        return 400, {"error": "the body is not JSON"}
    kind = data.get("type") if isinstance(data, dict) else None
    model = {"task": TaskBody, "decision": DecisionBody}.get(kind)  # type: ignore[arg-type]
    if model is None:
        return 400, {"error": "type must be 'task' or 'decision'"}
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        return 400, {"error": describe(exc, f"webhook {kind}")}
    text = body.prompt if isinstance(body, TaskBody) else body.message or body.decision
    msg = Incoming(key=delivery_id, external_id=delivery_id, sender=body.sender, text=text)
    inbound = f.inbound
    row = inbound.row_for(ch, msg)
    row["request_sig"] = signature
    if isinstance(body, TaskBody):
        return _task(f, ch, msg, row, body)
    return _decision(f, ch, msg, row, body)


def _task(
    f: ChannelsFeature, ch: Channel, msg: Incoming, row: dict[str, Any], body: TaskBody
) -> tuple[int, dict[str, Any]]:
    inbound = f.inbound
    if not inbound.allowed(ch, msg, "senders"):
        inbound.reject(ch, msg, row, "sender")
        return 403, {"error": "sender not allowed"}
    out = inbound.start_task(
        ch,
        msg,
        row,
        Action("task", "senders", prompt=body.prompt),
        overrides={"profile": body.profile, "project": body.project, "runtime": body.runtime},
    )
    return _answer(out)


def _decision(
    f: ChannelsFeature, ch: Channel, msg: Incoming, row: dict[str, Any], body: DecisionBody
) -> tuple[int, dict[str, Any]]:
    inbound = f.inbound
    if not inbound.allowed(ch, msg, "deciders"):
        inbound.reject(ch, msg, row, "sender")
        return 403, {"error": "sender not allowed"}
    con = f.con
    ref = body.item_id or (body.item_code or "").lstrip("#").lower()
    ids = repo.delivered_items(con, ch.id, ref)
    if body.item_id:
        ids = [i for i in ids if i == body.item_id]
    if len(ids) != 1:
        inbound.commit(ch, msg, row, Outcome("processed", {"error": "unknown item"}))
        return 404, {"error": "unknown item" if not ids else "several items match; give more"}
    item = inbox_repo.get(con, ids[0])
    if item is None:
        return 404, {"error": "unknown item"}
    if item["status"] != "pending":
        inbound.commit(
            ch, msg, row, Outcome("processed", {"item_id": item["id"], "error": "not pending"})
        )
        return 422, {
            "error": f"item is {item['status']}",
            "item_id": item["id"],
            "decision": item["decision"],
            "decided_by": item["decided_by"],
        }
    if body.decision == "always" and not ch.allow_always:
        inbound.commit(
            ch, msg, row, Outcome("processed", {"item_id": item["id"], "error": "always refused"})
        )
        return 403, {"error": "'always' is not enabled on this channel"}
    out = inbound.decide(
        ch, msg, row, Action("decide", "deciders", item["id"], body.decision, body.message)
    )
    return _answer(out)


def _answer(out: Outcome) -> tuple[int, dict[str, Any]]:
    if out.status == "rejected":
        return 429, {"error": out.outcome.get("rejected", "rejected")}
    if "error" in out.outcome:
        return 422, {
            "error": out.outcome["error"],
            **{k: v for k, v in out.outcome.items() if k != "error"},
        }
    if "task_id" in out.outcome:
        return 202, {"status": "queued", "task_id": out.outcome["task_id"]}
    return 202, {"status": "decided", **out.outcome}


__all__ = ["DELIVERY_ID", "MAX_BODY", "handle", "verify"]
