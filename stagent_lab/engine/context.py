"""The engine's implementation of RunContext: the only door a runtime has to tools and people."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagent_lab.errors import LimitExceeded
from stagent_lab.governance.rules import suggest_rule
from stagent_lab.runtimes.base import PermissionDecision, RunContext, ToolOutcome
from stagent_lab.tools.base import ToolContext, ToolResult
from stagent_lab.tools.confine import is_git_component

if TYPE_CHECKING:
    from stagent_lab.engine.engine import Engine
    from stagent_lab.engine.task import TaskState

LOG_OUTPUT_CAP = 20_000
UNATTENDED_MESSAGE = (
    "No operator is available for this unattended task, so requests that need a person are "
    "denied. Continue with what the allowed tools can do, or report what you would need."
)


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
        self.stall_timeout_s = float(engine.settings.value("runtimes.stall_timeout_s"))

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
        self._engine.book.publish_snapshot(st)
        return self.turn

    # ---- tools --------------------------------------------------------------------------

    def tool_specs(self) -> list[dict[str, Any]]:
        allowed = self.profile.allowed_tools or []
        return self._engine.tools.specs([t for t in allowed if "(" not in t])

    async def check_permission(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> PermissionDecision:
        eng, st = self._engine, self._st
        eng.events.task(st, "tool_request", tool_name=name, input=tool_input, call_id=call_id)
        decision = eng.evaluate_permission(st, name, tool_input)
        if decision is None and st.unattended:
            decision = PermissionDecision("deny", "unattended", UNATTENDED_MESSAGE)
        if decision is None:
            decision = await self._ask_human(name, tool_input)
        eng.events.task(
            st,
            "tool_decision",
            tool_name=name,
            behavior=decision.behavior,
            tier=decision.tier,
            rule=decision.rule,
            message=decision.message,
            call_id=call_id,
        )
        return decision

    async def _ask_human(self, name: str, tool_input: dict[str, Any]) -> PermissionDecision:
        try:
            suggested = suggest_rule(name, tool_input, working_dir=str(self.working_dir))
        except ValueError:  # no usable main field (e.g. malformed input): suggest the tool
            suggested = name
        out = await self._engine.inbox.ask(
            self._st,
            {
                "kind": "permission",
                "tool_name": name,
                "tool_input": tool_input,
                "suggested_rule": suggested,
            },
        )
        if out.decision == "deny":
            return PermissionDecision("deny", "human", out.message or "Denied by the operator.")
        return PermissionDecision(
            "allow", "human", out.message, rule=out.rule, always=out.decision == "always"
        )

    async def use_tool(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> ToolOutcome:
        decision = await self.check_permission(name, tool_input, call_id)
        if decision.behavior == "deny":
            text = f"Permission denied ({decision.tier}): {decision.message or 'no reason given'}"
            self.log_tool_result(name, text, True, call_id)
            return ToolOutcome(False, text, True, decision)
        eng = self._engine
        tool = eng.tools.get(name)
        effective_input = decision.updated_input or tool_input
        if tool is None:
            text = f"Unknown tool {name!r}; this runtime's tools are: " + ", ".join(
                s["name"] for s in self.tool_specs()
            )
            self.log_tool_result(name, text, True, call_id)
            return ToolOutcome(True, text, True, decision)
        limit = eng.tool_limit_s(self._st, name)
        ctx = ToolContext(
            working_dir=self.working_dir,
            task_id=self.task_id,
            profile_id=self.profile.id,
            bash_timeout_s=float(eng.settings.value("tools.bash_timeout_s")),
            output_cap_chars=int(eng.settings.value("tools.output_cap_chars")),
            services=eng.tool_services(self._st),
            tool_timeout_s=limit,
            allow_git_dir=_rule_names_git(decision),
        )
        try:
            result = await asyncio.wait_for(tool.run(effective_input, ctx), limit)
        except TimeoutError:
            result = ToolResult(f"{name}: timed out after {limit:g} s", is_error=True)
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
        self._engine.events.task(
            self._st,
            "tool_result",
            tool_name=name,
            output=shown,
            is_error=is_error,
            call_id=call_id,
            meta=_jsonable(meta or {}),
        )

    async def ask(self, question: str) -> str:
        st = self._st
        self._engine.events.task(st, "question", question=question)
        if st.unattended:
            answer = f"No operator is available to answer. {UNATTENDED_MESSAGE}"
        else:
            out = await self._engine.inbox.ask(st, {"kind": "question", "question": question})
            if out.decision == "answer":
                answer = out.message or ""
            else:
                answer = f"The operator declined to answer: {out.message or 'no reason given'}"
        self._engine.events.task(st, "answer", answer=answer)
        return answer

    # ---- transcript ---------------------------------------------------------------------

    async def save_transcript(self, data: Any) -> None:
        self._engine.save_transcript(self._st.id, data)

    async def load_transcript(self) -> Any | None:
        return self._engine.load_transcript(self._st.id)


def _rule_names_git(decision: PermissionDecision) -> bool:
    """Writes under ``.git/`` are allowed only when a person approved this very request, or the
    saved rule that allowed it names a ``.git`` folder itself (``Write(.git/info/exclude)``);
    never through a profile's autoApprove or a broad rule such as ``Write(**)``."""
    if decision.tier == "human":
        return True
    if decision.tier != "rule" or not decision.rule:
        return False
    return any(is_git_component(part) for part in re.split(r"[/\\():]", decision.rule))


def _jsonable(obj: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return {k: str(v) for k, v in obj.items()}
