"""Agent-to-agent handoffs: a governed message bus over ``agent_messages``.

* ``bus.HandoffBus`` — validate, send, approve/deny, expire, close on completion
* ``policy`` — acceptFrom / blockFrom / requireApprovalFrom, from settings or the profile
* ``tool.HandoffTool`` — the governed ``Handoff`` tool
* ``wiring.attach(lab)`` — tool service, inbox handler, finish hook; returns the bus

See docs/handoffs.md.
"""

from __future__ import annotations

from stagent_lab.handoffs.bus import HandoffBus
from stagent_lab.handoffs.errors import REASONS, HandoffError
from stagent_lab.handoffs.policy import check_policy, policy_for
from stagent_lab.handoffs.tool import HandoffTool
from stagent_lab.handoffs.wiring import attach

__all__ = [
    "REASONS",
    "HandoffBus",
    "HandoffError",
    "HandoffTool",
    "attach",
    "check_policy",
    "policy_for",
]
