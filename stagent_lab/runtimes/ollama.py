"""ollama: local models through Ollama's ``/api/chat`` (NDJSON streaming over httpx).

This module is the wire mapping only; the host, key and client are ``providers.OllamaProvider``'s
and the loop is ``tool_loop``'s. No vendor SDK: httpx is a core dependency, so this runtime is
available whenever an Ollama server answers ``GET /api/version``. Tool calls arrive as objects
(``arguments`` is already a JSON object); results go back as
``{"role": "tool", "tool_name": ..., "content": ...}`` messages. Local inference costs nothing,
so usage is reported with ``cost_usd=0.0``.

``OLLAMA_HOST`` follows Ollama's own conventions: ``host``, ``host:port`` or a full URL; a
missing scheme means http and a missing port means 11434. ``OLLAMA_API_KEY`` (or
``api_key=``) is sent as a bearer token for hosted Ollama endpoints.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from stagent_lab.runtimes import _retry
from stagent_lab.runtimes.base import AssistantText, Notice, UsageReport
from stagent_lab.runtimes.providers import OllamaProvider, normalize_host
from stagent_lab.runtimes.tool_loop import DirectRuntime, ModelReply, ToolCall, ToolResult, Wire

if TYPE_CHECKING:
    import httpx

TRANSCRIPT_FORMAT = "ollama-chat/1"


class _HTTPStatusFault(Exception):
    def __init__(self, status: int, message: str, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class _StreamErrorLine(Exception):
    """An ``{"error": ...}`` line in the middle of a stream (model crashed, out of memory)."""


class OllamaWire(Wire):
    transcript_format = TRANSCRIPT_FORMAT

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        body: dict[str, Any] = {"model": self.model, "stream": True}
        tools = [_tool_param(spec) for spec in self.ctx.tool_specs()]
        if tools:
            body["tools"] = tools
        if self.overrides.thinking_enabled:
            body["think"] = True
        if self.option("keep_alive", None) is not None:
            body["keep_alive"] = self.option("keep_alive", None)
        if self.option("model_options", None):
            body["options"] = dict(self.option("model_options", None))
        self.body = body
        # Sent with every request but kept out of the transcript.
        instructions = self.ctx.instructions
        self.system = [{"role": "system", "content": instructions}] if instructions else []

    async def stream(self, messages: list[dict[str, Any]], stall_s: float) -> AsyncIterator[Any]:
        request = {**self.body, "messages": self.system + messages}
        call = self.conn.client.stream("POST", "/api/chat", json=request, headers=self.conn.headers)
        response = await _retry.first_within(call.__aenter__(), stall_s)
        try:
            if response.status_code >= 400:
                await _retry.first_within(response.aread(), stall_s)
                raise _HTTPStatusFault(
                    response.status_code,
                    _error_message(response),
                    _retry.parse_retry_after(response.headers),
                )
            text: list[str] = []
            thinking: list[str] = []
            tool_calls: list[dict[str, Any]] = []
            final: dict[str, Any] | None = None
            async for line in _retry.iter_with_stall(response.aiter_lines(), stall_s):
                if not line.strip():
                    continue
                chunk = json.loads(line)  # ValueError here is a malformed frame
                if not isinstance(chunk, dict):
                    raise ValueError(f"expected a JSON object per line, got {line[:80]!r}")
                if chunk.get("error"):
                    raise _StreamErrorLine(str(chunk["error"]))
                message = chunk.get("message") or {}
                if message.get("thinking"):
                    thinking.append(message["thinking"])
                if message.get("content"):
                    text.append(message["content"])
                    yield AssistantText(message["content"], delta=True)
                for tool_call in message.get("tool_calls") or []:
                    if isinstance(tool_call, dict) and isinstance(tool_call.get("function"), dict):
                        tool_calls.append(tool_call)
                if chunk.get("done"):
                    final = chunk
                    break
            if final is None:
                raise _retry.StreamIncomplete("stream ended before the done line")
            yield _retry.CallDone(self._reply("".join(text), "".join(thinking), tool_calls, final))
        finally:
            await call.__aexit__(None, None, None)

    def _reply(
        self, text: str, thinking: str, raw_calls: list[dict[str, Any]], final: dict[str, Any]
    ) -> ModelReply:
        calls = []
        for n, raw in enumerate(raw_calls):
            fn = raw["function"]
            arguments = fn.get("arguments") or {}
            if isinstance(arguments, str):  # some models emit a JSON string anyway
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {"_raw": arguments}
            call_id = raw.get("id") or f"call_{self.ctx.turn}_{n}"
            calls.append(ToolCall(call_id, str(fn.get("name", "")), dict(arguments)))
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": text,
            "tool_calls": [{"function": c["function"]} for c in raw_calls],
        }
        if thinking:
            assistant["thinking"] = thinking
        notice = None
        if final.get("done_reason") not in (None, "stop"):
            notice = Notice(
                f"model stopped early: {final['done_reason']}",
                {"done_reason": final["done_reason"]},
            )
        usage = UsageReport(
            provider="ollama",
            model=final.get("model") or self.model,
            input_tokens=int(final.get("prompt_eval_count") or 0),
            output_tokens=int(final.get("eval_count") or 0),
            cost_usd=0.0,
        )
        return ModelReply(text, calls, usage, message=assistant, notice=notice)

    def add_reply(self, messages: list[dict[str, Any]], reply: ModelReply) -> None:
        messages.append(reply.message)

    def add_results(self, messages: list[dict[str, Any]], results: list[ToolResult]) -> None:
        for result in results:
            text = f"Error: {result.output}" if result.is_error else result.output
            messages.append({"role": "tool", "tool_name": result.call.name, "content": text})

    def classify(self, exc: BaseException) -> _retry.Fault | None:
        import httpx

        if isinstance(exc, _HTTPStatusFault):
            return _retry.status_fault(exc.status, exc.message, exc.retry_after_s)
        if isinstance(exc, _StreamErrorLine):
            return _retry.Fault(False, "stream error", f"model error: {exc}")
        if isinstance(exc, httpx.ConnectError):
            return _retry.Fault(True, "connection refused", f"cannot reach Ollama: {exc}")
        return _retry.generic_fault(exc)


class OllamaRuntime(DirectRuntime):
    """Options: ``base_url`` (else ``OLLAMA_HOST``), ``api_key`` (else ``OLLAMA_API_KEY``),
    ``client`` (an httpx.AsyncClient whose base_url is the Ollama host), ``model``, ``max_retries``,
    ``stall_timeout_s``, ``request_timeout_s``, ``keep_alive``, ``model_options`` (Ollama's
    ``options`` object: temperature, num_ctx ...), ``retry_base_s``, ``retry_max_s``,
    ``retry_after_cap_s``. Task options (``ctx.options``) override them."""

    id = "ollama"
    label = "Ollama (local)"
    provider = "ollama"
    default_model = "llama3.2"
    provider_class = OllamaProvider
    wire_class = OllamaWire


def _tool_param(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": spec["name"],
            "description": spec.get("description") or "",
            "parameters": spec.get("input_schema") or {"type": "object", "properties": {}},
        },
    }


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return response.text[:500]


__all__ = ["OllamaRuntime", "OllamaWire", "normalize_host"]
