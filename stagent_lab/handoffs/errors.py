"""The one error handoffs raise on purpose, with a machine-readable ``reason``."""

from __future__ import annotations

from stagent_lab.errors import HandoffError

REASONS = (
    "invalid",  # empty or oversized subject/body, bad arguments
    "self_handoff",  # a profile handing work to itself
    "unknown_profile",  # sender or receiver does not exist
    "unknown_task",  # the source task does not exist or belongs to another profile
    "chain_depth",  # the chain of handoffs reached handoffs.max_chain_depth
    "blocked",  # the receiver's blockFrom names the sender
    "not_accepted",  # the receiver's acceptFrom does not name the sender
    "bad_policy",  # a handoffs.policy.<id> setting does not parse
    "expired",  # nobody approved the handoff in time
    "not_pending",  # decided or expired already
    "not_found",  # no such handoff message
)


__all__ = ["REASONS", "HandoffError"]
