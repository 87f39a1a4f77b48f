"""The runtime contract: one ``run()`` that yields events.

A runtime turns (profile, prompt, context) into a stream of events. It never writes to the
store and never decides a permission itself: before any tool runs it asks the engine through
the RunContext (``use_tool`` for the built-in tool set, ``check_permission`` for runtimes whose
CLI brings its own tools). The engine logs, prices and persists what the runtime yields.

Optional abilities (resume, cancel, ...) are declared in ``capabilities``; calling one a runtime
lacks raises NotImplementedError naming the runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from stagent_lab.profiles.model import Profile


# ---- events a runtime yields -------------------------------------------------------------


@dataclass
class AssistantText:
    """Text the model produced (a whole block, or a streamed delta when ``delta`` is True)."""

    text: str
    delta: bool = False


@dataclass
class UsageReport:
    """One model call's usage. ``input_tokens`` excludes cache reads/writes.

    ``cost_usd`` is set only when the runtime itself reports a per-call cost; otherwise the
    ledger prices the tokens with genai-prices.
    """

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    estimated: bool = False  # token counts are estimates (scripted runtime)


@dataclass
class SessionStarted:
    """The provider's session/thread id, stored so the task can be resumed."""

    session_id: str


@dataclass
class Notice:
    """Something worth a log line that is not model output (retry, fallback, diagnostic)."""

    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """The run's final answer. A stream that ends without one fails the task."""

    text: str


RuntimeEvent = AssistantText | UsageReport | SessionStarted | Notice | Result


# ---- what the engine gives a runtime ------------------------------------------------------


@dataclass
class PermissionDecision:
    behavior: Literal["allow", "deny"]
    tier: str  # allowed_tools | profile_auto_deny | profile_auto_approve | rule | human
    message: str | None = None  # deny text the agent should see
    updated_input: dict[str, Any] | None = None
    rule: str | None = None  # the rule that decided (tier == "rule"), or the rule saved by "always"
    always: bool = False  # the human chose "always allow"


@dataclass
class ToolOutcome:
    """What a governed built-in tool call produced, ready to hand back to the model."""

    allowed: bool
    output: str
    is_error: bool
    decision: PermissionDecision


class RunContext:
    """Implemented by the engine; documented here so runtimes can be written against it.

    Attributes set before ``run`` is called:
      task_id, prompt, profile, instructions (the full system prompt: SKILL.md body, project
      instructions, retrieved memories), model (str | None: explicit or profile override),
      working_dir, max_turns, resuming (bool), session_id (str | None, for resume),
      options (dict: runtime settings such as base_url), turn (turns begun so far),
      stall_timeout_s (seconds without any event from the provider before the run fails;
      a runtime's own ``stall_timeout_s`` option wins; read it as
      ``getattr(ctx, "stall_timeout_s", 60.0)``, older contexts lack it).
    """

    task_id: str
    prompt: str
    profile: Profile
    instructions: str
    model: str | None
    working_dir: Path
    max_turns: int
    resuming: bool
    session_id: str | None
    options: dict[str, Any]
    turn: int
    stall_timeout_s: float = 60.0

    def begin_turn(self) -> int:
        """Count a model turn; raises LimitExceeded past max_turns. Returns the turn number."""
        raise NotImplementedError

    def tool_specs(self) -> list[dict[str, Any]]:
        """Built-in tools the profile allows: [{name, description, input_schema}]."""
        raise NotImplementedError

    async def use_tool(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> ToolOutcome:
        """Log the request, run the permission cascade (waiting on the inbox if needed),
        run the built-in tool if allowed, log the result. A denial comes back as an error
        outcome whose output carries the deny message, for the model to read."""
        raise NotImplementedError

    async def check_permission(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> PermissionDecision:
        """Cascade only, for runtimes whose CLI runs its own tools. Logs request + decision."""
        raise NotImplementedError

    def log_tool_result(
        self, name: str, output: str, is_error: bool = False, call_id: str | None = None
    ) -> None:
        """For runtimes that run their own tools: record what the tool returned."""
        raise NotImplementedError

    async def ask(self, question: str) -> str:
        """Put a question in the inbox and wait for the operator's answer."""
        raise NotImplementedError

    async def save_transcript(self, data: Any) -> None:
        """Persist the conversation so far (JSON-able) so a resume continues from it."""
        raise NotImplementedError

    async def load_transcript(self) -> Any | None:
        raise NotImplementedError


# ---- the runtime itself -------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    resume: bool = False
    cancel: bool = True
    approvals: bool = True
    mcp_servers: bool = False
    profile_tests: bool = True
    auth_health_check: bool = False
    builtin_tools: bool = True  # uses stagent_lab.tools (False: the CLI brings its own)


@dataclass(frozen=True)
class Availability:
    usable: bool
    reason: str = ""


class Runtime:
    id: ClassVar[str]
    label: ClassVar[str] = ""
    provider: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()
    default_model: ClassVar[str | None] = None

    def __init__(self, **options: Any) -> None:
        self.options = options

    def availability(self) -> Availability:
        """Whether this runtime can run now here (SDK importable, key present, binary found)."""
        return Availability(True)

    def run(self, ctx: RunContext) -> AsyncIterator[RuntimeEvent]:
        raise NotImplementedError(f"runtime {self.id!r} does not implement run()")
