"""The Bash tool: run one shell command in the project folder, and never leave it running.

The call ends when bash exits (not when its output pipe closes: ``sleep 300 &`` holds that), at
its timeout, or when the task running it is cancelled. Whichever it is, every process the call
started is stopped: its session, its process group, jobs that ``set -m`` or ``setsid`` moved
elsewhere, and double-forked daemons (see :mod:`stagent_lab.tools.procs`; complete on Linux, the
process group only elsewhere). A tool call never leaves unmanaged processes behind, and output
is kept head-and-tail within ``output_cap_chars`` however much the command prints.

Permissions are not checked here (the cascade ran before ``run``); the tool only confines the
working directory, strips secrets from the environment the command sees, and tells git not to
pick up bare repositories planted in the project (``safe.bareRepository=explicit``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.paths import check_input, error
from stagent_lab.tools.procs import CALL_MARKER_VAR, KILL_GRACE_S, CallProcesses

MAX_TIMEOUT_MS = 600_000
DRAIN_GRACE_S = 1.0

_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
_SECRET_PREFIXES = ("ANTHROPIC_", "OPENAI_")
_QUIET_ENV = {"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}
_GIT_CONFIG_PREFIXES = ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")
_GIT_SAFETY = {
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.bareRepository",
    "GIT_CONFIG_VALUE_0": "explicit",
}


def is_secret_name(name: str) -> bool:
    """True for environment variable names that commonly carry credentials."""
    upper = name.upper()
    return upper.startswith(_SECRET_PREFIXES) or any(m in upper for m in _SECRET_MARKERS)


def scrub_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) without secret-looking variables.

    The agent chose the command; it must not be able to ``echo $ANTHROPIC_API_KEY`` into a log
    or a web request. Pagers and git prompts are disabled because nobody can answer them.

    Git gets ``safe.bareRepository=explicit`` through ``GIT_CONFIG_COUNT`` (command scope,
    which a repository's own config cannot override): otherwise an agent that may only Write
    could plant ``x/HEAD``, ``x/config`` (with ``core.fsmonitor``), ``x/objects/``, ``x/refs/``,
    and the next approved ``git -C x log`` would run its command. Inherited ``GIT_CONFIG_*``
    entries are dropped: scrubbing already removed their ``..._KEY_n`` halves.
    """
    source = os.environ if env is None else env
    clean = {
        k: v
        for k, v in source.items()
        if not is_secret_name(k) and not k.startswith(_GIT_CONFIG_PREFIXES)
    }
    clean.update(_QUIET_ENV)
    clean.update(_GIT_SAFETY)
    return clean


class _HeadTail:
    """Keeps the first and last ``cap // 2`` characters of a stream, counting the rest.

    Decoding is incremental so multi-byte characters split across reads survive, and memory
    stays bounded however much a command prints.
    """

    def __init__(self, cap: int) -> None:
        self.head_budget = max(cap // 2, 0)
        self.tail_budget = max(cap - self.head_budget, 0)
        self.head: list[str] = []
        self.head_len = 0
        self.tail = ""
        self.total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self._decoder.decode(data, final)
        if not text:
            return
        self.total += len(text)
        room = self.head_budget - self.head_len
        if room > 0:
            self.head.append(text[:room])
            self.head_len += min(room, len(text))
            text = text[room:]
        if text:
            self.tail = (self.tail + text)[-self.tail_budget :] if self.tail_budget else ""

    def render(self) -> tuple[str, int]:
        """The kept text and how many characters were dropped from the middle."""
        head = "".join(self.head)
        dropped = self.total - len(head) - len(self.tail)
        if dropped <= 0:
            return head + self.tail, 0
        note = f"\n\n[... {dropped} characters of output omitted ...]\n\n"
        return head + note + self.tail, dropped


class BashTool(Tool):
    name = "Bash"
    main_field = "command"
    description = (
        "Run a bash command in the project folder and return its combined stdout and stderr. "
        "Commands are non-interactive (stdin is empty). `timeout` is in milliseconds (max "
        "600000). Long output keeps its beginning and end. Processes the command leaves "
        "running in the background are stopped when it finishes. Use Read/Glob/Grep instead "
        "of cat/find/grep where you can."
    )
    input_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "The command to run.", "minLength": 1},
            "timeout": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TIMEOUT_MS,
                "description": "Timeout in milliseconds (max 600000).",
            },
            "description": {
                "type": "string",
                "description": "Five to ten words saying what the command does.",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    }

    async def run(self, tool_input: dict[str, Any], ctx: ToolContext) -> ToolResult:
        problem = check_input(self.name, tool_input, self.input_schema)
        if problem:
            return error(problem)
        cwd = Path(os.path.realpath(ctx.working_dir))
        if not cwd.is_dir():
            return error(f"Bash: working directory {cwd} does not exist")
        if "timeout" in tool_input:
            timeout_s = tool_input["timeout"] / 1000
        else:
            timeout_s = min(ctx.bash_timeout_s, MAX_TIMEOUT_MS / 1000)
        marker = secrets.token_hex(12)
        env = scrub_env()
        env[CALL_MARKER_VAR] = marker
        call = CallProcesses(marker)
        loop = asyncio.get_running_loop()
        sink = _HeadTail(ctx.output_cap_chars)
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _BashProtocol(sink, loop),
                "bash",
                "-c",
                tool_input["command"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return error(f"Bash: could not start bash: {exc}")
        except asyncio.CancelledError:
            # Cancelled while bash was being started: it may be running already.
            call.kill_now()
            raise
        call.sid = transport.get_pid()
        return await _supervise(transport, protocol, call, timeout_s, sink)


class _BashProtocol(asyncio.SubprocessProtocol):
    """Feeds output straight into the bounded sink; reports bash's exit and the pipe's end apart.

    asyncio's ``Process.wait()`` also waits for the pipes to close, so ``sleep 300 &`` (which
    holds the pipe) would keep a finished command "running" until the timeout; the exit of
    bash itself is what ends a call.
    """

    def __init__(self, sink: _HeadTail, loop: asyncio.AbstractEventLoop) -> None:
        self.sink = sink
        self.exited: asyncio.Future[None] = loop.create_future()
        self.output_closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self.sink.feed(data if isinstance(data, bytes) else data.encode())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1 and not self.output_closed.done():
            self.output_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


async def _supervise(
    transport: asyncio.SubprocessTransport,
    protocol: _BashProtocol,
    call: CallProcesses,
    timeout_s: float,
    sink: _HeadTail,
) -> ToolResult:
    timed_out = False
    leftovers = False
    try:
        try:
            await asyncio.wait_for(asyncio.shield(protocol.exited), timeout_s)
        except TimeoutError:
            timed_out = True
            await call.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.exited), KILL_GRACE_S)
        # Bash is gone. Background processes may still hold the output pipe: give them a
        # moment to finish writing, then stop everything the call started.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.output_closed), DRAIN_GRACE_S)
        if await call.settle():
            leftovers = True
            await call.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(protocol.output_closed), DRAIN_GRACE_S)
    except asyncio.CancelledError:
        call.signal_all(signal.SIGTERM)  # at once, before anything else can go wrong
        try:
            await asyncio.shield(call.terminate())
        finally:
            call.kill_now()  # even if this task is cancelled again while waiting
        raise
    finally:
        transport.close()  # our end of the pipe; kills bash only if it somehow still runs
    sink.feed(b"", final=True)

    output, dropped = sink.render()
    code = transport.get_returncode()
    meta: dict[str, Any] = {"exit_code": code, "timed_out": timed_out, "truncated": dropped > 0}
    if dropped:
        meta["dropped_chars"] = dropped
    if timed_out:
        text = output.rstrip("\n")
        text = (text + "\n\n" if text else "") + (
            f"[command timed out after {timeout_s:g} s; every process it started was stopped]"
        )
        return ToolResult(output=text, is_error=True, meta=meta)
    if leftovers:
        meta["stopped_background"] = True
    text = output if output else "(no output)"
    if code is not None and code < 0:
        text = text.rstrip("\n") + f"\n[killed by signal {_signal_name(-code)}]"
    elif code:
        text = text.rstrip("\n") + f"\n[exit code {code}]"
    if leftovers:
        text = text.rstrip("\n") + "\n[background processes left running were stopped]"
    return ToolResult(output=text, meta=meta)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


__all__ = ["CALL_MARKER_VAR", "MAX_TIMEOUT_MS", "BashTool", "is_secret_name", "scrub_env"]
