"""File tools under hostile input: FIFOs, symlink swap races, .git writes, huge lines, hangs.

Hang protection is a pytest timeout plus, for FIFOs, a guard thread that unblocks the pipe so a
regression fails instead of hanging the run. No test asserts a duration.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from stagent_lab.tools import get_tool
from stagent_lab.tools.base import ToolContext, ToolResult
from stagent_lab.tools.confine import Project, is_git_component

MiB = 1024 * 1024


def run(name: str, tool_input: Any, ctx: ToolContext) -> ToolResult:
    tool = get_tool(name)
    assert tool is not None
    return asyncio.run(tool.run(tool_input, ctx))


@pytest.fixture()
def ctx(tmp_path: Path) -> ToolContext:
    root = tmp_path / "proj"
    root.mkdir()
    return ToolContext(working_dir=root)


# ---------------------------------------------------------------------------------- FIFOs


def _unblock(fifo: Path) -> None:
    """Open the other end without blocking, so a reader or writer stuck on it returns."""
    for flags in (os.O_WRONLY | os.O_NONBLOCK, os.O_RDONLY | os.O_NONBLOCK):
        try:
            os.close(os.open(fifo, flags))
        except OSError:
            pass


def run_guarded(name: str, tool_input: Any, ctx: ToolContext, fifo: Path) -> ToolResult:
    """Run the tool in a thread; if it is stuck on the FIFO, unblock it and fail."""
    box: dict[str, ToolResult] = {}
    worker = threading.Thread(target=lambda: box.update(r=run(name, tool_input, ctx)))
    worker.start()
    worker.join(20)
    if worker.is_alive():
        while worker.is_alive():
            _unblock(fifo)
            worker.join(0.1)
        pytest.fail(f"{name} blocked on a FIFO")
    return box["r"]


@pytest.fixture()
def fifo(ctx: ToolContext) -> Path:
    path = ctx.working_dir / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("name", "tool_input"),
    [
        ("Read", {"file_path": "pipe"}),
        ("Write", {"file_path": "pipe", "content": "x"}),
        ("Edit", {"file_path": "pipe", "old_string": "a", "new_string": "b"}),
        ("Grep", {"pattern": "x", "path": "pipe"}),
    ],
)
def test_fifo_is_refused_not_opened(
    ctx: ToolContext, fifo: Path, name: str, tool_input: dict[str, Any]
) -> None:
    result = run_guarded(name, tool_input, ctx, fifo)
    assert result.is_error
    assert result.output == (
        f"{name}: pipe is a FIFO (named pipe), not a regular file; only regular files can be opened"
    )


@pytest.mark.timeout(60)
def test_grep_and_glob_skip_fifos_in_a_tree(ctx: ToolContext, fifo: Path) -> None:
    (ctx.working_dir / "a.txt").write_text("needle\n")
    grep = run_guarded("Grep", {"pattern": "needle"}, ctx, fifo)
    assert grep.output == "Found 1 file\na.txt"
    glob = run_guarded("Glob", {"pattern": "*"}, ctx, fifo)
    assert glob.output == "a.txt"


def test_socket_is_refused(ctx: ToolContext) -> None:
    import socket

    path = ctx.working_dir / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        result = run("Read", {"file_path": "s.sock"}, ctx)
    assert result.is_error and "s.sock is a socket, not a regular file" in result.output


# ------------------------------------------------------------------------------ .git writes


@pytest.mark.parametrize(
    "file_path",
    [
        ".git/config",
        ".git/hooks/pre-commit",
        "sub/.git/config",
        ".GIT/config",
        ".Git/hooks/post-checkout",
        "a/../.git/config",
        ".git",
        "git~1/config",
        ".git./config",
        ".g\u200cit/config",
    ],
)
def test_write_into_git_dir_is_refused(ctx: ToolContext, file_path: str) -> None:
    (ctx.working_dir / ".git").mkdir()
    result = run("Write", {"file_path": file_path, "content": "[core]\nfsmonitor = evil\n"}, ctx)
    assert result.is_error
    assert result.output.startswith("Write: refusing to write ")
    assert "inside a .git folder" in result.output
    assert result.meta["refused"] == "git_dir"
    assert list((ctx.working_dir / ".git").iterdir()) == []
    assert sorted(p.name for p in ctx.working_dir.iterdir()) == [".git"]


def test_write_into_git_dir_through_a_symlink_is_refused(ctx: ToolContext) -> None:
    (ctx.working_dir / ".git").mkdir()
    (ctx.working_dir / ".git" / "config").write_text("[core]\n")
    (ctx.working_dir / "cfg").symlink_to(".git/config")
    (ctx.working_dir / "hooks").symlink_to(".git")
    for path in ("cfg", "hooks/pre-commit"):
        result = run("Write", {"file_path": path, "content": "x"}, ctx)
        assert result.is_error and "inside a .git folder" in result.output, path
    assert (ctx.working_dir / ".git" / "config").read_text() == "[core]\n"
    assert not (ctx.working_dir / ".git" / "pre-commit").exists()


def test_edit_of_git_config_is_refused(ctx: ToolContext) -> None:
    config = ctx.working_dir / ".git" / "config"
    config.parent.mkdir()
    config.write_text("[core]\n\tbare = false\n")
    result = run(
        "Edit",
        {"file_path": ".git/config", "old_string": "bare = false", "new_string": "fsmonitor=x"},
        ctx,
    )
    assert result.is_error and result.output.startswith("Edit: refusing to write .git/config")
    assert config.read_text() == "[core]\n\tbare = false\n"


def test_allow_git_dir_lets_a_named_rule_through(ctx: ToolContext) -> None:
    allowed = ToolContext(ctx.working_dir, allow_git_dir=True)
    result = run("Write", {"file_path": ".git/info/exclude", "content": "*.log\n"}, allowed)
    assert result.output == "Created .git/info/exclude (6 bytes written)"
    assert (ctx.working_dir / ".git/info/exclude").read_text() == "*.log\n"


def test_read_of_git_dir_is_not_refused(ctx: ToolContext) -> None:
    (ctx.working_dir / ".git").mkdir()
    (ctx.working_dir / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    assert run("Read", {"file_path": ".git/HEAD"}, ctx).output == "     1\tref: refs/heads/main"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (".git", True),
        (".GIT", True),
        (".git.", True),
        (".git ", True),
        ("GIT~1", True),
        (".g\u200dit", True),
        ("\ufeff.git", True),
        (".github", False),
        ("git", False),
        (".gitignore", False),
        ("x.git", False),
    ],
)
def test_is_git_component(name: str, expected: bool) -> None:
    assert is_git_component(name) is expected


# ------------------------------------------------------------------------ symlink swap race


_RENAME_EXCHANGE = 2


def _exchanger() -> Any:
    """renameat2(RENAME_EXCHANGE): swap two names atomically, so the path always exists."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        pytest.skip("renameat2 is not available")
    at_fdcwd = -100

    def exchange(a: Path, b: Path) -> None:
        if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    return exchange


SWAPS = 1000


@pytest.fixture()
def swap_setup(tmp_path: Path) -> dict[str, Path]:
    """proj/d is a real folder or, half of the time, a symlink to a folder outside."""
    proj = tmp_path / "proj"
    (proj / "d").mkdir(parents=True)
    (proj / "d" / "f.txt").write_text("x = 1\ninside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("x = 1\nSECRET\n")
    (outside / "leak.txt").write_text("SECRET\n")
    (proj / "d.alt").symlink_to(outside)
    return {"proj": proj, "outside": outside}


def _race(proj: Path, name: str, inputs: list[dict[str, Any]]) -> list[ToolResult]:
    """Swap proj/d for the link SWAPS times while the tool runs again and again."""
    exchange = _exchanger()
    done = threading.Event()
    errors: list[BaseException] = []

    def swapper() -> None:
        try:
            for _ in range(SWAPS):
                exchange(proj / "d", proj / "d.alt")
                time.sleep(0.0002)
                exchange(proj / "d", proj / "d.alt")
                time.sleep(0.0002)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            done.set()

    async def hammer() -> list[ToolResult]:
        tool = get_tool(name)
        assert tool is not None
        ctx = ToolContext(working_dir=proj)
        results: list[ToolResult] = []
        i = 0
        while not done.is_set():
            results.append(await tool.run(inputs[i % len(inputs)], ctx))
            i += 1
        return results

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        results = asyncio.run(hammer())
    finally:
        thread.join()
    assert not errors, errors
    assert results
    return results


@pytest.mark.timeout(120)
def test_swap_race_read_never_escapes(swap_setup: dict[str, Path]) -> None:
    results = _race(swap_setup["proj"], "Read", [{"file_path": "d/f.txt"}])
    assert not [r.output for r in results if "SECRET" in r.output]
    assert any("inside" in r.output for r in results)


@pytest.mark.timeout(120)
def test_swap_race_write_never_escapes(swap_setup: dict[str, Path]) -> None:
    outside = swap_setup["outside"]
    before = sorted(p.name for p in outside.iterdir())
    results = _race(swap_setup["proj"], "Write", [{"file_path": "d/new/w.txt", "content": "x"}])
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (outside / "f.txt").read_text() == "x = 1\nSECRET\n"
    assert any(not r.is_error for r in results)


@pytest.mark.timeout(120)
def test_swap_race_edit_never_escapes(swap_setup: dict[str, Path]) -> None:
    edits = [
        {"file_path": "d/f.txt", "old_string": "x = 1", "new_string": "x = 2"},
        {"file_path": "d/f.txt", "old_string": "x = 2", "new_string": "x = 1"},
    ]
    results = _race(swap_setup["proj"], "Edit", edits)
    assert (swap_setup["outside"] / "f.txt").read_text() == "x = 1\nSECRET\n"
    assert any(not r.is_error for r in results)


@pytest.mark.timeout(120)
def test_swap_race_grep_and_glob_never_escape(swap_setup: dict[str, Path]) -> None:
    grep = _race(
        swap_setup["proj"],
        "Grep",
        [{"pattern": "SECRET|inside", "output_mode": "content"}, {"pattern": ".", "path": "d"}],
    )
    assert not [r.output for r in grep if "SECRET" in r.output or "leak" in r.output]
    glob = _race(swap_setup["proj"], "Glob", [{"pattern": "**/*.txt"}, {"pattern": "d/*"}])
    assert not [r.output for r in glob if "leak" in r.output]


# -------------------------------------------------------------- symlinks that stay inside


def test_symlinked_folder_inside_the_project_is_followed(ctx: ToolContext) -> None:
    (ctx.working_dir / "src").mkdir()
    (ctx.working_dir / "src" / "m.py").write_text("a = 1\n")
    (ctx.working_dir / "alias").symlink_to("src")
    assert run("Read", {"file_path": "alias/m.py"}, ctx).output == "     1\ta = 1"
    result = run("Write", {"file_path": "alias/n.py", "content": "b"}, ctx)
    assert result.output == "Created src/n.py (1 bytes written)"


def test_absolute_symlink_into_the_project_is_followed(ctx: ToolContext) -> None:
    (ctx.working_dir / "m.txt").write_text("hello\n")
    (ctx.working_dir / "abs").symlink_to(ctx.working_dir / "m.txt")
    assert run("Read", {"file_path": "abs"}, ctx).output == "     1\thello"


def test_relative_symlink_climbing_out_is_refused(ctx: ToolContext, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("SECRET\n")
    (ctx.working_dir / "sub").mkdir()
    (ctx.working_dir / "sub" / "up").symlink_to("../../secret.txt")
    result = run("Read", {"file_path": "sub/up"}, ctx)
    assert result.is_error and "outside the project folder" in result.output
    assert "SECRET" not in result.output


def test_symlink_loop_is_an_error(ctx: ToolContext) -> None:
    (ctx.working_dir / "a").symlink_to("b")
    (ctx.working_dir / "b").symlink_to("a")
    result = run("Read", {"file_path": "a"}, ctx)
    assert result.is_error and "Too many levels of symbolic links" in result.output


def test_locate_reports_physical_parts(ctx: ToolContext) -> None:
    (ctx.working_dir / "real" / "deep").mkdir(parents=True)
    (ctx.working_dir / "alias").symlink_to("real/deep")
    with Project(ctx.working_dir).locate("alias/../x.txt") as loc:
        # `..` applies to where the link led (like the kernel), not to the text of the path.
        assert (loc.parts, loc.name, loc.lstat) == (("real", "x.txt"), "x.txt", None)


# --------------------------------------------------------------------------------- memory


def _sparse_file_with_huge_line(path: Path, size: int) -> None:
    """Printable text, then a hole (read back as NULs, no disk used), then a short last line."""
    with open(path, "wb") as fh:
        fh.write(b"a" * 8192)
        fh.seek(size)
        fh.write(b"\nsecond line\n")


def _peak_traced(fn: Any) -> tuple[Any, int]:
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.timeout(120)
def test_read_of_a_300_mb_line_holds_little_memory(ctx: ToolContext) -> None:
    _sparse_file_with_huge_line(ctx.working_dir / "huge.txt", 300 * MiB)
    result, peak = _peak_traced(lambda: run("Read", {"file_path": "huge.txt"}, ctx))
    first, second = result.output.split("\n")
    assert first == "     1\t" + "a" * 2000 + " [... line truncated]"
    assert second == "     2\tsecond line"
    assert peak < 32 * MiB, f"peak {peak / MiB:.1f} MiB"


@pytest.mark.timeout(120)
def test_grep_of_a_300_mb_line_holds_little_memory(ctx: ToolContext) -> None:
    _sparse_file_with_huge_line(ctx.working_dir / "huge.txt", 300 * MiB)
    result, peak = _peak_traced(
        lambda: run("Grep", {"pattern": "second|^a+", "output_mode": "content"}, ctx)
    )
    lines = result.output.split("\n")
    assert lines[0] == "huge.txt:1:" + "a" * 2000 + " [... line truncated]"
    assert lines[1] == "huge.txt:2:second line"
    assert lines[2] == "[1 line(s) longer than 1024 KiB were searched only in their first part]"
    assert result.meta["lines_cut"] == 1
    assert peak < 32 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_grep_content_output_is_built_within_the_cap(ctx: ToolContext) -> None:
    (ctx.working_dir / "many.txt").write_text("hit\n" * 200_000)
    small = ToolContext(ctx.working_dir, output_cap_chars=1000)
    result, peak = _peak_traced(
        lambda: run("Grep", {"pattern": "hit", "output_mode": "content"}, small)
    )
    body, note = result.output.rsplit("\n", 1)
    assert len(body) <= 1000
    # every line is "many.txt:N:hit"; the note counts what was not shown
    full = sum(len(f"many.txt:{n}:hit") + 1 for n in range(1, 200_001)) - 1
    assert note == f"[output capped at 1000 characters; {full - len(body)} more not shown]"
    assert result.meta["matches"] == 200_000
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_crlf_and_lone_cr_end_lines(ctx: ToolContext) -> None:
    (ctx.working_dir / "w.txt").write_bytes(b"one\r\ntwo\rthree\n")
    result = run("Read", {"file_path": "w.txt"}, ctx)
    assert result.output == "     1\tone\n     2\ttwo\n     3\tthree"


def test_edit_refuses_files_too_big_to_load(ctx: ToolContext) -> None:
    with open(ctx.working_dir / "big.txt", "wb") as fh:
        fh.write(b"x = 1\n")
        fh.truncate(17 * MiB)
    result = run("Edit", {"file_path": "big.txt", "old_string": "x", "new_string": "y"}, ctx)
    assert result.is_error and "larger than 16 MiB" in result.output


# ------------------------------------------------------------------------------ time limit


def _tool_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"stagent-tool-{name}"]


def test_a_stuck_call_times_out_with_a_clear_error(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    tool = get_tool("Read")
    assert tool is not None

    def stuck(*args: Any) -> ToolResult:
        release.wait(60)  # stands for a syscall that never returns
        return ToolResult("late")

    monkeypatch.setattr(type(tool), "_run", stuck)
    quick = ToolContext(ctx.working_dir, tool_timeout_s=0.2)
    try:
        result = run("Read", {"file_path": "a.txt"}, quick)
    finally:
        release.set()
    assert result.is_error
    assert result.output == "Read: timed out after 0.2 s"
    assert result.meta == {"timed_out": True}


def test_timeout_of_a_write_says_the_outcome_is_unknown(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    tool = get_tool("Write")
    assert tool is not None
    monkeypatch.setattr(type(tool), "_run", lambda *a: release.wait(60))
    try:
        result = run(
            "Write",
            {"file_path": "a", "content": ""},
            ToolContext(ctx.working_dir, tool_timeout_s=0.1),
        )
    finally:
        release.set()
    assert (
        result.output == "Write: timed out after 0.1 s; the file may or may not have been written"
    )


@pytest.mark.timeout(120)
def test_an_abandoned_scan_stops_its_thread(ctx: ToolContext) -> None:
    with open(ctx.working_dir / "endless.txt", "wb") as fh:
        fh.write(b"a" * 8192)
        fh.truncate(64 * 1024 * MiB)  # 64 GiB of hole: far more than any limit lets it scan
    quick = ToolContext(ctx.working_dir, tool_timeout_s=0.3)
    result = run("Grep", {"pattern": "zzz"}, quick)
    assert result.output == "Grep: timed out after 0.3 s"
    for thread in _tool_threads("Grep"):
        thread.join(60)
        assert not thread.is_alive(), "the worker kept scanning after the call gave up"


def test_cancelling_the_task_stops_the_worker(
    ctx: ToolContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = get_tool("Grep")
    assert tool is not None
    started = threading.Event()

    def scanning(self: Any, tool_input: Any, ctx: ToolContext, project: Any, stop: Any) -> Any:
        started.set()
        while True:  # stands for a long scan: it ends only through the stop flag
            stop.check()
            time.sleep(0.01)

    monkeypatch.setattr(type(tool), "_run", scanning)

    async def scenario() -> None:
        task = asyncio.create_task(tool.run({"pattern": "zzz"}, ctx))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    for thread in _tool_threads("Grep"):
        thread.join(60)
        assert not thread.is_alive()
