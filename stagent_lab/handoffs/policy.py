"""Who may hand work to whom: pure checks, no I/O.

A receiving profile's policy comes from the setting ``handoffs.policy.<profile_id>`` (JSON with
``acceptFrom`` / ``blockFrom`` / ``requireApprovalFrom``) when the operator set one, else from
the profile's ``handoffPolicy``, else "accept anyone, no approval". Entries are profile ids or
globs (``*``, ``support-*``). Block beats accept; approval is asked only of accepted senders.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from pydantic import ValidationError

from stagent_lab.handoffs.errors import HandoffError
from stagent_lab.profiles.model import HandoffPolicy, Profile

POLICY_SETTING = "handoffs.policy.{}"


def matches(patterns: Iterable[str], profile_id: str) -> bool:
    return any(fnmatchcase(profile_id, p) for p in patterns)


def policy_for(profile: Profile, settings: Mapping[str, str]) -> tuple[HandoffPolicy, str]:
    """The receiver's policy and where it came from ("setting", "profile" or "default")."""
    key = POLICY_SETTING.format(profile.id)
    raw = settings.get(key)
    if raw:
        try:
            return HandoffPolicy.model_validate(json.loads(raw)), "setting"
        except (ValueError, ValidationError) as exc:
            raise HandoffError(
                f"setting {key!r} is not a valid handoff policy (JSON with acceptFrom, blockFrom, "
                f"requireApprovalFrom): {exc}",
                "bad_policy",
            ) from None
    if profile.handoff_policy is not None:
        return profile.handoff_policy, "profile"
    return HandoffPolicy(), "default"


def check_policy(sender: str, receiver: Profile, settings: Mapping[str, str]) -> bool:
    """Raise HandoffError when ``receiver`` refuses ``sender``; else True if approval is needed."""
    policy, origin = policy_for(receiver, settings)
    where = (
        "the setting " + POLICY_SETTING.format(receiver.id)
        if origin == "setting"
        else (f"profile {receiver.id}'s handoffPolicy")
    )
    if matches(policy.block_from, sender):
        raise HandoffError(
            f"{receiver.id} does not take handoffs from {sender}: blockFrom in {where} names it",
            "blocked",
        )
    if not matches(policy.accept_from, sender):
        raise HandoffError(
            f"{receiver.id} does not take handoffs from {sender}: acceptFrom in {where} is "
            f"{policy.accept_from}",
            "not_accepted",
        )
    return matches(policy.require_approval_from, sender)


__all__ = ["POLICY_SETTING", "check_policy", "matches", "policy_for"]
