"""Find and stop every process one Bash call started (Linux: /proc; elsewhere: the group).

Killing the process group is not enough: ``set -m`` gives each background job its own group,
``setsid`` its own session, and a double fork hands the daemon to PID 1. A Bash call therefore
marks what it starts and, when it ends (exit, timeout or cancellation), stops every live process
that matches any of:

- the call's session (bash runs with ``start_new_session=True``, so its pid is the session id),
  or its process group;
- the call's marker in the environment it started with (``/proc/<pid>/environ``): children
  inherit it through ``setsid``, ``nohup`` and double forks alike;
- a descendant (by parent pid) of any process above.

Signals go through a pidfd opened after the match and checked against the process start time
seen in the scan, so a pid reused by an unrelated process in between is never signalled.
Zombies count as gone (PID 1 in a container may never reap them; they run nothing).

Escapes (best effort, documented in docs/security-tools.md): a process that clears its
environment *and* leaves the session *and* loses its parent (``env -i setsid cmd &`` then
exit) matches nothing; so does a process of another user. Without /proc (macOS) only the
process group is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

CALL_MARKER_VAR = "STAGENT_TOOL_CALL"
KILL_GRACE_S = 2.0
POLL_S = 0.05
_KILL_SWEEPS = 50
_SETTLE_TRIES = 3
_SETTLE_S = 0.005
_PF_KTHREAD = 0x00200000
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name: state, ppid, pgrp, session, ..."""
    try:
        raw = (_PROC / str(pid) / "stat").read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


class CallProcesses:
    """The processes of one Bash call.

    Create it before starting bash (it notes the time, to tell the call's processes from older
    ones) and set ``sid`` to bash's pid, which is also its session and group id, once known.
    ``marker`` is the value of CALL_MARKER_VAR in bash's environment.
    """

    def __init__(self, marker: str, sid: int | None = None) -> None:
        self.sid = sid
        self.needle = f"{CALL_MARKER_VAR}={marker}".encode()
        self.use_proc = _PROC.joinpath("self", "stat").exists()
        self.since = _now_ticks() - 1 if self.use_proc else 0

    # ------------------------------------------------------------------------ finding

    def _environ(self, pid: int) -> bytes | None:
        try:
            return (_PROC / str(pid) / "environ").read_bytes()
        except OSError:
            return None  # gone, or another user's

    def scan(self) -> tuple[dict[int, str], bool]:
        """Live processes of the call as ``{pid: start time}``, and whether to look again.

        The listing is a snapshot: a process newer than the call that has exited by the time
        it is looked at (a zombie, or one caught mid-exit with no environment left to read)
        may be the middle link of a double fork whose child the snapshot missed. The second
        value says such a process was seen, so the caller should look again.
        """
        if not self.use_proc:
            return {}, False
        me = os.getpid()
        table: dict[int, tuple[int, str]] = {}  # pid -> (ppid, starttime), live ones only
        matched: set[int] = set()
        unsettled = False
        for entry in os.listdir(_PROC):
            if not entry.isdigit():
                continue
            pid = int(entry)
            fields = _stat_fields(pid)
            if fields is None or len(fields) < 21 or pid == me:
                continue
            newer = int(fields[19]) >= self.since and not int(fields[6]) & _PF_KTHREAD
            if fields[0] in ("Z", "X"):
                # Exited since the listing: it may have forked a child the listing missed.
                unsettled = unsettled or (newer and pid != self.sid)
                continue
            ppid, pgrp, session = int(fields[1]), int(fields[2]), int(fields[3])
            table[pid] = (ppid, fields[19])
            if self.sid is not None and self.sid in (session, pgrp):
                matched.add(pid)
                continue
            if not newer:
                continue  # older than the call, or a kernel thread
            environ = self._environ(pid)
            if environ is not None and self.needle in environ.split(b"\0"):
                matched.add(pid)
            elif environ == b"" and fields[20] == "0":
                unsettled = True  # exiting (no memory left to show an environment)
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        pending = list(matched)
        while pending:
            for child in children.get(pending.pop(), ()):
                if child not in matched and child != me:
                    matched.add(child)
                    pending.append(child)
        return {pid: table[pid][1] for pid in matched if pid in table}, unsettled

    def alive(self) -> bool:
        """True while a process of the call runs (one scan; see :meth:`settle`)."""
        if self.use_proc:
            return bool(self.scan()[0])
        if self.sid is None:
            return False
        try:
            os.killpg(self.sid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    async def settle(self) -> bool:
        """Like :meth:`alive`, but looks again after seeing a new process that just exited.

        One more look is enough: whatever a dead process forked existed before it died, so
        the next listing has it (and it carries the marker, or its parent's session).
        """
        if not self.use_proc:
            return self.alive()
        for _ in range(_SETTLE_TRIES):
            found, unsettled = self.scan()
            if found or not unsettled:
                return bool(found)
            await asyncio.sleep(_SETTLE_S)
        return False

    # ----------------------------------------------------------------------- signalling

    def signal_all(self, sig: int) -> tuple[int, bool]:
        """Send ``sig`` to every live process of the call: (how many, :meth:`scan`'s look-again)."""
        if not self.use_proc:
            if self.sid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.sid, sig)
            return 0, False
        found, unsettled = self.scan()
        for pid, started in found.items():
            _send(pid, started, sig)
        return len(found), unsettled

    def kill_now(self) -> None:
        """SIGKILL everything of the call, sweeping until nothing is left (synchronous).

        Repeated because a process may fork between a scan and its kill; each sweep finds the
        new children (same session, same marker, or a matched parent).
        """
        extra = _SETTLE_TRIES
        for _ in range(_KILL_SWEEPS):
            killed, unsettled = self.signal_all(signal.SIGKILL)
            if not killed:
                if not unsettled or extra <= 0:
                    return
                extra -= 1
            time.sleep(_SETTLE_S)

    async def terminate(self) -> None:
        """SIGTERM (and SIGCONT, so stopped jobs see it), wait up to KILL_GRACE_S, then SIGKILL.

        Escalation is unconditional once the grace is over: a child that traps TERM must not
        outlive the tool call. The final sweep runs even if this coroutine is cancelled.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_GRACE_S
        try:
            self.signal_all(signal.SIGTERM)
            self.signal_all(signal.SIGCONT)
            while self.alive() and loop.time() < deadline:
                await asyncio.sleep(POLL_S)
        finally:
            self.kill_now()


def _now_ticks() -> int:
    """Now, in the unit of /proc/<pid>/stat's start time (clock ticks since boot)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def _send(pid: int, started: str, sig: int) -> None:
    """Signal ``pid`` only if it is still the process the scan saw (same start time)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        pidfd = None  # no pidfd support: fall back to kill() right after the check
    try:
        fields = _stat_fields(pid)
        if fields is None or len(fields) < 20 or fields[19] != started:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pidfd is not None:
                signal.pidfd_send_signal(pidfd, sig)
            else:
                os.kill(pid, sig)
    finally:
        if pidfd is not None:
            os.close(pidfd)


__all__ = ["CALL_MARKER_VAR", "KILL_GRACE_S", "CallProcesses"]
