"""Queue and concurrency: who may run now.

A task waits for a slot before it runs. Slots are limited globally (``engine.max_concurrent``)
and, for tasks in a named pool (schedule firings, channel tasks …), by the pool's own limit
within the global one. Waiters are served by priority, then in arrival order; a task whose pool
is full does not block the ones behind it that could run. Limits can change while tasks wait
(a setting changed), and the queue re-evaluates at once, so a limit is never stuck.

Engine thread only.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(order=True)
class _Waiter:
    priority: int
    order: int
    pool: str | None = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class SlotQueue:
    def __init__(self, limit: int, pool_limits: dict[str, Callable[[], int]] | None = None):
        self._limit = max(1, int(limit))
        self.pool_limits: dict[str, Callable[[], int]] = dict(pool_limits or {})
        self.running = 0
        self.by_pool: dict[str, int] = {}
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        self._limit = max(1, int(limit))
        self._wake()

    def set_pool_limit(self, pool: str, limit: Callable[[], int]) -> None:
        self.pool_limits[pool] = limit
        self._wake()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.future.done())

    def _pool_full(self, pool: str | None) -> bool:
        if pool is None or pool not in self.pool_limits:
            return False
        try:
            cap = max(1, int(self.pool_limits[pool]()))
        except Exception:
            cap = 1
        return self.by_pool.get(pool, 0) >= cap

    def _can_run(self, pool: str | None) -> bool:
        return self.running < self._limit and not self._pool_full(pool)

    def _take(self, pool: str | None) -> None:
        self.running += 1
        if pool is not None:
            self.by_pool[pool] = self.by_pool.get(pool, 0) + 1

    async def acquire(self, pool: str | None = None, priority: int = 0) -> None:
        if not self._waiters and self._can_run(pool):
            self._take(pool)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(-priority, next(self._order), pool, fut)
        self._waiters.append(waiter)
        self._waiters.sort()
        self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(pool)  # granted and cancelled in the same instant
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self, pool: str | None = None) -> None:
        self.running = max(0, self.running - 1)
        if pool is not None and self.by_pool.get(pool):
            self.by_pool[pool] -= 1
        self._wake()

    def _wake(self) -> None:
        for waiter in list(self._waiters):
            if self.running >= self._limit:
                break
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            if self._pool_full(waiter.pool):
                continue
            self._waiters.remove(waiter)
            self._take(waiter.pool)
            waiter.future.set_result(None)
