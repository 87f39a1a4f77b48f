"""Agent-to-agent handoffs: a governed message bus over ``agent_messages``.

* ``bus.HandoffBus`` — validate, send, approve/deny, expire, close on completion
* ``policy`` — acceptFrom / blockFrom / requireApprovalFrom, from settings or the profile
* ``tool.HandoffTool`` — the governed ``Handoff`` tool
* ``feature.HandoffsFeature`` — tool service, inbox handler, finish hook, requests

See docs/handoffs.md.
"""

from __future__ import annotations

from stagent_lab.handoffs.bus import HandoffBus
from stagent_lab.handoffs.errors import REASONS, HandoffError
from stagent_lab.handoffs.policy import check_policy, policy_for
from stagent_lab.handoffs.tool import HandoffTool

__all__ = ["REASONS", "HandoffBus", "HandoffError", "HandoffTool", "check_policy", "policy_for"]
