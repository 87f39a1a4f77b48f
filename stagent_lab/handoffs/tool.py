"""The ``Handoff`` tool: an agent passes work to another profile, under two sets of rules.

The permission cascade decides whether this agent may call ``Handoff`` at all (rules match the
main field ``to_profile``: ``Handoff(to_profile:code-*)``). The bus then applies the handoff
rules: no self-handoff, known profiles, chain depth, and the receiver's policy. A refusal comes
back as a tool error whose text says why, so the agent can do the work itself instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

from stagent_lab.handoffs.errors import HandoffError
from stagent_lab.tools.base import Tool, ToolContext, ToolResult


class HandoffTool(Tool):
    name = "Handoff"
    main_field = "to_profile"
    description = (
        "Hand work that is outside your expertise to another agent profile. It runs as a "
        "separate task (after operator approval when the receiver requires it); you do not "
        "wait for it. Give to_profile (a profile id), a one-line subject, and a body with the "
        "work and everything you found so far."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "to_profile": {"type": "string", "description": "id of the receiving profile"},
            "subject": {"type": "string", "maxLength": 200},
            "body": {"type": "string", "maxLength": 20000},
            "requires_approval": {
                "type": "boolean",
                "description": "ask the operator to approve even if the policy does not",
            },
        },
        "required": ["to_profile", "subject", "body"],
        "additionalProperties": False,
    }

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        service = ctx.services.get("handoff")
        if service is None:
            return ToolResult("Handoff is not available in this run.", is_error=True)
        try:
            msg = service.send(
                tool_input.get("to_profile"),
                tool_input.get("subject"),
                tool_input.get("body"),
                requires_approval=bool(tool_input.get("requires_approval", False)),
            )
        except HandoffError as exc:
            return ToolResult(f"Handoff refused: {exc}", is_error=True, meta={"reason": exc.reason})
        meta = {
            "message_id": msg["id"],
            "status": msg["status"],
            "target_task_id": msg["target_task_id"],
            "inbox_item_id": msg["inbox_item_id"],
            "chain_depth": msg["chain_depth"],
        }
        if msg["status"] == "pending":
            text = (
                f"Handoff to {msg['to_profile_id']} is waiting for operator approval (message "
                f"{msg['id']}). You do not need to wait for it."
            )
        else:
            text = (
                f"Handed off to {msg['to_profile_id']}: task {msg['target_task_id']} is queued "
                f"(message {msg['id']})."
            )
        return ToolResult(text, meta=meta)


__all__ = ["HandoffTool"]
