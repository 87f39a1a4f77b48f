"""openai-direct: the Responses API over the openai SDK, with our governed tool set.

Stateless by design: requests go out with ``store=False`` and the full input list, and the
conversation (input items plus the model's output items and our ``function_call_output``
items) is saved after every complete tool turn. Resume replays that list; nothing depends on
responses kept on OpenAI's side. For reasoning models the encrypted reasoning items are
requested and sent back, as the API needs them next to their function calls.

The SDK is imported inside functions only (cheap import, clear "install stagent-lab[openai]"
error when missing), and the client runs with ``max_retries=0`` so our retry loop, which
logs each retry, is the only one.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
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

TRANSCRIPT_FORMAT = "openai-responses/1"
_INSTALL_HINT = "pip install 'stagent-lab[openai]'"
_REASONING_PREFIXES = ("gpt-5", "o1", "o3", "o4", "codex")
# In-stream error codes worth another attempt; others (bad request, quota) are final.
_RETRYABLE_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "service_unavailable", "overloaded", "timeout"}
)
_FATAL_429_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


def _sdk() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise RuntimeNotAvailableError(
            f"openai-direct needs the openai SDK: {_INSTALL_HINT}"
        ) from exc
    return openai


class _ResponseError(Exception):
    """A ``response.failed`` or ``error`` event inside a stream."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(f"{code or 'error'}: {message}")
        self.code = code


class OpenAIDirectRuntime(Runtime):
    """Options: ``api_key``, ``base_url`` (ends in ``/v1``), ``client`` (an AsyncOpenAI),
    ``model``, ``max_retries``, ``stall_timeout_s``, ``request_timeout_s``, ``max_output_tokens``,
    ``store``, ``retry_base_s``, ``retry_max_s``, ``retry_after_cap_s``. Task options
    (``ctx.options``) override them."""

    id = "openai-direct"
    label = "OpenAI API (direct)"
    provider = "openai"
    capabilities = Capabilities(resume=True, builtin_tools=True, auth_health_check=True)
    default_model = "gpt-5-mini"

    def availability(self) -> Availability:
        if importlib.util.find_spec("openai") is None:
            return Availability(False, f"the openai SDK is not installed: {_INSTALL_HINT}")
        if self.options.get("client") is None and not self._api_key(self.options.get):
            return Availability(False, "no API key: set OPENAI_API_KEY or pass api_key=")
        return Availability(True)

    @staticmethod
    def _api_key(opt: Any) -> str | None:
        return opt("api_key") or os.environ.get("OPENAI_API_KEY") or None

    def _client(self, sdk: Any, opt: Any, key: str | None) -> tuple[Any, bool]:
        injected = opt("client")
        if injected is not None:
            if not isinstance(injected, sdk.AsyncOpenAI):
                raise RuntimeNotAvailableError("openai-direct needs an AsyncOpenAI client")
            return injected.with_options(max_retries=0), False
        if not key:
            raise RuntimeNotAvailableError(
                "openai-direct has no API key: set OPENAI_API_KEY or pass api_key="
            )
        client = sdk.AsyncOpenAI(
            api_key=key,
            base_url=opt("base_url") or os.environ.get("OPENAI_BASE_URL") or None,
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
        items: list[dict[str, Any]] = saved or [{"role": "user", "content": ctx.prompt}]
        store = bool(opt("store", False))
        params: dict[str, Any] = {"model": model, "store": store}
        if ctx.instructions:
            params["instructions"] = ctx.instructions
        tools = [_tool_param(spec) for spec in ctx.tool_specs()]
        if tools:
            params["tools"] = tools
        if opt("max_output_tokens") is not None:
            params["max_output_tokens"] = int(opt("max_output_tokens"))
        if overrides.reasoning_effort:
            params["reasoning"] = {"effort": overrides.reasoning_effort}
        if not store and (overrides.reasoning_effort or model.startswith(_REASONING_PREFIXES)):
            params["include"] = ["reasoning.encrypted_content"]

        while True:
            ctx.begin_turn()
            attempt = functools.partial(
                self._stream_once, client, {**params, "input": items}, stall_s
            )
            response: Any = None
            async for item in _retry.call_with_retries(
                attempt,
                classify=functools.partial(_classify, sdk),
                policy=policy,
                provider=self.provider,
                secrets=secrets,
            ):
                if isinstance(item, _retry.CallDone):
                    response = item.value
                else:
                    yield item
            yield _usage_report(response, model)
            output = list(response.output or [])
            calls = [o for o in output if o.type == "function_call"]
            if not calls:
                if response.status == "incomplete":
                    reason = getattr(response.incomplete_details, "reason", None)
                    yield Notice(f"response incomplete: {reason}", {"reason": reason})
                yield Result(_output_text(output))
                return
            items.extend(
                o.model_dump(mode="json", exclude_none=True, by_alias=True) for o in output
            )
            for call in calls:
                try:
                    arguments = json.loads(call.arguments or "{}")
                    if not isinstance(arguments, dict):
                        raise ValueError("arguments are not a JSON object")
                except ValueError as exc:
                    text, is_error = f"invalid tool arguments ({exc}); send a JSON object", True
                else:
                    outcome = await ctx.use_tool(call.name, arguments, call.call_id)
                    text, is_error = outcome.output, outcome.is_error
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": call.call_id,
                        # The Responses API has no error flag; say it in the text.
                        "output": f"Error: {text}" if is_error else text,
                    }
                )
            await ctx.save_transcript({"format": TRANSCRIPT_FORMAT, "messages": items})

    async def _stream_once(
        self, client: Any, request: dict[str, Any], stall_s: float
    ) -> AsyncIterator[Any]:
        """One streamed call: text deltas as they come, then CallDone(final response)."""
        stream = await _retry.first_within(client.responses.create(**request, stream=True), stall_s)
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
            yield _retry.CallDone(final)
        finally:
            await stream.close()


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


def _classify(sdk: Any, exc: BaseException) -> _retry.Fault | None:
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


__all__ = ["OpenAIDirectRuntime"]
