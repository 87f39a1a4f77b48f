"""The ``Memory`` tool: how an agent remembers and recalls, under the permission cascade.

The tool never touches the database itself. The engine hands it a per-task memory service
(``ctx.services["memory"]``, see feature.py) bound to the task's profile, so an agent can only
ever read and write its own profile's memories. Both actions are awaited: recall reads in a
worker thread and remember is answered by the writer's next batch, so neither holds the loop.
Rules match the main field ``content`` (``Memory(content:*acme*)``) or others
(``Memory(action:recall)``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from stagent_lab.memory.scoring import CATEGORIES
from stagent_lab.tools.base import Tool, ToolContext, ToolResult


class MemoryTool(Tool):
    name = "Memory"
    main_field = "content"
    description = (
        "Keep knowledge across tasks. action='remember' stores `content` (one self-contained "
        "sentence: a fact, a preference, a pattern that worked, or an outcome) for future tasks "
        "of this profile; remembering the same thing again raises its confidence. "
        "action='recall' looks up what you remember about `content` (or `query`)."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["remember", "recall"]},
            "content": {
                "type": "string",
                "description": "remember: the memory itself; recall: what to look up",
                "maxLength": 2000,
            },
            "category": {"type": "string", "enum": list(CATEGORIES)},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
            "query": {"type": "string", "description": "recall: alternative to content"},
            "confidence": {"type": "integer", "minimum": 0, "maximum": 1000},
        },
        "required": ["action", "content"],
        "additionalProperties": False,
    }

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        service = ctx.services.get("memory")
        if service is None:
            return ToolResult("Memory is not available in this run.", is_error=True)
        action = tool_input.get("action", "remember")
        try:
            if action == "remember":
                return await self._remember(service, tool_input)
            if action == "recall":
                return await self._recall(service, tool_input)
        except ValueError as exc:
            return ToolResult(f"Memory: {exc}", is_error=True)
        return ToolResult(
            f"Memory: unknown action {action!r}; use 'remember' or 'recall'", is_error=True
        )

    @staticmethod
    async def _remember(service: Any, tool_input: dict[str, Any]) -> ToolResult:
        out = await service.remember(
            tool_input.get("content"),
            category=tool_input.get("category") or "fact",
            tags=tool_input.get("tags"),
            confidence=tool_input.get("confidence"),
        )
        meta = {"memory_id": out.id, "action": out.action, "confidence": out.confidence}
        if out.action == "refused":
            return ToolResult(f"Not remembered: {out.reason}.", is_error=True, meta=meta)
        if out.action == "reinforced":
            text = f"Already remembered; confidence is now {out.confidence}/1000 (id {out.id})."
        else:
            text = f"Remembered (id {out.id}, confidence {out.confidence}/1000)."
        return ToolResult(text, meta=meta)

    @staticmethod
    async def _recall(service: Any, tool_input: dict[str, Any]) -> ToolResult:
        query = tool_input.get("query") or tool_input.get("content") or ""
        df = await service.recall(query, tags=tool_input.get("tags") or ())
        if df.empty:
            return ToolResult("No memories match.", meta={"memory_ids": []})
        lines = [
            f"- [{r.category} {round(r.effective_confidence)}] {r.content} (id {r.id})"
            for r in df.itertuples()
        ]
        return ToolResult("\n".join(lines), meta={"memory_ids": df["id"].tolist()})


__all__ = ["MemoryTool"]
