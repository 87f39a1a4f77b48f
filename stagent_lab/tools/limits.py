"""Bounds every file tool lives within: wall-clock time and memory.

Time: a blocking syscall in a thread cannot be interrupted, so a tool never relies on that.
The work runs in its own daemon thread (not the shared default executor, whose few threads a
hung call could use up); the awaiting task gives up after ``ToolContext.tool_timeout_s`` and
sets a :class:`Stop` flag that the work checks between chunks and folders, so an abandoned call
unwinds soon after. What could block forever is refused before it is opened (FIFOs, devices:
see :mod:`stagent_lab.tools.confine`).

Memory: files are read in fixed-size chunks and split into lines here, and a line longer than
the caller's byte budget is cut while it is read, so one 300 MB line costs a chunk plus the
budget, never the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from stagent_lab.tools.paths import BINARY_SNIFF_BYTES

T = TypeVar("T")

READ_CHUNK = 64 * 1024


class Stopped(Exception):
    """Raised inside a worker whose call was abandoned (timed out or cancelled)."""


class ToolTimeout(Exception):
    """The call ran past its wall-clock limit; ``seconds`` is that limit."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"timed out after {seconds:g} s")
        self.seconds = seconds


class Stop:
    """A flag the awaiting side sets and the worker checks (``check`` raises :class:`Stopped`)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped


async def run_in_worker(fn: Callable[[Stop], T], timeout_s: float | None, name: str) -> T:
    """Run ``fn(stop)`` in a fresh daemon thread; give up after ``timeout_s`` (None or <= 0: never).

    On timeout :class:`ToolTimeout` is raised and ``stop`` is set; on cancellation ``stop`` is
    set and the cancellation propagates. Either way the event loop is free at once, whatever
    the thread is doing.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    stop = Stop()

    def deliver(ok: bool, value: object) -> None:
        if done.done():  # abandoned: nobody reads the outcome
            return
        if ok:
            done.set_result(value)  # type: ignore[arg-type]
        else:
            done.set_exception(value)  # type: ignore[arg-type]

    def work() -> None:
        try:
            outcome: tuple[bool, object] = (True, fn(stop))
        except BaseException as exc:  # handed to the awaiting task, which re-raises it
            outcome = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked
            loop.call_soon_threadsafe(deliver, *outcome)

    threading.Thread(target=work, name=f"stagent-tool-{name}", daemon=True).start()
    limit = timeout_s if timeout_s and timeout_s > 0 else None
    try:
        return await asyncio.wait_for(done, limit)
    except TimeoutError:
        stop.set()
        raise ToolTimeout(limit or 0) from None
    except asyncio.CancelledError:
        stop.set()
        raise


def looks_binary(fd: int) -> bool:
    """True when the first 8 KiB hold a NUL byte (git's and grep's heuristic); offset unchanged."""
    return b"\x00" in os.pread(fd, BINARY_SNIFF_BYTES, 0)


def iter_lines(
    fd: int,
    max_line_bytes: int,
    check: Callable[[], None] | None = None,
    chunk_size: int = READ_CHUNK,
) -> Iterator[tuple[bytes, bool]]:
    """Yield ``(line, cut)`` for each line of ``fd``, reading ``chunk_size`` bytes at a time.

    Lines end at ``\\n``, ``\\r\\n`` or ``\\r`` (Python's universal newlines) and come without
    their ending. At most ``max_line_bytes`` of a line are kept; ``cut`` says bytes were
    dropped. Memory stays at one chunk plus ``max_line_bytes`` whatever the file holds.
    ``check`` runs before each read (it raises to abandon the scan).
    """
    buf = bytearray()
    cut = False
    carry_cr = False

    def take(piece: bytes) -> None:
        nonlocal cut
        room = max_line_bytes - len(buf)
        if len(piece) > room:
            buf.extend(piece[: max(room, 0)])
            cut = True
        else:
            buf.extend(piece)

    while True:
        if check is not None:
            check()
        data = os.read(fd, chunk_size)
        eof = not data
        if carry_cr:
            data = b"\r" + data
            carry_cr = False
        if not eof and data.endswith(b"\r"):
            data = data[:-1]  # it may be the first half of a \r\n split across reads
            carry_cr = True
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        pieces = data.split(b"\n")
        for piece in pieces[:-1]:
            if not buf and not cut and len(piece) <= max_line_bytes:
                yield piece, False
                continue
            take(piece)
            yield bytes(buf), cut
            buf.clear()
            cut = False
        take(pieces[-1])
        if eof:
            break
    if buf or cut:
        yield bytes(buf), cut


__all__ = [
    "READ_CHUNK",
    "Stop",
    "Stopped",
    "ToolTimeout",
    "iter_lines",
    "looks_binary",
    "run_in_worker",
]
