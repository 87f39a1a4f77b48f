"""A small RunContext test double for the runtimes, so they are tested without the engine.

Why a double and not the engine: the adapters are tested for what they send and yield, so
the context only needs to be honest about the contract: ``begin_turn`` counts and enforces
``max_turns``, ``use_tool`` and ``check_permission`` answer from a scripted decision map (allow
with an output, or deny with a message the model must see), transcripts are kept in memory
after a JSON round trip (so a runtime that saves something non-JSON fails here as it would in
the store), and ``stall_timeout_s`` is there as the engine provides it (default 60 s).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from stagent_lab.errors import LimitExceeded
from stagent_lab.runtimes.base import (
    PermissionDecision,
    RunContext,
    Runtime,
    RuntimeEvent,
    ToolOutcome,
)

READ_SPEC = {
    "name": "Read",
    "description": "Read a file in the working directory.",
    "input_schema": {
        "type": "object",
        "properties": {"file_path": {"type": "string"}},
        "required": ["file_path"],
    },
}
BASH_SPEC = {
    "name": "Bash",
    "description": "Run a shell command.",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}


@dataclass
class Deny:
    message: str


ToolReply = str | Deny | Callable[[dict[str, Any]], str]


def profile_with(runtime_id: str | None = None, **override: Any) -> SimpleNamespace:
    """A profile stand-in with ``capability_overrides[runtime_id]`` built from keywords.

    ``thinking=(enabled, budget)`` becomes ``extended_thinking``.
    """
    overrides: dict[str, Any] = {}
    if runtime_id is not None:
        thinking = override.pop("thinking", None)
        extended = (
            SimpleNamespace(enabled=thinking[0], budget_tokens=thinking[1]) if thinking else None
        )
        overrides[runtime_id] = SimpleNamespace(
            model=override.pop("model", None),
            extended_thinking=extended,
            reasoning_effort=override.pop("reasoning_effort", None),
        )
    return SimpleNamespace(id="tester", capability_overrides=overrides)


class CtxDouble(RunContext):
    def __init__(
        self,
        prompt: str = "Summarise notes.txt",
        *,
        tools: dict[str, ToolReply] | None = None,
        specs: list[dict[str, Any]] | None = None,
        instructions: str = "You are a careful test agent.",
        model: str | None = None,
        max_turns: int = 8,
        resuming: bool = False,
        transcript: Any = None,
        profile: Any = None,
        options: dict[str, Any] | None = None,
        answers: list[str] | None = None,
        stall_timeout_s: float = 60.0,
        working_dir: Path | None = None,
    ) -> None:
        self.task_id = "task-1"
        self.prompt = prompt
        self.profile = profile if profile is not None else profile_with()
        self.instructions = instructions
        self.model = model
        self.working_dir = working_dir if working_dir is not None else Path(".")
        self.max_turns = max_turns
        self.resuming = resuming
        self.session_id = None
        self.options = dict(options or {})
        self.turn = 0
        self.stall_timeout_s = stall_timeout_s  # what the engine provides (default 60 s)
        self.tools: dict[str, ToolReply] = dict(tools or {})
        self.specs = specs if specs is not None else [READ_SPEC, BASH_SPEC]
        self.transcript = transcript
        self.answers = list(answers or [])
        self.tool_calls: list[tuple[str, dict[str, Any], str | None]] = []
        self.saved: list[Any] = []
        # For the CLI runtimes, which run their own tools: what they asked and reported.
        self.permissions: list[tuple[str, dict[str, Any], str | None]] = []
        self.tool_results: list[tuple[str, str, bool, str | None]] = []

    def begin_turn(self) -> int:
        if self.turn >= self.max_turns:
            raise LimitExceeded(f"max turns ({self.max_turns}) reached")
        self.turn += 1
        return self.turn

    def tool_specs(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.specs)

    async def use_tool(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> ToolOutcome:
        self.tool_calls.append((name, tool_input, call_id))
        reply = self.tools.get(name, f"<no output scripted for {name}>")
        if isinstance(reply, Deny):
            decision = PermissionDecision("deny", "human", message=reply.message)
            return ToolOutcome(False, reply.message, True, decision)
        output = reply(tool_input) if callable(reply) else reply
        return ToolOutcome(True, output, False, PermissionDecision("allow", "rule"))

    async def check_permission(
        self, name: str, tool_input: dict[str, Any], call_id: str | None = None
    ) -> PermissionDecision:
        """Answers from the same decision map as ``use_tool``: a Deny denies, else allow."""
        self.permissions.append((name, tool_input, call_id))
        reply = self.tools.get(name)
        if isinstance(reply, Deny):
            return PermissionDecision("deny", "human", message=reply.message)
        return PermissionDecision("allow", "rule")

    def log_tool_result(
        self, name: str, output: str, is_error: bool = False, call_id: str | None = None
    ) -> None:
        self.tool_results.append((name, output, is_error, call_id))

    async def ask(self, question: str) -> str:
        return self.answers.pop(0)

    async def save_transcript(self, data: Any) -> None:
        data = json.loads(json.dumps(data))  # must be JSON-able, as the store requires
        self.saved.append(data)
        self.transcript = data

    async def load_transcript(self) -> Any | None:
        return copy.deepcopy(self.transcript)


def run_events(runtime: Runtime, ctx: RunContext) -> list[RuntimeEvent]:
    """Run to completion on a fresh event loop and return every event."""

    async def collect() -> list[RuntimeEvent]:
        return [event async for event in runtime.run(ctx)]

    return asyncio.run(collect())


def run_until_error(
    runtime: Runtime, ctx: RunContext, *, guard_s: float | None = None
) -> tuple[list[RuntimeEvent], Exception]:
    """Run until the runtime raises; return the events before it and the exception.

    ``guard_s`` is hang protection only: a run still going after it fails the test (with an
    AssertionError naming the guard), it is never a timing assertion.
    """
    events: list[RuntimeEvent] = []

    async def collect() -> None:
        async for event in runtime.run(ctx):
            events.append(event)

    if guard_s is not None:
        inner = collect

        async def collect() -> None:
            try:
                async with asyncio.timeout(guard_s):
                    await inner()
            except TimeoutError:
                raise AssertionError(
                    f"the run was still going after the {guard_s:g} s hang guard; "
                    f"events: {events!r}"
                ) from None

    try:
        asyncio.run(collect())
    except AssertionError:
        raise
    except Exception as exc:
        return events, exc
    raise AssertionError(f"run did not fail; events: {events!r}")


def of_type(events: list[RuntimeEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]
