"""openai-codex-app-server: the real ``codex app-server`` over JSON-RPC, governed by our cascade.

Codex runs its own tools (shell commands, patches) inside its sandbox. With approval policy
``on-request`` it asks the client before a command leaves the sandbox or a patch writes where
the sandbox does not allow; every such request (``item/commandExecution/requestApproval``,
``item/fileChange/requestApproval``) is answered by the engine's cascade: a command is checked
as ``Bash`` with its ``command`` (the shell wrapper unwrapped, so ``Bash(command:git *)`` rules
apply), a file change as ``Write`` (new file) or ``Edit`` per changed path. "Always allow"
answers ``acceptForSession`` and saves our rule; a denial answers ``decline`` and the deny
message is steered into the running turn (``turn/steer``) so the agent reads why.

Transport: JSON lines on stdio by default; ``transport="websocket"`` starts the server on a
loopback port of its choosing with a one-time capability token (only its SHA-256 is on the
command line) and speaks RFC 6455 frames through a small client in this module.

Usage: ``thread/tokenUsage/updated`` carries the thread's cumulative totals; each report is the
difference to the last totals seen, and the totals are saved after every report so a resumed
thread (whose totals include the earlier runs) is never booked twice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import secrets
import shlex
import sys
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

TRANSCRIPT_FORMAT = "codex-app-server/1"
PROVIDER_ID = "stagent"  # the model_providers entry we add when base_url is given
DEFAULT_RESUME_PROMPT = (
    "Continue the task from where you stopped. If it is already finished, give your final "
    "answer again."
)
APPROVAL_POLICIES = frozenset({"on-request", "untrusted"})  # never "never": we must be asked
SANDBOXES = frozenset({"read-only", "workspace-write", "danger-full-access"})
PROFILE_OPTIONS = frozenset({"sandbox", "approval_policy", "resume_prompt", "instructions_mode"})
_SHELLS = frozenset({"bash", "sh", "zsh", "dash"})
_LINE_LIMIT = 64 * 1024 * 1024  # one JSON-RPC message per line; command output can be large
_BANNER = re.compile(r"listening on:\s*(ws://[0-9.]+:\d+)")
_NATIVE_PACKAGES = {
    ("linux", "x86_64"): ("codex-linux-x64", "x86_64-unknown-linux-musl"),
    ("linux", "aarch64"): ("codex-linux-arm64", "aarch64-unknown-linux-musl"),
    ("darwin", "x86_64"): ("codex-darwin-x64", "x86_64-apple-darwin"),
    ("darwin", "arm64"): ("codex-darwin-arm64", "aarch64-apple-darwin"),
}


# ---- finding the binary -----------------------------------------------------------------------


def _native_in(node_modules: Path) -> Path | None:
    system = "linux" if sys.platform.startswith("linux") else sys.platform
    machine = platform.machine().lower()
    if machine in ("amd64", "x64"):
        machine = "x86_64"
    elif machine in ("arm64", "aarch64"):
        machine = "aarch64" if system == "linux" else "arm64"
    entry = _NATIVE_PACKAGES.get((system, machine))
    if entry is None:
        return None
    package, triple = entry
    return node_modules / "@openai" / package / "vendor" / triple / "bin" / "codex"


def find_codex(explicit: str | None = None) -> str | None:
    """The codex binary: ``explicit``, ``$STAGENT_CODEX_BIN``, the project's npm install
    (``<repo>/node_modules``; the native binary of the platform package when present, so no
    Node.js wrapper sits between us and the server), or ``codex`` on PATH."""
    if explicit:
        return _cli_env.executable(explicit)
    node_modules = _cli_env.package_repo_root() / "node_modules"
    return _cli_env.first_executable(
        [
            os.environ.get("STAGENT_CODEX_BIN"),
            _native_in(node_modules),
            node_modules / ".bin" / "codex",
            _cli_env.which("codex"),
        ]
    )


class CodexAppServerRuntime(Runtime):
    """Options (``Lab(runtime_options={"openai-codex-app-server": {...}})`` or per task):

    ``codex_path`` (else ``$STAGENT_CODEX_BIN``, ``<repo>/node_modules``, ``codex`` on PATH),
    ``transport`` ("stdio" | "websocket"), ``base_url`` + ``api_key`` (adds a ``stagent``
    model provider with ``wire_api = "responses"``; else Codex's own config and login apply),
    ``model``, ``provider`` (for pricing; "openai"), ``codex_home`` (``CODEX_HOME``), ``home``,
    ``env``, ``config`` ({dotted.key: value} passed as ``-c`` overrides), ``sandbox``,
    ``approval_policy`` ("on-request" | "untrusted"), ``instructions_mode`` ("developer" |
    "base"), ``quiet`` (True: plugins, apps and update checks off), ``resume_prompt``,
    ``startup_timeout_s``, ``request_timeout_s``, ``interrupt_timeout_s``.
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


# ---- JSON-RPC plumbing -----------------------------------------------------------------------


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


@dataclass
class _Closed:
    reason: str


@dataclass
class _Emit:
    event: RuntimeEvent


class _StdioLink:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self) -> str | None:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        return line.decode() if line else None

    async def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            with contextlib.suppress(Exception):
                self.proc.stdin.close()


class _WebSocketLink:
    """A minimal RFC 6455 client: text frames out (masked), text frames in, ping → pong."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str, token: str, timeout: float) -> _WebSocketLink:
        match = re.fullmatch(r"ws://([0-9.]+):(\d+)/?", url)
        if not match:
            raise RuntimeFailure(f"codex: unexpected websocket address {url!r}")
        host, port = match.group(1), int(match.group(2))
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=_LINE_LIMIT), timeout
        )
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        request = (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        expected = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        if " 101 " not in status + " " or expected.encode() not in head:
            writer.close()
            raise RuntimeFailure(f"codex: websocket handshake refused: {status}")
        return cls(reader, writer)

    async def send(self, text: str) -> None:
        await self._frame(0x1, text.encode())

    async def _frame(self, opcode: int, payload: bytes) -> None:
        mask = secrets.token_bytes(4)
        size = len(payload)
        if size < 126:
            head = bytes([0x80 | opcode, 0x80 | size])
        elif size < 1 << 16:
            head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        async with self._lock:
            self.writer.write(head + mask + body)
            await self.writer.drain()

    async def receive(self) -> str | None:
        message = b""
        while True:
            try:
                first, second = await self.reader.readexactly(2)
                size = second & 0x7F
                if size == 126:
                    size = int.from_bytes(await self.reader.readexactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(await self.reader.readexactly(8), "big")
                mask = await self.reader.readexactly(4) if second & 0x80 else b""
                payload = await self.reader.readexactly(size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = first & 0x0F
            if opcode == 0x8:  # close
                return None
            if opcode == 0x9:  # ping
                await self._frame(0xA, payload)
                continue
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if first & 0x80:
                    return message.decode()
            # pong and unknown control frames are ignored

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._frame(0x8, b"\x03\xe8"), 1)
        with contextlib.suppress(Exception):
            self.writer.close()


class _Rpc:
    """Requests with futures; notifications and server requests go to ``incoming``."""

    def __init__(self, link: Any, incoming: asyncio.Queue[Any], closed_reason: Any) -> None:
        self.link = link
        self.incoming = incoming
        self._closed_reason = closed_reason
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next = 0
        self.closed = False
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        reason = None
        try:
            while True:
                line = await self.link.receive()
                if line is None:
                    break
                await self._dispatch(line.strip())
        except asyncio.CancelledError:
            self.closed = True
            self._fail_pending("connection closed")
            raise
        except Exception as exc:  # a broken link ends the run below
            reason = f"connection error: {exc}"
        self.closed = True
        reason = reason or await self._closed_reason()
        self._fail_pending(reason)
        await self.incoming.put(_Closed(reason))

    async def _dispatch(self, line: str) -> None:
        if not line:
            return
        try:
            msg = json.loads(line)
        except ValueError:
            notice = Notice("codex: unreadable message skipped", {"line": line[:200]})
            await self.incoming.put(_Emit(notice))
            return
        if not isinstance(msg, dict):
            return
        if "id" in msg and "method" not in msg:
            fut = self._pending.pop(msg["id"], None) if isinstance(msg["id"], int) else None
            if fut is not None and not fut.done():
                if "error" in msg:
                    err = msg.get("error") or {}
                    fut.set_exception(
                        _RpcError(int(err.get("code", -1)), str(err.get("message", err)))
                    )
                else:
                    fut.set_result(msg.get("result"))
            return
        await self.incoming.put(msg)

    def _fail_pending(self, reason: str) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RuntimeFailure(f"codex: {reason}"))
        self._pending.clear()

    async def request(self, method: str, params: Any, timeout: float) -> Any:
        if self.closed:
            raise RuntimeFailure(f"codex: {await self._closed_reason()}")
        self._next += 1
        rid = self._next
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.link.send(json.dumps({"id": rid, "method": method, "params": params}))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise RuntimeFailure(f"codex: {method} got no answer within {timeout:g}s") from None
        finally:
            self._pending.pop(rid, None)

    async def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"method": method}
        if params is not None:
            msg["params"] = params
        await self.link.send(json.dumps(msg))

    async def respond(self, rid: Any, result: Any) -> None:
        if not self.closed:
            await self.link.send(json.dumps({"id": rid, "result": result}))

    async def respond_error(self, rid: Any, code: int, message: str) -> None:
        if not self.closed:
            await self.link.send(
                json.dumps({"id": rid, "error": {"code": code, "message": message}})
            )

    def stop(self) -> None:
        self._reader.cancel()


# ---- one run ---------------------------------------------------------------------------------


def unwrap_shell(command: str) -> str:
    """``/bin/bash -lc 'git status'`` → ``git status`` (the part a rule should judge)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    if len(argv) == 3 and Path(argv[0]).name in _SHELLS and argv[1] in ("-c", "-lc", "-l"):
        return argv[2]
    return command


def approval_answer(decisions: list[PermissionDecision], available: list[Any] | None) -> str:
    """Our decisions → Codex's: accept / acceptForSession (every decision was "always") /
    decline. ``available`` (when Codex lists it) limits acceptForSession."""
    if not decisions or any(d.behavior != "allow" for d in decisions):
        return "decline"
    names = {a for a in available if isinstance(a, str)} if available is not None else None
    if all(d.always for d in decisions) and (names is None or "acceptForSession" in names):
        return "acceptForSession"
    return "accept"


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


class _CodexRun:
    def __init__(self, runtime: CodexAppServerRuntime, ctx: RunContext) -> None:
        self.rt = runtime
        self.ctx = ctx
        merged = {**_cli_env.profile_options(ctx, runtime.id, PROFILE_OPTIONS), **runtime.options}
        self.opt = {k: v for k, v in merged.items() if v is not None}
        self.marker = _cli_env.new_marker()
        self.tail = _cli_env.StderrTail()
        self.proc: asyncio.subprocess.Process | None = None
        self.rpc: _Rpc | None = None
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

    def _argv(self, binary: str, listen: str, token_sha: str | None) -> list[str]:
        argv = [binary, "app-server", "--listen", listen]
        if token_sha:
            argv += ["--ws-auth", "capability-token", "--ws-token-sha256", token_sha]
        overrides: dict[str, Any] = {}
        if self.opt.get("quiet", True):
            overrides.update(
                {
                    "check_for_update_on_startup": False,
                    "analytics.enabled": False,
                    "features.plugins": False,
                    "features.remote_plugin": False,
                    "features.apps": False,
                }
            )
        if self.opt.get("base_url"):
            prefix = f"model_providers.{PROVIDER_ID}"
            overrides.update(
                {
                    "model_provider": PROVIDER_ID,
                    f"{prefix}.name": "stagent_lab",
                    f"{prefix}.base_url": str(self.opt["base_url"]),
                    f"{prefix}.wire_api": "responses",
                }
            )
            if self.opt.get("api_key") or os.environ.get("OPENAI_API_KEY"):
                overrides[f"{prefix}.env_key"] = "OPENAI_API_KEY"
        overrides.update(dict(self.opt.get("config") or {}))
        for key, value in overrides.items():
            argv += ["-c", f"{key}={_toml(value)}"]
        return argv

    def _env(self) -> dict[str, str | None]:
        env: dict[str, str | None] = {}
        if self.opt.get("codex_home"):
            env["CODEX_HOME"] = str(Path(self.opt["codex_home"]).expanduser())
        if self.opt.get("home"):
            env["HOME"] = str(Path(self.opt["home"]).expanduser())
        if self.opt.get("api_key"):
            env["OPENAI_API_KEY"] = str(self.opt["api_key"])
        for key, value in dict(self.opt.get("env") or {}).items():
            env[str(key)] = None if value is None else str(value)
        return env

    # -- process --

    async def _start(self) -> None:
        binary = self.rt.codex_path()
        if binary is None:
            raise RuntimeNotAvailableError(self.rt.availability().reason or "codex not found")
        transport = self.opt.get("transport", "stdio")
        token = None
        if transport == "websocket":
            token = secrets.token_urlsafe(32)
            argv = self._argv(
                binary, "ws://127.0.0.1:0", hashlib.sha256(token.encode()).hexdigest()
            )
            self.ws_url = asyncio.get_running_loop().create_future()
        elif transport == "stdio":
            argv = self._argv(binary, "stdio://", None)
        else:
            raise RuntimeFailure(
                f"codex: transport must be 'stdio' or 'websocket', got {transport!r}"
            )
        env = _cli_env.child_env(self._env(), marker=self.marker)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=str(self.ctx.working_dir),
                env=env,
                limit=_LINE_LIMIT,
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
            link: Any = await _WebSocketLink.connect(url, token, startup)
        else:
            link = _StdioLink(self.proc)
        self.rpc = _Rpc(link, self.incoming, self._closed_reason)

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
            except _RpcError as exc:
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
            except _RpcError as exc:
                raise RuntimeFailure(self._why(f"could not start the turn: {exc}")) from None
            self.turn.id = ((begun or {}).get("turn") or {}).get("id")
            while not self.turn.done.is_set():
                item = await self.incoming.get()
                if isinstance(item, _Closed):
                    raise RuntimeFailure(f"codex: {item.reason}")
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
            return []
        if method == "item/completed":
            return self._item_completed(params.get("item") or {})
        if method == "thread/tokenUsage/updated":
            return await self._usage(params)
        if method == "turn/completed":
            turn = params.get("turn") or {}
            if self.turn.id is None or turn.get("id") == self.turn.id:
                self.turn.status = turn.get("status")
                error = turn.get("error") or {}
                if error:
                    self.turn.error = str(error.get("message") or error)
                self.turn.done.set()
            return []
        if method == "error":
            error = params.get("error") or {}
            text = str(error.get("message") or error)
            if params.get("willRetry"):
                return [Notice(f"codex: retrying after an error: {text}", {"error": text})]
            self.turn.error = text
            return [Notice(f"codex error: {text}", {"error": text})]
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
            lines = [f"{_kind(c)} {c.get('path')}" for c in changes if isinstance(c, dict)]
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
        raw = str(params.get("command") or (self.items.get(item_id) or {}).get("command") or "")
        command = unwrap_shell(raw)
        tool_input: dict[str, Any] = {"command": command}
        if raw != command:
            tool_input["raw_command"] = raw
        for key in ("cwd", "reason"):
            if params.get(key):
                tool_input[key] = params[key]
        decision = await self.ctx.check_permission("Bash", tool_input, item_id)
        if decision.behavior == "deny":
            await self._tell_denied(f"`{command}`", decision)
        return {"decision": approval_answer([decision], params.get("availableDecisions"))}

    async def _file_approval(self, params: dict[str, Any]) -> dict[str, Any]:
        item_id = str(params.get("itemId"))
        self.asked.add(item_id)
        changes = [
            c
            for c in (self.items.get(item_id) or {}).get("changes") or []
            if isinstance(c, dict) and c.get("path")
        ]
        checks: list[tuple[str, dict[str, Any]]] = []
        for change in changes:
            kind = _kind(change)
            tool = "Write" if kind == "add" else "Edit"
            checks.append(
                (
                    tool,
                    {
                        "file_path": str(change["path"]),
                        "change": kind,
                        "diff": str(change.get("diff") or "")[:4000],
                    },
                )
            )
        if not checks:
            root = params.get("grantRoot") or str(self.ctx.working_dir)
            checks.append(("Edit", {"file_path": str(root), "reason": params.get("reason")}))
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
        except (RuntimeFailure, _RpcError) as exc:
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


def _kind(change: dict[str, Any]) -> str:
    kind = change.get("kind")
    if isinstance(kind, dict):
        return str(kind.get("type") or "update")
    return str(kind or "update")


def _toml(value: Any) -> str:
    """A -c override value as TOML (JSON strings, numbers and booleans are valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | dict):
        raise RuntimeFailure(
            "codex: config overrides take strings, numbers and booleans; use dotted keys for tables"
        )
    return json.dumps(str(value))


def _reasoning_effort(ctx: RunContext, runtime_id: str) -> str | None:
    table = getattr(getattr(ctx, "profile", None), "capability_overrides", None) or {}
    entry = table.get(runtime_id) if isinstance(table, dict) else None
    effort = getattr(entry, "reasoning_effort", None) if entry is not None else None
    return effort if isinstance(effort, str) else None


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


__all__ = ["CodexAppServerRuntime", "approval_answer", "find_codex", "unwrap_shell"]
