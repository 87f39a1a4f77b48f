"""What the agent-CLI tests need around the provider fakes.

The real Claude Code CLI and the real ``codex`` binary talk to the same loopback fakes as the
SDK runtimes. This module adds what the CLIs use besides the main endpoint (Claude Code's
``count_tokens``, Codex's ``/v1/models`` listing), turn builders in the shapes the CLIs' tools
expect (Claude Code's ``Bash`` input, Codex's ``exec_command`` arguments), profile writers, and
process probes for "nothing of the run is left running" checks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stagent_lab.runtimes import _cli_env
from tests.fakes.anthropic_server import MESSAGES_PATH, AnthropicFake
from tests.fakes.base import RecordedRequest, Reply, Turn
from tests.fakes.openai_server import RESPONSES_PATH, OpenAIFake

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
MODELS_PATH = "/v1/models"

# ---- fakes ----------------------------------------------------------------------------------


class ClaudeCliFake(AnthropicFake):
    """The Messages fake plus ``count_tokens``; ``main_requests`` are the agent-loop calls.

    Claude Code streams every agent-loop call; any non-streamed call is a side request (a
    title, a token count) and is answered without taking a scripted turn.
    """

    def __init__(self, *, dated_ids: bool = False) -> None:
        super().__init__(dated_ids=dated_ids)
        self.set_default("POST", COUNT_TOKENS_PATH, Reply({"text": "count"}))

    def whole_body(self, turn: Turn, request: RecordedRequest) -> dict[str, Any]:
        if request.path == COUNT_TOKENS_PATH:
            return {"input_tokens": 42}
        return super().whole_body(turn, request)

    @property
    def main_requests(self) -> list[RecordedRequest]:
        return [r for r in self.message_requests if (r.body or {}).get("stream")]


class CodexCliFake(OpenAIFake):
    """The Responses fake plus the ``/v1/models`` listing Codex may ask a provider for."""

    def __init__(self, *, dated_ids: bool = False) -> None:
        super().__init__(dated_ids=dated_ids)
        self.set_default("GET", MODELS_PATH, Reply({"text": "models"}))

    def wants_stream(self, request: RecordedRequest) -> bool:
        if request.path == MODELS_PATH:
            return False
        return super().wants_stream(request)

    def whole_body(self, turn: Turn, request: RecordedRequest) -> dict[str, Any]:
        if request.path == MODELS_PATH:
            return {
                "object": "list",
                "data": [
                    {"id": "gpt-5.1-codex", "object": "model", "created": 0, "owned_by": "fake"}
                ],
            }
        return super().whole_body(turn, request)


# ---- turns ----------------------------------------------------------------------------------


def bash_turn(command: str, text: str = "Running a command.", **usage: int) -> Turn:
    """A Claude turn that calls the CLI's Bash tool."""
    turn: Turn = {
        "text": text,
        "tool_uses": [
            {"name": "Bash", "input": {"command": command, "description": "run a command"}}
        ],
    }
    if usage:
        turn["usage"] = usage
    return turn


def exec_turn(
    command: str,
    text: str = "Running a command.",
    *,
    escalate: bool = True,
    workdir: str | None = None,
    **usage: int,
) -> Turn:
    """A Codex turn that calls ``exec_command``; ``escalate`` asks to leave the sandbox, which
    under approval policy on-request is what makes Codex ask for approval."""
    args: dict[str, Any] = {"cmd": command}
    if workdir:
        args["workdir"] = workdir
    if escalate:
        args["sandbox_permissions"] = "require_escalated"
        args["justification"] = "needs to run outside the sandbox"
    turn: Turn = {"text": text, "tool_calls": [{"name": "exec_command", "arguments": args}]}
    if usage:
        turn["usage"] = usage
    return turn


def patch_turn(path: str, content: str, text: str = "Adding a file.") -> Turn:
    """A Codex turn that adds a file with apply_patch (Codex turns it into a fileChange)."""
    patch = f"*** Begin Patch\n*** Add File: {path}\n+{content}\n*** End Patch\n"
    return {
        "text": text,
        "tool_calls": [
            {"name": "exec_command", "arguments": {"cmd": f"apply_patch <<'EOF'\n{patch}EOF\n"}}
        ],
    }


def request_text(request: RecordedRequest) -> str:
    """The whole request body as text, to assert that something reached the model."""
    return json.dumps(request.body or {}, ensure_ascii=False)


# ---- profiles -------------------------------------------------------------------------------


def write_cli_profile(
    root: Path,
    pid: str,
    runtime: str,
    *,
    tools: Sequence[str],
    approve: Sequence[str] = (),
    deny: Sequence[str] = (),
    extra: str = "",
    skill: str = "You are a careful test agent.",
) -> Path:
    folder = root / pid
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        f"id: {pid}",
        f"name: {pid}",
        "tags: [testing]",
        f"supportedRuntimes: [{runtime}]",
        f"allowedTools: {json.dumps(list(tools))}",
        "canUseToolPolicy:",
        f"  autoApprove: {json.dumps(list(approve))}",
        f"  autoDeny: {json.dumps(list(deny))}",
        "maxTurns: 20",
    ]
    (folder / "profile.yaml").write_text("\n".join(lines) + "\n" + extra)
    (folder / "SKILL.md").write_text(f"---\nname: {pid}\ndescription: test\n---\n{skill}\n")
    return folder


# ---- binaries -------------------------------------------------------------------------------


def codex_binary() -> str | None:
    from stagent_lab.runtimes.codex_app_server import find_codex

    return find_codex()


# ---- processes ------------------------------------------------------------------------------


def _marker_of(entry: Path) -> str | None:
    try:
        environ = (entry / "environ").read_bytes()
    except OSError:
        return None
    prefix = f"{_cli_env.MARKER_VAR}=".encode()
    for part in environ.split(b"\0"):
        if part.startswith(prefix):
            return part[len(prefix) :].decode(errors="replace")
    return None


def run_markers() -> set[str]:
    """Markers of the CLI runs this test process started (their CLI is still its descendant).

    Tests that check "nothing is left" remember these while the run is alive, so processes of
    other test sessions on the same machine never count, and orphans (re-parented to init once
    their parent died) still do.
    """
    markers = set()
    for pid in _cli_env.descendants(os.getpid()):
        marker = _marker_of(Path("/proc") / str(pid))
        if marker:
            markers.add(marker)
    return markers


def run_processes(markers: set[str] | None = None) -> dict[int, str]:
    """Live processes of those runs (default: ``run_markers()``): pid → command line."""
    wanted = run_markers() if markers is None else markers
    out: dict[int, str] = {}
    for marker in wanted:
        for pid in _cli_env.processes_with_marker(marker):
            try:
                cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
            except OSError:
                continue
            out[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return out


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)


def isolated_dir(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


__all__ = [
    "COUNT_TOKENS_PATH",
    "MESSAGES_PATH",
    "MODELS_PATH",
    "RESPONSES_PATH",
    "ClaudeCliFake",
    "CodexCliFake",
    "bash_turn",
    "codex_binary",
    "exec_turn",
    "isolated_dir",
    "patch_turn",
    "request_text",
    "run_markers",
    "run_processes",
    "wait_until",
    "write_cli_profile",
]
