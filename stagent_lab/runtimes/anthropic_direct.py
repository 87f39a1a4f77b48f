"""anthropic-direct: the Messages API over the anthropic SDK, with our governed tool set.

The loop is the classic one: stream a model call, hand every ``tool_use`` to the engine
(``ctx.use_tool`` runs the permission cascade and the tool), send the results back as
``tool_result`` blocks, repeat until the model answers without tools. The conversation is
saved after each complete tool turn, which is what makes resume work without any server-side
session.

The SDK is imported inside functions only, so importing this module stays cheap and a
missing SDK gives a clear "install stagent-lab[anthropic]" error. The client is built with
``max_retries=0``: our retry loop (``_retry``) logs each retry as a Notice.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections.abc import AsyncIterator
from typing import Any

from stagent_lab.errors import RuntimeNotAvailableError
from stagent_lab.runtimes import _retry
from stagent_lab.runtimes.base import (
    AssistantText,
    Availability,
    Capabilities,
    Notice,
    Result,
    RunContext,
    Runtime,
    RuntimeEvent,
    UsageReport,
)

TRANSCRIPT_FORMAT = "anthropic-messages/1"
DEFAULT_MAX_TOKENS = 8192
DEFAULT_THINKING_BUDGET = 4096
_INSTALL_HINT = "pip install 'stagent-lab[anthropic]'"
# Retrying these in-stream error types can help; the others (invalid request ...) cannot.
_RETRYABLE_STREAM_ERRORS = frozenset(
    {"overloaded_error", "rate_limit_error", "api_error", "timeout_error"}
)


def _sdk() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise RuntimeNotAvailableError(
            f"anthropic-direct needs the anthropic SDK: {_INSTALL_HINT}"
        ) from exc
    return anthropic


class AnthropicDirectRuntime(Runtime):
    """Options: ``api_key``, ``base_url``, ``client`` (an AsyncAnthropic), ``model``,
    ``max_retries``, ``stall_timeout_s``, ``request_timeout_s``, ``max_tokens``,
    ``retry_base_s``, ``retry_max_s``, ``retry_after_cap_s``. Task options (``ctx.options``)
    override them."""

    id = "anthropic-direct"
    label = "Anthropic API (direct)"
    provider = "anthropic"
    capabilities = Capabilities(resume=True, builtin_tools=True, auth_health_check=True)
    default_model = "claude-sonnet-4-6"

    def availability(self) -> Availability:
        if importlib.util.find_spec("anthropic") is None:
            return Availability(False, f"the anthropic SDK is not installed: {_INSTALL_HINT}")
        if self.options.get("client") is None and not self._api_key(self.options.get):
            return Availability(False, "no API key: set ANTHROPIC_API_KEY or pass api_key=")
        return Availability(True)

    @staticmethod
    def _api_key(opt: Any) -> str | None:
        return opt("api_key") or os.environ.get("ANTHROPIC_API_KEY") or None

    def _client(self, sdk: Any, opt: Any, key: str | None) -> tuple[Any, bool]:
        """(client, owned). An injected client is copied with retries off and not closed."""
        injected = opt("client")
        if injected is not None:
            if not isinstance(injected, sdk.AsyncAnthropic):
                raise RuntimeNotAvailableError("anthropic-direct needs an AsyncAnthropic client")
            return injected.with_options(max_retries=0), False
        if not key:
            raise RuntimeNotAvailableError(
                "anthropic-direct has no API key: set ANTHROPIC_API_KEY or pass api_key="
            )
        client = sdk.AsyncAnthropic(
            api_key=key,
            base_url=opt("base_url") or os.environ.get("ANTHROPIC_BASE_URL") or None,
            max_retries=0,
            timeout=float(opt("request_timeout_s", _retry.DEFAULT_REQUEST_TIMEOUT_S)),
        )
        return client, True

    async def run(self, ctx: RunContext) -> AsyncIterator[RuntimeEvent]:
        sdk = _sdk()
        opt = _retry.option_reader(getattr(ctx, "options", None), self.options)
        key = self._api_key(opt)
        client, owned = self._client(sdk, opt, key)
        try:
            async for event in self._loop(ctx, sdk, client, opt, key):
                yield event
        finally:
            if owned:
                await client.close()

    async def _loop(
        self, ctx: RunContext, sdk: Any, client: Any, opt: Any, key: str | None
    ) -> AsyncIterator[RuntimeEvent]:
        overrides = _retry.capability_overrides(ctx, self.id)
        model = ctx.model or overrides.model or opt("model") or self.default_model
        policy = _retry.RetryPolicy.from_options(opt)
        stall_s = float(opt("stall_timeout_s", _retry.DEFAULT_STALL_TIMEOUT_S))
        secrets = (key, getattr(client, "api_key", None))

        saved = _retry.check_transcript(await ctx.load_transcript(), TRANSCRIPT_FORMAT)
        messages: list[dict[str, Any]] = saved or [{"role": "user", "content": ctx.prompt}]
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": int(opt("max_tokens", DEFAULT_MAX_TOKENS)),
        }
        if ctx.instructions:
            params["system"] = ctx.instructions
        tools = [_tool_param(spec) for spec in ctx.tool_specs()]
        if tools:
            params["tools"] = tools
        if overrides.thinking_enabled:
            budget = max(1024, overrides.thinking_budget or DEFAULT_THINKING_BUDGET)
            params["thinking"] = {"type": "enabled", "budget_tokens": budget}
            if params["max_tokens"] <= budget:  # the API requires max_tokens > budget_tokens
                params["max_tokens"] = budget + DEFAULT_MAX_TOKENS
        seen_warnings: set[str] = set()

        while True:
            ctx.begin_turn()
            attempt = functools.partial(
                self._stream_once, client, {**params, "messages": messages}, stall_s, seen_warnings
            )
            message: Any = None
            async for item in _retry.call_with_retries(
                attempt,
                classify=functools.partial(_classify, sdk),
                policy=policy,
                provider=self.provider,
                secrets=secrets,
            ):
                if isinstance(item, _retry.CallDone):
                    message = item.value
                else:
                    yield item
            usage = message.usage
            yield UsageReport(
                provider=self.provider,
                model=message.model or model,
                input_tokens=usage.input_tokens or 0,
                output_tokens=usage.output_tokens or 0,
                cache_read_tokens=usage.cache_read_input_tokens or 0,
                cache_write_tokens=usage.cache_creation_input_tokens or 0,
            )
            content = [p for p in (_block_param(b) for b in message.content) if p is not None]
            tool_uses = [b for b in message.content if b.type == "tool_use"]
            if not tool_uses:
                if message.stop_reason not in (None, "end_turn", "stop_sequence"):
                    yield Notice(
                        f"model stopped early: {message.stop_reason}",
                        {"stop_reason": message.stop_reason},
                    )
                text = "".join(b.text for b in message.content if b.type == "text")
                yield Result(text)
                return
            messages.append({"role": "assistant", "content": content})
            results = []
            for use in tool_uses:
                outcome = await ctx.use_tool(use.name, dict(use.input or {}), use.id)
                block: dict[str, Any] = {
                    "type": "tool_result",
                    "tool_use_id": use.id,
                    "content": outcome.output,
                }
                if outcome.is_error:
                    block["is_error"] = True
                results.append(block)
            messages.append({"role": "user", "content": results})
            await ctx.save_transcript({"format": TRANSCRIPT_FORMAT, "messages": messages})

    async def _stream_once(
        self, client: Any, request: dict[str, Any], stall_s: float, seen_warnings: set[str]
    ) -> AsyncIterator[Any]:
        """One streamed model call: text deltas as they come, then CallDone(message)."""
        # The SDK warns (e.g. a deprecated model) from this synchronous call; surface it in
        # the task log once instead of on the kernel's stderr.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            manager = client.messages.stream(**request)
        for warning in caught:
            text = str(warning.message)
            if text not in seen_warnings:
                seen_warnings.add(text)
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
            yield _retry.CallDone(stream.current_message_snapshot)
        finally:
            await manager.__aexit__(None, None, None)


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


def _classify(sdk: Any, exc: BaseException) -> _retry.Fault | None:
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


__all__ = ["AnthropicDirectRuntime"]
