"""anthropic-direct: the Messages API over the anthropic SDK, with our governed tool set.

This module is the wire mapping only: the request for one call (system prompt, tools, extended
thinking), the SSE stream turned into text deltas and a reply, ``tool_use`` blocks out and
``tool_result`` blocks back, and which API errors are worth a retry. The key, base URL and
client are ``providers.AnthropicProvider``'s; the loop (turns, retries, the cascade, usage,
the transcript saved after every tool turn) is ``tool_loop``'s.

The SDK is imported only when a task runs, so importing this module stays cheap and a missing
SDK gives a clear "install stagent-lab[anthropic]" error.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import Any

from stagent_lab.runtimes import _retry
from stagent_lab.runtimes.base import AssistantText, Notice, UsageReport
from stagent_lab.runtimes.providers import AnthropicProvider
from stagent_lab.runtimes.tool_loop import DirectRuntime, ModelReply, ToolCall, ToolResult, Wire

TRANSCRIPT_FORMAT = "anthropic-messages/1"
DEFAULT_MAX_TOKENS = 8192
DEFAULT_THINKING_BUDGET = 4096
# Retrying these in-stream error types can help; the others (invalid request ...) cannot.
_RETRYABLE_STREAM_ERRORS = frozenset(
    {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}
)


class AnthropicWire(Wire):
    transcript_format = TRANSCRIPT_FORMAT

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": int(self.option("max_tokens", DEFAULT_MAX_TOKENS)),
        }
        if self.ctx.instructions:
            params["system"] = self.ctx.instructions
        tools = [_tool_param(spec) for spec in self.ctx.tool_specs()]
        if tools:
            params["tools"] = tools
        if self.overrides.thinking_enabled:
            budget = max(1024, self.overrides.thinking_budget or DEFAULT_THINKING_BUDGET)
            params["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if params["max_tokens"] <= budget:  # the API requires max_tokens > budget_tokens
                params["max_tokens"] = budget + DEFAULT_MAX_TOKENS
        self.params = params
        self.seen_warnings: set[str] = set()

    async def stream(self, messages: list[dict[str, Any]], stall_s: float) -> AsyncIterator[Any]:
        # The SDK warns (e.g. a deprecated model) from this synchronous call; surface it in
        # the task log once instead of on the kernel's stderr.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            manager = self.conn.client.messages.stream(**self.params, messages=messages)
        for warning in caught:
            text = str(warning.message)
            if text not in self.seen_warnings:
                self.seen_warnings.add(text)
                yield Notice(f"anthropic SDK: {text}", {"category": warning.category.__name__})
        stream = await _retry.first_within(manager.__aenter__(), stall_s)
        try:
            stopped = False
            async for event in _retry.iter_with_stall(stream, stall_s):
                if event.type == "text":
                    yield AssistantText(event.text, delta=True)
                elif event.type == "message_stop":
                    stopped = True
            if not stopped:
                raise _retry.StreamIncomplete("stream ended before message_stop")
            yield _retry.CallDone(self._reply(stream.current_message_snapshot))
        finally:
            await manager.__aexit__(None, None, None)

    def _reply(self, message: Any) -> ModelReply:
        usage = message.usage
        report = UsageReport(
            provider="anthropic",
            model=message.model or self.model,
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
        )
        calls = [
            ToolCall(b.id, b.name, dict(b.input or {}))
            for b in message.content
            if b.type == "tool_use"
        ]
        notice = None
        if message.stop_reason not in (None, "end_turn", "stop_sequence"):
            notice = Notice(
                f"model stopped early: {message.stop_reason}",
                {"stop_reason": message.stop_reason},
            )
        return ModelReply(
            text="".join(b.text for b in message.content if b.type == "text"),
            tool_calls=calls,
            usage=report,
            message=[p for p in (_block_param(b) for b in message.content) if p is not None],
            notice=notice,
        )

    def add_reply(self, messages: list[dict[str, Any]], reply: ModelReply) -> None:
        messages.append({"role": "assistant", "content": reply.message})

    def add_results(self, messages: list[dict[str, Any]], results: list[ToolResult]) -> None:
        blocks = []
        for result in results:
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": result.call.id,
                "content": result.output,
            }
            if result.is_error:
                block["is_error"] = True
            blocks.append(block)
        messages.append({"role": "user", "content": blocks})

    def classify(self, exc: BaseException) -> _retry.Fault | None:
        sdk = self.conn.sdk
        if isinstance(exc, sdk.APIStatusError):
            error_type = getattr(exc, "type", None)
            message = getattr(exc, "api_message", None) or exc.message
            if error_type:
                message = f"{error_type}: {message}"
            if exc.status_code < 400:  # an `event: error` inside a 200 stream
                return _retry.Fault(
                    error_type in _RETRYABLE_STREAM_ERRORS, f"stream {error_type}", message
                )
            headers = exc.response.headers if exc.response is not None else None
            return _retry.status_fault(exc.status_code, message, _retry.parse_retry_after(headers))
        if isinstance(exc, sdk.APIConnectionError):
            return _retry.Fault(True, "connection error", exc.message)
        if isinstance(exc, sdk.AnthropicError) and not isinstance(exc, ValueError):
            return _retry.Fault(False, "sdk error", str(exc))
        return _retry.generic_fault(exc)


class AnthropicDirectRuntime(DirectRuntime):
    """Options: ``api_key``, ``base_url``, ``client`` (an AsyncAnthropic), ``model``,
    ``max_retries``, ``stall_timeout_s``, ``request_timeout_s``, ``max_tokens``,
    ``retry_base_s``, ``retry_max_s``, ``retry_after_cap_s``. Task options (``ctx.options``)
    override them."""

    id = "anthropic-direct"
    label = "Anthropic API (direct)"
    provider = "anthropic"
    default_model = "claude-sonnet-4-6"
    provider_class = AnthropicProvider
    wire_class = AnthropicWire


def _tool_param(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "description": spec.get("description") or "",
        "input_schema": spec.get("input_schema") or {"type": "object", "properties": {}},
    }


def _block_param(block: Any) -> dict[str, Any] | None:
    """A response content block as a request param (what the next call sends back)."""
    kind = block.type
    if kind == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if kind == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if kind == "thinking":  # must go back unchanged, signature included, when tools are used
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return block.model_dump(mode="json", exclude_none=True)


__all__ = ["AnthropicDirectRuntime", "AnthropicWire"]
