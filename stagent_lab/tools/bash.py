"""The Bash tool: run one shell command in the project folder, and never leave it running.

The command runs in its own session (``start_new_session=True``), so its process group id is its
pid and everything it spawns can be signalled at once. That is what makes timeouts and
cancellation real: killing only ``bash`` would orphan ``sleep 30 &`` or a dev server. When the
command ends, anything still alive in its group is stopped too, so a tool call never leaves
unmanaged processes behind.

Permissions are not checked here (the cascade ran before ``run``); the tool only confines the
working directory and strips secrets from the environment the command sees.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from stagent_lab.tools.base import Tool, ToolContext, ToolResult
from stagent_lab.tools.paths import check_input, error

MAX_TIMEOUT_MS = 600_000
KILL_GRACE_S = 2.0
DRAIN_GRACE_S = 1.0
_READ_CHUNK = 65536

_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
_SECRET_PREFIXES = ("ANTHROPIC_", "OPENAI_")
_QUIET_ENV = {"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}


def is_secret_name(name: str) -> bool:
    """True for environment variable names that commonly carry credentials."""
    upper = name.upper()
    return upper.startswith(_SECRET_PREFIXES) or any(m in upper for m in _SECRET_MARKERS)


def scrub_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default ``os.environ``) without secret-looking variables.

    The agent chose the command; it must not be able to ``echo $ANTHROPIC_API_KEY`` into a log
    or a web request. Pagers and git prompts are disabled because nobody can answer them.
    """
    source = os.environ if env is None else env
    clean = {k: v for k, v in source.items() if not is_secret_name(k)}
    clean.update(_QUIET_ENV)
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
        try:
            proc = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                tool_input["command"],
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=cwd,
                env=scrub_env(),
                start_new_session=True,
            )
        except OSError as exc:
            return error(f"Bash: could not start bash: {exc}")
        return await _supervise(proc, timeout_s, ctx.output_cap_chars)


async def _pump(stream: asyncio.StreamReader, sink: _HeadTail) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        sink.feed(chunk)
    sink.feed(b"", final=True)


async def _supervise(proc: asyncio.subprocess.Process, timeout_s: float, cap: int) -> ToolResult:
    pgid = proc.pid  # session leader: its pid is the group id
    sink = _HeadTail(cap)
    assert proc.stdout is not None
    reader = asyncio.create_task(_pump(proc.stdout, sink))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            timed_out = True
            await _terminate_group(proc, pgid)
        # Background children may still hold the pipe: give them a moment, then stop them.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_GRACE_S)
        leftovers = _group_alive(pgid)
        if leftovers:
            await _terminate_group(proc, pgid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), DRAIN_GRACE_S)
    except asyncio.CancelledError:
        _signal_group(pgid, signal.SIGTERM)  # at once, before anything else can go wrong
        await asyncio.shield(_terminate_group(proc, pgid))
        raise
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    output, dropped = sink.render()
    code = proc.returncode
    meta: dict[str, Any] = {"exit_code": code, "timed_out": timed_out, "truncated": dropped > 0}
    if dropped:
        meta["dropped_chars"] = dropped
    if timed_out:
        text = output.rstrip("\n")
        text = (text + "\n\n" if text else "") + (
            f"[command timed out after {timeout_s:g} s; its process group was killed]"
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


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while a non-zombie process is in the group.

    ``killpg(pgid, 0)`` also succeeds for zombies, which linger when PID 1 (common in
    containers) never reaps orphans; on Linux /proc tells the two apart.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return True
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


async def _terminate_group(proc: asyncio.subprocess.Process, pgid: int) -> None:
    """SIGTERM the whole group, wait up to KILL_GRACE_S, then SIGKILL whatever is left.

    Escalation is unconditional once the grace is over: a grandchild that traps TERM or
    lingers as a zombie-to-be must not outlive the tool call.
    """
    _signal_group(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_GRACE_S
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
        while _group_alive(pgid) and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        # Runs even if this coroutine is itself cancelled (e.g. the loop shutting down).
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
    if proc.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), KILL_GRACE_S)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


__all__ = ["MAX_TIMEOUT_MS", "BashTool", "is_secret_name", "scrub_env"]
