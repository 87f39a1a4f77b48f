"""The engine clock and its timers: the only source of "now" for anything that waits on time.

Everything that sleeps until a wall time (workflow delays, schedule firings, delivery retries,
memory decay sweeps) arms a timer here instead of polling. Tests replace the clock with a
:class:`FakeClock` and call ``advance()``; the due timers then fire on the engine loop, so no
test sleeps to reach a cron time.

Times are naive UTC ``datetime``s (the store's convention) plus a monotonic float for
durations.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

_TICK = timedelta(microseconds=1)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Clock:
    """Real time: UTC wall clock and ``time.monotonic``."""

    fake = False

    def now(self) -> datetime:
        return utcnow()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock(Clock):
    """A clock that moves only when told to. ``advance`` fires due timers on the engine loop.

    Each reading of ``now()`` also ticks one microsecond, so rows written one after the other
    still sort in the order they happened (real clocks never stand still either).
    """

    fake = True

    def __init__(self, start: datetime | str | None = None) -> None:
        if isinstance(start, str):
            start = datetime.fromisoformat(start)
        if start is not None and start.tzinfo is not None:
            start = start.astimezone(UTC).replace(tzinfo=None)
        self._now = start or utcnow().replace(microsecond=0)
        self._mono = 1000.0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        with self._lock:
            self._now += _TICK
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (forward only), firing what became due."""
        with self._lock:
            delta = (when - self._now).total_seconds()
        if delta < 0:
            raise ValueError(f"a fake clock only moves forward ({when} is before {self._now})")
        self.advance(delta)

    def advance(self, seconds: float | timedelta = 0.0) -> datetime:
        """Move time forward and fire the timers that became due. Returns the new now."""
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        if seconds < 0:
            raise ValueError("a fake clock only moves forward")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds
            now = self._now
            listeners = list(self._listeners)
        for fn in listeners:
            fn()
        return now

    def listen(self, fn: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(fn)

        def stop() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return stop


class Timer:
    __slots__ = ("cancelled", "fn", "label", "when")

    def __init__(self, when: datetime, fn: Callable[[], Any], label: str) -> None:
        self.when = when
        self.fn = fn
        self.label = label
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:
        return f"<Timer {self.label} at {self.when:%Y-%m-%d %H:%M:%S}>"


class Timers:
    """Wall-time timers on the engine loop (engine thread only, except ``advance`` wiring).

    One asyncio handle is armed for the earliest timer; it is re-armed whenever the earliest
    changes. With a real clock a timer that wakes early (the wall clock moved) re-arms; with a
    fake clock timers fire only when the clock advances.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Clock) -> None:
        self._loop = loop
        self._clock = clock
        self._heap: list[tuple[datetime, int, Timer]] = []
        self._count = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for: datetime | None = None
        self.on_error: Callable[[Timer, BaseException], None] | None = None
        if isinstance(clock, FakeClock):
            clock.listen(lambda: loop.call_soon_threadsafe(self._fire_due))

    def at(self, when: datetime, fn: Callable[[], Any], label: str = "timer") -> Timer:
        timer = Timer(when, fn, label)
        heapq.heappush(self._heap, (when, next(self._count), timer))
        self._rearm()
        return timer

    def after(self, seconds: float, fn: Callable[[], Any], label: str = "timer") -> Timer:
        return self.at(self._clock.now() + timedelta(seconds=seconds), fn, label)

    def pending(self) -> list[Timer]:
        return [t for _, _, t in sorted(self._heap) if not t.cancelled]

    def next_due(self) -> datetime | None:
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)

    def _rearm(self) -> None:
        self._drop_cancelled()
        if not self._heap:
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
                self._armed_for = None
            return
        first = self._heap[0][0]
        if self._clock.now() >= first:
            if self._handle is None or self._armed_for != first:
                if self._handle is not None:
                    self._handle.cancel()
                self._armed_for = first
                self._handle = self._loop.call_soon(self._fire_due)
            return
        if self._clock.fake:
            return  # fired by advance()
        if self._armed_for == first and self._handle is not None:
            return
        if self._handle is not None:
            self._handle.cancel()
        delay = (first - self._clock.now()).total_seconds()
        self._armed_for = first
        # Wake at most every hour and re-check, so a clock change is noticed.
        self._handle = self._loop.call_later(min(max(delay, 0.0), 3600.0), self._fire_due)

    def _fire_due(self) -> None:
        self._handle = None
        self._armed_for = None
        now = self._clock.now()
        due: list[Timer] = []
        while self._heap and (self._heap[0][2].cancelled or self._heap[0][0] <= now):
            _, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                due.append(timer)
        for timer in due:
            timer.cancelled = True
            try:
                out = timer.fn()
                if asyncio.iscoroutine(out):
                    self._loop.create_task(out)
            except Exception as exc:
                if self.on_error is not None:
                    self.on_error(timer, exc)
        self._rearm()
