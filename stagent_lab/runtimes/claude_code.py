"""claude-code: the Claude Code CLI driven through claude-agent-sdk, governed by our cascade.

The CLI brings its own tools (Bash, Read, Edit, …) and runs them itself; what we must own is
the yes/no before each one. Claude Code auto-approves what it considers harmless (reading files
in the working folder, ``ls``) without asking anybody, so ``can_use_tool`` alone would miss
those calls. We therefore register a ``PreToolUse`` hook that answers ``ask`` for every tool
call, which makes the CLI put every call to ``can_use_tool``, and that callback asks the engine
(``ctx.check_permission``: profile policy → saved rules → inbox). Nothing is pre-approved inside
the CLI (no ``allowed_tools``) and no settings files are read (``setting_sources=[]``), because a
project's ``.claude/settings.json`` could otherwise pre-allow tools or install hooks.

Usage: each model call is reported once, from the raw stream events (``message_start`` holds
input and cache tokens, ``message_delta`` the output tokens). The result's ``model_usage`` and
``total_cost_usd`` are cumulative over the whole session, *including earlier runs of a resumed
session*, so they are only used to find calls the stream did not show (sub-agents, compaction),
against a baseline saved after every run; they are never booked as such. The stream names the
model the API answered with (a dated snapshot such as ``claude-sonnet-4-5-20250929``) while the
totals are keyed by the id the CLI asked for (``claude-sonnet-4-5``), so the two are compared
per model family, and never more than the session's totals grew by is booked.

Provider faults: the CLI's own idle timeout is about five minutes and it retries a refused key
for minutes, so the run watches the stream itself. No message for the stall limit while the CLI
waits on the API (a running tool or a pending approval does not count) fails the run with
"stream stalled: ..."; the first ``api_retry`` for HTTP 401/403 (or an
``authentication_failed`` error) fails it with "authentication failed" at once.

The SDK is imported inside functions only: importing this module stays cheap and a missing SDK
gives a clear "install stagent-lab[claude]" error.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from stagent_lab.errors import LimitExceeded, RuntimeFailure, RuntimeNotAvailableError
from stagent_lab.runtimes import _cli_env
from stagent_lab.runtimes.base import (
    AssistantText,
    Availability,
    Capabilities,
    Notice,
    Result,
    RunContext,
    Runtime,
    RuntimeEvent,
    SessionStarted,
    UsageReport,
)
from stagent_lab.runtimes.faults import AUTH_STATUSES, StallWatch, auth_failure, stall_limit

_INSTALL_HINT = "pip install 'stagent-lab[claude]'"
TRANSCRIPT_FORMAT = "claude-code/1"
DEFAULT_RESUME_PROMPT = (
    "Continue the task from where you stopped. If it is already finished, give your final "
    "answer again."
)
# Tools of our own built-in set that the CLI does not have.
_STAGENT_ONLY_TOOLS = frozenset({"Memory", "Handoff"})
# Options a profile may set through runtimeOverrides.claude-code.options (nothing that picks a
# binary, an endpoint or an environment: a profile must not redirect where a run goes).
PROFILE_OPTIONS = frozenset({"system_prompt_mode", "resume_prompt", "effort"})
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})
_QUIET_ENV = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}
# The suffixes that make one model family's ids differ: a snapshot date, "-latest", "[1m]".
_MODEL_SUFFIX = re.compile(r"(\[[^\]]*\])$|-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")
_AUTH_HINT = "the API refused the credentials; check api_key / ANTHROPIC_API_KEY"
_USAGE_KEYS = (  # (UsageReport field, CLI modelUsage key)
    ("input_tokens", "inputTokens"),
    ("output_tokens", "outputTokens"),
    ("cache_read_tokens", "cacheReadInputTokens"),
    ("cache_write_tokens", "cacheCreationInputTokens"),
)


def _sdk() -> Any:
    try:
        import claude_agent_sdk
    except ImportError as exc:
        raise RuntimeNotAvailableError(
            f"claude-code needs claude-agent-sdk: {_INSTALL_HINT}"
        ) from exc
    return claude_agent_sdk


def bundled_cli() -> str | None:
    """The Claude Code binary shipped inside the claude-agent-sdk wheel, if present."""
    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        for name in ("claude", "claude.exe"):
            found = _cli_env.executable(Path(folder) / "_bundled" / name)
            if found:
                return found
    return None


class ClaudeCodeRuntime(Runtime):
    """Options (``Lab(runtime_options={"claude-code": {...}})`` or per task):

    ``cli_path`` (default: the SDK's bundled CLI, else ``claude`` on PATH), ``api_key`` /
    ``auth_token`` (else ``ANTHROPIC_API_KEY`` / ``ANTHROPIC_AUTH_TOKEN`` /
    ``CLAUDE_CODE_OAUTH_TOKEN`` from the environment), ``base_url`` (``ANTHROPIC_BASE_URL`` for
    the CLI), ``model``, ``config_dir`` (``CLAUDE_CONFIG_DIR``: where sessions and settings
    live), ``home``, ``env`` (extra variables), ``telemetry`` (False: the CLI's telemetry, error
    reporting and non-essential traffic are switched off), ``max_retries`` (the CLI's own API
    retries, ``CLAUDE_CODE_MAX_RETRIES``), ``system_prompt_mode`` ("replace":
    SKILL.md is the whole system prompt; "append": appended to Claude Code's own),
    ``resume_prompt``, ``effort``, ``interrupt_timeout_s``, ``close_timeout_s``,
    ``stall_timeout_s`` (else the engine's ``ctx.stall_timeout_s``, else 60),
    ``startup_timeout_s`` (the longest wait for the CLI's first message; 60).
    """

    id = "claude-code"
    label = "Claude Code (Agent SDK)"
    provider = "anthropic"
    capabilities = Capabilities(
        resume=True,
        cancel=True,
        approvals=True,
        mcp_servers=True,
        profile_tests=True,
        auth_health_check=False,
        builtin_tools=False,
    )
    default_model = None  # the CLI's own default unless the task or profile names one

    # ---- availability -------------------------------------------------------------------

    def cli_path(self) -> str | None:
        given = self.options.get("cli_path")
        if given:
            return _cli_env.executable(given)
        return bundled_cli() or _cli_env.which("claude")

    def _credential(self) -> tuple[str, str] | None:
        """(env var, value) of the credential the CLI will use, or None."""
        opt = self.options
        if opt.get("api_key"):
            return "ANTHROPIC_API_KEY", str(opt["api_key"])
        if opt.get("auth_token"):
            return "ANTHROPIC_AUTH_TOKEN", str(opt["auth_token"])
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"):
            if os.environ.get(name):
                return name, os.environ[name]
        return None

    def availability(self) -> Availability:
        if importlib.util.find_spec("claude_agent_sdk") is None:
            return Availability(False, f"claude-agent-sdk is not installed: {_INSTALL_HINT}")
        if self.options.get("cli_path") and not self.cli_path():
            return Availability(
                False, f"cli_path {self.options['cli_path']!r} is not an executable file"
            )
        if self.cli_path() is None:
            return Availability(
                False,
                "the Claude Code CLI was not found (the claude-agent-sdk wheel for this "
                "platform bundles it; else install `claude` on PATH or pass cli_path=)",
            )
        if self._credential() is None:
            return Availability(
                False,
                "no credentials: set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN / "
                "CLAUDE_CODE_OAUTH_TOKEN), or pass api_key=",
            )
        return Availability(True)

    # ---- the run ------------------------------------------------------------------------

    async def run(self, ctx: RunContext) -> AsyncIterator[RuntimeEvent]:
        sdk = _sdk()
        run = _ClaudeRun(self, ctx, sdk)
        async for event in run.events():
            yield event


def cli_tools(allowed_tools: list[str] | None) -> tuple[list[str], list[str]]:
    """(tools to offer the CLI, tools left out because only stagent_lab has them).

    MCP tools (``mcp__server__tool``) come from the MCP servers, not from ``--tools``; our
    cascade still checks them against ``allowedTools`` when the CLI asks.
    """
    offered, missing = [], []
    for name in allowed_tools or []:
        if name in _STAGENT_ONLY_TOOLS:
            missing.append(name)
        elif not name.startswith("mcp__"):
            offered.append(name)
    return offered, missing


class _ClaudeRun:
    """State of one run: the SDK client, the stream bookkeeping, the usage ledger so far."""

    def __init__(self, runtime: ClaudeCodeRuntime, ctx: RunContext, sdk: Any) -> None:
        self.rt = runtime
        self.ctx = ctx
        self.sdk = sdk
        merged = {**_cli_env.profile_options(ctx, runtime.id, PROFILE_OPTIONS), **runtime.options}
        self.opt = {k: v for k, v in merged.items() if v is not None}
        self.marker = _cli_env.new_marker()
        self.tail = _cli_env.StderrTail()
        self.pid: int | None = None
        self.session_id: str | None = ctx.session_id
        self.tool_names: dict[str, str] = {}
        self.streamed: set[str] = set()  # message ids whose text we already streamed
        self.calls: dict[str | None, dict[str, Any]] = {}  # open model call per stream
        self.reported: dict[str, dict[str, int]] = {}  # tokens booked this run, per model
        self.last_text = ""
        self.auth_error: str | None = None  # the CLI's words when the API refused the key
        cred = runtime._credential()
        self.secrets = [
            cred[1] if cred else None,
            self.opt.get("api_key"),
            self.opt.get("auth_token"),
        ]
        self.watch = StallWatch(
            stall_limit(ctx, self.opt),
            "the Claude Code CLI",
            first_event_s=float(self.opt.get("startup_timeout_s", 60.0)),
        )

    # -- options --

    def _model(self) -> str | None:
        return self.ctx.model or self.opt.get("model") or None

    def _env(self) -> dict[str, str]:
        env: dict[str, str] = {_cli_env.MARKER_VAR: self.marker, "DISABLE_AUTOUPDATER": "1"}
        if not self.opt.get("telemetry"):
            env.update(_QUIET_ENV)
        if self.opt.get("base_url"):
            env["ANTHROPIC_BASE_URL"] = str(self.opt["base_url"])
        if self.opt.get("api_key"):
            env["ANTHROPIC_API_KEY"] = str(self.opt["api_key"])
        if self.opt.get("auth_token"):
            env["ANTHROPIC_AUTH_TOKEN"] = str(self.opt["auth_token"])
        if self.opt.get("config_dir"):
            env["CLAUDE_CONFIG_DIR"] = str(Path(self.opt["config_dir"]).expanduser())
        if self.opt.get("home"):
            env["HOME"] = str(Path(self.opt["home"]).expanduser())
        if self.opt.get("max_retries") is not None:
            env["CLAUDE_CODE_MAX_RETRIES"] = str(int(self.opt["max_retries"]))
        for key, value in dict(self.opt.get("env") or {}).items():
            env[str(key)] = str(value)
        return env

    def _options(self, resume: str | None) -> Any:
        sdk, ctx = self.sdk, self.ctx
        profile = ctx.profile
        tools, _ = cli_tools(list(getattr(profile, "allowed_tools", None) or []))
        policy = getattr(profile, "can_use_tool_policy", None)
        denied_whole = [e for e in (getattr(policy, "auto_deny", None) or []) if "(" not in e]
        tools = [t for t in tools if t not in denied_whole]
        mode = self.opt.get("system_prompt_mode", "replace")
        if mode == "append":
            system_prompt: Any = {
                "type": "preset",
                "preset": "claude_code",
                "append": ctx.instructions or "",
            }
        elif mode == "replace":
            system_prompt = ctx.instructions or None
        else:
            raise RuntimeFailure(
                f"claude-code: system_prompt_mode must be 'replace' or 'append', got {mode!r}"
            )
        kwargs: dict[str, Any] = {
            "system_prompt": system_prompt,
            "tools": tools,
            "allowed_tools": [],
            "disallowed_tools": denied_whole,
            "permission_mode": "default",
            "setting_sources": [],
            "max_turns": ctx.max_turns,
            "cwd": str(ctx.working_dir),
            "cli_path": self.rt.cli_path(),
            "env": self._env(),
            "can_use_tool": self._can_use_tool,
            "hooks": {"PreToolUse": [sdk.HookMatcher(matcher=None, hooks=[self._ask_hook])]},
            "include_partial_messages": True,
            "stderr": self.tail.add,
            "resume": resume,
        }
        model = self._model()
        if model:
            kwargs["model"] = model
        servers = getattr(profile, "mcp_servers", None) or {}
        if servers:
            kwargs["mcp_servers"] = {name: dict(cfg) for name, cfg in servers.items()}
            kwargs["strict_mcp_config"] = True
        cap = (getattr(profile, "capability_overrides", None) or {}).get(self.rt.id)
        thinking = getattr(cap, "extended_thinking", None) if cap is not None else None
        if thinking is not None:
            kwargs["thinking"] = (
                {"type": "enabled", "budget_tokens": int(thinking.budget_tokens)}
                if thinking.enabled
                else {"type": "disabled"}
            )
        effort = self.opt.get("effort") or (getattr(cap, "reasoning_effort", None) if cap else None)
        if effort in _EFFORTS:
            kwargs["effort"] = effort
        return sdk.ClaudeAgentOptions(**kwargs)

    # -- the permission door --

    async def _ask_hook(self, hook_input: Any, tool_use_id: str | None, context: Any) -> Any:
        """PreToolUse: make the CLI ask (i.e. call can_use_tool) for every tool call."""
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "ask",
                "permissionDecisionReason": "stagent_lab decides every tool call",
            }
        }

    async def _can_use_tool(self, name: str, tool_input: dict[str, Any], context: Any) -> Any:
        call_id = getattr(context, "tool_use_id", None)
        if call_id:
            self.tool_names.setdefault(call_id, name)
        with self.watch.paused():  # the CLI waits on us (maybe on a person), not on the API
            decision = await self.ctx.check_permission(name, dict(tool_input or {}), call_id)
        if decision.behavior == "allow":
            return self.sdk.PermissionResultAllow(updated_input=decision.updated_input)
        message = decision.message or f"Permission denied ({decision.tier})."
        return self.sdk.PermissionResultDeny(message=message)

    # -- the stream --

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        ctx = self.ctx
        _, missing = cli_tools(list(getattr(ctx.profile, "allowed_tools", None) or []))
        if missing:
            yield Notice(
                f"claude-code runs the CLI's own tools; stagent_lab tools "
                f"{', '.join(missing)} are not available on this runtime",
                {"unavailable_tools": missing},
            )
        resume = ctx.session_id if ctx.resuming and ctx.session_id else None
        if ctx.resuming and not resume:
            yield Notice("no Claude Code session was recorded; starting a new session")
        prompt = (
            str(self.opt.get("resume_prompt") or DEFAULT_RESUME_PROMPT) if resume else ctx.prompt
        )
        baseline = await self._baseline(resume)
        client = self.sdk.ClaudeSDKClient(self._options(resume))
        finished = False
        try:
            try:
                await client.connect()
                self.pid = _process_pid(client)
                await client.query(prompt)
                result = None
                async with contextlib.aclosing(client.receive_response()) as stream:
                    async for message in self.watch.watch(stream):  # ends after the result
                        if isinstance(message, self.sdk.ResultMessage):
                            result = message
                            continue
                        for event in self._translate(message):
                            yield event
            except self.sdk.ClaudeSDKError as exc:
                raise self._failure(exc) from None
            if result is None:
                raise self._failure(None)
            for event in await self._finish(result, baseline):
                yield event
            finished = True
        finally:
            await self._close(client, graceful=finished)

    def _translate(self, message: Any) -> list[RuntimeEvent]:
        sdk = self.sdk
        if isinstance(message, sdk.StreamEvent):
            return self._stream_event(message)
        if isinstance(message, sdk.AssistantMessage):
            return self._assistant(message)
        if isinstance(message, sdk.UserMessage):
            self._tool_results(message)
            return []
        if isinstance(message, sdk.SystemMessage):
            return self._system(message)
        if isinstance(message, sdk.RateLimitEvent):
            info = message.rate_limit_info
            return [
                Notice(
                    f"claude-code rate limit: {getattr(info, 'status', info)}",
                    {"rate_limit": str(info)},
                )
            ]
        return []

    def _stream_event(self, message: Any) -> list[RuntimeEvent]:
        event = message.event or {}
        kind = event.get("type")
        parent = message.parent_tool_use_id
        if kind == "message_start":
            msg = event.get("message") or {}
            if parent is None:
                self.ctx.begin_turn()
            usage = msg.get("usage") or {}
            self.calls[parent] = {
                "id": msg.get("id"),
                "model": msg.get("model") or self._model() or "unknown",
                "input_tokens": int(usage.get("input_tokens") or 0),
                "cache_read_tokens": int(usage.get("cache_read_input_tokens") or 0),
                "cache_write_tokens": int(usage.get("cache_creation_input_tokens") or 0),
                "output_tokens": int(usage.get("output_tokens") or 0),
            }
            return []
        call = self.calls.get(parent)
        if kind == "content_block_delta" and parent is None:
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                if call and call.get("id"):
                    self.streamed.add(call["id"])
                return [AssistantText(delta["text"], delta=True)]
            return []
        if kind == "message_delta" and call is not None:
            usage = event.get("usage") or {}
            for field, key in (
                ("input_tokens", "input_tokens"),
                ("output_tokens", "output_tokens"),
                ("cache_read_tokens", "cache_read_input_tokens"),
                ("cache_write_tokens", "cache_creation_input_tokens"),
            ):
                if usage.get(key) is not None:
                    call[field] = int(usage[key])
            return []
        if kind == "message_stop" and call is not None:
            self.calls.pop(parent, None)
            return [self._book(call["model"], call)]
        return []

    def _book(self, model: str, tokens: dict[str, Any]) -> UsageReport:
        seen = self.reported.setdefault(model, dict.fromkeys((f for f, _ in _USAGE_KEYS), 0))
        for field, _ in _USAGE_KEYS:
            seen[field] += int(tokens.get(field) or 0)
        return UsageReport(
            provider=self.rt.provider,
            model=model,
            input_tokens=int(tokens.get("input_tokens") or 0),
            output_tokens=int(tokens.get("output_tokens") or 0),
            cache_read_tokens=int(tokens.get("cache_read_tokens") or 0),
            cache_write_tokens=int(tokens.get("cache_write_tokens") or 0),
        )

    def _assistant(self, message: Any) -> list[RuntimeEvent]:
        sdk = self.sdk
        out: list[RuntimeEvent] = []
        if message.error:  # the CLI's synthetic message about a failed call, not model text
            text = " ".join(b.text for b in message.content if isinstance(b, sdk.TextBlock))
            if message.error == "authentication_failed":
                # The result follows at once and carries the HTTP status; fail there.
                self.auth_error = text or _AUTH_HINT
            out.append(
                Notice(
                    f"claude-code API error: {message.error}",
                    {"error": str(message.error), "text": text},
                )
            )
            return out
        for block in message.content:
            if isinstance(block, sdk.TextBlock):
                if message.parent_tool_use_id is None:
                    self.last_text = block.text
                if message.message_id not in self.streamed and message.parent_tool_use_id is None:
                    out.append(AssistantText(block.text))
            elif isinstance(block, sdk.ToolUseBlock):
                self.tool_names[block.id] = block.name
                self.watch.hold(("tool", block.id))  # the CLI runs it: not the API's silence
        return out

    def _tool_results(self, message: Any) -> None:
        if not isinstance(message.content, list):
            return
        for block in message.content:
            if isinstance(block, self.sdk.ToolResultBlock):
                self.watch.release(("tool", block.tool_use_id))
                name = self.tool_names.get(block.tool_use_id, "unknown")
                self.ctx.log_tool_result(
                    name, _content_text(block.content), bool(block.is_error), block.tool_use_id
                )

    def _system(self, message: Any) -> list[RuntimeEvent]:
        data = message.data or {}
        if message.subtype == "init":
            out: list[RuntimeEvent] = []
            sid = data.get("session_id")
            if sid and sid != self.session_id:
                self.session_id = sid
                out.append(SessionStarted(sid))
            servers = [
                {"name": s.get("name"), "status": s.get("status")}
                for s in data.get("mcp_servers") or []
                if isinstance(s, dict)
            ]
            out.append(
                Notice(
                    "claude-code session ready",
                    {
                        "session_id": sid,
                        "model": data.get("model"),
                        "tools": data.get("tools"),
                        "mcp_servers": servers,
                        "cli_version": data.get("claude_code_version"),
                    },
                )
            )
            return out
        if message.subtype in ("status", "session_state_changed"):
            return []
        if message.subtype == "api_retry":
            return self._api_retry(data)
        return [Notice(f"claude-code: {message.subtype}", {"subtype": message.subtype})]

    def _api_retry(self, data: dict[str, Any]) -> list[RuntimeEvent]:
        """A failed API call the CLI is about to retry: logged, except a refused key, which
        fails the run now instead of after minutes of retries."""
        status = data.get("error_status")
        status = status if isinstance(status, int) else None
        if status in AUTH_STATUSES or data.get("error") == "authentication_failed":
            raise auth_failure("claude-code", status, _AUTH_HINT)
        what = f"HTTP {status}" if status else str(data.get("error") or "no response")
        delay = data.get("retry_delay_ms")
        delay_s = round(delay / 1000, 3) if isinstance(delay, int | float) else None
        message = (
            f"claude-code: API call failed ({what}); retry {data.get('attempt')} of "
            f"{data.get('max_retries')} in {delay_s} s"
        )
        keys = ("attempt", "max_retries", "error_status", "error")
        return [Notice(message, {**{k: data.get(k) for k in keys}, "delay_s": delay_s})]

    # -- the end --

    async def _baseline(self, resume: str | None) -> dict[str, dict[str, int]] | None:
        """Cumulative usage the session had before this run (None: unknown)."""
        if not resume:
            return {}
        saved = await self.ctx.load_transcript()
        if (
            isinstance(saved, dict)
            and saved.get("format") == TRANSCRIPT_FORMAT
            and saved.get("session_id") == resume
            and isinstance(saved.get("model_usage"), dict)
        ):
            return saved["model_usage"]
        return None

    async def _finish(
        self, result: Any, baseline: dict[str, dict[str, int]] | None
    ) -> list[RuntimeEvent]:
        out: list[RuntimeEvent] = []
        if result.session_id and result.session_id != self.session_id:
            self.session_id = result.session_id
            out.append(SessionStarted(result.session_id))
        cumulative = _model_usage(result.model_usage)
        if baseline is None:
            out.append(
                Notice(
                    "claude-code: no usage baseline for the resumed session; "
                    "booked the streamed model calls only"
                )
            )
        else:
            out += self._unstreamed_usage(cumulative, baseline)
        if self.session_id:
            await self.ctx.save_transcript(
                {
                    "format": TRANSCRIPT_FORMAT,
                    "session_id": self.session_id,
                    "model_usage": cumulative,
                }
            )
        detail = {
            "subtype": result.subtype,
            "num_turns": result.num_turns,
            "duration_ms": result.duration_ms,
            "stop_reason": result.stop_reason,
            "terminal_reason": getattr(result, "terminal_reason", None),
            "session_total_cost_usd": result.total_cost_usd,
        }
        if result.subtype == "error_max_turns":
            raise LimitExceeded(f"max turns reached ({self.ctx.max_turns}) in Claude Code")
        if result.subtype == "error_max_budget_usd":
            raise LimitExceeded("Claude Code stopped at its budget limit")
        if result.is_error or result.subtype != "success":
            status = getattr(result, "api_error_status", None)
            if status in AUTH_STATUSES or self.auth_error:
                detail = _cli_env.scrub(self.auth_error or _AUTH_HINT, self.secrets)
                raise auth_failure("claude-code", status, detail)
            errors = "; ".join(str(e) for e in (result.errors or []))
            text = errors or result.result or result.subtype
            where = f" (HTTP {status})" if status else ""
            message = _cli_env.scrub(f"claude-code: {text}{where}", self.secrets)
            raise RuntimeFailure(message, retryable=status in (408, 429, 500, 502, 503, 529))
        out.append(Notice("claude-code finished", detail))
        out.append(Result(result.result if result.result is not None else self.last_text))
        return out

    def _unstreamed_usage(
        self, cumulative: dict[str, dict[str, int]], baseline: dict[str, dict[str, int]]
    ) -> list[RuntimeEvent]:
        """Calls the stream did not show: the session's totals minus the baseline minus what
        was booked, per model family. Booked at most what the totals grew by, field by field,
        so no naming difference between the stream and the totals can book a call twice."""
        fields = [f for f, _ in _USAGE_KEYS]
        grown = _by_family(cumulative)
        before = _by_family(baseline)
        seen = _by_family(self.reported)
        left = {
            f: max(
                0,
                sum(t[f] for t in grown.values())
                - sum(t[f] for t in before.values())
                - sum(t[f] for t in seen.values()),
            )
            for f in fields
        }
        out: list[RuntimeEvent] = []
        for family, totals in grown.items():
            rest = {}
            for f in fields:
                due = totals[f] - before.get(family, {}).get(f, 0) - seen.get(family, {}).get(f, 0)
                rest[f] = min(max(0, due), left[f])
                left[f] -= rest[f]
            if any(rest.values()):
                name = next(
                    (m for m in self.reported if model_family(m) == family),
                    next(m for m in cumulative if model_family(m) == family),
                )
                out.append(self._book(name, rest))
        return out

    def _failure(self, exc: BaseException | None) -> RuntimeFailure:
        if exc is None:
            what = "the Claude Code CLI ended without a result"
        else:
            what = f"{type(exc).__name__}: {exc}"
        tail = self.tail.text(self.secrets)
        text = what + (f"\nCLI stderr (last lines):\n{tail}" if tail else "")
        return RuntimeFailure(_cli_env.scrub(f"claude-code: {text}", self.secrets))

    async def _close(self, client: Any, *, graceful: bool) -> None:
        """Stop the CLI. Bounded: interrupt, disconnect, then kill whatever is left."""
        interrupt_s = float(self.opt.get("interrupt_timeout_s", 2.0))
        close_s = float(self.opt.get("close_timeout_s", 3.0))
        if not graceful and self.pid is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(client.interrupt(), interrupt_s)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(client.disconnect(), close_s)
        # Anything still alive now (a shell the agent left behind, a CLI that ignored the
        # interrupt) is an orphan of this run.
        with contextlib.suppress(BaseException):
            await asyncio.to_thread(_cli_env.stop_run, self.pid, self.marker)


def _process_pid(client: Any) -> int | None:
    transport = getattr(client, "_transport", None)
    process = getattr(transport, "_process", None)
    pid = getattr(process, "pid", None)
    return pid if isinstance(pid, int) else None


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for item in content:
        if isinstance(item, dict):
            if item.get("type") == "text":
                parts.append(str(item.get("text", "")))
            else:
                parts.append(f"[{item.get('type', 'content')}]")
        else:
            parts.append(str(item))
    return "\n".join(parts)


def model_family(model: str) -> str:
    """``claude-sonnet-4-5-20250929`` and ``claude-sonnet-4-5`` → ``claude-sonnet-4-5``."""
    name = model.strip().lower()
    while True:
        shorter = _MODEL_SUFFIX.sub("", name)
        if shorter == name:
            return name
        name = shorter


def _by_family(usage: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for model, tokens in usage.items():
        into = out.setdefault(model_family(model), dict.fromkeys((f for f, _ in _USAGE_KEYS), 0))
        for field in into:
            into[field] += int(tokens.get(field) or 0)
    return out


def _model_usage(raw: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for model, entry in (raw or {}).items():
        if isinstance(entry, dict):
            out[str(model)] = {field: int(entry.get(key) or 0) for field, key in _USAGE_KEYS}
    return out


__all__ = ["ClaudeCodeRuntime", "bundled_cli", "cli_tools", "model_family"]
