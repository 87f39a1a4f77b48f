"""Bash: output, exit codes, caps, timeouts, cancellation and secret scrubbing.

Process checks look at /proc because an orphaned grandchild that died may linger as a zombie
when PID 1 does not reap it; a zombie runs nothing, so it counts as dead.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from stagent_lab.tools.base import ToolContext, ToolResult
from stagent_lab.tools.bash import BashTool, is_secret_name, scrub_env


def run(tool_input: Any, ctx: ToolContext) -> ToolResult:
    return asyncio.run(BashTool().run(tool_input, ctx))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X")


async def wait_for_file(path: Path, limit: float = 10.0) -> int:
    """Poll until the command has written its pid file (no timing assertions)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


def wait_dead(pid: int, limit: float = 10.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture()
def ctx(tmp_path: Path) -> ToolContext:
    root = tmp_path / "proj"
    root.mkdir()
    return ToolContext(working_dir=root)


def test_output_and_zero_exit(ctx: ToolContext) -> None:
    result = run({"command": "echo hello; echo oops >&2"}, ctx)
    assert not result.is_error
    assert result.output == "hello\noops\n"
    assert result.meta["exit_code"] == 0


def test_nonzero_exit_code_in_meta_and_output(ctx: ToolContext) -> None:
    result = run({"command": "echo partial; exit 3"}, ctx)
    assert result.output == "partial\n[exit code 3]"
    assert result.meta["exit_code"] == 3


def test_no_output(ctx: ToolContext) -> None:
    result = run({"command": "true"}, ctx)
    assert result.output == "(no output)"


def test_cwd_is_working_dir(ctx: ToolContext) -> None:
    result = run({"command": "pwd"}, ctx)
    assert result.output.strip() == os.path.realpath(ctx.working_dir)


def test_stdin_is_empty(ctx: ToolContext) -> None:
    result = run({"command": "cat; echo done"}, ctx)
    assert result.output == "done\n"


def test_output_cap_keeps_head_and_tail(ctx: ToolContext) -> None:
    small = ToolContext(ctx.working_dir, output_cap_chars=100)
    result = run(
        {
            "command": "printf 'H%.0s' $(seq 1 60); printf 'x%.0s' $(seq 1 1000); "
            "printf 'T%.0s' $(seq 1 60)"
        },
        small,
    )
    assert result.output.startswith("H" * 50 + "\n\n[... 1020 characters of output omitted ...]")
    assert result.output.endswith("T" * 50)
    assert result.meta["dropped_chars"] == 1020
    assert result.meta["truncated"] is True


def test_output_under_cap_is_untouched(ctx: ToolContext) -> None:
    small = ToolContext(ctx.working_dir, output_cap_chars=100)
    result = run({"command": "printf '%0100d' 0"}, small)
    assert result.output == "0" * 100
    assert result.meta["truncated"] is False


def test_multibyte_output_survives_chunking(ctx: ToolContext) -> None:
    result = run(
        {"command": "for i in $(seq 1 30000); do printf 'é'; done"},
        ToolContext(ctx.working_dir, output_cap_chars=100_000),
    )
    assert result.output == "é" * 30000


def test_timeout_kills_process_group(ctx: ToolContext) -> None:
    pid_file = ctx.working_dir / "grand.pid"
    result = run(
        {"command": "sleep 30 & echo $! > grand.pid; echo started; wait", "timeout": 300}, ctx
    )
    assert result.is_error
    assert result.output.startswith("started\n")
    assert "timed out after 0.3 s" in result.output
    assert result.meta["timed_out"] is True
    assert wait_dead(int(pid_file.read_text()))


def test_default_timeout_comes_from_context(ctx: ToolContext) -> None:
    quick = ToolContext(ctx.working_dir, bash_timeout_s=0.2)
    result = run({"command": "sleep 30"}, quick)
    assert result.is_error and "timed out after 0.2 s" in result.output


def test_timeout_escalates_to_sigkill_when_term_is_ignored(ctx: ToolContext) -> None:
    cmd = "trap '' TERM; bash -c 'trap \"\" TERM; echo $$ > inner.pid; sleep 30' & wait"
    result = run({"command": cmd, "timeout": 500}, ctx)
    assert result.is_error and result.meta["timed_out"] is True
    assert wait_dead(int((ctx.working_dir / "inner.pid").read_text()))


def test_background_leftovers_are_stopped(ctx: ToolContext) -> None:
    result = run({"command": "sleep 30 > /dev/null 2>&1 & echo $! > bg.pid; echo ok"}, ctx)
    assert result.output.startswith("ok\n")
    assert result.meta.get("stopped_background") is True
    assert wait_dead(int((ctx.working_dir / "bg.pid").read_text()))


def _cancel_after_pids(command: str, ctx: ToolContext, pid_names: list[str]) -> list[int]:
    async def scenario() -> list[int]:
        task = asyncio.create_task(BashTool().run({"command": command}, ctx))
        pids = [await wait_for_file(ctx.working_dir / name) for name in pid_names]
        assert all(alive(p) for p in pids)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pids

    return asyncio.run(scenario())


def test_cancel_kills_child(ctx: ToolContext) -> None:
    (pid,) = _cancel_after_pids("echo $$ > child.pid; exec sleep 30", ctx, ["child.pid"])
    assert wait_dead(pid)


def test_cancel_kills_child_and_grandchild(ctx: ToolContext) -> None:
    command = (
        "echo $$ > child.pid; bash -c 'echo $$ > inner.pid; sleep 30 & echo $! > grand.pid; wait'"
    )
    pids = _cancel_after_pids(command, ctx, ["child.pid", "inner.pid", "grand.pid"])
    assert [wait_dead(p) for p in pids] == [True, True, True]


def test_secret_env_is_scrubbed(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOO_API_KEY", "sk-very-secret")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://example.invalid")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x")
    monkeypatch.setenv("STAGENT_PLAIN_SETTING", "visible")
    result = run(
        {
            "command": 'echo "[$FOO_API_KEY][$ANTHROPIC_BASE_URL][$GITHUB_TOKEN]"; '
            "echo $STAGENT_PLAIN_SETTING; env | grep -c sk-very-secret"
        },
        ctx,
    )
    assert result.output == "[][][]\nvisible\n0\n[exit code 1]"


def test_scrub_env_rules() -> None:
    env = {
        "PATH": "/bin",
        "HOME": "/h",
        "LANG": "C.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "a",
        "db_password": "b",
        "MY_CREDENTIALS_FILE": "c",
        "SLACK_BOT_TOKEN": "d",
        "OPENAI_BASE_URL": "e",
        "ANTHROPIC_MODEL": "f",
        "GIT_AUTHOR_NAME": "g",
    }
    clean = scrub_env(env)
    assert {k: clean[k] for k in ("PATH", "HOME", "LANG", "GIT_AUTHOR_NAME")} == {
        "PATH": "/bin",
        "HOME": "/h",
        "LANG": "C.UTF-8",
        "GIT_AUTHOR_NAME": "g",
    }
    assert (
        not {
            "AWS_SECRET_ACCESS_KEY",
            "db_password",
            "MY_CREDENTIALS_FILE",
            "SLACK_BOT_TOKEN",
            "OPENAI_BASE_URL",
            "ANTHROPIC_MODEL",
        }
        & clean.keys()
    )
    assert clean["GIT_TERMINAL_PROMPT"] == "0"
    assert is_secret_name("api_key") and not is_secret_name("TERM")


@pytest.mark.parametrize(
    ("tool_input", "fragment"),
    [
        ({}, "missing required field(s): command"),
        ({"command": ["ls"]}, "field 'command' must be a string"),
        ({"command": ""}, "field 'command' must not be empty"),
        ({"command": "ls", "timeout": 600_001}, "field 'timeout' must be <= 600000"),
        ({"command": "ls", "timeout": "10"}, "field 'timeout' must be an integer"),
        ({"command": "ls", "cwd": "/"}, "unknown field(s): cwd"),
    ],
)
def test_bad_input(ctx: ToolContext, tool_input: Any, fragment: str) -> None:
    result = run(tool_input, ctx)
    assert result.is_error and result.output.startswith("Bash: ")
    assert fragment in result.output


def test_missing_working_dir_is_error(tmp_path: Path) -> None:
    result = run({"command": "echo hi"}, ToolContext(working_dir=tmp_path / "gone"))
    assert result.is_error and "does not exist" in result.output


# ------------------------------------------------------- processes that leave the group


def call_processes_alive(token: str) -> list[int]:
    """Live (non-zombie) processes whose command line holds ``token``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_none_alive(token: str, limit: float = 10.0) -> list[int]:
    deadline = time.monotonic() + limit
    while (left := call_processes_alive(token)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "background",
    [
        "sleep {t} &",
        "set -m; sleep {t} &",
        "sleep {t} > /dev/null 2>&1 &",
        "setsid sleep {t} &",
        "nohup setsid bash -c 'sleep {t} & disown' > /dev/null 2>&1 &",
        "(set -m; sleep {t} & sleep {t} &) ; true",
    ],
)
def test_background_processes_never_outlive_the_call(ctx: ToolContext, background: str) -> None:
    token = f"300.{os.getpid()}{abs(hash(background)) % 10**6}"  # a unique sleep argument
    patient = ToolContext(ctx.working_dir, bash_timeout_s=60)
    result = run({"command": background.format(t=token) + "\necho done; exit 3"}, patient)
    assert result.meta["timed_out"] is False
    assert result.meta["exit_code"] == 3
    assert result.output.startswith("done\n[exit code 3]")
    assert wait_none_alive(token) == []


@pytest.mark.timeout(120)
def test_cancel_kills_jobs_in_other_groups_and_sessions(ctx: ToolContext) -> None:
    command = (
        "set -m; sleep 300 & echo $! > job.pid; "
        "setsid bash -c 'echo $$ > daemon.pid; exec sleep 300' & wait"
    )
    pids = _cancel_after_pids(command, ctx, ["job.pid", "daemon.pid"])
    assert [wait_dead(p) for p in pids] == [True, True]


def test_git_ignores_planted_bare_repositories(ctx: ToolContext) -> None:
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    # What an agent limited to Write could lay out: HEAD, config, objects/, refs/.
    subprocess.run(["git", "init", "-q", "--bare", "planted"], cwd=ctx.working_dir, check=True)
    result = run({"command": "git -C planted rev-parse --git-dir"}, ctx)
    assert result.meta["exit_code"] == 128
    assert "cannot use bare repository" in result.output


def test_scrub_env_replaces_inherited_git_config_entries() -> None:
    clean = scrub_env(
        {
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "http.extraHeader",
            "GIT_CONFIG_VALUE_0": "Authorization: Bearer x",
        }
    )
    assert {k: v for k, v in clean.items() if k.startswith("GIT_CONFIG")} == {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "safe.bareRepository",
        "GIT_CONFIG_VALUE_0": "explicit",
    }


@pytest.mark.timeout(120)
def test_huge_output_holds_little_memory(ctx: ToolContext) -> None:
    import tracemalloc

    tracemalloc.start()
    try:
        result = run({"command": "head -c 200000000 /dev/zero | tr '\\0' a"}, ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.meta["dropped_chars"] == 200_000_000 - ctx.output_cap_chars
    assert result.output.startswith("a" * 15_000 + "\n\n[... ")
    assert peak < 16 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
