"""openai-direct: the Responses API over the openai SDK, with our governed tool set.

This module is the wire mapping only; the key, base URL and client are
``providers.OpenAIProvider``'s and the loop is ``tool_loop``'s.

Stateless by design: requests go out with ``store=False`` and the full input list, and the
conversation (input items plus the model's output items and our ``function_call_output``
items) is saved after every complete tool turn. Resume replays that list; nothing depends on
responses kept on OpenAI's side. For reasoning models the encrypted reasoning items are
requested and sent back, as the API needs them next to their function calls.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from stagent_lab.runtimes import _retry
from stagent_lab.runtimes.base import AssistantText, Notice, UsageReport
from stagent_lab.runtimes.providers import OpenAIProvider
from stagent_lab.runtimes.tool_loop import DirectRuntime, ModelReply, ToolCall, ToolResult, Wire

TRANSCRIPT_FORMAT = "openai-responses/1"
_REASONING_PREFIXES = ("gpt-5", "o1", "o3", "o4", "codex")
# In-stream error codes worth another attempt; others (bad request, quota) are final.
_RETRYABLE_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "service_unavailable", "overloaded", "timeout"}
)
_FATAL_429_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


class _ResponseError(Exception):
    """A ``response.failed`` or ``error`` event inside a stream."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(f"{code or 'error'}: {message}")
        self.code = code


class OpenAIWire(Wire):
    transcript_format = TRANSCRIPT_FORMAT

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        store = bool(self.option("store", False))
        params: dict[str, Any] = {"model": self.model, "store": store}
        if self.ctx.instructions:
            params["instructions"] = self.ctx.instructions
        tools = [_tool_param(spec) for spec in self.ctx.tool_specs()]
        if tools:
            params["tools"] = tools
        if self.option("max_output_tokens", None) is not None:
            params["max_output_tokens"] = int(self.option("max_output_tokens", None))
        effort = self.overrides.reasoning_effort
        if effort:
            params["reasoning"] = {"effort": effort}
        if not store and (effort or self.model.startswith(_REASONING_PREFIXES)):
            params["include"] = ["reasoning.encrypted_content"]
        self.params = params

    async def stream(self, messages: list[dict[str, Any]], stall_s: float) -> AsyncIterator[Any]:
        create = self.conn.client.responses.create(**self.params, input=messages, stream=True)
        stream = await _retry.first_within(create, stall_s)
        try:
            final = None
            async for event in _retry.iter_with_stall(stream, stall_s):
                kind = event.type
                if kind == "response.output_text.delta":
                    yield AssistantText(event.delta, delta=True)
                elif kind in ("response.completed", "response.incomplete"):
                    final = event.response
                    break
                elif kind == "response.failed":
                    error = event.response.error
                    raise _ResponseError(
                        getattr(error, "code", None), getattr(error, "message", "response failed")
                    )
                elif kind == "error":
                    raise _ResponseError(event.code, event.message)
            if final is None:
                raise _retry.StreamIncomplete("stream ended before response.completed")
            yield _retry.CallDone(self._reply(final))
        finally:
            await stream.close()

    def _reply(self, response: Any) -> ModelReply:
        output = list(response.output or [])
        calls = []
        for item in output:
            if item.type != "function_call":
                continue
            try:
                arguments = json.loads(item.arguments or "{}")
                if not isinstance(arguments, dict):
                    raise ValueError("arguments are not a JSON object")
            except ValueError as exc:
                error = f"invalid tool arguments ({exc}); send a JSON object"
                calls.append(ToolCall(item.call_id, item.name, error=error))
            else:
                calls.append(ToolCall(item.call_id, item.name, arguments))
        notice = None
        if response.status == "incomplete":
            reason = getattr(response.incomplete_details, "reason", None)
            notice = Notice(f"response incomplete: {reason}", {"reason": reason})
        return ModelReply(
            text=_output_text(output),
            tool_calls=calls,
            usage=_usage_report(response, self.model),
            message=[o.model_dump(mode="json", exclude_none=True, by_alias=True) for o in output],
            notice=notice,
        )

    def add_reply(self, messages: list[dict[str, Any]], reply: ModelReply) -> None:
        messages.extend(reply.message)

    def add_results(self, messages: list[dict[str, Any]], results: list[ToolResult]) -> None:
        for result in results:
            messages.append(
                {
                    "type": "function_call_output",
                    "call_id": result.call.id,
                    # The Responses API has no error flag; say it in the text.
                    "output": f"Error: {result.output}" if result.is_error else result.output,
                }
            )

    def classify(self, exc: BaseException) -> _retry.Fault | None:
        sdk = self.conn.sdk
        if isinstance(exc, sdk.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            code = getattr(exc, "code", None) or body.get("code")
            message = body.get("message") or exc.message
            if code:
                message = f"{code}: {message}"
            if exc.status_code == 429 and code in _FATAL_429_CODES:
                return _retry.Fault(False, f"http 429 {code}", f"HTTP 429: {message}", status=429)
            headers = exc.response.headers if exc.response is not None else None
            return _retry.status_fault(exc.status_code, message, _retry.parse_retry_after(headers))
        if isinstance(exc, sdk.APIConnectionError):
            cause = exc.__cause__
            detail = f"{exc.message} ({cause})" if cause else exc.message
            return _retry.Fault(True, "connection dropped", detail)
        if isinstance(exc, _ResponseError):
            return _retry.Fault(exc.code in _RETRYABLE_CODES, f"stream {exc.code}", str(exc))
        if isinstance(exc, sdk.OpenAIError) and not isinstance(exc, ValueError):
            return _retry.Fault(False, "sdk error", str(exc))
        return _retry.generic_fault(exc)


class OpenAIDirectRuntime(DirectRuntime):
    """Options: ``api_key``, ``base_url`` (ends in ``/v1``), ``client`` (an AsyncOpenAI),
    ``model``, ``max_retries``, ``stall_timeout_s``, ``request_timeout_s``, ``max_output_tokens``,
    ``store``, ``retry_base_s``, ``retry_max_s``, ``retry_after_cap_s``. Task options
    (``ctx.options``) override them."""

    id = "openai-direct"
    label = "OpenAI API (direct)"
    provider = "openai"
    default_model = "gpt-5-mini"
    provider_class = OpenAIProvider
    wire_class = OpenAIWire


def _tool_param(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": spec["name"],
        "description": spec.get("description") or "",
        "parameters": spec.get("input_schema") or {"type": "object", "properties": {}},
        "strict": False,  # our schemas have optional fields, which strict mode forbids
    }


def _output_text(output: list[Any]) -> str:
    return "".join(
        part.text
        for item in output
        if item.type == "message"
        for part in item.content
        if part.type == "output_text"
    )


def _usage_report(response: Any, model: str) -> UsageReport:
    """OpenAI counts cached (and cache-written) tokens inside input_tokens; ours excludes them."""
    usage = response.usage
    if usage is None:
        return UsageReport(provider="openai", model=response.model or model)
    details = usage.input_tokens_details
    cached = (getattr(details, "cached_tokens", None) or 0) if details else 0
    written = (getattr(details, "cache_write_tokens", None) or 0) if details else 0
    out_details = usage.output_tokens_details
    return UsageReport(
        provider="openai",
        model=response.model or model,
        input_tokens=max(0, (usage.input_tokens or 0) - cached - written),
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=(getattr(out_details, "reasoning_tokens", None) or 0)
        if out_details
        else 0,
    )


__all__ = ["OpenAIDirectRuntime", "OpenAIWire"]
