"""ollama: local models through Ollama's ``/api/chat`` (NDJSON streaming over httpx).

No vendor SDK: httpx is a core dependency, so this runtime is available whenever an Ollama
server answers ``GET /api/version``. Tool calls arrive as objects (``arguments`` is already a
JSON object); results go back as ``{"role": "tool", "tool_name": ..., "content": ...}``
messages. Local inference costs nothing, so usage is reported with ``cost_usd=0.0``.

``OLLAMA_HOST`` follows Ollama's own conventions: ``host``, ``host:port`` or a full URL; a
missing scheme means http and a missing port means 11434. ``OLLAMA_API_KEY`` (or
``api_key=``) is sent as a bearer token for hosted Ollama endpoints.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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

if TYPE_CHECKING:
    import httpx

TRANSCRIPT_FORMAT = "ollama-chat/1"
DEFAULT_HOST = "http://127.0.0.1:11434"
HEALTH_TIMEOUT_S = 1.0


def normalize_host(value: str | None) -> str:
    """``OLLAMA_HOST`` → a base URL: add http:// and :11434 when missing; 0.0.0.0 → loopback."""
    if not value:
        return DEFAULT_HOST
    raw = value.strip().rstrip("/")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):  # a bind-all address is not one a client can dial
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 11434)
    return f"{parts.scheme}://{host}:{port}{parts.path}"


class _HTTPStatusFault(Exception):
    def __init__(self, status: int, message: str, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.retry_after_s = retry_after_s


class _StreamErrorLine(Exception):
    """An ``{"error": ...}`` line in the middle of a stream (model crashed, out of memory)."""


class OllamaRuntime(Runtime):
    """Options: ``base_url`` (else ``OLLAMA_HOST``), ``api_key`` (else ``OLLAMA_API_KEY``),
    ``client`` (an httpx.AsyncClient whose base_url is the Ollama host), ``model``, ``max_retries``,
    ``stall_timeout_s``, ``request_timeout_s``, ``keep_alive``, ``model_options`` (Ollama's
    ``options`` object: temperature, num_ctx ...), ``retry_base_s``, ``retry_max_s``,
    ``retry_after_cap_s``. Task options (``ctx.options``) override them."""

    id = "ollama"
    label = "Ollama (local)"
    provider = "ollama"
    capabilities = Capabilities(resume=True, builtin_tools=True, auth_health_check=True)
    default_model = "llama3.2"

    def _host(self, opt: Any) -> str:
        return normalize_host(opt("base_url") or os.environ.get("OLLAMA_HOST"))

    @staticmethod
    def _api_key(opt: Any) -> str | None:
        return opt("api_key") or os.environ.get("OLLAMA_API_KEY") or None

    def _headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    def availability(self) -> Availability:
        """Usable when the server answers ``GET /api/version`` within a second."""
        import httpx

        opt = _retry.option_reader(None, self.options)
        host = self._host(opt)
        try:
            response = httpx.get(
                host + "/api/version",
                headers=self._headers(self._api_key(opt)),
                timeout=HEALTH_TIMEOUT_S,
            )
        except httpx.HTTPError as exc:
            return Availability(False, f"no Ollama server at {host} ({type(exc).__name__})")
        if response.status_code != 200:
            return Availability(False, f"Ollama at {host} answered HTTP {response.status_code}")
        try:
            version = response.json().get("version", "?")
        except ValueError:
            return Availability(False, f"{host} does not look like an Ollama server")
        return Availability(True, f"Ollama {version} at {host}")

    async def run(self, ctx: RunContext) -> AsyncIterator[RuntimeEvent]:
        import httpx  # a core dependency, imported late to keep this module cheap

        opt = _retry.option_reader(getattr(ctx, "options", None), self.options)
        key = self._api_key(opt)
        client = opt("client")
        owned = client is None
        if owned:
            client = httpx.AsyncClient(
                base_url=self._host(opt),
                # Reads are bounded by our stall timeout, not httpx's.
                timeout=httpx.Timeout(
                    float(opt("request_timeout_s", _retry.DEFAULT_REQUEST_TIMEOUT_S)), read=None
                ),
            )
        try:
            async for event in self._loop(ctx, client, opt, key):
                yield event
        finally:
            if owned:
                await client.aclose()

    async def _loop(
        self, ctx: RunContext, client: httpx.AsyncClient, opt: Any, key: str | None
    ) -> AsyncIterator[RuntimeEvent]:
        overrides = _retry.capability_overrides(ctx, self.id)
        model = ctx.model or overrides.model or opt("model") or self.default_model
        policy = _retry.RetryPolicy.from_options(opt)
        stall_s = float(opt("stall_timeout_s", _retry.DEFAULT_STALL_TIMEOUT_S))

        saved = _retry.check_transcript(await ctx.load_transcript(), TRANSCRIPT_FORMAT)
        messages: list[dict[str, Any]] = saved or [{"role": "user", "content": ctx.prompt}]
        body: dict[str, Any] = {"model": model, "stream": True}
        tools = [_tool_param(spec) for spec in ctx.tool_specs()]
        if tools:
            body["tools"] = tools
        if overrides.thinking_enabled:
            body["think"] = True
        if opt("keep_alive") is not None:
            body["keep_alive"] = opt("keep_alive")
        if opt("model_options"):
            body["options"] = dict(opt("model_options"))
        system = [{"role": "system", "content": ctx.instructions}] if ctx.instructions else []
        headers = self._headers(key)

        while True:
            ctx.begin_turn()
            request = {**body, "messages": system + messages}
            attempt = functools.partial(self._stream_once, client, request, headers, stall_s)
            reply: dict[str, Any] = {}
            async for item in _retry.call_with_retries(
                attempt,
                classify=_classify,
                policy=policy,
                provider=self.provider,
                secrets=(key,),
            ):
                if isinstance(item, _retry.CallDone):
                    reply = item.value
                else:
                    yield item
            final = reply["final"]
            yield UsageReport(
                provider=self.provider,
                model=final.get("model") or model,
                input_tokens=int(final.get("prompt_eval_count") or 0),
                output_tokens=int(final.get("eval_count") or 0),
                cost_usd=0.0,
            )
            calls = reply["tool_calls"]
            if not calls:
                if final.get("done_reason") not in (None, "stop"):
                    yield Notice(
                        f"model stopped early: {final['done_reason']}",
                        {"done_reason": final["done_reason"]},
                    )
                yield Result(reply["text"])
                return
            assistant: dict[str, Any] = {
                "role": "assistant",
                "content": reply["text"],
                "tool_calls": [{"function": c["function"]} for c in calls],
            }
            if reply["thinking"]:
                assistant["thinking"] = reply["thinking"]
            messages.append(assistant)
            for n, call in enumerate(calls):
                fn = call["function"]
                name = str(fn.get("name", ""))
                arguments = fn.get("arguments") or {}
                if isinstance(arguments, str):  # some models emit a JSON string anyway
                    try:
                        arguments = json.loads(arguments)
                    except ValueError:
                        arguments = {"_raw": arguments}
                call_id = call.get("id") or f"call_{ctx.turn}_{n}"
                outcome = await ctx.use_tool(name, dict(arguments), call_id)
                text = f"Error: {outcome.output}" if outcome.is_error else outcome.output
                messages.append({"role": "tool", "tool_name": name, "content": text})
            await ctx.save_transcript({"format": TRANSCRIPT_FORMAT, "messages": messages})

    async def _stream_once(
        self,
        client: httpx.AsyncClient,
        request: dict[str, Any],
        headers: dict[str, str],
        stall_s: float,
    ) -> AsyncIterator[Any]:
        """One streamed chat call: text deltas, then CallDone(text, thinking, calls, final)."""
        call = client.stream("POST", "/api/chat", json=request, headers=headers)
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
            yield _retry.CallDone(
                {
                    "text": "".join(text),
                    "thinking": "".join(thinking),
                    "tool_calls": tool_calls,
                    "final": final,
                }
            )
        finally:
            await call.__aexit__(None, None, None)


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


def _classify(exc: BaseException) -> _retry.Fault | None:
    import httpx

    if isinstance(exc, _HTTPStatusFault):
        return _retry.status_fault(exc.status, exc.message, exc.retry_after_s)
    if isinstance(exc, _StreamErrorLine):
        return _retry.Fault(False, "stream error", f"model error: {exc}")
    if isinstance(exc, httpx.ConnectError):
        return _retry.Fault(True, "connection refused", f"cannot reach Ollama: {exc}")
    return _retry.generic_fault(exc)


__all__ = ["OllamaRuntime", "normalize_host"]
