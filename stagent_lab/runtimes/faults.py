"""Provider faults every runtime treats alike: a silent stream and refused credentials.

Why one module: the five provider runtimes reach their model three different ways (an SDK
stream, the Claude Code CLI, the codex app-server), but an operator should read one reason for
one fault, and a task must never hang on a provider. So:

- a stream that sends nothing for the stall limit fails the run with a RuntimeFailure whose
  message starts ``stream stalled``;
- an HTTP 401/403 fails it at once with one that says ``authentication failed``, never after a
  retry loop (a key does not get better by asking again).

The stall limit is read once per run: the ``stall_timeout_s`` option (the task's, then the
runtime's), else the engine's ``ctx.stall_timeout_s``, else 60 s. Silence only counts while the
run waits on the provider: a :class:`StallWatch` is *held* while a tool runs or a person decides,
because neither is the provider's silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

from stagent_lab.errors import RuntimeFailure

T = TypeVar("T")

DEFAULT_STALL_TIMEOUT_S = 60.0
MAX_STALL_TIMEOUT_S = 3600.0
AUTH_STATUSES = frozenset({401, 403})
STALL_PREFIX = "stream stalled"


def stall_limit(ctx: Any, option: Callable[[str, Any], Any] | Mapping[str, Any]) -> float:
    """Seconds of provider silence a run tolerates; a bad value fails with a clear message."""
    read = option.get if isinstance(option, Mapping) else option
    raw, source = read("stall_timeout_s", None), "option stall_timeout_s"
    if raw is None:
        raw, source = getattr(ctx, "stall_timeout_s", None), "ctx.stall_timeout_s"
    if raw is None:
        return DEFAULT_STALL_TIMEOUT_S
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or not math.isfinite(raw)
        or not 0 < raw <= MAX_STALL_TIMEOUT_S
    ):
        raise RuntimeFailure(
            f"{source} must be a number of seconds above 0 and at most "
            f"{MAX_STALL_TIMEOUT_S:g}, got {raw!r}"
        )
    return float(raw)


def stalled_message(who: str, seconds: float) -> str:
    return (
        f"{STALL_PREFIX}: no event from {who} for {seconds:g} s; the run was stopped "
        f"(raise stall_timeout_s if the model needs longer)"
    )


def stall_failure(who: str, seconds: float) -> RuntimeFailure:
    """A stalled stream; resuming later may well work, hence retryable."""
    return RuntimeFailure(stalled_message(who, seconds), retryable=True)


def auth_failure(who: str, status: int | None, detail: str) -> RuntimeFailure:
    where = f" (HTTP {status})" if status else ""
    return RuntimeFailure(f"{who}: authentication failed{where}: {detail}", retryable=False)


class StallWatch:
    """Measures the provider's silence for one run.

    :meth:`wait` awaits one provider event inside a window of ``seconds``; every event starts
    a fresh window. While something that is not the provider keeps the run waiting (a tool
    running, a person deciding) the watch is held (:meth:`hold` / :meth:`release` by key, or
    :meth:`paused`) and silence does not count; releasing the last hold starts a fresh window.
    :meth:`watch` re-yields an async iterator through :meth:`wait`. ``first_event_s`` widens
    the window before the first event (a CLI starting up on a busy machine is not a stalled
    provider).
    """

    def __init__(self, seconds: float, who: str, *, first_event_s: float = 0.0) -> None:
        self.seconds = seconds
        self.who = who
        self.first_event_s = first_event_s
        self._started = False
        self._holds: set[object] = set()
        self._window: asyncio.Timeout | None = None

    @property
    def limit(self) -> float:
        """The current window's length."""
        return self.seconds if self._started else max(self.seconds, self.first_event_s)

    @property
    def held(self) -> bool:
        return bool(self._holds)

    def _deadline(self) -> float | None:
        if self._holds:
            return None
        return asyncio.get_running_loop().time() + self.limit

    def beat(self) -> None:
        """The provider said something: the silence starts again from now."""
        if self._window is not None and not self._window.expired():
            self._window.reschedule(self._deadline())

    def hold(self, key: object) -> None:
        self._holds.add(key)
        self.beat()

    def release(self, key: object) -> None:
        if key in self._holds:
            self._holds.discard(key)
            self.beat()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        key = object()
        self.hold(key)
        try:
            yield
        finally:
            self.release(key)

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await one provider event; raise the stall failure if the window expires first."""
        window = asyncio.timeout_at(self._deadline())
        self._window = window
        limit = self.limit
        try:
            async with window:
                item = await awaitable
        except TimeoutError:
            if window.expired():
                raise stall_failure(self.who, limit) from None
            raise
        finally:
            self._window = None
        self._started = True
        return item

    async def watch(self, items: AsyncIterator[T]) -> AsyncIterator[T]:
        """Re-yield ``items``; time spent by our own consumer between two items never counts."""
        iterator = aiter(items)
        while True:
            try:
                item = await self.wait(anext(iterator))
            except StopAsyncIteration:
                return
            yield item


__all__ = [
    "AUTH_STATUSES",
    "DEFAULT_STALL_TIMEOUT_S",
    "MAX_STALL_TIMEOUT_S",
    "STALL_PREFIX",
    "StallWatch",
    "auth_failure",
    "stall_failure",
    "stall_limit",
    "stalled_message",
]
