"""The engine's implementation of RunContext: the only door a runtime has to tools and people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagent_lab.errors import LimitExceeded
from stagent_lab.runtimes.base import PermissionDecision, RunContext, ToolOutcome
from stagent_lab.tools import get_tool, tool_specs
from stagent_lab.tools.base import ToolContext

if TYPE_CHECKING:
    from stagent_lab.engine.engine import Engine, TaskState

LOG_OUTPUT_CAP = 20_000


class EngineRunContext(RunContext):
    def __init__(self, engine: Engine, st: TaskState, instructions: str, resuming: bool) -> None:
        self._engine = engine
        self._st = st
        self.task_id = st.id
        self.prompt = st.prompt
        self.profile = st.profile
        self.instructions = instructions
        self.model = st.model
        self.working_dir = Path(st.working_dir)
        self.max_turns = st.max_turns
        self.resuming = resuming
        self.session_id = st.session_id
        self.options = st.runtime_options
        self.turn = 0

    # ---- limits -------------------------------------------------------------------------

    def begin_turn(self) -> int:
        if self.turn >= self.max_turns:
            raise LimitExceeded(f"max turns reached ({self.max_turns})")
        st = self._st
        if st.max_budget_usd is not None and st.cost_usd >= st.max_budget_usd:
            raise LimitExceeded(
                f"budget exhausted: spent ${st.cost_usd:.4f} of ${st.max_budget_usd:.4f}"
            )
        self.turn += 1
        st.turns += 1
        return self.turn

    # ---- tools --------------------------------------------------------------------------

    def tool_specs(self) -> list[dict[str, Any]]:
        allowed = self.profile.allowed_tools or []
        return tool_specs([t for t in allowed if "(" not in t])

    async def check_permission(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> PermissionDecision:
        eng = self._engine
        eng.log(self._st, "tool_request", tool_name=name, input=tool_input, call_id=call_id)
        decision = eng.evaluate_permission(self._st, name, tool_input)
        if decision is None:
            decision = await eng.ask_human_permission(self._st, name, tool_input)
        eng.log(
            self._st,
            "tool_decision",
            tool_name=name,
            behavior=decision.behavior,
            tier=decision.tier,
            rule=decision.rule,
            message=decision.message,
            call_id=call_id,
        )
        return decision

    async def use_tool(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> ToolOutcome:
        decision = await self.check_permission(name, tool_input, call_id)
        if decision.behavior == "deny":
            text = f"Permission denied ({decision.tier}): {decision.message or 'no reason given'}"
            self.log_tool_result(name, text, True, call_id)
            return ToolOutcome(False, text, True, decision)
        tool = get_tool(name)
        effective_input = decision.updated_input or tool_input
        if tool is None:
            text = f"Unknown tool {name!r}; this runtime's tools are: " + ", ".join(
                s["name"] for s in self.tool_specs()
            )
            self.log_tool_result(name, text, True, call_id)
            return ToolOutcome(True, text, True, decision)
        ctx = ToolContext(
            working_dir=self.working_dir,
            task_id=self.task_id,
            profile_id=self.profile.id,
            bash_timeout_s=self._engine.setting_float("tools.bash_timeout_s", 120.0),
            output_cap_chars=int(self._engine.setting_float("tools.output_cap_chars", 30000)),
            services=self._engine.tool_services(self._st),
        )
        result = await tool.run(effective_input, ctx)
        self.log_tool_result(name, result.output, result.is_error, call_id, meta=result.meta)
        return ToolOutcome(True, result.output, result.is_error, decision)

    def log_tool_result(
        self,
        name: str,
        output: str,
        is_error: bool = False,
        call_id: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        shown = (
            output if len(output) <= LOG_OUTPUT_CAP else output[:LOG_OUTPUT_CAP] + "…[truncated]"
        )
        self._engine.log(
            self._st,
            "tool_result",
            tool_name=name,
            output=shown,
            is_error=is_error,
            call_id=call_id,
            meta=_jsonable(meta or {}),
        )

    async def ask(self, question: str) -> str:
        return await self._engine.ask_human_question(self._st, question)

    # ---- transcript ---------------------------------------------------------------------

    async def save_transcript(self, data: Any) -> None:
        self._engine.save_transcript(self._st.id, data)

    async def load_transcript(self) -> Any | None:
        return self._engine.load_transcript(self._st.id)


def _jsonable(obj: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return {k: str(v) for k, v in obj.items()}
