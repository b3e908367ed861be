"""Clocks for the governor: the system clock, and a manual one for tests and simulations.

The governor reads host wall-clock time (fixed windows are aligned to the epoch) and waits on the
same clock, so a manual clock makes every wait deterministic: time moves only on ``advance``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Host wall-clock time in seconds since the epoch, and a way to wait on it."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """Time stands still until ``advance``; ``sleeping`` is set whenever someone waits on it."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.sleeping = asyncio.Event()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + max(0.0, seconds), next(self._seq), fut))
        self.sleeping.set()
        await fut

    def pending(self) -> int:
        return sum(1 for *_, fut in self._timers if not fut.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order and letting woken tasks run."""
        target = self.now + seconds
        await _settle()
        while self._timers and self._timers[0][0] <= target:
            when, _, fut = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self.now = target
        await _settle()


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
