"""The one tool loop the direct runtimes share (anthropic-direct, openai-direct, ollama).

A direct runtime is three parts, in the spirit of pydantic-ai's providers/models split:

- a :class:`~stagent_lab.runtimes.providers.Provider`: where the API is and how to
  authenticate (key, base URL, an injected client, the health check); it opens a Connection;
- a :class:`Wire`, in the runtime's own module: how that provider's wire format maps. It builds
  the request for one model call, turns the call's stream into text deltas and one
  :class:`ModelReply`, says how the reply and the tool results join the conversation, and which
  vendor exceptions are worth a retry;
- this loop, written once: turns (``ctx.begin_turn``), bounded retries that log a Notice each
  (``_retry``), the stall limit, the permission cascade and the tool for every call
  (``ctx.use_tool``), one UsageReport per model call, and the conversation saved after every
  complete tool turn, which is what makes resume work without any server-side session.

What a Wire needs from the retry plumbing is re-exported here (``CallDone``, ``Fault``,
``first_within``, ``iter_with_stall``, ``StreamIncomplete``, ``generic_fault``,
``status_fault``), so a runtime outside the package imports one module. See
docs/writing-a-runtime.md for a complete example.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from stagent_lab.runtimes import _retry
from stagent_lab.runtimes._retry import (
    CallDone,
    Fault,
    StreamIncomplete,
    first_within,
    generic_fault,
    iter_with_stall,
    status_fault,
)
from stagent_lab.runtimes.base import (
    Availability,
    Capabilities,
    Notice,
    Result,
    RunContext,
    Runtime,
    RuntimeEvent,
    UsageReport,
)
from stagent_lab.runtimes.faults import stall_limit
from stagent_lab.runtimes.providers import Connection, Option, Provider


@dataclass
class ToolCall:
    """A tool call the model asked for. ``error`` set: the arguments could not be read, and
    this text goes back to the model instead of running anything."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class ToolResult:
    call: ToolCall
    output: str
    is_error: bool


@dataclass
class ModelReply:
    """One finished model call, in the loop's terms.

    ``message`` is the wire's own form of the reply, the part ``Wire.add_reply`` puts into the
    conversation; ``notice`` explains an early stop (max tokens, a refusal) when there is one.
    """

    text: str
    tool_calls: list[ToolCall]
    usage: UsageReport
    message: Any = None
    notice: Notice | None = None


class Wire:
    """How one provider's wire format maps onto the loop; one instance per run.

    Subclasses set ``transcript_format`` and implement ``stream``, ``add_reply``,
    ``add_results`` and ``classify``. ``stream`` is one attempt of one model call: it yields
    ``AssistantText(delta=True)`` and ``Notice`` events as they come, then
    ``_retry.CallDone(ModelReply)``; it should read the stream through
    ``_retry.first_within`` / ``_retry.iter_with_stall`` with ``stall_s``.
    """

    transcript_format: ClassVar[str]

    def __init__(
        self,
        runtime: DirectRuntime,
        ctx: RunContext,
        conn: Connection,
        option: Option,
        model: str,
        overrides: _retry.Overrides,
    ) -> None:
        self.runtime = runtime
        self.ctx = ctx
        self.conn = conn
        self.option = option
        self.model = model
        self.overrides = overrides

    def first_messages(self) -> list[dict[str, Any]]:
        return [{"role": "user", "content": self.ctx.prompt}]

    def stream(self, messages: list[dict[str, Any]], stall_s: float) -> AsyncIterator[Any]:
        raise NotImplementedError

    def add_reply(self, messages: list[dict[str, Any]], reply: ModelReply) -> None:
        raise NotImplementedError

    def add_results(self, messages: list[dict[str, Any]], results: list[ToolResult]) -> None:
        raise NotImplementedError

    def classify(self, exc: BaseException) -> _retry.Fault | None:
        return _retry.generic_fault(exc)


class DirectRuntime(Runtime):
    """A runtime that calls a model API itself and runs stagent_lab's governed tool set.

    Subclasses name their ``provider_class`` and ``wire_class``. Options every direct runtime
    reads (task options override the runtime's): ``model``, ``max_retries``, ``retry_base_s``,
    ``retry_max_s``, ``retry_after_cap_s``, ``stall_timeout_s``, ``request_timeout_s``, plus the
    provider's connection options (``api_key``, ``base_url``, ``client``).
    """

    provider_class: ClassVar[type[Provider]]
    wire_class: ClassVar[type[Wire]]
    capabilities: ClassVar[Capabilities] = Capabilities(
        resume=True, builtin_tools=True, auth_health_check=True
    )

    def availability(self) -> Availability:
        return self.provider_class(self.id, _retry.option_reader(None, self.options)).availability()

    async def run(self, ctx: RunContext) -> AsyncIterator[RuntimeEvent]:
        option = _retry.option_reader(getattr(ctx, "options", None), self.options)
        stall_s = stall_limit(ctx, option)
        policy = _retry.RetryPolicy.from_options(option)
        conn = await self.provider_class(self.id, option).connect(stall_s)
        try:
            async for event in self._loop(ctx, conn, option, policy, stall_s):
                yield event
        finally:
            if conn.close is not None:
                await conn.close()

    async def _loop(
        self,
        ctx: RunContext,
        conn: Connection,
        option: Option,
        policy: _retry.RetryPolicy,
        stall_s: float,
    ) -> AsyncIterator[RuntimeEvent]:
        overrides = _retry.capability_overrides(ctx, self.id)
        model = ctx.model or overrides.model or option("model", None) or self.default_model
        wire = self.wire_class(self, ctx, conn, option, str(model), overrides)
        saved = _retry.check_transcript(await ctx.load_transcript(), wire.transcript_format)
        messages = saved or wire.first_messages()

        while True:
            ctx.begin_turn()
            reply: ModelReply | None = None
            async for item in _retry.call_with_retries(
                functools.partial(_attempt, wire, messages, stall_s),
                classify=wire.classify,
                policy=policy,
                provider=self.provider,
                secrets=conn.secrets,
            ):
                if isinstance(item, _retry.CallDone):
                    reply = item.value
                else:
                    yield item
            assert reply is not None  # call_with_retries ends with CallDone or raises
            yield reply.usage
            if not reply.tool_calls:
                if reply.notice is not None:
                    yield reply.notice
                yield Result(reply.text)
                return
            wire.add_reply(messages, reply)
            results: list[ToolResult] = []
            for call in reply.tool_calls:
                if call.error is not None:
                    results.append(ToolResult(call, call.error, True))
                    continue
                outcome = await ctx.use_tool(call.name, call.arguments, call.id)
                results.append(ToolResult(call, outcome.output, outcome.is_error))
            wire.add_results(messages, results)
            await ctx.save_transcript({"format": wire.transcript_format, "messages": messages})


async def _attempt(
    wire: Wire, messages: list[dict[str, Any]], stall_s: float
) -> AsyncIterator[Any]:
    """One attempt; the HTTP client's read timeout (the stall limit too) counts as a stall."""
    try:
        async with contextlib.aclosing(wire.stream(messages, stall_s)) as events:
            async for item in events:
                yield item
    except Exception as exc:
        if _retry.is_read_timeout(exc):
            raise _retry.StreamStalled(stall_s) from exc
        raise


__all__ = [
    "CallDone",
    "DirectRuntime",
    "Fault",
    "ModelReply",
    "StreamIncomplete",
    "ToolCall",
    "ToolResult",
    "Wire",
    "first_within",
    "generic_fault",
    "iter_with_stall",
    "status_fault",
]
