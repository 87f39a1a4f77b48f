"""openai-codex-app-server: the real ``codex app-server`` over JSON-RPC, governed by our cascade.

Codex runs its own tools (shell commands, patches) inside its sandbox. With approval policy
``on-request`` it asks the client before a command leaves the sandbox or a patch writes where
the sandbox does not allow; every such request is answered by the engine's cascade (mapped in
``codex.approvals``). "Always allow" answers ``acceptForSession`` and saves our rule; a denial
answers ``decline`` and the deny message is steered into the running turn (``turn/steer``) so
the agent reads why.

This module is the adapter: a Codex thread and turn turned into runtime events. Finding the
binary and its command line is ``codex.binary``; the JSON-RPC connection (stdio by default,
``transport="websocket"`` for a loopback WebSocket with a one-time capability token, of which
only the SHA-256 is on the command line) is ``codex.rpc``.

Provider faults: the turn fails with "stream stalled: ..." when Codex reports nothing for the
stall limit while it waits on the model (a running command or a pending approval does not
count), and with "authentication failed" on the first 401/403 Codex reports, instead of after
its own reconnect loop.

Usage: ``thread/tokenUsage/updated`` carries the thread's cumulative totals; each report is the
difference to the last totals seen, and the totals are saved after every report so a resumed
thread (whose totals include the earlier runs) is never booked twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stagent_lab.errors import RuntimeFailure, RuntimeNotAvailableError
from stagent_lab.runtimes import _cli_env
from stagent_lab.runtimes.base import (
    AssistantText,
    Availability,
    Capabilities,
    Notice,
    PermissionDecision,
    Result,
    RunContext,
    Runtime,
    RuntimeEvent,
    SessionStarted,
    UsageReport,
)
from stagent_lab.runtimes.codex.approvals import (
    approval_answer,
    change_kind,
    command_check,
    file_change_checks,
    unwrap_shell,
)
from stagent_lab.runtimes.codex.binary import find_codex, server_argv, server_env
from stagent_lab.runtimes.codex.rpc import (
    MESSAGE_LIMIT,
    Closed,
    JsonRpc,
    RpcError,
    StdioLink,
    Unreadable,
    WebSocketLink,
)
from stagent_lab.runtimes.faults import AUTH_STATUSES, StallWatch, auth_failure, stall_limit

TRANSCRIPT_FORMAT = "codex-app-server/1"
DEFAULT_RESUME_PROMPT = (
    "Continue the task from where you stopped. If it is already finished, give your final "
    "answer again."
)
APPROVAL_POLICIES = frozenset({"on-request", "untrusted"})  # never "never": we must be asked
SANDBOXES = frozenset({"read-only", "workspace-write", "danger-full-access"})
PROFILE_OPTIONS = frozenset({"sandbox", "approval_policy", "resume_prompt", "instructions_mode"})
_BANNER = re.compile(r"listening on:\s*(ws://[0-9.]+:\d+)")
# Items that are the model speaking; any other item in progress (a command, a patch, an MCP
# call) is Codex working, not waiting on the model, so it holds the stall clock.
_MODEL_ITEMS = frozenset({"userMessage", "agentMessage", "reasoning", "plan"})


@dataclass
class _Emit:
    event: RuntimeEvent


class CodexAppServerRuntime(Runtime):
    """Options (``Lab(runtime_options={"openai-codex-app-server": {...}})`` or per task):

    ``codex_path`` (else ``$STAGENT_CODEX_BIN``, ``<repo>/node_modules``, ``codex`` on PATH),
    ``transport`` ("stdio" | "websocket"), ``base_url`` + ``api_key`` (adds a ``stagent``
    model provider with ``wire_api = "responses"``; else Codex's own config and login apply),
    ``model``, ``provider`` (for pricing; "openai"), ``codex_home`` (``CODEX_HOME``), ``home``,
    ``env``, ``config`` ({dotted.key: value} passed as ``-c`` overrides), ``sandbox``,
    ``approval_policy`` ("on-request" | "untrusted"), ``instructions_mode`` ("developer" |
    "base"), ``quiet`` (True: plugins, apps and update checks off), ``resume_prompt``,
    ``startup_timeout_s``, ``request_timeout_s``, ``interrupt_timeout_s``, ``stall_timeout_s``
    (else the engine's ``ctx.stall_timeout_s``, else 60).
    """

    id = "openai-codex-app-server"
    label = "OpenAI Codex (app-server)"
    provider = "openai"
    capabilities = Capabilities(
        resume=True,
        cancel=True,
        approvals=True,
        mcp_servers=False,
        profile_tests=True,
        auth_health_check=False,
        builtin_tools=False,
    )
    default_model = None  # Codex's configured default unless the task or profile names one

    def codex_path(self) -> str | None:
        return find_codex(self.options.get("codex_path"))

    def _codex_home(self) -> Path:
        given = self.options.get("codex_home") or os.environ.get("CODEX_HOME")
        return Path(given).expanduser() if given else Path.home() / ".codex"

    def availability(self) -> Availability:
        if self.options.get("codex_path") and not self.codex_path():
            return Availability(
                False, f"codex_path {self.options['codex_path']!r} is not an executable file"
            )
        if self.codex_path() is None:
            return Availability(
                False,
                "the codex binary was not found: run `make npm` (installs @openai/codex into "
                "node_modules), set STAGENT_CODEX_BIN, or put `codex` on PATH",
            )
        if self.options.get("api_key") or os.environ.get("OPENAI_API_KEY"):
            return Availability(True)
        if self.options.get("base_url"):
            return Availability(True)  # a local endpoint may need no key
        home = self._codex_home()
        if (home / "auth.json").is_file():
            return Availability(True)
        config = home / "config.toml"
        if config.is_file() and re.search(r"(?m)^\s*model_provider\s*=", config.read_text()):
            return Availability(True)
        return Availability(
            False,
            "no credentials: set OPENAI_API_KEY, pass api_key= / base_url=, log in with "
            "`codex login`, or configure a model_provider in $CODEX_HOME/config.toml",
        )

    async def run(self, ctx: RunContext) -> AsyncIterator[RuntimeEvent]:
        run = _CodexRun(self, ctx)
        async for event in run.events():
            yield event


# ---- one run ---------------------------------------------------------------------------------


@dataclass
class _TokenTotals:
    input: int = 0
    cached: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0

    @classmethod
    def of(cls, raw: Any) -> _TokenTotals:
        raw = raw if isinstance(raw, dict) else {}
        return cls(
            int(raw.get("inputTokens") or 0),
            int(raw.get("cachedInputTokens") or 0),
            int(raw.get("cacheWriteInputTokens") or 0),
            int(raw.get("outputTokens") or 0),
            int(raw.get("reasoningOutputTokens") or 0),
        )

    def minus(self, other: _TokenTotals) -> _TokenTotals:
        return _TokenTotals(
            *(max(0, a - b) for a, b in zip(self.astuple(), other.astuple(), strict=True))
        )

    def astuple(self) -> tuple[int, ...]:
        return (self.input, self.cached, self.cache_write, self.output, self.reasoning)

    def asdict(self) -> dict[str, int]:
        return dict(
            zip(
                ("input", "cached", "cache_write", "output", "reasoning"),
                self.astuple(),
                strict=True,
            )
        )


@dataclass
class _Turn:
    id: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    status: str | None = None
    error: str | None = None
    error_status: int | None = None  # the HTTP status Codex reported with the error, if any


class _CodexRun:
    def __init__(self, runtime: CodexAppServerRuntime, ctx: RunContext) -> None:
        self.rt = runtime
        self.ctx = ctx
        merged = {**_cli_env.profile_options(ctx, runtime.id, PROFILE_OPTIONS), **runtime.options}
        self.opt = {k: v for k, v in merged.items() if v is not None}
        self.marker = _cli_env.new_marker()
        self.tail = _cli_env.StderrTail()
        self.proc: asyncio.subprocess.Process | None = None
        self.rpc: JsonRpc | None = None
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()
        self.thread_id: str | None = None
        self.model: str | None = None
        self.turn = _Turn()
        self.items: dict[str, dict[str, Any]] = {}
        self.asked: set[str] = set()  # item ids we were asked about
        self.streamed: set[str] = set()
        self.last_text = ""
        self.usage_seen: _TokenTotals | None = _TokenTotals()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stderr_tasks: list[asyncio.Task[Any]] = []
        self.ws_url: asyncio.Future[str] | None = None
        self.secrets = [self.opt.get("api_key"), os.environ.get("OPENAI_API_KEY")]
        self.watch = StallWatch(stall_limit(ctx, self.opt), "codex")

    # -- configuration --

    def _timeout(self, name: str, default: float) -> float:
        return float(self.opt.get(name, default))

    def _sandbox(self) -> str:
        sandbox = self.opt.get("sandbox")
        if sandbox is None:
            tools = set(getattr(self.ctx.profile, "allowed_tools", None) or [])
            sandbox = "workspace-write" if tools & {"Write", "Edit"} else "read-only"
        if sandbox not in SANDBOXES:
            raise RuntimeFailure(
                f"codex: sandbox must be one of {sorted(SANDBOXES)}, got {sandbox!r}"
            )
        return str(sandbox)

    def _approval_policy(self) -> str:
        policy = self.opt.get("approval_policy", "on-request")
        if policy not in APPROVAL_POLICIES:
            raise RuntimeFailure(
                f"codex: approval_policy must be one of {sorted(APPROVAL_POLICIES)} (stagent_lab "
                f"must see every approval), got {policy!r}"
            )
        return str(policy)

    # -- process --

    async def _start(self) -> None:
        binary = self.rt.codex_path()
        if binary is None:
            raise RuntimeNotAvailableError(self.rt.availability().reason or "codex not found")
        transport = self.opt.get("transport", "stdio")
        token = None
        if transport == "websocket":
            token = secrets.token_urlsafe(32)
            token_sha = hashlib.sha256(token.encode()).hexdigest()
            argv = server_argv(binary, "ws://127.0.0.1:0", token_sha, self.opt)
            self.ws_url = asyncio.get_running_loop().create_future()
        elif transport == "stdio":
            argv = server_argv(binary, "stdio://", None, self.opt)
        else:
            raise RuntimeFailure(
                f"codex: transport must be 'stdio' or 'websocket', got {transport!r}"
            )
        env = _cli_env.child_env(server_env(self.opt), marker=self.marker)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(self.ctx.working_dir),
                env=env,
                limit=MESSAGE_LIMIT,
            )
        except OSError as exc:
            raise RuntimeFailure(f"codex: cannot start {binary}: {exc}") from None
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self.stderr_tasks.append(asyncio.create_task(self._drain(self.proc.stderr)))
        if transport == "websocket":
            self.stderr_tasks.append(asyncio.create_task(self._drain(self.proc.stdout)))
            assert self.ws_url is not None and token is not None
            startup = self._timeout("startup_timeout_s", 30.0)
            try:
                url = await asyncio.wait_for(asyncio.shield(self.ws_url), startup)
            except TimeoutError:
                raise RuntimeFailure(
                    self._why(f"codex app-server did not start listening within {startup:g}s")
                ) from None
            link: Any = await WebSocketLink.connect(url, token, startup)
        else:
            link = StdioLink(self.proc)
        self.rpc = JsonRpc(link, self.incoming, self._closed_reason)

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            async for raw in stream:
                line = _strip_ansi(raw.decode(errors="replace"))
                self.tail.add(line)
                match = _BANNER.search(line)
                if match and self.ws_url is not None and not self.ws_url.done():
                    self.ws_url.set_result(match.group(1))
        if self.ws_url is not None and not self.ws_url.done():
            self.ws_url.set_exception(RuntimeFailure(self._why("codex app-server exited")))

    async def _closed_reason(self) -> str:
        code = None
        if self.proc is not None:
            with contextlib.suppress(Exception):
                code = await asyncio.wait_for(self.proc.wait(), 2)
        what = f"app-server exited (code {code})" if code is not None else "connection closed"
        return _cli_env.scrub(self._with_tail(what), self.secrets)

    def _with_tail(self, text: str) -> str:
        tail = self.tail.text(self.secrets, last=8)
        return text + (f"; stderr (last lines):\n{tail}" if tail else "")

    def _why(self, text: str) -> str:
        return _cli_env.scrub("codex: " + self._with_tail(text), self.secrets)

    async def _close(self, graceful: bool) -> None:
        rpc = self.rpc
        if (
            not graceful
            and rpc is not None
            and not rpc.closed
            and self.turn.id
            and not self.turn.done.is_set()
        ):
            with contextlib.suppress(BaseException):
                await rpc.request(
                    "turn/interrupt",
                    {"threadId": self.thread_id, "turnId": self.turn.id},
                    self._timeout("interrupt_timeout_s", 2.0),
                )
        for task in list(self.tasks):
            task.cancel()
        if rpc is not None:
            with contextlib.suppress(BaseException):
                await rpc.link.close()
        proc = self.proc
        if proc is not None:
            with contextlib.suppress(BaseException):
                if proc.stdin is not None and not proc.stdin.is_closing():
                    proc.stdin.close()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(proc.wait(), 2.0 if graceful else 0.5)
        with contextlib.suppress(BaseException):
            await asyncio.to_thread(_cli_env.stop_run, proc.pid if proc else None, self.marker)
        if proc is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(proc.wait(), 1.0)
        if rpc is not None:
            rpc.stop()
        for task in self.stderr_tasks:
            task.cancel()

    # -- the run --

    async def events(self) -> AsyncIterator[RuntimeEvent]:
        ctx = self.ctx
        finished = False
        try:
            await self._start()
            assert self.rpc is not None
            rpc = self.rpc
            timeout = self._timeout("request_timeout_s", 60.0)
            from stagent_lab import __version__

            await rpc.request(
                "initialize",
                {
                    "clientInfo": {
                        "name": "stagent_lab",
                        "title": "stagent_lab",
                        "version": __version__,
                    },
                    "capabilities": {"experimentalApi": False, "requestAttestation": False},
                },
                timeout,
            )
            await rpc.notify("initialized")
            resume = ctx.session_id if ctx.resuming and ctx.session_id else None
            if ctx.resuming and not resume:
                yield Notice("no Codex thread was recorded; starting a new thread")
            params = self._thread_params()
            try:
                if resume:
                    started = await rpc.request(
                        "thread/resume", {"threadId": resume, **params}, timeout
                    )
                else:
                    started = await rpc.request("thread/start", params, timeout)
            except RpcError as exc:
                raise RuntimeFailure(self._why(f"could not open the thread: {exc}")) from None
            thread = (started or {}).get("thread") or {}
            self.thread_id = thread.get("id")
            self.model = (started or {}).get("model") or self._model()
            if not self.thread_id:
                raise RuntimeFailure("codex: the server returned no thread id")
            if self.thread_id != ctx.session_id:
                yield SessionStarted(self.thread_id)
            yield Notice(
                "codex thread ready",
                {
                    "thread_id": self.thread_id,
                    "model": self.model,
                    "model_provider": (started or {}).get("modelProvider"),
                    "sandbox": params["sandbox"],
                    "approval_policy": params["approvalPolicy"],
                    "resumed": bool(resume),
                },
            )
            self.usage_seen = await self._usage_baseline(resume)
            prompt = (
                str(self.opt.get("resume_prompt") or DEFAULT_RESUME_PROMPT)
                if resume
                else ctx.prompt
            )
            turn_params: dict[str, Any] = {"threadId": self.thread_id, "input": [_text(prompt)]}
            effort = _reasoning_effort(ctx, self.rt.id)
            if effort:
                turn_params["effort"] = effort
            try:
                begun = await rpc.request("turn/start", turn_params, timeout)
            except RpcError as exc:
                raise RuntimeFailure(self._why(f"could not start the turn: {exc}")) from None
            self.turn.id = ((begun or {}).get("turn") or {}).get("id")
            while not self.turn.done.is_set():
                item = await self.watch.wait(self.incoming.get())
                if isinstance(item, Closed):
                    raise RuntimeFailure(f"codex: {item.reason}")
                if isinstance(item, Unreadable):
                    yield Notice("codex: unreadable message skipped", {"line": item.line})
                    continue
                if isinstance(item, _Emit):
                    yield item.event
                    continue
                if "id" in item:
                    self._spawn(self._serve(item))
                    continue
                for event in await self._notification(item):
                    yield event
            for event in self._turn_end():
                yield event
            finished = True
        finally:
            await self._close(graceful=finished)

    def _model(self) -> str | None:
        return self.ctx.model or self.opt.get("model") or None

    def _thread_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "cwd": str(self.ctx.working_dir),
            "approvalPolicy": self._approval_policy(),
            "sandbox": self._sandbox(),
        }
        model = self._model()
        if model:
            params["model"] = model
        instructions = self.ctx.instructions or None
        mode = self.opt.get("instructions_mode", "developer")
        if mode not in ("developer", "base"):
            raise RuntimeFailure(
                f"codex: instructions_mode must be 'developer' or 'base', got {mode!r}"
            )
        if instructions:
            params["developerInstructions" if mode == "developer" else "baseInstructions"] = (
                instructions
            )
        return params

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- usage --

    async def _usage_baseline(self, resume: str | None) -> _TokenTotals | None:
        if not resume:
            return _TokenTotals()
        saved = await self.ctx.load_transcript()
        if (
            isinstance(saved, dict)
            and saved.get("format") == TRANSCRIPT_FORMAT
            and saved.get("thread_id") == resume
            and isinstance(saved.get("total"), dict)
        ):
            return _TokenTotals(**saved["total"])
        return None  # unknown: the first update's "last" is taken as the only new call

    async def _usage(self, params: dict[str, Any]) -> list[RuntimeEvent]:
        usage = params.get("tokenUsage") or {}
        total = _TokenTotals.of(usage.get("total"))
        if self.usage_seen is None:
            self.usage_seen = total.minus(_TokenTotals.of(usage.get("last")))
        delta = total.minus(self.usage_seen)
        self.usage_seen = total
        if not any(delta.astuple()):
            return []
        await self.ctx.save_transcript(
            {"format": TRANSCRIPT_FORMAT, "thread_id": self.thread_id, "total": total.asdict()}
        )
        report = UsageReport(
            provider=str(self.opt.get("provider") or self.rt.provider),
            model=self.model or "unknown",
            input_tokens=max(0, delta.input - delta.cached - delta.cache_write),
            output_tokens=delta.output,
            cache_read_tokens=delta.cached,
            cache_write_tokens=delta.cache_write,
            reasoning_tokens=delta.reasoning,
        )
        self.ctx.begin_turn()  # one model call finished; past max_turns this raises
        return [report]

    # -- notifications --

    async def _notification(self, msg: dict[str, Any]) -> list[RuntimeEvent]:
        method = msg.get("method")
        params = msg.get("params") or {}
        thread = params.get("threadId")
        if thread is not None and self.thread_id is not None and thread != self.thread_id:
            return []
        if method == "item/agentMessage/delta":
            self.streamed.add(str(params.get("itemId")))
            delta = params.get("delta") or ""
            return [AssistantText(delta, delta=True)] if delta else []
        if method == "item/started":
            item = params.get("item") or {}
            if item.get("id"):
                self.items[str(item["id"])] = item
                if item.get("type") not in _MODEL_ITEMS:
                    self.watch.hold(("item", str(item["id"])))
            return []
        if method == "item/completed":
            item = params.get("item") or {}
            self.watch.release(("item", str(item.get("id"))))
            return self._item_completed(item)
        if method == "thread/tokenUsage/updated":
            return await self._usage(params)
        if method == "turn/completed":
            turn = params.get("turn") or {}
            if self.turn.id is None or turn.get("id") == self.turn.id:
                self.turn.status = turn.get("status")
                error = turn.get("error") or {}
                if error:
                    self.turn.error = str(error.get("message") or error)
                    self.turn.error_status = http_status(error)
                self.turn.done.set()
            return []
        if method == "error":
            error = params.get("error") or {}
            text = str(error.get("message") or error)
            status = http_status(error)
            if status in AUTH_STATUSES:
                # Codex would reconnect five times with the same refused key; stop now.
                detail = str(error.get("additionalDetails") or text)
                raise auth_failure("codex", status, _cli_env.scrub(detail, self.secrets))
            data: dict[str, Any] = {"error": text}
            if status is not None:
                data["status"] = status
            if params.get("willRetry"):
                return [Notice(f"codex: retrying after an error: {text}", data)]
            self.turn.error = text
            return [Notice(f"codex error: {text}", data)]
        if method in ("warning", "configWarning", "deprecationNotice", "guardianWarning"):
            text = params.get("message") or params.get("summary") or json.dumps(params)[:500]
            return [Notice(f"codex {method}: {text}")]
        return []

    def _item_completed(self, item: dict[str, Any]) -> list[RuntimeEvent]:
        kind = item.get("type")
        item_id = str(item.get("id"))
        out: list[RuntimeEvent] = []
        if kind == "agentMessage":
            text = item.get("text") or ""
            if text:
                self.last_text = text
                if item_id not in self.streamed:
                    out.append(AssistantText(text))
            return out
        if kind == "commandExecution":
            command = unwrap_shell(str(item.get("command") or ""))
            if item_id not in self.asked:
                out.append(
                    Notice(
                        f"codex ran a command in its sandbox without asking: {command}",
                        {"item_id": item_id, "command": command},
                    )
                )
            status = item.get("status")
            code = item.get("exitCode")
            output = item.get("aggregatedOutput") or ""
            summary = f"[{status}; exit code {code}]"
            self.ctx.log_tool_result(
                "Bash",
                f"{output}\n{summary}".strip(),
                status != "completed" or code not in (0, None),
                item_id,
            )
            return out
        if kind == "fileChange":
            changes = item.get("changes") or []
            lines = [f"{change_kind(c)} {c.get('path')}" for c in changes if isinstance(c, dict)]
            status = item.get("status")
            self.ctx.log_tool_result(
                "Edit", "\n".join([*lines, f"[{status}]"]), status != "completed", item_id
            )
            return out
        if kind == "mcpToolCall":
            name = f"mcp__{item.get('server')}__{item.get('tool')}"
            payload = item.get("error") or item.get("result")
            self.ctx.log_tool_result(
                name, json.dumps(payload, default=str)[:20000], bool(item.get("error")), item_id
            )
            return out
        if kind == "webSearch":
            return [Notice("codex web search", {"item_id": item_id, "query": item.get("query")})]
        return out

    def _turn_end(self) -> list[RuntimeEvent]:
        status = self.turn.status
        if status == "completed":
            return [Result(self.last_text)]
        if status == "interrupted":
            raise RuntimeFailure(self._why("the turn was interrupted"))
        if self.turn.error_status in AUTH_STATUSES:
            detail = _cli_env.scrub(self.turn.error or "no detail", self.secrets)
            raise auth_failure("codex", self.turn.error_status, detail)
        raise RuntimeFailure(
            _cli_env.scrub(
                f"codex: turn {status or 'ended'}: {self.turn.error or 'no detail'}", self.secrets
            )
        )

    # -- server requests --

    async def _serve(self, msg: dict[str, Any]) -> None:
        assert self.rpc is not None
        rid, method = msg.get("id"), msg.get("method")
        params = msg.get("params") or {}
        with self.watch.paused():  # Codex waits on us (and maybe a person), not on the model
            await self._answer(rid, method, params)

    async def _answer(self, rid: Any, method: Any, params: dict[str, Any]) -> None:
        assert self.rpc is not None
        try:
            if params.get("threadId") not in (None, self.thread_id):
                await self.rpc.respond_error(rid, -32602, "unknown thread")
                return
            if method == "item/commandExecution/requestApproval":
                await self.rpc.respond(rid, await self._command_approval(params))
            elif method == "item/fileChange/requestApproval":
                await self.rpc.respond(rid, await self._file_approval(params))
            elif method == "item/tool/requestUserInput":
                await self.rpc.respond(rid, await self._user_input(params))
            elif method == "item/permissions/requestApproval":
                await self.rpc.respond(rid, await self._permissions(params))
            elif method == "mcpServer/elicitation/request":
                await self.rpc.respond(rid, {"action": "decline", "content": None, "_meta": None})
            else:
                await self.rpc.respond_error(
                    rid, -32601, f"{method} is not supported by stagent_lab"
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # answer something: Codex must not wait forever
            await self.incoming.put(_Emit(Notice(f"codex: {method} failed: {exc}")))
            with contextlib.suppress(Exception):
                await self.rpc.respond_error(rid, -32603, f"stagent_lab could not answer: {exc}")

    async def _command_approval(self, params: dict[str, Any]) -> dict[str, Any]:
        item_id = str(params.get("itemId"))
        self.asked.add(item_id)
        tool_input = command_check(params, self.items.get(item_id))
        decision = await self.ctx.check_permission("Bash", tool_input, item_id)
        if decision.behavior == "deny":
            await self._tell_denied(f"`{tool_input['command']}`", decision)
        return {"decision": approval_answer([decision], params.get("availableDecisions"))}

    async def _file_approval(self, params: dict[str, Any]) -> dict[str, Any]:
        item_id = str(params.get("itemId"))
        self.asked.add(item_id)
        checks = file_change_checks(params, self.items.get(item_id), Path(self.ctx.working_dir))
        decisions: list[PermissionDecision] = []
        for tool, tool_input in checks:
            decision = await self.ctx.check_permission(tool, tool_input, item_id)
            decisions.append(decision)
            if decision.behavior == "deny":
                await self._tell_denied(f"the change to {tool_input['file_path']}", decision)
                break
        return {"decision": approval_answer(decisions, params.get("availableDecisions"))}

    async def _tell_denied(self, what: str, decision: PermissionDecision) -> None:
        """Codex's decline carries no text, so the deny message is steered into the turn
        first; the agent reads it together with the declined call's output."""
        if not decision.message or self.rpc is None or not self.turn.id:
            return
        text = f"The operator denied {what}: {decision.message}"
        try:
            await self.rpc.request(
                "turn/steer",
                {
                    "threadId": self.thread_id,
                    "expectedTurnId": self.turn.id,
                    "input": [_text(text)],
                },
                self._timeout("request_timeout_s", 60.0),
            )
        except (RuntimeFailure, RpcError) as exc:
            await self.incoming.put(
                _Emit(Notice(f"codex: could not pass the deny message to the agent: {exc}"))
            )

    async def _user_input(self, params: dict[str, Any]) -> dict[str, Any]:
        answers: dict[str, Any] = {}
        for question in params.get("questions") or []:
            text = str(question.get("question") or "")
            if question.get("header"):
                text = f"{question['header']}: {text}"
            options = [
                o.get("label")
                for o in question.get("options") or []
                if isinstance(o, dict) and o.get("label")
            ]
            if options:
                text += " (options: " + ", ".join(map(str, options)) + ")"
            answer = await self.ctx.ask(text)
            answers[str(question.get("id"))] = {"answers": [answer]}
        return {"answers": answers}

    async def _permissions(self, params: dict[str, Any]) -> dict[str, Any]:
        requested = params.get("permissions") or {}
        tool_input = {
            "reason": params.get("reason"),
            "permissions": requested,
            "cwd": params.get("cwd"),
        }
        decision = await self.ctx.check_permission(
            "CodexPermissions", tool_input, str(params.get("itemId"))
        )
        if decision.behavior != "allow":
            return {"permissions": {}, "scope": "turn"}
        granted = {k: v for k, v in requested.items() if v is not None}
        return {"permissions": granted, "scope": "session" if decision.always else "turn"}


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "text_elements": []}


def _reasoning_effort(ctx: RunContext, runtime_id: str) -> str | None:
    table = getattr(getattr(ctx, "profile", None), "capability_overrides", None) or {}
    entry = table.get(runtime_id) if isinstance(table, dict) else None
    effort = getattr(entry, "reasoning_effort", None) if entry is not None else None
    return effort if isinstance(effort, str) else None


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def http_status(error: Any) -> int | None:
    """The HTTP status inside a Codex error's ``codexErrorInfo`` (its variant names vary:
    ``httpConnectionFailed``, ``responseStreamDisconnected``, ...)."""
    info = error.get("codexErrorInfo") if isinstance(error, dict) else None
    if isinstance(info, dict):
        for value in info.values():
            if isinstance(value, dict) and isinstance(value.get("httpStatusCode"), int):
                return int(value["httpStatusCode"])
    return None


__all__ = [
    "CodexAppServerRuntime",
    "approval_answer",
    "find_codex",
    "http_status",
    "unwrap_shell",
]
